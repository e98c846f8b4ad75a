"""OneRoster 1.2 (1EdTech): rostering and gradebook from a CSV bundle or the REST services."""

from connectors.oneroster.bundle import Bundle, BundleError
from connectors.oneroster.mapping import oneroster_mapping
from connectors.oneroster.source import OneRosterSource

__all__ = ["Bundle", "BundleError", "OneRosterSource", "oneroster_mapping"]

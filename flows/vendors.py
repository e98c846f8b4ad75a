"""Which source and mapping serve a vendor: the one place the flow learns vendor names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from connectors.extract import StagedPage
from flows.settings import ConfigError, InstitutionConfig
from transforms.mapping import VendorMapping


class Source(Protocol):
    vendor: str
    domains: tuple[str, ...]

    def streams(self, domain: str) -> dict[str, pa.Schema]: ...

    def list_courses(self, *, term: str | None = None) -> Iterator[dict[str, Any]]: ...

    def domain_pages(
        self, *, course_id: str, domain: str, run_id: str, activity_since: datetime | None = None
    ) -> Iterator[StagedPage]: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def open_source(config: InstitutionConfig) -> Source:
    if config.vendor == "canvas":
        from connectors.canvas.source import CanvasSource

        assert config.token is not None  # enforced by the settings validator
        return CanvasSource(
            base_url=config.base_url,
            token=config.token.get_secret_value(),
            account_id=config.account_id,
            max_in_flight=config.quota.max_in_flight_requests,
        )
    raise ConfigError(f"vendor: '{config.vendor}' has no connector in this release yet")


def mapping_for(config: InstitutionConfig) -> VendorMapping:
    if config.vendor == "canvas":
        from connectors.canvas.mapping import canvas_mapping

        return canvas_mapping(extra_credit_allowed=config.extra_credit_allowed)
    raise ConfigError(f"vendor: '{config.vendor}' has no mapping in this release yet")

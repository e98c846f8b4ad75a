"""The OneRoster 1.2 emulator: a seeded district served as REST, or written as a CSV bundle."""

from emulators.oneroster.app import create_app
from emulators.oneroster.bundle import write_bundle
from emulators.oneroster.institution import Institution, build_institution
from emulators.oneroster.server import OneRosterEmulator, serve
from emulators.oneroster.settings import OneRosterEmulatorSettings

__all__ = [
    "Institution",
    "OneRosterEmulator",
    "OneRosterEmulatorSettings",
    "build_institution",
    "create_app",
    "serve",
    "write_bundle",
]

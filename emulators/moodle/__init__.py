"""The Moodle emulator: a seeded synthetic site served as Moodle 4.5 web services (REST)."""

from emulators.moodle.app import SERVER_PATH, create_app
from emulators.moodle.faults import FAULT_KINDS, FaultSettings
from emulators.moodle.institution import Institution, build_institution
from emulators.moodle.server import MoodleEmulator, serve
from emulators.moodle.settings import LatencySettings, MoodleEmulatorSettings

__all__ = [
    "FAULT_KINDS",
    "SERVER_PATH",
    "FaultSettings",
    "Institution",
    "LatencySettings",
    "MoodleEmulator",
    "MoodleEmulatorSettings",
    "build_institution",
    "create_app",
    "serve",
]

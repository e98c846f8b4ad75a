"""The Blackboard Learn emulator: a seeded synthetic site served as Learn REST (3900.123.0)."""

from emulators.blackboard.app import create_app
from emulators.blackboard.institution import Institution, build_institution
from emulators.blackboard.server import BlackboardEmulator, serve
from emulators.blackboard.settings import BlackboardEmulatorSettings

__all__ = [
    "BlackboardEmulator",
    "BlackboardEmulatorSettings",
    "Institution",
    "build_institution",
    "create_app",
    "serve",
]

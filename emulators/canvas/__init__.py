"""The Canvas emulator: a seeded synthetic institution served as Canvas REST v1."""

from emulators.canvas.app import create_app
from emulators.canvas.faults import FAULT_KINDS, FaultSettings
from emulators.canvas.institution import Institution, build_institution
from emulators.canvas.server import CanvasEmulator, serve
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.canvas.throttle import ThrottleSettings

__all__ = [
    "FAULT_KINDS",
    "CanvasEmulator",
    "CanvasEmulatorSettings",
    "FaultSettings",
    "Institution",
    "ThrottleSettings",
    "build_institution",
    "create_app",
    "serve",
]

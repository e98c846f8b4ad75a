"""Run the Canvas emulator on loopback: in a background thread for tests, in the foreground
for the CLI and the demo."""

from __future__ import annotations

from typing import Any

from emulators.canvas.app import create_app
from emulators.canvas.institution import Institution
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.canvas.stats import EmulatorStats
from emulators.serving import BackgroundServer, serve_forever


class CanvasEmulator(BackgroundServer):
    """A Canvas emulator on ``127.0.0.1`` in a background thread, as a context manager.

    ``app.state`` holds the chaos knobs a test may flip while serving.

    >>> with CanvasEmulator(institution, settings=CanvasEmulatorSettings()) as canvas:
    ...     httpx.get(f"{canvas.base_url}/api/v1/courses/101", headers=...)
    """

    label = "Canvas"

    def __init__(
        self,
        institution: Institution,
        *,
        settings: CanvasEmulatorSettings | None = None,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        super().__init__(port=port, log_level=log_level)
        self.institution = institution
        self.settings = settings or CanvasEmulatorSettings()
        self.stats = EmulatorStats()

    def build_app(self) -> Any:
        return create_app(self.institution, settings=self.settings, stats=self.stats)


def serve(settings: CanvasEmulatorSettings, institution: Institution, port: int) -> None:
    """Serve in the foreground until interrupted (Ctrl-C / SIGTERM); prints the base URL."""
    serve_forever(create_app(institution, settings=settings), port=port, label="Canvas")

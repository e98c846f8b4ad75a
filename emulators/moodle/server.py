"""Run the Moodle emulator on loopback: in a background thread for tests, in the foreground for
the CLI and the demo."""

from __future__ import annotations

from typing import Any

from emulators.canvas.stats import EmulatorStats
from emulators.moodle.app import SERVER_PATH, create_app
from emulators.moodle.institution import Institution
from emulators.moodle.settings import MoodleEmulatorSettings
from emulators.serving import BackgroundServer, serve_forever


class MoodleEmulator(BackgroundServer):
    """A Moodle emulator on ``127.0.0.1`` in a background thread, as a context manager.

    >>> with MoodleEmulator(institution, settings=MoodleEmulatorSettings(token="t")) as moodle:
    ...     httpx.get(moodle.server_url, params={"wstoken": "t", "wsfunction": ...,
    ...               "moodlewsrestformat": "json"})
    """

    label = "Moodle"

    def __init__(
        self,
        institution: Institution,
        *,
        settings: MoodleEmulatorSettings | None = None,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        super().__init__(port=port, log_level=log_level)
        self.institution = institution
        self.settings = settings or MoodleEmulatorSettings()
        self.stats = EmulatorStats()

    @property
    def server_url(self) -> str:
        return self.base_url + SERVER_PATH

    def build_app(self) -> Any:
        return create_app(self.institution, settings=self.settings, stats=self.stats)


def serve(settings: MoodleEmulatorSettings, institution: Institution, port: int) -> None:
    """Serve in the foreground until interrupted; prints the base URL."""
    serve_forever(create_app(institution, settings=settings), port=port, label="Moodle")

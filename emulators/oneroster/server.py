"""Run the OneRoster emulator on loopback: in a background thread for tests, in the foreground for
the CLI."""

from __future__ import annotations

from typing import Any

from emulators.canvas.stats import EmulatorStats
from emulators.oneroster.app import create_app
from emulators.oneroster.institution import Institution
from emulators.oneroster.settings import OneRosterEmulatorSettings
from emulators.serving import BackgroundServer, serve_forever


class OneRosterEmulator(BackgroundServer):
    """A OneRoster 1.2 REST emulator on ``127.0.0.1`` in a background thread.

    ``institution`` may be replaced while it runs (``emu.institution = v2``): the next request
    sees the changed district; ``tokens.expire_all()`` revokes every issued token.

    >>> with OneRosterEmulator(build_institution(seed=3)) as emu:
    ...     httpx.post(f"{emu.base_url}/oauth/token", auth=(client_id, secret), ...)
    """

    label = "OneRoster"

    def __init__(
        self,
        institution: Institution,
        *,
        settings: OneRosterEmulatorSettings | None = None,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        super().__init__(port=port, log_level=log_level)
        self.settings = settings or OneRosterEmulatorSettings()
        self.stats = EmulatorStats()
        # Built up front: the district can be swapped through app.state before or while serving.
        self.app = create_app(institution, settings=self.settings, stats=self.stats)

    @property
    def institution(self) -> Institution:
        return self.app.state.or_state.institution

    @institution.setter
    def institution(self, value: Institution) -> None:
        self.app.state.or_state.institution = value

    @property
    def tokens(self) -> Any:
        return self.app.state.or_state.tokens

    def build_app(self) -> Any:
        return self.app


def serve(settings: OneRosterEmulatorSettings, institution: Institution, port: int) -> None:
    """Serve in the foreground until interrupted; prints the base URL."""
    serve_forever(create_app(institution, settings=settings), port=port, label="OneRoster")

"""Run the Blackboard emulator on loopback: in a background thread for tests, in the foreground for
the CLI and the demo."""

from __future__ import annotations

from typing import Any

from emulators.blackboard.app import create_app
from emulators.blackboard.frontdoor import TokenStore
from emulators.blackboard.institution import Institution
from emulators.blackboard.quota import DailyQuota
from emulators.blackboard.settings import BlackboardEmulatorSettings
from emulators.canvas.stats import EmulatorStats
from emulators.serving import BackgroundServer, serve_forever


class BlackboardEmulator(BackgroundServer):
    """A Learn emulator on ``127.0.0.1`` in a background thread, as a context manager.

    ``quota`` and ``tokens`` are live: tests spend or reset the daily quota and expire tokens
    mid-run (``emu.quota.exhaust()``, ``emu.tokens.expire_all()``).

    >>> with BlackboardEmulator(institution) as bb:
    ...     httpx.post(f"{bb.base_url}/learn/api/public/v1/oauth2/token", ...)
    """

    label = "Blackboard"

    def __init__(
        self,
        institution: Institution,
        *,
        settings: BlackboardEmulatorSettings | None = None,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        super().__init__(port=port, log_level=log_level)
        self.institution = institution
        self.settings = settings or BlackboardEmulatorSettings()
        self.stats = EmulatorStats()
        self.quota = DailyQuota(self.settings.daily_quota, self.settings.quota_window_seconds)
        self.tokens = TokenStore(self.settings.token_ttl_seconds)

    def build_app(self) -> Any:
        return create_app(
            self.institution,
            settings=self.settings,
            stats=self.stats,
            quota=self.quota,
            tokens=self.tokens,
        )


def serve(settings: BlackboardEmulatorSettings, institution: Institution, port: int) -> None:
    """Serve in the foreground until interrupted; prints the base URL."""
    serve_forever(create_app(institution, settings=settings), port=port, label="Blackboard")

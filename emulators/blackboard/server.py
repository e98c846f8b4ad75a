"""Run the Blackboard emulator on loopback: in a background thread for tests, in the foreground for
the CLI and the demo."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from emulators.blackboard.app import create_app
from emulators.blackboard.frontdoor import TokenStore
from emulators.blackboard.institution import Institution
from emulators.blackboard.quota import DailyQuota
from emulators.blackboard.settings import BlackboardEmulatorSettings
from emulators.canvas.server import HOST, _bind, _uvicorn_server
from emulators.canvas.stats import EmulatorStats


class BlackboardEmulator:
    """A Learn emulator on ``127.0.0.1`` in a background thread, as a context manager.

    ``quota`` and ``tokens`` are live: tests spend or reset the daily quota and expire tokens
    mid-run (``emu.quota.exhaust()``, ``emu.tokens.expire_all()``).

    >>> with BlackboardEmulator(institution) as bb:
    ...     httpx.post(f"{bb.base_url}/learn/api/public/v1/oauth2/token", ...)
    """

    def __init__(
        self,
        institution: Institution,
        *,
        settings: BlackboardEmulatorSettings | None = None,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.institution = institution
        self.settings = settings or BlackboardEmulatorSettings()
        self.stats = EmulatorStats()
        self.quota = DailyQuota(self.settings.daily_quota, self.settings.quota_window_seconds)
        self.tokens = TokenStore(self.settings.token_ttl_seconds)
        self._port = port
        self._log_level = log_level
        self._server = self._thread = self._socket = None
        self.base_url = ""

    def start(self, timeout: float = 5.0) -> BlackboardEmulator:
        app = create_app(
            self.institution,
            settings=self.settings,
            stats=self.stats,
            quota=self.quota,
            tokens=self.tokens,
        )
        self._socket = _bind(self._port)
        port = self._socket.getsockname()[1]
        self.base_url = f"http://{HOST}:{port}"
        self._server = _uvicorn_server(app, log_level=self._log_level)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"blackboard-emulator-{port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Blackboard emulator did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> BlackboardEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(settings: BlackboardEmulatorSettings, institution: Institution, port: int) -> None:
    """Serve in the foreground until interrupted; prints the base URL."""
    app = create_app(institution, settings=settings)
    sock = _bind(port)
    print(f"Blackboard emulator listening on http://{HOST}:{sock.getsockname()[1]}", flush=True)
    _uvicorn_server(app, log_level="warning").run(sockets=[sock])

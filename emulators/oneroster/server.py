"""Run the OneRoster emulator on loopback: in a background thread for tests, in the foreground for
the CLI."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from emulators.canvas.server import HOST, _bind, _uvicorn_server
from emulators.canvas.stats import EmulatorStats
from emulators.oneroster.app import create_app
from emulators.oneroster.institution import Institution
from emulators.oneroster.settings import OneRosterEmulatorSettings


class OneRosterEmulator:
    """A OneRoster 1.2 REST emulator on ``127.0.0.1`` in a background thread.

    ``institution`` may be replaced while it runs (``emu.institution = v2``): the next request
    sees the changed district; ``tokens.expire_all()`` revokes every issued token.

    >>> with OneRosterEmulator(build_institution(seed=3)) as emu:
    ...     httpx.post(f"{emu.base_url}/oauth/token", auth=(client_id, secret), ...)
    """

    def __init__(
        self,
        institution: Institution,
        *,
        settings: OneRosterEmulatorSettings | None = None,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.settings = settings or OneRosterEmulatorSettings()
        self.stats = EmulatorStats()
        self.app = create_app(institution, settings=self.settings, stats=self.stats)
        self._port = port
        self._log_level = log_level
        self._server = self._thread = self._socket = None
        self.base_url = ""

    @property
    def institution(self) -> Institution:
        return self.app.state.or_state.institution

    @institution.setter
    def institution(self, value: Institution) -> None:
        self.app.state.or_state.institution = value

    @property
    def tokens(self):
        return self.app.state.or_state.tokens

    def start(self, timeout: float = 5.0) -> OneRosterEmulator:
        self._socket = _bind(self._port)
        port = self._socket.getsockname()[1]
        self.base_url = f"http://{HOST}:{port}"
        self._server = _uvicorn_server(self.app, log_level=self._log_level)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"oneroster-emulator-{port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"OneRoster emulator did not start on {self.base_url}")
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

    def __enter__(self) -> OneRosterEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(settings: OneRosterEmulatorSettings, institution: Institution, port: int) -> None:
    """Serve in the foreground until interrupted; prints the base URL."""
    app = create_app(institution, settings=settings)
    sock = _bind(port)
    print(f"OneRoster emulator listening on http://{HOST}:{sock.getsockname()[1]}", flush=True)
    _uvicorn_server(app, log_level="warning").run(sockets=[sock])

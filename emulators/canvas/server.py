"""Run the Canvas emulator on loopback: in a background thread for tests, in the foreground
for the CLI and the demo."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from emulators.canvas.app import create_app
from emulators.canvas.institution import Institution
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.canvas.stats import EmulatorStats

HOST = "127.0.0.1"


def _uvicorn_server(app, *, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="off",
        access_log=False,
        # An injected `timeout` fault may still be sleeping; do not wait for it on shutdown.
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(config)


def _bind(port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that declare it, and
    # without it every small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    # Listen now, so a client that reads the printed URL can connect before uvicorn is ready.
    sock.listen(2048)
    return sock


class CanvasEmulator:
    """A Canvas emulator on ``127.0.0.1`` in a background thread, as a context manager.

    >>> with CanvasEmulator(institution, settings=CanvasEmulatorSettings()) as canvas:
    ...     httpx.get(f"{canvas.base_url}/api/v1/courses/101", headers=...)
    """

    def __init__(
        self,
        institution: Institution,
        *,
        settings: CanvasEmulatorSettings | None = None,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.institution = institution
        self.settings = settings or CanvasEmulatorSettings()
        self.stats = EmulatorStats()
        self._port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.base_url = ""

    def start(self, timeout: float = 5.0) -> CanvasEmulator:
        """Bind, start serving and wait until the server accepts connections."""
        app = create_app(self.institution, settings=self.settings, stats=self.stats)
        self.app = app  # app.state holds the chaos knobs a test may flip while serving
        self._socket = _bind(self._port)
        port = self._socket.getsockname()[1]
        self.base_url = f"http://{HOST}:{port}"
        self._server = _uvicorn_server(app, log_level=self._log_level)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"canvas-emulator-{port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Canvas emulator did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> CanvasEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(settings: CanvasEmulatorSettings, institution: Institution, port: int) -> None:
    """Serve in the foreground until interrupted (Ctrl-C / SIGTERM); prints the base URL."""
    app = create_app(institution, settings=settings)
    sock = _bind(port)
    print(f"Canvas emulator listening on http://{HOST}:{sock.getsockname()[1]}", flush=True)
    _uvicorn_server(app, log_level="warning").run(sockets=[sock])

"""Serving an emulator on loopback: in a background thread for tests, in the foreground for the CLI.

Every vendor's emulator is an ASGI app; this module holds the one way they are served, so socket
options, start-up waiting and shutdown behave the same for all of them.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

HOST = "127.0.0.1"


def uvicorn_server(app: Any, *, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="off",
        access_log=False,
        # An injected `timeout` fault may still be sleeping; do not wait for it on shutdown.
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(config)


def bind(port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that declare it, and
    # without it every small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    # Listen now, so a client that reads the printed URL can connect before uvicorn is ready.
    sock.listen(2048)
    return sock


def serve_forever(app: Any, *, port: int, label: str) -> None:
    """Serve in the foreground until interrupted (Ctrl-C / SIGTERM); prints the base URL."""
    sock = bind(port)
    print(f"{label} emulator listening on http://{HOST}:{sock.getsockname()[1]}", flush=True)
    uvicorn_server(app, log_level="warning").run(sockets=[sock])


class BackgroundServer:
    """An emulator's app on ``127.0.0.1`` in a daemon thread, as a context manager.

    A vendor's emulator subclasses it and builds its app in ``build_app`` (called by ``start``);
    ``base_url`` is known once started.
    """

    label = "emulator"

    def __init__(self, *, port: int = 0, log_level: str = "warning") -> None:
        self._port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.base_url = ""

    def build_app(self) -> Any:
        raise NotImplementedError

    def start(self, timeout: float = 5.0) -> Self:
        """Bind, start serving and wait until the server accepts connections."""
        self.app = self.build_app()
        self._socket = bind(self._port)
        port = self._socket.getsockname()[1]
        self.base_url = f"http://{HOST}:{port}"
        self._server = uvicorn_server(self.app, log_level=self._log_level)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"{self.label.lower()}-emulator-{port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.label} emulator did not start on {self.base_url}")
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

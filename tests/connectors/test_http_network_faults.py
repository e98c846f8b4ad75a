"""Real sockets: a tiny server that resets, truncates or stalls, then answers properly."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from connectors import CircuitBreaker, CircuitOpenError, RetryPolicy, VendorClient

pytestmark = pytest.mark.timeout(20)

_BODY = b'[{"a":1}]'
GOOD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_BODY),
    _BODY,
)


class FaultyServer:
    """Serves one scripted behaviour per connection: "reset", "truncate", "stall" or "ok"."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            behaviour = self.script[min(self.connections, len(self.script) - 1)]
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn, behaviour), daemon=True).start()

    def _handle(self, conn: socket.socket, behaviour: str) -> None:
        with conn:
            conn.recv(65536)
            if behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return  # close with RST
            if behaviour == "truncate":
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{"a":')
                return
            if behaviour == "stall":
                time.sleep(1.0)
                return
            conn.sendall(GOOD)
            time.sleep(0.05)

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def serve() -> Iterator[type[FaultyServer]]:
    servers: list[FaultyServer] = []

    def start(script: list[str]) -> FaultyServer:
        server = FaultyServer(script)
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def _client(port: int, **kwargs: object) -> VendorClient:
    return VendorClient(
        vendor="canvas",
        base_url=f"http://127.0.0.1:{port}/api/v1/",
        retry=RetryPolicy.fast(),
        timeout=httpx.Timeout(0.3),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("fault", ["reset", "truncate", "stall"])
def test_fault_then_success(serve, fault: str) -> None:  # type: ignore[no-untyped-def]
    server = serve([fault, "ok"])
    with _client(server.port) as client:
        result = client.get_json("courses/1/users", endpoint="courses/{id}/users", course_id="1")
    assert result.data == [{"a": 1}]
    assert result.attempts == 2


def test_connection_refused_opens_the_breaker() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens here now
    breaker = CircuitBreaker(failure_threshold=3, reset_after_seconds=60)
    with _client(port, breaker=breaker) as client:
        with pytest.raises(CircuitOpenError):
            client.get_json("x", endpoint="x")
        assert client.stats.snapshot()["requests"] == 3
        with pytest.raises(CircuitOpenError):
            client.get_json("x", endpoint="x")
        assert client.stats.snapshot()["requests"] == 3

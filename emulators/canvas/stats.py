"""Thread-safe counters of what the emulator served, for tests and benchmarks to assert on."""

from __future__ import annotations

import threading
from collections import Counter


class EmulatorStats:
    """Requests, throttled responses, injected faults by kind and requests per path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._throttled = 0
        self._faults: Counter[str] = Counter()
        self._paths: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._peak_in_flight: Counter[str] = Counter()

    def enter(self, client: str) -> None:
        """A request of ``client`` (a token) is being served: tracks the peak concurrency per
        client, which is what a vendor's quota sees however many workers the client runs."""
        with self._lock:
            self._in_flight[client] += 1
            self._peak_in_flight[client] = max(
                self._peak_in_flight[client], self._in_flight[client]
            )

    def leave(self, client: str) -> None:
        with self._lock:
            self._in_flight[client] -= 1

    def record_request(self, path: str) -> None:
        with self._lock:
            self._requests += 1
            self._paths[path] += 1

    def record_throttled(self) -> None:
        with self._lock:
            self._throttled += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def throttled(self) -> int:
        with self._lock:
            return self._throttled

    @property
    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    @property
    def paths(self) -> dict[str, int]:
        with self._lock:
            return dict(self._paths)

    @property
    def peak_in_flight(self) -> dict[str, int]:
        with self._lock:
            return dict(self._peak_in_flight)

    def snapshot(self) -> dict:
        """A consistent copy of every counter."""
        with self._lock:
            return {
                "requests": self._requests,
                "throttled": self._throttled,
                "faults": dict(self._faults),
                "paths": dict(self._paths),
                "peak_in_flight": dict(self._peak_in_flight),
            }

    def reset(self) -> None:
        with self._lock:
            self._requests = self._throttled = 0
            self._faults.clear()
            self._paths.clear()

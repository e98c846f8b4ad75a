"""Canvas's leaky-bucket request throttle (canvas-api.md §3, request_throttle.rb).

Each request adds ``up_front_cost`` before it runs and holds it while in flight; it is refused
if the bucket is then at or above the high-water mark. When it settles, the up-front cost is
replaced by the request's actual cost. So concurrency trips the limit, sequential clients rarely.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottleSettings:
    """Bucket parameters; Canvas defaults (hwm 600, maximum 800, outflow 10/s, up-front 50)."""

    enabled: bool = True
    dialect: str = "403"  # "403" (Canvas through 2025) or "429" (late-2025 change)
    hwm: float = 600.0
    maximum: float = 800.0
    outflow: float = 10.0
    up_front_cost: float = 50.0
    request_cost: float = 0.5  # simulated CPU + DB seconds of one request
    per_record_cost: float = 0.0  # added per record served, for cost that grows with page size

    def __post_init__(self) -> None:
        if self.dialect not in ("403", "429"):
            raise ValueError(f"throttle dialect must be '403' or '429', not {self.dialect!r}")
        if self.hwm <= 0 or self.maximum < self.hwm or self.outflow < 0:
            raise ValueError("throttle needs 0 < hwm <= maximum and outflow >= 0")


class LeakyBucket:
    """One client's bucket. Thread-safe; the clock is injectable for tests."""

    def __init__(self, settings: ThrottleSettings, clock=time.monotonic) -> None:
        self._s = settings
        self._clock = clock
        self._count = 0.0
        self._touched = clock()
        self._lock = threading.Lock()

    def _leak(self) -> None:
        now = self._clock()
        self._count = max(0.0, self._count - self._s.outflow * (now - self._touched))
        self._touched = now

    def _add(self, amount: float) -> None:
        self._count = min(self._s.maximum, max(0.0, self._count + amount))

    def admit(self) -> bool:
        """Pre-flight: add the up-front cost; False (and refunded) if the bucket is full."""
        with self._lock:
            self._leak()
            self._add(self._s.up_front_cost)
            if self._count >= self._s.hwm:
                self._add(-self._s.up_front_cost)
                return False
            return True

    def settle(self, cost: float) -> float:
        """Swap the held up-front cost for the actual cost; returns X-Rate-Limit-Remaining."""
        with self._lock:
            self._leak()
            self._add(cost - self._s.up_front_cost)
            return self._s.hwm - self._count

    def remaining(self) -> float:
        with self._lock:
            self._leak()
            return self._s.hwm - self._count


class Throttle:
    """Buckets keyed by client identity (here: the access token)."""

    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self._buckets: dict[str, LeakyBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, client: str) -> LeakyBucket:
        with self._lock:
            if client not in self._buckets:
                self._buckets[client] = LeakyBucket(self.settings)
            return self._buckets[client]

    def rejection(self) -> tuple[int, bytes]:
        """Status and plain-text body of a throttled response in the configured dialect."""
        if self.settings.dialect == "429":
            return 429, b"429 Too Many Requests (Rate Limit Exceeded)\n"
        return 403, b"403 Forbidden (Rate Limit Exceeded)\n"

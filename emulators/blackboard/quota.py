"""The site's daily call quota (reference §1c): a count per 24 h shared by every application key,
refused with 429 once spent; every response carries the rate-limit headers.

The header names ``X-Rate-Limit-Limit``/``-Remaining``/``-Reset`` (seconds until the window
refills) are unverified against a live site (openEQUELLA#853 confirms ``X-Rate-Limit`` headers
exist); they are what this emulator sends and what the connector reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class DailyQuota:
    """A fixed-window call counter. Thread-safe; the clock is injectable for tests."""

    def __init__(
        self, limit: int, window_seconds: float = 86_400.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._used = 0
        self._started = clock()

    def _roll(self) -> None:
        now = self._clock()
        if now - self._started >= self.window:
            self._used = 0
            self._started = now

    def take(self) -> bool:
        """Count one call; False (not counted) when the quota is spent."""
        with self._lock:
            self._roll()
            if self._used >= self.limit:
                return False
            self._used += 1
            return True

    def headers(self) -> list[tuple[bytes, bytes]]:
        with self._lock:
            self._roll()
            remaining = max(0, self.limit - self._used)
            reset = max(0, int(self._started + self.window - self._clock()))
        return [
            (b"x-rate-limit-limit", str(self.limit).encode()),
            (b"x-rate-limit-remaining", str(remaining).encode()),
            (b"x-rate-limit-reset", str(reset).encode()),
        ]

    @property
    def used(self) -> int:
        with self._lock:
            self._roll()
            return self._used

    @property
    def remaining(self) -> int:
        with self._lock:
            self._roll()
            return max(0, self.limit - self._used)

    def exhaust(self) -> None:
        """Spend what is left (another application of the developer group used it)."""
        with self._lock:
            self._used = self.limit

    def spend(self, calls: int) -> None:
        """Count ``calls`` made elsewhere against the quota."""
        with self._lock:
            self._used = min(self.limit, self._used + calls)

    def reset(self) -> None:
        """A new day: the window refills."""
        with self._lock:
            self._used = 0
            self._started = self._clock()

"""Circuit breaker: stop hammering a vendor that keeps failing, and find out when it recovers.

    closed ──(N consecutive transient failures)──► open ──(reset_after_seconds)──► half-open
      ▲                                                                              │
      └──────────────── probe got any answer that is not a transient failure ◄───────┘
                        (a failed probe re-opens the circuit for another period)

Only transient failures count — 5xx, connection refused/reset, timeouts, truncated bodies.
A throttled response or a permanent 4xx proves the vendor is up, so it closes the circuit and
resets the count. While open, `acquire` raises `CircuitOpenError` without sending anything; while
half-open exactly one caller gets through as the probe. Shared by threads: all state is locked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

from connectors.errors import CircuitOpenError


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_after_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._threshold = failure_threshold
        self._reset_after = reset_after_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def acquire(self, *, vendor: str, endpoint: str, course_id: str | None = None) -> None:
        """Let one request through, or raise `CircuitOpenError` (the context names the request)."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                waited = self._clock() - self._opened_at
                if waited < self._reset_after:
                    raise self._open_error(vendor, endpoint, course_id, self._reset_after - waited)
                self._state = BreakerState.HALF_OPEN
                self._probe_in_flight = False
            if self._state is BreakerState.HALF_OPEN:
                if self._probe_in_flight:
                    raise self._open_error(vendor, endpoint, course_id, 0.0)
                self._probe_in_flight = True

    def record_success(self) -> None:
        """The vendor answered with anything but a transient failure."""
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probe_in_flight = False

    def record_failure(self) -> None:
        """A transient failure (5xx, connection error, timeout, truncated body)."""
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()
                self._probe_in_flight = False

    def _open_error(
        self, vendor: str, endpoint: str, course_id: str | None, retry_in: float
    ) -> CircuitOpenError:
        return CircuitOpenError(
            vendor=vendor,
            endpoint=endpoint,
            course_id=course_id,
            state=str(self._state),
            failures=self._failures,
            retry_in_seconds=retry_in,
        )

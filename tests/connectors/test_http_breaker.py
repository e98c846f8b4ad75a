from __future__ import annotations

import threading

import pytest

from connectors import BreakerState, CircuitBreaker, CircuitOpenError
from tests.connectors.http_fakes import FakeClock

CTX = {"vendor": "canvas", "endpoint": "courses/{id}/users", "course_id": "7"}


def test_opens_after_threshold_and_fails_fast() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_seconds=30, clock=clock)
    for _ in range(3):
        breaker.acquire(**CTX)
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire(**CTX)
    assert info.value.failures == 3
    assert info.value.retry_in_seconds == pytest.approx(30)
    assert info.value.kind == "transient"
    assert "canvas course 7" in str(info.value)


def test_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_allows_one_probe_then_closes_or_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_seconds=10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    breaker.acquire(**CTX)  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.acquire(**CTX)  # a second caller while the probe is out
    breaker.record_failure()  # probe failed: open for another period
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        breaker.acquire(**CTX)
    clock.advance(10)
    breaker.acquire(**CTX)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.acquire(**CTX)


def test_only_one_probe_among_threads() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_seconds=1, clock=clock)
    breaker.record_failure()
    clock.advance(1)
    admitted: list[int] = []
    barrier = threading.Barrier(16)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            breaker.acquire(**CTX)
            admitted.append(i)
        except CircuitOpenError:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1

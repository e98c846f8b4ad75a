"""The institution's limits against a real Prefect server: the course limit holds across
processes' pools, slots pass from course to course without a server call each, nothing stays
held; the shared request budget holds its rate across two pacers fetching permits in the
background."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect.client.orchestration import get_client

from flows.limits import CourseSlots, LimitMissing, SharedRequestBudget
from tests.e2e.conftest import prefect_server  # noqa: F401 - fixture


def _limit(limit: int) -> str:
    name = f"test-courses-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit=limit)
    return name


def _active(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


class _Peak:
    def __init__(self) -> None:
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def course(self, seconds: float) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(seconds)
        with self._lock:
            self.now -= 1


def _run(slots: CourseSlots, peak: _Peak, courses: int, lanes: int, seconds: float) -> None:
    def one(_: int) -> None:
        with slots.slot():
            peak.course(seconds)

    with ThreadPoolExecutor(lanes) as pool:
        list(pool.map(one, range(courses)))


def test_slots_pass_from_course_to_course_and_all_return(prefect_server) -> None:  # noqa: F811
    name = _limit(8)
    slots = CourseSlots(name, courses=40, lanes=8)
    peak = _Peak()
    slots.prefetch()
    assert _active(name) == 8
    _run(slots, peak, courses=40, lanes=8, seconds=0.02)
    slots.close()
    assert peak.peak == 8
    assert slots.acquired <= 2  # one lease for the run (a second only if the tail let one go)
    assert _active(name) == 0


def test_two_pools_never_exceed_the_limit_together(prefect_server) -> None:  # noqa: F811
    """Two shards of 8 lanes each under a limit of 5: each asks for 8, gets what fits."""
    name = _limit(5)
    peak = _Peak()
    pools = [CourseSlots(name, courses=12, lanes=8, rotate_seconds=0.5) for _ in range(2)]
    threads = [threading.Thread(target=_run, args=(pool, peak, 12, 8, 0.05)) for pool in pools]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for pool in pools:
        pool.close()
    assert peak.peak <= 5
    assert peak.peak >= 2
    assert _active(name) == 0


def test_a_missing_limit_is_an_error_not_unlimited(prefect_server) -> None:  # noqa: F811
    slots = CourseSlots(f"missing-{uuid.uuid4().hex[:8]}", courses=1, lanes=1)
    try:
        with pytest.raises(LimitMissing, match="does not exist"), slots.slot():
            pass
    finally:
        slots.close()


def test_two_request_budgets_share_one_rate(prefect_server) -> None:  # noqa: F811
    """Two processes' budgets (here two instances, 4 threads each) on one 40/s limit: together
    they never get far ahead of 40 requests a second, and neither starves."""
    name = f"test-rate-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit=40, slot_decay_per_second=40)
    budgets = [SharedRequestBudget(name, rate=40, batch=10) for _ in range(2)]
    stop = time.monotonic() + 3.0
    counts = [0, 0]

    def spend(index: int) -> None:
        while time.monotonic() < stop:
            budgets[index].acquire()
            counts[index] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=spend, args=(i % 2,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - started
    # The limit starts empty (40 slots) and decays 40/s; each budget may hold two batches.
    assert sum(counts) <= 40 + 40 * elapsed + 2 * 2 * 10
    assert min(counts) >= 10 and sum(counts) >= 40


def test_a_missing_rate_limit_fails_the_request_instead_of_hanging(prefect_server) -> None:  # noqa: F811
    budget = SharedRequestBudget(f"missing-{uuid.uuid4().hex[:8]}", rate=5, batch=5)
    with pytest.raises(LimitMissing, match="does not exist"):
        budget.acquire()

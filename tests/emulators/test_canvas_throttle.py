"""Leaky-bucket throttling per canvas-api.md §3: concurrency trips it, sequential use does not."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from emulators.canvas import (
    CanvasEmulator,
    CanvasEmulatorSettings,
    Institution,
    ThrottleSettings,
)
from emulators.canvas.throttle import LeakyBucket

from .conftest import TOKEN

BODIES = {
    "403": "403 Forbidden (Rate Limit Exceeded)\n",
    "429": "429 Too Many Requests (Rate Limit Exceeded)\n",
}


@pytest.fixture(params=["403", "429"])
def throttled_canvas(request, institution: Institution) -> Iterator[CanvasEmulator]:
    settings = CanvasEmulatorSettings(
        token=TOKEN, throttle=ThrottleSettings(dialect=request.param), latency_ms=300
    )
    with CanvasEmulator(institution, settings=settings) as emulator:
        yield emulator


def _burst(base_url: str, path: str, threads: int) -> list[httpx.Response]:
    barrier = threading.Barrier(threads)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            barrier.wait()
            response = client.get(base_url + path)
        with lock:
            responses.append(response)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return responses


def test_concurrent_requests_are_throttled(throttled_canvas: CanvasEmulator) -> None:
    dialect = throttled_canvas.settings.throttle.dialect
    responses = _burst(throttled_canvas.base_url, "/api/v1/accounts/1/courses", threads=16)
    throttled = [r for r in responses if r.status_code != 200]
    served = [r for r in responses if r.status_code == 200]
    # ~600 / 50 = 11-12 requests fit in flight (the bucket leaks a little between arrivals).
    assert len(served) <= 12 and len(throttled) == 16 - len(served) >= 4
    for r in throttled:
        assert r.status_code == int(dialect)
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.text == BODIES[dialect]
        assert "retry-after" not in r.headers and "x-request-cost" not in r.headers
        assert float(r.headers["x-rate-limit-remaining"]) >= 0
    for r in served:
        assert float(r.headers["x-request-cost"]) == 0.5
        float(r.headers["x-rate-limit-remaining"])
    assert throttled_canvas.stats.throttled == len(throttled)


@pytest.mark.parametrize("dialect", ["403", "429"])
def test_sequential_requests_are_not_throttled(institution: Institution, dialect: str) -> None:
    settings = CanvasEmulatorSettings(token=TOKEN, throttle=ThrottleSettings(dialect=dialect))
    with (
        CanvasEmulator(institution, settings=settings) as emulator,
        httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        remaining = []
        for _ in range(100):
            r = client.get(emulator.base_url + "/api/v1/accounts/1/terms")
            assert r.status_code == 200
            remaining.append(float(r.headers["x-rate-limit-remaining"]))
        assert emulator.stats.throttled == 0
    assert all(500 <= x <= 600 for x in remaining)
    assert remaining[-1] < remaining[0]  # each request costs 0.5; the bucket leaks 10/s


def test_bucket_leaks_and_holds_up_front_cost() -> None:
    now = [0.0]
    bucket = LeakyBucket(ThrottleSettings(request_cost=1.0), clock=lambda: now[0])
    admitted = [bucket.admit() for _ in range(13)]
    assert admitted == [True] * 11 + [False, False]  # 11 x 50 in flight; the 12th reaches 600
    assert bucket.settle(1.0) == pytest.approx(600 - 10 * 50 - 1)
    now[0] += 10.0  # outflow 10/s drains 100 units
    assert bucket.remaining() == pytest.approx(600 - 10 * 50 - 1 + 100)


def test_per_record_cost_is_reported(institution: Institution) -> None:
    settings = CanvasEmulatorSettings(
        token=TOKEN, throttle=ThrottleSettings(request_cost=0.25, per_record_cost=0.01)
    )
    with CanvasEmulator(institution, settings=settings) as emulator:
        cid = institution.course_ids()[0]
        r = httpx.get(
            f"{emulator.base_url}/api/v1/courses/{cid}/students/submissions",
            params={"student_ids[]": "all", "per_page": 50},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert float(r.headers["x-request-cost"]) == pytest.approx(0.25 + 0.5)

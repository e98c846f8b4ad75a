"""Pacing against a simulated Canvas leaky bucket, and the plain request-rate token bucket."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from connectors import (
    CANVAS_RULES,
    AdaptivePacer,
    ExponentialFullJitter,
    PacedTransport,
    RequestRatePacer,
    RetryPolicy,
    VendorClient,
)
from tests.connectors.http_fakes import FakeClock

pytestmark = pytest.mark.timeout(20)  # a pacing bug shows up as a hang

SPEED = 50.0  # simulated Canvas runs 50× faster than the wall clock


class SimulatedCanvasBucket:
    """Canvas request throttling (canvas-api.md §3) as a MockTransport handler.

    Leak `outflow`/s; add the 50-unit up-front cost; refuse with 403 "Rate Limit Exceeded" when
    the count reaches `hwm`; after the request settle the actual `cost` and refund the up-front
    cost. Remaining = hwm − count is reported on every response.
    """

    def __init__(
        self,
        *,
        hwm: float = 600.0,
        up_front: float = 50.0,
        outflow: float = 10.0,
        cost: float = 5.0,
        latency: float = 0.25,
    ) -> None:
        self.hwm, self.up_front, self.outflow, self.cost, self.latency = (
            hwm,
            up_front,
            outflow,
            cost,
            latency,
        )
        self._lock = threading.Lock()
        self._count = 0.0
        self._last = self._now()
        self.served = 0
        self.throttled = 0

    @staticmethod
    def _now() -> float:
        return time.monotonic() * SPEED

    def _leak(self) -> None:
        now = self._now()
        self._count = max(0.0, self._count - self.outflow * (now - self._last))
        self._last = now

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self._leak()
            self._count += self.up_front
            if self._count >= self.hwm:
                self._count -= self.up_front
                self.throttled += 1
                remaining = self.hwm - self._count
                return httpx.Response(
                    403,
                    text="403 Forbidden (Rate Limit Exceeded)\n",
                    headers={"X-Rate-Limit-Remaining": f"{remaining:.2f}"},
                )
        time.sleep(self.latency / SPEED)
        with self._lock:
            self._leak()
            self._count = min(800.0, max(0.0, self._count + self.cost - self.up_front))
            self.served += 1
            remaining = self.hwm - self._count
        return httpx.Response(
            200,
            json=[{"id": 1}],
            headers={
                "X-Request-Cost": f"{self.cost}",
                "X-Rate-Limit-Remaining": f"{remaining:.2f}",
            },
        )


def _run(pacer: AdaptivePacer | None, *, threads: int = 8, per_thread: int = 25) -> dict:
    bucket = SimulatedCanvasBucket()
    retry = RetryPolicy(
        max_attempts=60,
        scale=1 / SPEED,
        strategies=(ExponentialFullJitter(base=0.5, cap=4.0),),
    )
    client = VendorClient(
        vendor="canvas",
        base_url="https://canvas.test/api/v1/",
        rules=CANVAS_RULES,
        retry=retry,
        pacer=pacer,
        transport=httpx.MockTransport(bucket),
    )

    def extract(course: int) -> None:
        for _ in range(per_thread):
            client.get_json(f"courses/{course}/users", endpoint="courses/{id}/users")

    with client, ThreadPoolExecutor(threads) as pool:
        list(pool.map(extract, range(threads)))
    assert bucket.served == threads * per_thread
    return {"bucket_throttled": bucket.throttled, **client.stats.snapshot()}


def test_adaptive_pacer_prevents_most_canvas_throttling() -> None:
    unpaced = _run(None)
    pacer = AdaptivePacer(max_in_flight=8, outflow_per_second=10.0 * SPEED)
    paced = _run(pacer)
    assert unpaced["throttled"] == unpaced["bucket_throttled"] >= 40
    assert paced["throttled"] * 5 <= unpaced["throttled"], (paced, unpaced)
    pacing = paced["pacing"]
    assert pacing["throttled"] == paced["throttled"]
    assert pacing["requests"] == paced["requests"]
    assert pacing["wait_seconds"] > 0


def test_pacer_halves_in_flight_limit_on_throttle_and_recovers() -> None:
    clock = FakeClock()
    pacer = AdaptivePacer(max_in_flight=8, clock=clock)
    ok = httpx.Response(200, headers={"X-Rate-Limit-Remaining": "590"})
    pacer.acquire()
    pacer.release(ok, throttled=False)
    pacer.acquire()
    pacer.release(httpx.Response(403, headers={"X-Rate-Limit-Remaining": "13"}), throttled=True)
    assert pacer.snapshot()["in_flight_limit"] == 4
    assert pacer.snapshot()["throttled"] == 1
    clock.advance(60)  # the bucket has drained: the estimate is back above the floor
    for _ in range(4):
        pacer.acquire()
        pacer.release(ok, throttled=False)
    assert pacer.snapshot()["in_flight_limit"] == 5


def test_pacer_waits_for_refill_below_the_floor() -> None:
    pacer = AdaptivePacer(outflow_per_second=1000.0, floor=100.0)
    pacer.acquire()
    pacer.release(httpx.Response(200, headers={"X-Rate-Limit-Remaining": "600"}), throttled=False)
    pacer.acquire()
    pacer.release(httpx.Response(200, headers={"X-Rate-Limit-Remaining": "20"}), throttled=False)
    started = time.monotonic()
    pacer.acquire()  # needs (100 - 20) / 1000 s = 80 ms of refill
    assert time.monotonic() - started >= 0.07


def test_paced_transport_releases_on_transport_error() -> None:
    pacer = AdaptivePacer(max_in_flight=1)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset")

    transport = PacedTransport(httpx.MockTransport(broken), pacer)
    for _ in range(3):  # would block forever if the slot leaked
        with contextlib.suppress(httpx.ReadError):
            transport.handle_request(httpx.Request("GET", "https://x.test/"))
    assert pacer.snapshot()["requests"] == 3


def test_request_rate_pacer_token_bucket() -> None:
    clock = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    pacer = RequestRatePacer(rate_per_second=2.0, burst=3, clock=clock, sleep=sleep)
    for _ in range(5):
        pacer.acquire()
        pacer.release(httpx.Response(200), throttled=False)
    assert slept == [0.5, 0.5]  # three at once, then one every half second
    assert pacer.snapshot() == {"requests": 5, "throttled": 0, "wait_seconds": 1.0}


def test_paced_client_over_real_sockets_reads_throttle_bodies_once(httpserver) -> None:  # type: ignore[no-untyped-def]
    throttle = "403 Forbidden (Rate Limit Exceeded)\n"
    httpserver.expect_ordered_request("/api/v1/x").respond_with_data(
        throttle, status=403, headers={"X-Rate-Limit-Remaining": "13.7"}
    )
    httpserver.expect_ordered_request("/api/v1/x").respond_with_json(
        [1], headers={"X-Rate-Limit-Remaining": "590", "X-Request-Cost": "1.2"}
    )
    pacer = AdaptivePacer(outflow_per_second=10_000.0)
    with VendorClient(
        vendor="canvas",
        base_url=httpserver.url_for("/api/v1/"),
        rules=CANVAS_RULES,
        retry=RetryPolicy.fast(),
        pacer=pacer,
    ) as client:
        assert client.get_json("x", endpoint="x").data == [1]
        stats = client.stats.snapshot()
    assert stats["throttled"] == 1 and stats["pacing"]["throttled"] == 1
    assert stats["responses"] == {200: 1, 403: 1}

"""Pacing: slow requests down *before* the vendor throttles them (pacing is not retry).

`PacedTransport` wraps any httpx transport: it asks a `Pacer` for permission before each request
and reports every response back. Two pacers:

* `AdaptivePacer` for leaky-bucket vendors (Canvas). Canvas charges each request an up-front 50
  units while it runs and refuses a request once the bucket count reaches the high-water mark (600),
  leaking 10 units/s; every response says how much room is left:

      HTTP/1.1 200 OK
      X-Request-Cost: 1.204
      X-Rate-Limit-Remaining: 412.3

  Sequential clients never hit the limit; parallel ones do, because each in-flight request holds
  50 units. The pacer therefore controls two things:

  1. *How many requests are in flight* — an AIMD limit. It starts at `max_in_flight`, halves when
     Remaining (plus the up-front cost the other in-flight requests will give back) falls under
     `low_water` × the highest Remaining seen or on a throttled response, and grows by one when
     it is above `high_water` × that maximum. Each change waits for `limit` responses, so one
     burst of bad news halves the limit once, not eight times.
  2. *When the next request may start* — it estimates the bucket's room now as the newest
     Remaining (by the order requests were sent, not answered) plus `outflow × elapsed`, minus
     `up_front_cost` for every request started after the observed one. Below `floor` it waits
     (floor − estimate) / outflow before starting.

* `RequestRatePacer` — a token bucket for vendors with plain request quotas (Blackboard's daily
  budget, a Moodle site's rate limit): `rate_per_second` sustained, `burst` at once.

Throttled responses still reach the client, which retries them; the pacer only counts them and
tightens. Both pacers are thread-safe: one client, and so one pacer, serves many course threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import httpx

from connectors.classify import Action, Rule, classify


class Pacer(Protocol):
    def acquire(self) -> int | None:
        """Block until a request may start; return a ticket to hand back to `release`."""
        ...

    def release(
        self, response: httpx.Response | None, *, throttled: bool, ticket: int | None = None
    ) -> None:
        """Report how the request ended (`response` None: no response, e.g. a reset)."""
        ...

    def snapshot(self) -> dict[str, float]:
        """Counters: requests, throttled, wait_seconds (plus pacer-specific state)."""
        ...


class PacedTransport(httpx.BaseTransport):
    """An httpx transport that paces requests through `pacer` before handing them to `inner`.

    `rules` are the vendor's classification rules, so a throttle is recognised the same way the
    client recognises it (Canvas 403 "Rate Limit Exceeded" needs its short body read here).
    """

    def __init__(
        self, inner: httpx.BaseTransport, pacer: Pacer, *, rules: Sequence[Rule] = ()
    ) -> None:
        self._inner = inner
        self._pacer = pacer
        self._rules = tuple(rules)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        ticket = self._pacer.acquire()
        try:
            response = self._inner.handle_request(request)
            throttled = self._is_throttled(response)
        except BaseException:
            self._pacer.release(None, throttled=False, ticket=ticket)
            raise
        self._pacer.release(response, throttled=throttled, ticket=ticket)
        return response

    def close(self) -> None:
        self._inner.close()

    def _is_throttled(self, response: httpx.Response) -> bool:
        if not 400 <= response.status_code < 500:
            return False
        response.read()  # error bodies are short; the client reuses the bytes read here
        return classify(response, rules=self._rules).action is Action.THROTTLED


def _remaining(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    try:
        return float(response.headers["x-rate-limit-remaining"])
    except (KeyError, ValueError):
        return None


class AdaptivePacer:
    """Keeps a leaky-bucket vendor's bucket from filling (see the module docstring)."""

    def __init__(
        self,
        *,
        max_in_flight: int = 8,
        min_in_flight: int = 1,
        outflow_per_second: float = 10.0,
        up_front_cost: float = 50.0,
        floor: float = 100.0,
        low_water: float = 0.5,
        high_water: float = 0.8,
        max_wait_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= min_in_flight <= max_in_flight:
            raise ValueError("need 1 <= min_in_flight <= max_in_flight")
        self._max = max_in_flight
        self._min = min_in_flight
        self._outflow = outflow_per_second
        self._up_front = up_front_cost
        self._floor = floor
        self._low_water = low_water
        self._high_water = high_water
        self._max_wait = max_wait_seconds
        self._clock = clock
        self._cond = threading.Condition()
        self._limit = max_in_flight
        self._in_flight = 0
        self._since_change = max_in_flight  # the first bad signal acts at once
        self._observed: float | None = None
        self._observed_at = 0.0
        self._tickets = 0  # requests started so far; a request's ticket is its start number
        self._observed_ticket = 0
        self._highest = 0.0
        self._requests = 0
        self._throttled = 0
        self._wait_seconds = 0.0

    def acquire(self) -> int:
        started = self._clock()
        with self._cond:
            while True:
                if self._requests == 0 and self._in_flight > 0:
                    # Slow start: until the first answer says how full the bucket is, one request
                    # probes alone — a cold burst of max_in_flight could overflow it at once.
                    self._cond.wait(timeout=self._max_wait)
                elif self._in_flight < self._limit:
                    deficit = self._floor - self._estimated_room()
                    if deficit <= 0:
                        break
                    self._cond.wait(timeout=min(deficit / self._outflow, self._max_wait))
                else:
                    self._cond.wait(timeout=self._max_wait)
            self._in_flight += 1
            self._tickets += 1
            self._wait_seconds += self._clock() - started
            return self._tickets

    def release(
        self, response: httpx.Response | None, *, throttled: bool, ticket: int | None = None
    ) -> None:
        remaining = _remaining(response)
        with self._cond:
            self._in_flight -= 1
            self._requests += 1
            self._throttled += throttled
            self._since_change += 1
            ticket = self._tickets if ticket is None else ticket
            # Answers arrive out of order: an older request's Remaining predates requests that
            # a newer answer already accounts for, so only a newer ticket replaces the estimate.
            if remaining is not None and ticket >= self._observed_ticket:
                self._observed = remaining
                self._observed_at = self._clock()
                self._observed_ticket = ticket
            if remaining is not None:
                self._highest = max(self._highest, remaining)
            self._adjust_limit(remaining, throttled)
            self._cond.notify_all()

    def snapshot(self) -> dict[str, float]:
        with self._cond:
            return {
                "requests": self._requests,
                "throttled": self._throttled,
                "wait_seconds": self._wait_seconds,
                "in_flight_limit": self._limit,
                "estimated_room": min(self._estimated_room(), 1e9),
            }

    def _estimated_room(self) -> float:
        if self._observed is None:
            return math.inf
        refilled = self._observed + self._outflow * (self._clock() - self._observed_at)
        # The bucket holds no more room than the most ever seen (at least `floor`, so a client
        # whose first answer was a throttle still gets going once the bucket has drained).
        ceiling = max(self._highest, self._floor)
        # Requests started after the observed one was sent may not be in its Remaining yet.
        unseen = self._tickets - self._observed_ticket
        return min(refilled, ceiling) - self._up_front * unseen

    def _adjust_limit(self, remaining: float | None, throttled: bool) -> None:
        if self._since_change < self._limit:
            return
        if remaining is not None:
            # Remaining was computed while the other requests still in flight held their up-front
            # cost, which they give back on completion: only cost that stays in the bucket is a
            # reason to send fewer requests at once (the room estimate already bounds concurrency).
            remaining += self._up_front * self._in_flight
        low = remaining is not None and remaining < self._low_water * self._highest
        high = remaining is not None and remaining >= self._high_water * self._highest
        if throttled or low:
            self._limit = max(self._min, self._limit // 2)
            self._since_change = 0
        elif high and self._limit < self._max:
            self._limit += 1
            self._since_change = 0


class RequestRatePacer:
    """Token bucket: at most `burst` requests at once, `rate_per_second` sustained.

    Each caller reserves a token (the count may go negative) and sleeps off its own debt outside
    the lock, so waiting callers start in arrival order without a busy loop.
    """

    def __init__(
        self,
        *,
        rate_per_second: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("need rate_per_second > 0 and burst >= 1")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()
        self._requests = 0
        self._throttled = 0
        self._wait_seconds = 0.0

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
            self._wait_seconds += wait
        if wait > 0:
            self._sleep(wait)

    def release(
        self, response: httpx.Response | None, *, throttled: bool, ticket: int | None = None
    ) -> None:
        with self._lock:
            self._requests += 1
            self._throttled += throttled

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {
                "requests": self._requests,
                "throttled": self._throttled,
                "wait_seconds": self._wait_seconds,
            }


class PacerChain:
    """Several pacers as one: a request starts when each has let it; answers reach them all.

    Used to put an institution-wide request budget (shared by every worker) in front of the
    vendor's own adaptive pacing (local to this process).
    """

    def __init__(self, *pacers: Pacer) -> None:
        self._pacers = pacers

    def acquire(self) -> tuple[int | None, ...]:
        return tuple(p.acquire() for p in self._pacers)

    def release(
        self, response: httpx.Response | None, *, throttled: bool, ticket: object = None
    ) -> None:
        tickets = ticket if isinstance(ticket, tuple) else (None,) * len(self._pacers)
        for pacer, own in zip(reversed(self._pacers), reversed(tickets), strict=True):
            pacer.release(response, throttled=throttled, ticket=own)

    def snapshot(self) -> dict[str, float]:
        """The vendor-facing pacer's view, with the time waited at every pacer of the chain."""
        view = dict(self._pacers[-1].snapshot())
        view["wait_seconds"] = sum(p.snapshot().get("wait_seconds", 0.0) for p in self._pacers)
        return view

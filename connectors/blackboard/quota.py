"""The daily call quota as a budget (reference §1c): meter it, estimate a sync, refuse early.

Learn counts every call of the developer group's applications against a site quota per 24 h
(10,000 by default) and answers 429 once it is spent. Each response carries
``X-Rate-Limit-Limit``, ``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (seconds until the
window refills; names unverified against a live site, see the emulator). ``QuotaMeter`` wraps the
client's pacer at the transport seam and keeps the newest values; ``estimate_calls`` turns course
sizes into the calls a sync will make; ``QuotaBudgetExceeded`` stops a run before it starts and
``DailyQuotaExhausted`` names the course a spent quota interrupted.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from connectors.classify import Action, Outcome, Verdict
from connectors.errors import ConnectorError, Kind, PermanentError
from connectors.pacing import Pacer


class QuotaMeter:
    """A pacer wrapper that reads the rate-limit headers of every response."""

    def __init__(self, inner: Pacer) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_seconds: int | None = None
        self.first_remaining: int | None = None
        self.calls = 0

    def acquire(self) -> int | None:
        return self._inner.acquire()

    def release(
        self, response: httpx.Response | None, *, throttled: bool, ticket: int | None = None
    ) -> None:
        with self._lock:
            self.calls += 1
            if response is not None:
                values = [
                    _int(response, f"x-rate-limit-{n}") for n in ("limit", "remaining", "reset")
                ]
                if values[1] is not None:
                    if self.first_remaining is None:
                        # What was left before this client's first call.
                        self.first_remaining = values[1] + (response.status_code != 429)
                    self.limit, self.remaining, self.reset_seconds = values
        self._inner.release(response, throttled=throttled, ticket=ticket)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            quota = {
                "calls": self.calls,
                "quota_limit": self.limit,
                "quota_remaining": self.remaining,
                "quota_reset_seconds": self.reset_seconds,
            }
        return {**self._inner.snapshot(), **quota}


def _int(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def quota_exhausted_rule(outcome: Outcome, data: Any) -> Verdict | None:
    """429 with ``X-Rate-Limit-Remaining: 0`` is a spent *daily* quota: waiting seconds will not
    help, so fail at once (a 429 with quota left stays a throttle the client backs off from)."""
    if (
        isinstance(outcome, httpx.Response)
        and outcome.status_code == 429
        and outcome.headers.get("x-rate-limit-remaining") == "0"
    ):
        return Verdict(Action.FAIL, "permanent", "blackboard daily quota exhausted")
    return None


class DailyQuotaExhausted(PermanentError):
    """The site's daily quota ran out during this course: nothing of it was staged; the next run
    of the window (after the reset) fetches it, reusing what other courses already committed."""

    kind: ClassVar[Kind] = "transient"


@dataclass(frozen=True)
class CourseSize:
    """What a probe learned about one course (upper bounds where Learn gives no count)."""

    course_id: str
    memberships: int
    columns: int
    attempt_slots: tuple[int, ...]  # attemptsAllowed of each Attempts-graded column (0 → 1)
    meetings: int


def _pages(records: int, cap: int) -> int:
    return max(1, math.ceil(records / cap))


def estimate_calls(
    size: CourseSize,
    caps: dict[str, int],
    domains: tuple[str, ...] = ("roster", "gradebook", "attendance"),
) -> int:
    """Calls one course's ``domains`` need (students ≤ memberships): an upper bound — an
    incremental gradebook reads fewer.

    roster 1 + ⌈m/200⌉; gradebook ⌈c/200⌉ + c·⌈m/100⌉ + Σ⌈m·attempts/100⌉; attendance
    ⌈k/100⌉ + k·⌈m/100⌉.
    """
    m = size.memberships
    roster = 1 + _pages(m, caps["memberships"])
    gradebook = _pages(size.columns, caps["columns"]) + size.columns * _pages(m, caps["grades"])
    gradebook += sum(_pages(m * max(1, a), caps["attempts"]) for a in size.attempt_slots)
    attendance = _pages(size.meetings, caps["meetings"])
    attendance += size.meetings * _pages(m, caps["meeting_users"])
    per = {"roster": roster, "gradebook": gradebook, "attendance": attendance}
    return sum(per[d] for d in domains if d in per)


class QuotaBudgetExceeded(ConnectorError):
    """The sync would spend more of the daily quota than the institution allows it."""

    kind: ClassVar[Kind] = "configuration"

    def __init__(
        self,
        *,
        needed: int,
        allowed: int,
        share: float,
        remaining: int | None,
        limit: int | None,
        courses: int,
        reset_seconds: int | None,
    ) -> None:
        self.needed, self.allowed, self.share = needed, allowed, share
        self.remaining, self.limit, self.courses = remaining, limit, courses
        self.reset_seconds = reset_seconds
        super().__init__(vendor="blackboard", endpoint="(quota budget)")

    def __str__(self) -> str:
        reset = f", resets in {self.reset_seconds} s" if self.reset_seconds is not None else ""
        return (
            f"blackboard: this sync of {self.courses} courses needs about {self.needed} API calls "
            f"but may use {self.allowed} (daily_call_budget_share {self.share:g} of "
            f"{self.remaining} remaining of the site's daily {self.limit}{reset}); nothing was "
            "synced — narrow course_ids/term_filter or raise daily_call_budget_share"
        )

    def _details(self) -> dict[str, Any]:
        return {"needed": self.needed, "allowed": self.allowed, "remaining": self.remaining}

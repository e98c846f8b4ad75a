"""Global concurrency limits that mirror a vendor's quota, shared by every worker and pod.

Limits are not auto-created by Prefect, and acquiring a missing one with ``strict=False`` silently
runs unlimited (prefect-notes.md §1), so the flow upserts them at start and a missing limit is an
error. Course tasks are the gated unit: acquisition is poll-based and too slow to gate single HTTP
requests, which the in-process pacer handles.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client

from flows.settings import InstitutionConfig
from flows.telemetry import get_logger

_log = get_logger()
_POLL_SECONDS = 1.0  # longest wait between asks for a course slot while the limit is full


def _increment(client: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST a slot increment through the Prefect client's HTTP session but not its retry policy.

    That policy sleeps 2 s after a 503 (2 ** attempt, no Retry-After), and a SQLite-backed
    server answers 503 whenever two writes meet: measured, a shard's request budget spent
    minutes in that sleep during a 10,000-course run. Increments are safe to repeat at once (a
    503 changed nothing), so callers retry them within tens of milliseconds instead.
    """
    http = client._client  # the client's httpx session (base URL, auth, ephemeral transport)
    while True:
        response = httpx.Client.send(http, http.build_request("POST", path, json=body))
        if response.status_code != 503:
            return response
        time.sleep(random.uniform(0.02, 0.1))


@dataclass(frozen=True)
class VendorLimits:
    courses: str
    requests: str


def limit_names(*, vendor: str, institution: str) -> VendorLimits:
    # Limit names may not contain / % & > < (prefect-notes.md §1).
    base = f"lms-sync:{vendor}:{institution}"
    return VendorLimits(courses=f"{base}:courses", requests=f"{base}:requests")


def bootstrap_limits(config: InstitutionConfig) -> VendorLimits:
    """Create or update this institution's limits from its quota; safe to run on every flow run."""
    names = limit_names(vendor=config.vendor, institution=config.institution_id)
    quota = config.quota
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(
            names.courses, limit=quota.max_concurrent_courses
        )
        if quota.shared_requests_per_second is not None:
            client.upsert_global_concurrency_limit_by_name(
                names.requests,
                limit=quota.burst,
                slot_decay_per_second=quota.shared_requests_per_second,
            )
    return names


class LimitMissing(RuntimeError):
    """The institution's limit does not exist on the Prefect server: running would be unlimited."""


@dataclass
class _Lease:
    """One server lease of ``slots`` slots, lent to course tasks one slot at a time."""

    id: UUID
    slots: int
    taken: float = field(default_factory=time.monotonic)
    in_use: int = 0


class CourseSlots:
    """This process's share of the vendor's course limit, lent from one course task to the next.

    Each course task runs under one slot of the global limit, as before; what changes is who pays
    for it. Through ``prefect.concurrency.sync.concurrency`` every task makes three API calls
    (acquire, an immediate renewal, release), and a slot a sibling frees does not wake a waiter
    (prefect-notes.md §1). On the local SQLite server it is worse: lease calls made at the same
    time are answered 503 and the client backs off 2 s (measured: 7 threads incrementing at once,
    all but the first three waited 1.7–2.4 s; one at a time, 5–25 ms), so 7 course tasks under
    a free limit of 8 each waited 2–2.5 s — longer than an unchanged course takes to check.

    So slots are taken in one lease for as many course tasks as can run (the run's lanes), one
    API call at a time per process; a slot freed by a finished course goes straight to the next
    course of this run; a lease goes back to the server once it is idle and not needed by the
    courses left to start (the run's tail), or once it is older than ``rotate_seconds`` (it
    stops lending first), so shards in other pods get their turn. When the limit is smaller, or
    has fewer slots free, the request halves until it fits, down to one slot, which is polled
    for as Prefect's own client does. A background thread renews the leases held; a killed process's
    slots come back when their lease expires, as before.
    """

    def __init__(
        self,
        name: str,
        *,
        courses: int,
        lanes: int,
        lease_seconds: float = 120,
        rotate_seconds: float = 60,
    ) -> None:
        self._name = name
        self._unstarted = courses  # courses that have not got a slot yet
        self._lanes = lanes
        self._lease_seconds = lease_seconds
        self._rotate_seconds = rotate_seconds
        self._leases: dict[UUID, _Lease] = {}
        self._changed = threading.Condition()  # guards the fields; notified when a slot frees
        self._asking = False  # one taker asks the server at a time; the others wait for it
        self._api = threading.Lock()  # one lease call at a time (see the class docstring)
        self._stop = threading.Event()
        self._client = get_client(sync_client=True)
        self._client.__enter__()
        self._renewer = threading.Thread(target=self._renew, name="course-slot-leases", daemon=True)
        self._renewer.start()
        self.acquired = 0  # lease calls that got slots: what the run paid the orchestrator

    def prefetch(self) -> None:
        """Take the first lease before the course tasks start, while this process's own Prefect
        traffic (task runs starting) cannot collide with it on the server."""
        lease, _ = self._ask(max(1, min(self._lanes, self._unstarted)))
        if lease is not None:
            with self._changed:
                self._hold(lease)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot of the course limit for the body (one course)."""
        lease = self._take()
        try:
            yield
        finally:
            self._give_back(lease)

    def close(self) -> None:
        """Return every lease still held (the run's courses are done)."""
        self._stop.set()
        with self._changed:
            leases = list(self._leases.values())
            self._leases.clear()
        for lease in leases:
            self._release(lease)
        self._client.__exit__(None, None, None)

    def _hold(self, lease: _Lease) -> None:
        """Count a lease the server just granted (called with the lock held)."""
        self._leases[lease.id] = lease
        self.acquired += 1

    def _busy(self) -> int:
        return sum(x.in_use for x in self._leases.values())

    def _full(self) -> bool:
        """Every lane of this process is running a course: wait for one to end, do not ask."""
        return self._busy() >= self._lanes

    def _lendable(self) -> _Lease | None:
        now = time.monotonic()
        for lease in self._leases.values():
            if lease.in_use < lease.slots and now - lease.taken < self._rotate_seconds:
                return lease
        return None

    def _take(self) -> _Lease:
        while True:
            with self._changed:
                while (lease := self._lendable()) is None and (self._asking or self._full()):
                    self._changed.wait()
                if lease is not None:
                    lease.in_use += 1
                    self._unstarted -= 1
                    return lease
                self._asking = True
                want = max(1, min(self._lanes - self._busy(), self._unstarted))
            lease, retry_after = None, 1.0
            try:
                lease, retry_after = self._ask(want)
            finally:
                with self._changed:
                    self._asking = False
                    if lease is not None:
                        lease.in_use = 1
                        self._unstarted -= 1
                        self._hold(lease)
                    self._changed.notify_all()
            if lease is not None:
                return lease
            with self._changed:  # the limit is full: wait as the server says, or for a slot here
                self._changed.wait(timeout=retry_after)

    def _give_back(self, lease: _Lease) -> None:
        with self._changed:
            if lease.id not in self._leases:
                return  # lost at renewal: the server no longer counts it
            lease.in_use -= 1
            self._changed.notify_all()
            if lease.in_use:
                return
            idle_elsewhere = sum(
                x.slots - x.in_use for x in self._leases.values() if x is not lease
            )
            fresh = time.monotonic() - lease.taken < self._rotate_seconds
            if fresh and self._unstarted > idle_elsewhere:
                return  # the courses still to start need it
            del self._leases[lease.id]
        self._release(lease)

    def _ask(self, want: int) -> tuple[_Lease | None, float]:
        """Ask the server for ``want`` slots, halving while they do not fit; (None, seconds to
        wait) when not even one slot is free."""
        while True:
            with self._api:
                response = _increment(
                    self._client,
                    "/v2/concurrency_limits/increment-with-lease",
                    {
                        "names": [self._name],
                        "slots": want,
                        "mode": "concurrency",
                        "lease_duration": self._lease_seconds,
                    },
                )
            # 423: fewer slots free than asked; 422: more asked than the limit has at all.
            status = response.status_code
            if status in (422, 423) and want > 1:
                want //= 2
                continue
            if status == 423:
                # The server's Retry-After grows with how long slots are held (up to 30 s, from
                # the average occupancy, prefect-notes.md §1); a lease held for a whole run made
                # a shard without slots sleep half a minute while slots came free.
                return None, min(_POLL_SECONDS, float(response.headers.get("Retry-After", 1)))
            response.raise_for_status()
            body = response.json()
            if not body.get("limits"):
                raise LimitMissing(
                    f"concurrency limit {self._name!r} does not exist; run bootstrap_limits first"
                )
            return _Lease(UUID(body["lease_id"]), want), 0.0

    def _release(self, lease: _Lease) -> None:
        try:
            with self._api:
                self._client.release_concurrency_slots_with_lease(lease_id=lease.id)
        except httpx.HTTPError as exc:  # the lease expires on its own
            _log.warning("could not return course slots to %s: %s", self._name, exc)

    def _renew(self) -> None:
        while not self._stop.wait(self._lease_seconds / 3):
            with self._changed:
                leases = list(self._leases.values())
            for lease in leases:
                try:
                    with self._api:
                        self._client.renew_concurrency_lease(
                            lease_id=lease.id, lease_duration=self._lease_seconds
                        )
                except httpx.HTTPError as exc:
                    # A lost lease lends no more slots; courses under it finish (as Prefect
                    # does with strict=False) rather than losing the work they have fetched.
                    _log.warning("could not renew course slots of %s: %s", self._name, exc)
                    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 404:
                        with self._changed:
                            self._leases.pop(lease.id, None)


class SharedRequestBudget:
    """The institution's request-rate limit, shared by every worker, as an in-process pacer.

    Each permit is one request. Permits come from the Prefect rate limit (slot decay = requests per
    second) in batches, because acquisition is a poll-based API call (prefect-notes.md §1): one
    call per batch keeps the orchestrator out of the request path while the aggregate rate across
    all pods still stays within the quota. The next batch is fetched in the background while a
    batch is still in hand: a lease call on a busy server can take seconds (a SQLite-backed
    server answers concurrent writes 503 and the client backs off 2 s, see ``CourseSlots``), and
    fetching only once the permits ran out stalled every request of the process meanwhile
    (measured: 13 requests a second against an 80/s budget).
    """

    def __init__(self, name: str, *, rate: float, batch: int) -> None:
        self._name = name
        self._rate = rate
        self._batch = max(1, batch)
        self._permits = 0
        self._refilling = False
        self._failure: BaseException | None = None
        self._changed = threading.Condition()
        self._waited = 0.0
        self._requests = 0

    def acquire(self) -> None:
        with self._changed:
            if self._permits == 0:
                started = time.monotonic()
                while self._permits == 0:
                    if self._failure is not None:
                        raise self._failure
                    self._refill_soon()
                    self._changed.wait()
                self._waited += time.monotonic() - started
            self._permits -= 1
            self._requests += 1
            if self._permits <= 2 * self._batch:
                self._refill_soon()

    def release(self, response: object, *, throttled: bool, ticket: object = None) -> None:
        return None

    def snapshot(self) -> dict[str, float]:
        with self._changed:
            return {"requests": self._requests, "wait_seconds": self._waited}

    def _refill_soon(self) -> None:
        """Start fetching a batch unless one is on its way (called with the lock held)."""
        if not self._refilling:
            self._refilling = True
            threading.Thread(target=self._refill, name="request-budget", daemon=True).start()

    def _refill(self) -> None:
        try:
            self._take_batch()
        except BaseException as exc:  # handed to the requests waiting for permits
            with self._changed:
                self._failure = exc
                self._refilling = False
                self._changed.notify_all()
            return
        with self._changed:
            self._permits += self._batch
            self._failure = None
            self._refilling = False
            self._changed.notify_all()

    def _take_batch(self) -> None:
        """Occupy a batch of the decaying limit, retrying a full limit after the batch's own
        decay time: the server's Retry-After counts every occupied slot (prefect-notes.md §1:
        "1/decay × blocked slots"), so following it left a 320-slot limit idle for seconds."""
        body = {"names": [self._name], "slots": self._batch, "mode": "rate_limit"}
        with get_client(sync_client=True) as client:
            while True:
                response = _increment(client, "/v2/concurrency_limits/increment", body)
                if response.status_code == 423:
                    time.sleep(self._batch / self._rate * random.uniform(1.0, 1.2))
                    continue
                response.raise_for_status()
                if not response.json():
                    raise LimitMissing(
                        f"rate limit {self._name!r} does not exist; run bootstrap_limits first"
                    )
                return


def shared_budget(config: InstitutionConfig) -> SharedRequestBudget | None:
    """The institution-wide request budget, if the config sets one."""
    rate = config.quota.shared_requests_per_second
    if rate is None:
        return None
    names = limit_names(vendor=config.vendor, institution=config.institution_id)
    # Up to a second of quota per batch, and three batches within the burst the limit allows at
    # once: two in hand while the next is fetched.
    batch = max(1, min(config.quota.burst // 3, int(rate)))
    return SharedRequestBudget(names.requests, rate=rate, batch=batch)

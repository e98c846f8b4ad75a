"""Global concurrency limits that mirror a vendor's quota, shared by every worker and pod.

Limits are not auto-created by Prefect, and acquiring a missing one with ``strict=False`` silently
runs unlimited (prefect-notes.md §1), so the flow upserts them at start and acquires with
``strict=True``. Course tasks are the gated unit: acquisition is poll-based and too slow to gate
single HTTP requests, which the in-process pacer handles.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit

from flows.settings import InstitutionConfig


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


class SharedRequestBudget:
    """The institution's request-rate limit, shared by every worker, as an in-process pacer.

    Each permit is one request. Permits come from the Prefect rate limit (slot decay = requests per
    second) in batches, because acquisition is a poll-based API call (prefect-notes.md §1): one
    call per batch keeps the orchestrator out of the request path while the aggregate rate across
    all pods still stays within the quota.
    """

    def __init__(self, name: str, *, batch: int) -> None:
        self._name = name
        self._batch = max(1, batch)
        self._permits = 0
        self._lock = threading.Lock()
        self._waited = 0.0
        self._requests = 0

    def acquire(self) -> None:
        with self._lock:
            if self._permits == 0:
                started = time.monotonic()
                rate_limit(self._name, occupy=self._batch, strict=True)
                self._waited += time.monotonic() - started
                self._permits = self._batch
            self._permits -= 1
            self._requests += 1

    def release(self, response: object, *, throttled: bool, ticket: object = None) -> None:
        return None

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {"requests": self._requests, "wait_seconds": self._waited}


def shared_budget(config: InstitutionConfig) -> SharedRequestBudget | None:
    """The institution-wide request budget, if the config sets one."""
    rate = config.quota.shared_requests_per_second
    if rate is None:
        return None
    names = limit_names(vendor=config.vendor, institution=config.institution_id)
    # Half a second of quota per batch, never more than the burst the limit allows at once.
    batch = min(config.quota.burst, max(1, int(rate / 2)))
    return SharedRequestBudget(names.requests, batch=batch)

"""Global concurrency limits that mirror a vendor's quota, shared by every worker and pod.

Limits are not auto-created by Prefect, and acquiring a missing one with ``strict=False`` silently
runs unlimited (prefect-notes.md §1), so the flow upserts them at start and acquires with
``strict=True``. Course tasks are the gated unit: acquisition is poll-based and too slow to gate
single HTTP requests, which the in-process pacer handles.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect.client.orchestration import get_client

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
        client.upsert_global_concurrency_limit_by_name(
            names.requests, limit=quota.burst, slot_decay_per_second=quota.requests_per_second
        )
    return names

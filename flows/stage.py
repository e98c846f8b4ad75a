"""The hand-off from a source to staging: one course's domain → one immutable partition.

Kept free of Prefect so the contract tests and benchmarks drive exactly the code the flow runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from connectors.client import stats_scope
from flows.vendors import Source
from transforms.staging import PageMeta, PartitionKey, StagingStore


@dataclass(frozen=True)
class DomainOutcome:
    domain: str
    status: Literal["staged", "reused"]
    rows: int
    pages: int


def stage_domain(
    source: Source,
    store: StagingStore,
    key: PartitionKey,
    *,
    run_id: str,
    activity_since: datetime | None = None,
) -> DomainOutcome:
    """Stage the domain unless the window already has it; a failure leaves no partition behind."""
    if store.is_committed(key):
        manifest = store.manifest(key)
        return DomainOutcome(
            key.domain, "reused", manifest.row_count, manifest.raw_archive["pages"]
        )
    with (
        stats_scope(key.domain),
        store.writer(key, run_id=run_id, streams=source.streams(key.domain)) as writer,
    ):
        for page in source.domain_pages(
            course_id=key.course_id, domain=key.domain, run_id=run_id, activity_since=activity_since
        ):
            writer.write(
                page.stream,
                page.table,
                page=PageMeta(
                    stream=page.stream,
                    number=page.number,
                    url=page.url,
                    status=page.status,
                    fetched_at=page.fetched_at,
                    raw=page.raw,
                    trace_id=page.trace_id,
                    span_id=page.span_id,
                ),
            )
    return _outcome(key, "staged", store)


def _outcome(
    key: PartitionKey, status: Literal["staged", "reused"], store: StagingStore
) -> DomainOutcome:
    manifest = store.manifest(key)
    return DomainOutcome(key.domain, status, manifest.row_count, manifest.raw_archive["pages"])

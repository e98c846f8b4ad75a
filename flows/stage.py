"""The hand-off from a source to staging: one course's domain → one immutable partition.

Kept free of Prefect so the contract tests and benchmarks drive exactly the code the flow runs.

An incremental fetch (``plan`` with a cursor) hands the source an :class:`Increment`: the cursor
minus the overlap window, and the baseline rows the source compares against (read from the
partition the last committed load used — staging is immutable, so it still holds exactly what was
loaded). A course with no such partition (new, or failed last time) is fetched in full. Streams
the source fetched with a ``since`` are marked partial in the manifest; the manifest also carries
the run's start (``until``), which caps the cursor the load may write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from connectors.client import stats_scope
from connectors.extract import Increment
from flows.vendors import Source
from transforms.chaos import chaos_kill
from transforms.staging import PageMeta, PartitionKey, StagingStore


@dataclass(frozen=True)
class DomainOutcome:
    domain: str
    status: Literal["staged", "reused"]
    rows: int
    pages: int
    partial: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainPlan:
    """How to fetch one domain in a run: in full, or the changes since ``since`` (already minus
    the overlap), comparing with the partitions of ``baseline_window`` (the last committed load)."""

    since: datetime | None = None
    baseline_window: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "baseline_window": self.baseline_window,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> DomainPlan:
        since = body.get("since")
        return cls(
            since=datetime.fromisoformat(since) if since else None,
            baseline_window=body.get("baseline_window"),
        )


def stage_domain(
    source: Source,
    store: StagingStore,
    key: PartitionKey,
    *,
    run_id: str,
    activity_since: datetime | None = None,
    plan: DomainPlan | None = None,
    until: datetime | None = None,
) -> DomainOutcome:
    """Stage the domain unless the window already has it; a failure leaves no partition behind."""
    if store.is_committed(key):
        manifest = store.manifest(key)
        return DomainOutcome(
            key.domain,
            "reused",
            manifest.row_count,
            manifest.raw_archive["pages"],
            tuple(manifest.partial),
        )
    increment = _increment(source, store, key, plan)
    extra: dict[str, Any] = {"increment": increment} if increment is not None else {}
    since = increment.since.astimezone(UTC).isoformat() if increment is not None else ""
    chaos_kill(f"fetch:{key.domain}")
    with (
        stats_scope(key.domain),
        store.writer(
            key,
            run_id=run_id,
            streams=source.streams(key.domain),
            until=until or datetime.now(UTC),
        ) as writer,
    ):
        for n, page in enumerate(
            source.domain_pages(
                course_id=key.course_id,
                domain=key.domain,
                run_id=run_id,
                activity_since=activity_since,
                **extra,
            )
        ):
            if getattr(page, "partial", False):
                writer.mark_partial(page.stream, since)
            if page.number == 0 and page.rows == 0:
                continue  # a marker page: the stream needed no request this time
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
            if n == 1:
                chaos_kill(f"stage:{key.domain}")
    return _outcome(key, "staged", store)


def _increment(
    source: Source, store: StagingStore, key: PartitionKey, plan: DomainPlan | None
) -> Increment | None:
    """The increment for this course, or None (fetch in full) when there is no cursor, the source
    cannot fetch changes, or the course was not in the last committed load."""
    if plan is None or plan.since is None or plan.baseline_window is None:
        return None
    if not getattr(source, "incremental", False):
        return None
    own = PartitionKey(key.institution, key.vendor, key.domain, plan.baseline_window, key.course_id)
    if not store.is_committed(own):
        return None
    previous: dict[str, list[dict[str, Any]]] = {}
    baseline = source.baseline(key.domain)  # type: ignore[attr-defined]
    if baseline is not None:
        domain, stream = baseline
        where = PartitionKey(
            key.institution, key.vendor, domain, plan.baseline_window, key.course_id
        )
        if not store.is_committed(where):
            return None
        previous[stream] = store.scan(stream, [store.manifest(where)]).collect().to_dicts()
    return Increment(since=plan.since, previous=previous)


def _outcome(
    key: PartitionKey, status: Literal["staged", "reused"], store: StagingStore
) -> DomainOutcome:
    manifest = store.manifest(key)
    return DomainOutcome(
        key.domain,
        status,
        manifest.row_count,
        manifest.raw_archive["pages"],
        tuple(manifest.partial),
    )

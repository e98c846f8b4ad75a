"""The bulk path of a run: an institution's ``bulk_domains`` from Canvas Data 2, not per course.

Where it sits in ``flows/sync.py`` ``_sync_source``::

    plan = plan_bulk(config, domains, state, full=...)  # which domains, from which watermarks
    pending = start_bulk(plan, ...)          # one task per bulk domain, alongside the course tasks
    course tasks stage plan.rest(domains)    # every other domain, per course, over REST
    outcomes, failed = finish_bulk(pending)
    loaded, marks = load_inputs(outcomes, failed_courses, plan)
    load_serving(..., marks)                 # the bulk partitions; watermarks after commit

A bulk domain is staged by ``connectors.canvas.dap_tables.stage_bulk_domain`` as **one complete
partition** (course ``all``) of the run's window whose rows carry their own ``_course_id``. The
load reads that partition instead of per-course ones, and ``loaded[domain]`` lists the courses it
covers, so delete-by-absence soft-deletes only rows of those courses — a ``D`` record is a key
absent from the complete partition, exactly like a record gone from the REST API.

Watermarks (canvas-api.md §5.2: the next ``since`` is the previous snapshot's ``at`` or
incremental's ``until``) are per DAP table and live in ``_sync_state.watermarks`` beside the
domain's cursor, written by the same statement after the domain's load commits. A run that dies
between staging and that commit leaves the old watermarks; its rerun plans the same window, finds
the committed partition (or resumes the same export jobs, saved as staging notes) and loads it.
``full=True`` (``lms-sync sync --full``) ignores the watermarks: every table is a new snapshot.

``lms-sync rebuild --from-staging`` (``flows/replay.py``) loads such a partition the same way: the
courses and watermarks come from :func:`committed_bulk` (the staging note written with it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry import trace
from prefect import task
from prefect.cache_policies import NONE
from prefect.futures import PrefectFuture

from connectors.backoff import RetryPolicy
from connectors.canvas.dap import DapClient
from connectors.canvas.dap_tables import BULK_COURSE, BulkOutcome, committed_bulk, stage_bulk_domain
from flows.settings import InstitutionConfig
from flows.telemetry import get_logger
from transforms.load import SyncState
from transforms.staging import PartitionKey, StagingStore

__all__ = [
    "BULK_COURSE",
    "BulkPlan",
    "committed_bulk",
    "finish_bulk",
    "load_inputs",
    "plan_bulk",
    "start_bulk",
]

_tracer = trace.get_tracer("lms_sync.flows")


@dataclass(frozen=True)
class BulkPlan:
    """The run's bulk domains and the per-table watermarks each starts from (none: snapshots)."""

    watermarks: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.watermarks)

    def rest(self, domains: Collection[str]) -> tuple[str, ...]:
        """The domains the per-course REST tasks still stage."""
        return tuple(d for d in domains if d not in self.watermarks)


def plan_bulk(
    config: InstitutionConfig,
    domains: Collection[str],
    state: Mapping[str, SyncState],
    *,
    full: bool = False,
) -> BulkPlan:
    """The run's domains that ``config.bulk_domains`` sends to Canvas Data 2, with the
    watermarks of their last committed load (``_sync_state``); ``full`` starts from none."""
    return BulkPlan(
        {
            d: {} if full or d not in state else dict(state[d].watermarks)
            for d in domains
            if d in config.bulk_domains
        }
    )


def open_dap(config: InstitutionConfig) -> DapClient:
    """The DAP client for the institution: ``dap_base_url`` (default ``base_url``), the shared
    retry budget and timeouts of ``config.http``. The secret is read here, never logged."""
    assert config.dap_client_id and config.dap_client_secret  # enforced by the settings
    base_url = config.dap_base_url or config.base_url
    assert base_url is not None
    http = config.http
    return DapClient(
        base_url=base_url,
        client_id=config.dap_client_id,
        client_secret=config.dap_client_secret.get_secret_value(),
        retry=RetryPolicy(max_attempts=http.max_attempts, max_total_seconds=http.max_retry_seconds),
        timeout=httpx.Timeout(http.read_timeout_seconds, connect=http.connect_timeout_seconds),
    )


@task(task_run_name="bulk-{key.domain}", cache_policy=NONE)
def stage_bulk(
    config: InstitutionConfig,
    key: PartitionKey,
    *,
    run_id: str,
    course_ids: list[str],
    watermarks: dict[str, str],
) -> BulkOutcome:
    """Stage one domain institution-wide (resuming saved export jobs, reusing a committed
    partition of the window)."""
    log = get_logger(run_id=run_id, institution=key.institution, domain=key.domain)
    with (
        _tracer.start_as_current_span(
            "bulk", attributes={"lms.domain": key.domain, "lms.institution": key.institution}
        ),
        open_dap(config) as dap,
    ):
        outcome = stage_bulk_domain(
            dap,
            StagingStore(config.staging_uri),
            key,
            run_id=run_id,
            course_ids=course_ids,
            watermarks=watermarks,
        )
    log.info(
        "bulk domain staged",
        extra={
            "fields": {
                "domain": key.domain,
                "status": outcome.status,
                "rows": outcome.rows,
                "courses": len(outcome.courses),
                "snapshots": outcome.snapshots,
                "jobs_created": outcome.jobs_created,
            }
        },
    )
    return outcome


def start_bulk(
    plan: BulkPlan,
    config: InstitutionConfig,
    *,
    run_id: str,
    window: str,
    course_ids: list[str],
) -> dict[str, PrefectFuture]:
    """Submit one :func:`stage_bulk` task per bulk domain; they run while the course tasks do."""
    return {
        domain: stage_bulk.submit(
            config,
            PartitionKey(config.institution_id, config.vendor, domain, window, BULK_COURSE),
            run_id=run_id,
            course_ids=course_ids,
            watermarks=marks,
        )
        for domain, marks in plan.watermarks.items()
    }


def finish_bulk(
    futures: Mapping[str, PrefectFuture],
) -> tuple[dict[str, BulkOutcome], list[tuple[str, str]]]:
    """Wait for the bulk tasks: outcomes of those that staged, and ``(error, kind)`` of those
    that did not (their domain is not loaded this run; its watermarks stay)."""
    outcomes: dict[str, BulkOutcome] = {}
    failed: list[tuple[str, str]] = []
    for domain, future in futures.items():
        future.wait()
        if future.state.is_completed():
            outcomes[domain] = future.result()
            continue
        error: Any = future.state.result(raise_on_failure=False)
        failed.append((f"{domain} via Canvas Data 2: {error}", getattr(error, "kind", "transient")))
    return outcomes, failed


def load_inputs(
    outcomes: Mapping[str, BulkOutcome],
    failed_courses: Collection[str],
    plan: BulkPlan,
) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """Per bulk domain, the courses to load and the watermarks to store after the commit.

    A course whose REST domains failed this run is left out of the bulk load as well (its new
    people are not loaded, so its gradebook rows would break the reference rule). Its changes are
    in this partition only, so the domain then keeps its previous watermarks: the next run's
    incremental delivers them again (re-applying the others' changes is idempotent).
    """
    loaded: dict[str, list[str]] = {}
    marks: dict[str, dict[str, str]] = {}
    for domain, outcome in outcomes.items():
        loaded[domain] = [c for c in outcome.courses if c not in failed_courses]
        held = len(loaded[domain]) < len(outcome.courses)
        marks[domain] = plan.watermarks.get(domain, {}) if held else outcome.watermarks
    return loaded, marks

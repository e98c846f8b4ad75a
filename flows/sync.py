"""The institution sync flow: one task per course behind the vendor's limit, then a single writer.

Shape of a run::

    bootstrap limits → list courses → sync_course × N (each: per domain, skip if the window's
    partition is already staged, else stream pages into a new partition) → load_serving (one
    writer: normalize, tokenize, validate, merge) → artifacts → Failed if any course is missing

The staging partition identity (institution, vendor, domain, window, course) is the cache key: a
rerun of the same window after a crash fetches only what was not committed, and a new run id does
not invalidate anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry import trace
from prefect import flow, task, unmapped
from prefect.cache_policies import NONE
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from connectors.errors import CircuitOpenError, PermanentError
from flows.limits import VendorLimits, bootstrap_limits
from flows.reporting import publish_artifacts
from flows.settings import ConfigError, InstitutionConfig, load_config
from flows.stage import stage_domain
from flows.telemetry import ensure_logging, flush, get_logger, tracer_provider
from flows.vendors import Source, mapping_for, open_source
from transforms.pipeline import LoadReport, load_staged
from transforms.staging import PartitionKey, StagingStore
from transforms.tokenize import load_hmac_key

_tracer = trace.get_tracer("lms_sync.flows")

# Sources are live connections (pooled client, pacer, breaker) shared by a run's course tasks in
# this process; tasks look theirs up by run id instead of receiving it as a parameter.
_SOURCES: dict[str, Source] = {}

# Set by an interactive caller (the demo) to follow progress; called from task threads.
progress_hook: Callable[[str, dict[str, Any]], None] | None = None


class SyncIncomplete(RuntimeError):
    """Some courses' data is missing; the message names them and why (no PII)."""


@dataclass(frozen=True)
class RunContext:
    run_id: str
    institution: str
    vendor: str
    window: str
    domains: tuple[str, ...]
    staging_uri: str
    limits: VendorLimits
    started: datetime
    activity_since: datetime | None = None


@dataclass
class CourseFailure:
    course_id: str
    error: str
    kind: str


@dataclass
class RunSummary:
    run_id: str
    institution: str
    window: str
    courses: list[str] = field(default_factory=list)
    staged: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[CourseFailure] = field(default_factory=list)
    http: dict[str, Any] = field(default_factory=dict)
    load: LoadReport | None = None


def _check_hmac_key(config: InstitutionConfig) -> None:
    """Fail at start, before any vendor call, if the tokenization key cannot be read."""
    try:
        load_hmac_key(config.hmac_key_ref, config.hmac_key_version)
    except ValueError as exc:
        raise ConfigError(f"hmac_key_ref: {exc}") from None


def _retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a course only for transient trouble: a 404 or a revoked token will not heal."""
    try:
        state.result()
    except (PermanentError, CircuitOpenError):
        return False
    except Exception:
        return True
    return False


@task(
    task_run_name="course-{course_id}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=_retry_unless_permanent,
    cache_policy=NONE,
)
def sync_course(course_id: str, ctx: RunContext) -> dict[str, Any]:
    """Stage every domain of one course for the window, reusing partitions already committed."""
    log = get_logger(run_id=ctx.run_id, institution=ctx.institution, course_id=course_id)
    store = StagingStore(ctx.staging_uri)
    source = _SOURCES[ctx.run_id]
    outcome: dict[str, Any] = {"course_id": course_id, "domains": {}}
    with (
        _tracer.start_as_current_span(
            "course", attributes={"lms.course_id": course_id, "lms.institution": ctx.institution}
        ),
        concurrency(ctx.limits.courses, occupy=1, strict=True, lease_duration=120),
    ):
        for domain in ctx.domains:
            key = PartitionKey(
                institution=ctx.institution,
                vendor=ctx.vendor,
                domain=domain,
                window=ctx.window,
                course_id=course_id,
            )
            staged = stage_domain(
                source, store, key, run_id=ctx.run_id, activity_since=ctx.activity_since
            )
            outcome["domains"][domain] = {"status": staged.status, "rows": staged.rows}
    log.info("course staged", extra={"fields": {"domains": outcome["domains"]}})
    if progress_hook is not None:
        progress_hook("course", outcome)
    return outcome


@task(task_run_name="load-{ctx.institution}", cache_policy=NONE)
def load_serving(
    ctx: RunContext,
    loaded: dict[str, list[str]],
    streams: dict[str, list[str]],
    config: InstitutionConfig,
) -> LoadReport:
    """The single writer: the window's staging → serving tables, one domain at a time."""
    store = StagingStore(ctx.staging_uri)
    manifests = store.committed(institution=ctx.institution, vendor=ctx.vendor, window=ctx.window)
    frames = {}
    for domain, names in streams.items():
        chosen = [
            m for m in manifests if m.key.domain == domain and m.key.course_id in loaded[domain]
        ]
        for stream in names:
            frames[stream] = store.scan(stream, chosen)
    return load_staged(
        frames=frames,
        courses_loaded=loaded,
        mapping=mapping_for(config),
        serving_dsn=config.serving_dsn,
        hmac_key=load_hmac_key(config.hmac_key_ref, config.hmac_key_version),
        run_id=ctx.run_id,
        institution=ctx.institution,
        vendor=ctx.vendor,
        now=ctx.started,
    )


@flow(name="sync-institution", task_runner=ThreadPoolTaskRunner(max_workers=8))
def sync_institution(
    config_file: str | None = None,
    window: str | None = None,
    domains: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sync one institution's courses for a window into its serving database.

    ``window`` names the extraction window (default: today's full sync, ``full-YYYY-MM-DD``);
    rerunning the same window reuses what was staged. ``overrides`` are config values that win over
    the file and environment (used by the demo and tests).
    """
    config = load_config(Path(config_file) if config_file else None, **(overrides or {}))
    _check_hmac_key(config)
    ensure_logging()
    tracer_provider()
    started = datetime.now(UTC)
    run_id = str(flow_run.id or uuid.uuid4())
    source = open_source(config)
    ctx = RunContext(
        run_id=run_id,
        institution=config.institution_id,
        vendor=config.vendor,
        window=window or f"full-{started:%Y-%m-%d}",
        domains=tuple(domains or source.domains),
        staging_uri=config.staging_uri,
        limits=bootstrap_limits(config),
        started=started,
        activity_since=started - timedelta(days=config.engagement_lookback_days),
    )
    log = get_logger(run_id=run_id, institution=ctx.institution, vendor=ctx.vendor)
    summary = RunSummary(run_id=run_id, institution=ctx.institution, window=ctx.window)
    with _tracer.start_as_current_span(
        "sync_run",
        attributes={
            "lms.run_id": run_id,
            "lms.institution": ctx.institution,
            "lms.vendor": ctx.vendor,
        },
    ):
        _SOURCES[run_id] = source
        try:
            summary.courses = config.course_ids or [
                c["id"] for c in source.list_courses(term=config.term_filter)
            ]
            log.info("courses to sync", extra={"fields": {"courses": len(summary.courses)}})
            if progress_hook is not None:
                progress_hook("start", {"courses": len(summary.courses)})
            futures = sync_course.map(summary.courses, ctx=unmapped(ctx))
            for course_id, future in zip(summary.courses, futures, strict=True):
                future.wait()
                state = future.state
                if state.is_completed():
                    summary.staged[course_id] = state.result()["domains"]
                    continue
                error = state.result(raise_on_failure=False)
                summary.failures.append(
                    CourseFailure(
                        course_id=course_id,
                        error=str(error),
                        kind=getattr(error, "kind", "transient"),
                    )
                )
        finally:
            summary.http = source.stats()
            _SOURCES.pop(run_id, None)
            source.close()
        loaded = {
            domain: [c for c, doms in summary.staged.items() if domain in doms]
            for domain in ctx.domains
        }
        streams = {domain: list(source.streams(domain)) for domain in ctx.domains}
        summary.load = load_serving(ctx, loaded, streams, config)
        publish_artifacts(summary)
    flush()
    problems = []
    if summary.failures:
        names = ", ".join(f"{f.course_id} ({f.error})" for f in summary.failures[:20])
        problems.append(
            f"{len(summary.failures)} of {len(summary.courses)} courses not synced: {names}"
        )
    extracted = sum(t.extracted for t in summary.load.tables.values())
    share = summary.load.quarantined / extracted if extracted else 0.0
    if share > config.quarantine_threshold:
        problems.append(
            f"{summary.load.quarantined} of {extracted} records quarantined ({share:.1%}), "
            f"above the threshold of {config.quarantine_threshold:.1%}: see the quarantine report"
        )
    if problems:
        raise SyncIncomplete("; ".join(problems))
    return {
        "run_id": run_id,
        "window": ctx.window,
        "courses": len(summary.courses),
        "http": summary.http,
        "tables": summary.load.to_rows(),
    }

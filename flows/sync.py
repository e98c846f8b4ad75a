"""The institution sync flow: one task per course behind the vendor's limit, then a single writer.

Shape of a run::

    bootstrap limits → read cursors → list courses → sync_course × N (each: per domain, skip if
    the window's partition is already staged, else stream pages into a new partition) →
    load_serving (one writer: normalize, tokenize, validate, merge; cursor after commit) →
    artifacts → Failed if any course is missing

The staging partition identity (institution, vendor, domain, window, course) is the cache key: a
rerun of the same window after a crash fetches only what was not committed, and a new run id does
not invalidate anything.

Incremental sync: each domain's cursor lives in ``_sync_state`` with the window its load read.
Without ``--full``, a domain with a cursor fetches only what changed since the cursor minus
``incremental_overlap_minutes`` (``flows/stage.py``). The window name is derived from the state
(``inc-<oldest cursor>``, ``full-<oldest cursor>`` for a forced full run, ``full-<date>`` while a
domain has no cursor), so it changes exactly when every domain's load has committed: a run that
crashed while fetching or loading is rerun over the same partitions, and a run after a complete
load never reuses an older window's. The cursor a load writes is the earliest start
of the runs that fetched its partitions (the signpost): what changed while they fetched is read
again next time.
"""

from __future__ import annotations

import os
import resource
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from prefect import flow, task, unmapped
from prefect.cache_policies import NONE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from connectors.errors import CircuitOpenError, ConnectorError, PermanentError
from flows import deadletters
from flows.bulk import BULK_COURSE, finish_bulk, load_inputs, plan_bulk, start_bulk
from flows.limits import CourseSlots, VendorLimits, bootstrap_limits
from flows.reporting import publish_artifacts
from flows.settings import ConfigError, InstitutionConfig, load_config
from flows.stage import DomainPlan, stage_domain
from flows.telemetry import ensure_logging, flush, get_logger, tracer_provider
from flows.vendors import Source, mapping_for, open_source
from transforms.load import SyncState, read_state
from transforms.pipeline import LoadReport, load_staged
from transforms.staging import PartitionKey, StagingStore
from transforms.tokenize import load_hmac_key

_tracer = trace.get_tracer("lms_sync.flows")

# A run's live connections in this process, shared by its course tasks, which look them up by run
# id instead of receiving them as parameters: the source (pooled client, pacer, breaker) and the
# process's slots of the course limit.
_LIVE: dict[str, tuple[Source, CourseSlots]] = {}

# Course tasks a run (or shard) runs at once in its process; the course limit caps all processes.
COURSE_LANES = 8

# Set by an interactive caller (the demo) to follow progress; called from task threads.
progress_hook: Callable[[str, dict[str, Any]], None] | None = None


class SyncIncomplete(RuntimeError):
    """Some courses' data is missing; the message names them and why (no PII)."""


class VendorUnavailable(RuntimeError):
    """The vendor is down or refuses us: the run stopped instead of hammering it."""


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
    source_key: str = ""
    plans: dict[str, DomainPlan] = field(default_factory=dict)
    full: bool = False
    keep_cursor: bool = False  # replay: load the courses, leave the domain cursors alone


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
    vendor: str = ""
    mode: str = "full"
    courses: list[str] = field(default_factory=list)
    staged: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[CourseFailure] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
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
    source, slots = _LIVE[ctx.source_key or ctx.run_id]
    outcome: dict[str, Any] = {"course_id": course_id, "domains": {}}
    with (
        _tracer.start_as_current_span(
            "course", attributes={"lms.course_id": course_id, "lms.institution": ctx.institution}
        ),
        slots.slot(),
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
                source,
                store,
                key,
                run_id=ctx.run_id,
                activity_since=ctx.activity_since,
                plan=ctx.plans.get(domain),
                until=ctx.started,
            )
            outcome["domains"][domain] = {
                "status": staged.status,
                "rows": staged.rows,
                "partial": list(staged.partial),
            }
    forget = getattr(source, "forget", None)
    if forget is not None:
        forget(course_id)
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
    watermarks: dict[str, dict[str, str]] | None = None,
) -> LoadReport:
    """The single writer: the window's staging → serving tables, one domain at a time.

    A domain with ``watermarks`` was staged in bulk (``flows/bulk.py``): its one partition
    (course ``all``) is read, for the courses ``loaded`` lists."""
    store = StagingStore(ctx.staging_uri)
    manifests = store.committed(institution=ctx.institution, vendor=ctx.vendor, window=ctx.window)
    frames = {}
    partial: dict[str, set[str]] = {}
    cursors: dict[str, datetime | None] = {}
    bulk = watermarks or {}
    for domain, names in streams.items():
        chosen = [
            m
            for m in manifests
            if m.key.domain == domain
            and (
                m.key.course_id == BULK_COURSE
                if domain in bulk
                else m.key.course_id in loaded[domain]
            )
        ]
        for stream in names:
            frames[stream] = store.scan(stream, chosen)
            partial[stream] = {m.key.course_id for m in chosen if m.is_partial(stream)}
        # The signpost: never past the start of a run whose fetch this load used.
        starts = [datetime.fromisoformat(m.until) for m in chosen if m.until]
        cursors[domain] = None if ctx.keep_cursor else min([ctx.started, *starts])
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
        partial=partial,
        cursors=cursors,
        windows={domain: ctx.window for domain in streams},
        watermarks=None if ctx.keep_cursor else bulk,
    )


def _context(
    config: InstitutionConfig,
    *,
    run_id: str,
    window: str | None,
    domains: Any,
    started: datetime,
    full: bool = True,
    state: dict[str, SyncState] | None = None,
) -> RunContext:
    window, plans = plan_run(
        state or {},
        domains=tuple(domains),
        full=full,
        window=window,
        started=started,
        overlap=timedelta(minutes=config.incremental_overlap_minutes),
    )
    return RunContext(
        run_id=run_id,
        institution=config.institution_id,
        vendor=config.vendor,
        window=window,
        domains=tuple(domains),
        staging_uri=config.staging_uri,
        limits=bootstrap_limits(config),
        started=started,
        activity_since=started - timedelta(days=config.engagement_lookback_days),
        plans=plans,
        full=full,
    )


def plan_run(
    state: dict[str, SyncState],
    *,
    domains: tuple[str, ...],
    full: bool,
    window: str | None,
    started: datetime,
    overlap: timedelta,
) -> tuple[str, dict[str, DomainPlan]]:
    """The run's window and, per domain, what to fetch (see the module docstring).

    >>> plan_run({}, domains=("roster",), full=False, window=None,
    ...          started=datetime(2026, 11, 26, tzinfo=UTC), overlap=timedelta(minutes=10))[0]
    'full-2026-11-26'
    """
    cursors = [state[d].cursor for d in domains if d in state]
    if window is None:
        if len(cursors) < len(domains):
            window = f"full-{started:%Y-%m-%d}"
        else:
            # The oldest cursor: it moves only once every domain's load has committed, so a run
            # that crashed in the middle of loading is resumed from the same partitions.
            stamp = min(cursors).astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            window = f"{'full' if full else 'inc'}-{stamp}"
    plans = {}
    for domain in domains:
        previous = state.get(domain)
        if full or previous is None or previous.window is None:
            plans[domain] = DomainPlan()
        else:
            plans[domain] = DomainPlan(
                since=previous.cursor - overlap, baseline_window=previous.window
            )
    return window, plans


def _stage_courses(
    ctx: RunContext, source: Source, course_ids: list[str], summary: RunSummary, *, lanes: int
) -> None:
    """One task per course, at most ``lanes`` at once here and the vendor's course limit across
    every process; outcomes into ``summary``."""
    slots = CourseSlots(ctx.limits.courses, courses=len(course_ids), lanes=min(lanes, COURSE_LANES))
    _LIVE[ctx.source_key or ctx.run_id] = (source, slots)
    try:
        slots.prefetch()
        futures = sync_course.map(course_ids, ctx=unmapped(ctx))
        for course_id, future in zip(course_ids, futures, strict=True):
            future.wait()
            state = future.state
            if state.is_completed():
                summary.staged[course_id] = state.result()["domains"]
                continue
            error = state.result(raise_on_failure=False)
            failure = CourseFailure(
                course_id=course_id, error=str(error), kind=getattr(error, "kind", "transient")
            )
            summary.failures.append(failure)
            if isinstance(error, BaseException) and failure.kind != "configuration":
                _dead_letter(ctx, course_id, error, summary)
    finally:
        slots.close()
        summary.http = {**source.stats(), "course_slot_acquisitions": slots.acquired}
        _LIVE.pop(ctx.source_key or ctx.run_id, None)


def _dead_letter(
    ctx: RunContext, course_id: str, error: BaseException, summary: RunSummary
) -> None:
    """Keep the course for ``lms-sync replay`` (``flows/deadletters.py``)."""
    body = deadletters.letter(
        error=error,
        course_id=course_id,
        vendor=ctx.vendor,
        window=ctx.window,
        domains=list(ctx.domains),
        plans={d: p.to_json() for d, p in ctx.plans.items()},
        run_id=ctx.run_id,
        full=ctx.full,
    )
    StagingStore(ctx.staging_uri).write_dead_letter(
        institution=ctx.institution, vendor=ctx.vendor, body=body
    )
    summary.dead_letters.append(body)


@flow(name="sync-institution", task_runner=ThreadPoolTaskRunner(max_workers=COURSE_LANES))
def sync_institution(
    config_file: str | None = None,
    window: str | None = None,
    domains: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    shards: int | None = None,
    full: bool = False,
    keep_cursor: bool = False,
) -> dict[str, Any]:
    """Sync one institution's courses for a window into its serving database.

    Incremental by default: a domain with a cursor fetches only what changed since (see the
    module docstring). ``full=True`` (``lms-sync sync --full``) fetches everything and
    soft-deletes whatever is gone — the periodic backstop. ``keep_cursor`` (``lms-sync replay``)
    loads without moving any cursor: a replay covers a few courses, a cursor covers them all.

    ``window`` names the extraction window (default: today's full sync, ``full-YYYY-MM-DD``);
    rerunning the same window reuses what was staged. ``overrides`` are config values that win over
    the file and environment (used by the demo and tests). ``shards`` (default: the config's) > 1
    runs the courses as that many ``sync-shard`` deployment runs — separate processes or pods —
    and waits for them before the single-writer load. An institution with several LMSs
    (``[[sources]]``) syncs each in turn into the same serving database.
    """
    config = load_config(Path(config_file) if config_file else None, **(overrides or {}))
    sources = config.per_source()
    _check_hmac_key(config)
    ensure_logging()
    tracer_provider()
    started = datetime.now(UTC)
    run_id = str(flow_run.id or uuid.uuid4())
    summaries: list[RunSummary] = []
    with _tracer.start_as_current_span(
        "sync_run", attributes={"lms.run_id": run_id, "lms.institution": config.institution_id}
    ):
        for index, source_config in enumerate(sources):
            summaries.append(
                _sync_source(
                    source_config,
                    run_id=run_id,
                    window=window,
                    domains=domains,
                    started=started,
                    shards=shards or source_config.shards,
                    launch={"config_file": config_file, "overrides": overrides, "source": index},
                    full=full,
                    keep_cursor=keep_cursor,
                )
            )
    flush()
    _raise_if_incomplete(summaries, config)
    if len(summaries) == 1:
        http = summaries[0].http
    else:
        totals: Counter[str] = Counter()
        for summary in summaries:
            totals.update({k: v for k, v in summary.http.items() if isinstance(v, int | float)})
        http = {**totals, "by_vendor": {s.vendor: s.http for s in summaries}}
    return {
        "run_id": run_id,
        "mode": summaries[0].mode,
        "window": summaries[0].window,
        "courses": sum(len(s.courses) for s in summaries),
        "http": http,
        "tables": [
            {"vendor": s.vendor, **row} for s in summaries if s.load for row in s.load.to_rows()
        ],
    }


def _sync_source(
    config: InstitutionConfig,
    *,
    run_id: str,
    window: str | None,
    domains: list[str] | None,
    started: datetime,
    shards: int,
    launch: dict[str, Any],
    full: bool = False,
    keep_cursor: bool = False,
) -> RunSummary:
    """One LMS of the institution: list courses, stage them (here or in shards), load, report."""
    source = open_source(config)
    state = read_state(config.serving_dsn, institution=config.institution_id, vendor=config.vendor)
    ctx = _context(
        config,
        run_id=run_id,
        window=window,
        domains=domains or source.domains,
        started=started,
        full=full,
        state=state,
    )
    ctx = replace(ctx, keep_cursor=keep_cursor)
    bulk = plan_bulk(config, ctx.domains, state, full=full)
    rest = replace(ctx, domains=bulk.rest(ctx.domains))  # what the course tasks stage
    log = get_logger(run_id=run_id, institution=ctx.institution, vendor=ctx.vendor)
    incremental = any(p.since is not None for p in ctx.plans.values())
    summary = RunSummary(
        run_id=run_id,
        institution=ctx.institution,
        window=ctx.window,
        vendor=ctx.vendor,
        mode="incremental" if incremental else "full",
    )
    staged = getattr(source, "already_staged", None)
    if staged is not None:  # a source that budgets its calls skips what the window already has
        done: dict[str, set[str]] = {}
        for m in StagingStore(ctx.staging_uri).committed(
            institution=ctx.institution, vendor=ctx.vendor, window=ctx.window
        ):
            done.setdefault(m.key.course_id, set()).add(m.key.domain)
        staged(done)
    with _tracer.start_as_current_span("source", attributes={"lms.vendor": ctx.vendor}):
        try:
            try:
                summary.courses = config.course_ids or [
                    c["id"] for c in source.list_courses(term=config.term_filter)
                ]
            except ConnectorError as exc:
                raise _unavailable(ctx.vendor, exc, source) from None
            log.info(
                "courses to sync",
                extra={"fields": {"courses": len(summary.courses), "shards": shards}},
            )
            if progress_hook is not None:
                progress_hook("start", {"courses": len(summary.courses)})
            pending = start_bulk(
                bulk, config, run_id=run_id, window=ctx.window, course_ids=summary.courses
            )
            if shards > 1:
                source.close()
                _run_shards(rest, config, launch, shards, summary)
            else:
                lanes = config.quota.max_concurrent_courses
                _stage_courses(rest, source, summary.courses, summary, lanes=lanes)
            outcomes, failed = finish_bulk(pending)
            summary.failures += [CourseFailure(BULK_COURSE, error, kind) for error, kind in failed]
        finally:
            source.close()
        loaded = {
            domain: [c for c, doms in summary.staged.items() if domain in doms]
            for domain in ctx.domains
        }
        bulk_loaded, marks = load_inputs(outcomes, {f.course_id for f in summary.failures}, bulk)
        loaded.update(bulk_loaded)
        streams = {domain: list(source.streams(domain)) for domain in ctx.domains}
        summary.load = load_serving(ctx, loaded, streams, config, marks)
        publish_artifacts(summary)
    return summary


def _unavailable(vendor: str, error: Exception, source: Source) -> Exception:
    """Listing courses failed: a revoked token or a vendor that is down ends the run at once."""
    if getattr(error, "kind", None) == "configuration":
        return VendorUnavailable(f"{vendor} refused the credentials, nothing was synced: {error}")
    breaker = getattr(getattr(source, "client", None), "_breaker", None)
    state = f"circuit breaker {breaker.state}" if breaker is not None else "no circuit breaker"
    return VendorUnavailable(f"{vendor} is unavailable ({state}); nothing was synced: {error}")


def _raise_if_incomplete(summaries: list[RunSummary], config: InstitutionConfig) -> None:
    """A run that lost data, or quarantined more than the institution allows, is not Completed."""
    problems = []
    for summary in summaries:
        where = f"{summary.vendor}: " if len(summaries) > 1 else ""
        if any("circuit open" in f.error or "CircuitOpen" in f.error for f in summary.failures):
            problems.append(
                f"{summary.vendor} is unavailable: circuit breaker open after repeated failures;"
                " courses were stopped instead of hammering it"
            )
        if summary.dead_letters:
            problems.append(
                f"{where}{len(summary.dead_letters)} dead letters written: run `lms-sync replay`"
            )
        if summary.failures:
            names = ", ".join(f"{f.course_id} ({f.error})" for f in summary.failures[:20])
            problems.append(
                f"{where}{len(summary.failures)} of {len(summary.courses)} courses not synced: "
                f"{names}"
            )
        assert summary.load is not None
        extracted = sum(t.extracted for t in summary.load.tables.values())
        share = summary.load.quarantined / extracted if extracted else 0.0
        if share > config.quarantine_threshold:
            problems.append(
                f"{where}{summary.load.quarantined} of {extracted} records quarantined "
                f"({share:.1%}), above the threshold of {config.quarantine_threshold:.1%}: "
                "see the quarantine report"
            )
    if problems:
        raise SyncIncomplete("; ".join(problems))


def _run_shards(
    ctx: RunContext,
    config: InstitutionConfig,
    launch: dict[str, Any],
    count: int,
    summary: RunSummary,
) -> None:
    """Run each shard as its own deployment run and gather what they staged.

    A shard's idempotency key is institution × window × shard, so a rerun of the same window
    attaches to the shard runs already made instead of starting more; a shard whose earlier run
    ended badly is started again under a key that adds this run's id. Outcomes travel through
    staging (shared by every pod), not through Prefect results.
    """
    from prefect.deployments import run_deployment

    chunks = [summary.courses[i::count] for i in range(count)]
    carrier: dict[str, str] = {}
    propagate.inject(carrier)

    def start_shard(index: int) -> Any:
        parameters = {
            **launch,
            "window": ctx.window,
            "course_ids": chunks[index],
            "run_id": ctx.run_id,
            "shard": index,
            "domains": list(ctx.domains),
            "traceparent": carrier.get("traceparent"),
            "plans": {d: p.to_json() for d, p in ctx.plans.items()},
            "started": ctx.started.isoformat(),
            "shard_count": count,
        }
        key = f"{ctx.institution}:{ctx.vendor}:{ctx.window}:shard-{index}-of-{count}"
        run = run_deployment(
            config.shard_deployment, parameters=parameters, idempotency_key=key, timeout=None
        )
        if (
            run.state is not None
            and not run.state.is_completed()
            and run.parameters.get("run_id") != ctx.run_id
        ):
            run = run_deployment(
                config.shard_deployment,
                parameters=parameters,
                idempotency_key=f"{key}:{ctx.run_id}",
                timeout=None,
            )
        return run

    with ThreadPoolExecutor(max_workers=count) as pool:
        runs = list(pool.map(start_shard, range(count)))
    store = StagingStore(ctx.staging_uri)
    http: Counter[str] = Counter()
    for index, run in enumerate(runs):
        # A reused shard run reported under the run id it was started with.
        ran_for = (run.parameters or {}).get("run_id", ctx.run_id)
        notes = store.notes(institution=ctx.institution, run_id=ran_for)
        note = notes.get(f"{ctx.vendor}-shard-{index}")
        if note is None:
            state = run.state.name if run.state else "unknown"
            summary.failures += [
                CourseFailure(c, f"shard {index} ended {state} without a report", "transient")
                for c in chunks[index]
            ]
            continue
        summary.staged.update(note["staged"])
        summary.failures += [CourseFailure(**f) for f in note["failures"]]
        http.update({k: v for k, v in note["http"].items() if isinstance(v, int | float)})
    summary.http = dict(http)


@flow(name="sync-shard", task_runner=ThreadPoolTaskRunner(max_workers=COURSE_LANES))
def sync_shard(
    config_file: str | None,
    window: str,
    course_ids: list[str],
    run_id: str,
    shard: int = 0,
    domains: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    traceparent: str | None = None,
    source: int = 0,
    plans: dict[str, dict[str, Any]] | None = None,
    started: str | None = None,
    shard_count: int = 1,
) -> dict[str, Any]:
    """Stage one shard of an institution run's courses; the parent run loads and reports.

    Runs in its own process or pod. The course limit and any shared request budget are the same
    Prefect limits every shard acquires, so the vendor quota holds however many shards run. A
    shard asks for at most its fair share of the course limit (limit ÷ ``shard_count``): slot
    acquisition is polled, so a shard that re-asks the moment a course ends would otherwise keep
    the limit while another shard's polls come a second apart (measured: one of two shards idle
    for minutes in a 10,000-course run).
    """
    config = load_config(Path(config_file) if config_file else None, **(overrides or {}))
    config = config.per_source()[source]
    ensure_logging()
    tracer_provider()
    lms = open_source(config)
    ctx = _context(
        config,
        run_id=run_id,
        window=window,
        domains=domains or lms.domains,
        started=datetime.fromisoformat(started) if started else datetime.now(UTC),
    )
    ctx = replace(
        ctx,
        source_key=f"{run_id}/shard-{shard}",
        plans={d: DomainPlan.from_json(p) for d, p in (plans or {}).items()},
    )
    summary = RunSummary(run_id=run_id, institution=ctx.institution, window=window)
    parent = propagate.extract({"traceparent": traceparent} if traceparent else {})
    with _tracer.start_as_current_span(
        "shard", context=parent, attributes={"lms.run_id": run_id, "lms.shard": shard}
    ):
        try:
            share = -(-config.quota.max_concurrent_courses // shard_count)
            _stage_courses(ctx, lms, course_ids, summary, lanes=share)
        finally:
            lms.close()
    StagingStore(ctx.staging_uri).write_note(
        institution=ctx.institution,
        run_id=run_id,
        name=f"{ctx.vendor}-shard-{shard}",
        body={
            "shard": shard,
            "pid": os.getpid(),
            "flow_run_id": str(flow_run.id) if flow_run.id else None,
            "staged": summary.staged,
            "failures": [asdict(f) for f in summary.failures],
            "http": summary.http,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    )
    flush()
    if summary.failures:
        raise SyncIncomplete(f"shard {shard}: {len(summary.failures)} courses not staged")
    return {"shard": shard, "courses": len(summary.staged)}

"""Incremental sync: what an incremental sync costs after 1 % of submissions change, against a
full sync of the same institution (issue 5 targets: ≤ 5 % of the requests, ≤ 10 % of the time),
and what a sync costs when nothing changed, against the minimum that can tell so.

One emulated Canvas in a child process (the changes are applied to its Institution between
syncs over a pipe, and its CPU stays off the measured flow's GIL),
the real flow on an ephemeral Prefect, a DuckDB file. The full sync and both incremental syncs
hit the same server in the same run, so the ratios compare like with like.

Each is measured twice: over loopback (``_0ms``, the emulator answers at once) and as a hosted
Canvas answers (``_100ms`` per request). Over loopback the fixed costs of any run (starting the
flow, the one writer's pass over every table) weigh against a full sync that itself takes seconds.

* ``incremental_1pct_requests_vs_full_*`` — requests at the emulator, incremental / full.
* ``incremental_1pct_seconds_vs_full_*`` — time of the flow run, incremental / full: Prefect's
  ``total_run_time`` (Running to Completed, as the UI shows it). The call's wall time, printed
  beside it, adds about 1 s per run after Completed: the flow-run heartbeat thread sleeps in 1 s
  steps and is joined at exit (prefect-notes.md §8), which a run every few hours never notices.
* ``no_change_requests_vs_minimum_*`` — requests of a sync after no change / the minimum: the
  course list, then per course the eight reads that can show a change (course, sections,
  enrollments, users, assignments, ``submitted_since``, ``graded_since``, student summaries).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.emulated import CanvasInProcess
from bench.results import Figure

COURSES = 16  # two waves of course tasks: the run's fixed costs are not the whole story
STUDENTS = 95  # with staff, 98 enrollments: one page
ASSIGNMENTS = 98  # with the unpublished one, 99 assignments: one page
TOKEN = "bench-token"
HMAC_ENV = "BENCH_LMS_SYNC_HMAC_KEY"
REQUEST_TARGET = 0.05
TIME_TARGET = 0.10
PER_COURSE_MINIMUM = 8
# A hosted Canvas answers over the internet, not over loopback: every request also waits this
# long (the emulator's service time, held in its leaky bucket like real work).
WAN_MS = 100


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="lms-sync-bench-incremental-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        os.environ[HMAC_ENV] = secrets.token_hex(32)
        return _measure(work / "lan", latency_ms=0) + _measure(work / "wan", latency_ms=WAN_MS)


def _measure(work: Path, *, latency_ms: int) -> list[Figure]:
    from prefect.client.orchestration import get_client

    from emulators.canvas.settings import CanvasEmulatorSettings
    from emulators.canvas.throttle import ThrottleSettings
    from flows.sync import sync_institution

    shape = {
        "seed": 11, "courses": COURSES, "students_per_course": STUDENTS,
        "assignments_per_course": ASSIGNMENTS,
    }  # fmt: skip
    settings = CanvasEmulatorSettings(
        token=TOKEN, throttle=ThrottleSettings(enabled=False), latency_ms=latency_ms
    )
    config = {
        "institution_id": f"bench-{latency_ms}ms",
        "vendor": "canvas",
        "token": TOKEN,
        "staging_uri": str(work / "staging"),
        "serving_dsn": str(work / "serving.duckdb"),
        "hmac_key_ref": f"env:{HMAC_ENV}",
        "engagement_lookback_days": 3650,
        "quota": {"max_concurrent_courses": 8},
    }
    with CanvasInProcess(shape, settings) as emu:
        config["base_url"] = emu.base_url

        def sync() -> tuple[int, float, dict]:
            """Requests, the flow run's own time (as the Prefect UI shows it) and the result."""
            before = emu.stats()["requests"]
            started = time.perf_counter()
            result = sync_institution(overrides=config)
            wall = time.perf_counter() - started
            with get_client(sync_client=True) as client:
                run = client.read_flow_run(result["run_id"])
            result["wall_seconds"] = wall
            return emu.stats()["requests"] - before, run.total_run_time.total_seconds(), result

        # Warm-up (ephemeral Prefect start, imports) on a throwaway database, so the full sync's
        # time is the sync's own.
        warm = {"serving_dsn": str(work / "warm.duckdb"), "staging_uri": str(work / "warm")}
        sync_institution(overrides={**config, **warm, "course_ids": ["101"]})
        full_requests, full_seconds, full = sync()
        changed = emu.apply_changes(
            fraction=0.01, seed=1, at=datetime.now(UTC) - timedelta(seconds=1)
        )
        inc_requests, inc_seconds, inc = sync()
        none_requests, none_seconds, _ = sync()
        submissions = emu.counts()["submissions"]
    live = full["courses"]
    minimum = 1 + PER_COURSE_MINIMUM * live
    where = f"{latency_ms}ms"
    print(
        f"  [{latency_ms} ms per request]\n"
        f"  full: {full_requests} requests in {full_seconds:.1f}s "
        f"(call {full['wall_seconds']:.1f}s; {live} courses, "
        f"{submissions} submissions)\n"
        f"  changes: {changed}\n"
        f"  incremental ({inc['mode']}): {inc_requests} requests in {inc_seconds:.1f}s "
        f"(call {inc['wall_seconds']:.1f}s) — "
        f"requests {inc_requests / full_requests:.1%} (target ≤ {REQUEST_TARGET:.0%}: "
        f"{_met(inc_requests / full_requests <= REQUEST_TARGET)}), time "
        f"{inc_seconds / full_seconds:.1%} (target ≤ {TIME_TARGET:.0%}: "
        f"{_met(inc_seconds / full_seconds <= TIME_TARGET)})\n"
        f"  no change: {none_requests} requests in {none_seconds:.1f}s; minimum {minimum} "
        f"({_met(none_requests <= minimum)})"
    )
    return [
        Figure.compare(
            f"incremental_1pct_requests_vs_full_{where}", inc_requests, "requests",
            baseline_name="full sync", baseline_value=full_requests,
        ),
        Figure.compare(
            f"incremental_1pct_seconds_vs_full_{where}", inc_seconds, "s",
            baseline_name="full sync", baseline_value=full_seconds,
        ),
        Figure.compare(
            f"no_change_requests_vs_minimum_{where}", none_requests, "requests",
            baseline_name="course list + 8 reads per course", baseline_value=minimum,
        ),
    ]  # fmt: skip


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"

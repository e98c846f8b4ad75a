"""Institution-wide gradebook sync of ~5 million submissions: Canvas Data 2 (bulk) vs REST.

One emulated institution (its own process, Canvas's default throttle, DAP's documented limits):
90 live courses (100, of which 10 deleted) × 1,112 submitting students × 50 assignments ≈ 5.0 M
submissions. The bulk path stages the gradebook domain (assignments, submissions, course grades)
institution-wide from four DAP snapshot jobs; the REST path stages the same domain course by course
through the paced connector (8 courses at once).

REST over 5 M submissions would take tens of minutes here, so it runs on a **sample of 4 courses**
and is **extrapolated linearly** to all 90 (its cost is per page, and pages are per course: the
per-course figures are flat). The figure names say ``rest_extrapolated``. Peak RSS is measured in a
fresh process for each path (the REST sample's peak stands for the whole run: memory does not grow
with courses, since courses stream one partition at a time).

Figures: ``bulk_5m_wall_seconds`` (vs REST extrapolated), ``bulk_5m_vendor_calls`` (vs REST
extrapolated), ``bulk_5m_peak_rss_mb`` (vs the REST sample); ratios are bulk / REST.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.emulated import emulator_process
from bench.results import Figure
from bench.rss import measure
from connectors.canvas.dap import DapClient
from connectors.canvas.dap_tables import BULK_COURSE, stage_bulk_domain
from connectors.canvas.source import CanvasSource
from connectors.export_jobs import PollSchedule, StagingJobStore
from flows.stage import stage_domain
from transforms.staging import PartitionKey, StagingStore

TOKEN = "bench-token"
DAP_ID, DAP_SECRET = "us-east-1#bench", "bench-dap-secret"
COURSES, STUDENTS, ASSIGNMENTS = 100, 1115, 50  # 1,112 submitters per course (3 never submit)
REST_SAMPLE = 4
REST_THREADS = 8


def _args() -> list[str]:
    return [
        "--seed", "8", "--courses", str(COURSES), "--students-per-course", str(STUDENTS),
        "--assignments-per-course", str(ASSIGNMENTS), "--token", TOKEN,
        "--dap-client-id", DAP_ID, "--dap-client-secret", DAP_SECRET,
        "--dap-processing-seconds", "2",
    ]  # fmt: skip


def _live_courses(base_url: str) -> list[str]:
    with CanvasSource(base_url=base_url, token=TOKEN) as source:
        return [c["id"] for c in source.list_courses()]


def _bulk(base_url: str, courses: list[str]) -> dict:
    with (
        tempfile.TemporaryDirectory() as root,
        DapClient(base_url=base_url, client_id=DAP_ID, client_secret=DAP_SECRET) as dap,
    ):
        store = StagingStore(root)
        started = time.perf_counter()
        outcome = stage_bulk_domain(
            dap,
            store,
            PartitionKey("bench", "canvas", "gradebook", "w1", BULK_COURSE),
            run_id="bulk",
            course_ids=courses,
            schedule=PollSchedule(initial=1.0, growth=0.1, cap=10.0),
        )
        seconds = time.perf_counter() - started
        manifest = store.manifest(PartitionKey("bench", "canvas", "gradebook", "w1", BULK_COURSE))
        stats = dap.client.stats.snapshot()
        return {
            "seconds": seconds,
            "submissions": manifest.streams["submissions"]["rows"],
            # API calls (login, jobs, polls, URLs) + one GET per object download
            "calls": stats["requests"] + _downloads(store),
            "rows": outcome.rows,
        }


def _downloads(store: StagingStore) -> int:
    notes = store.notes(institution="bench", run_id=StagingJobStore.RUN)
    return sum(len(n.get("files", {})) for n in notes.values())


def _rest(base_url: str, courses: list[str]) -> dict:
    with (
        tempfile.TemporaryDirectory() as root,
        CanvasSource(base_url=base_url, token=TOKEN, max_in_flight=REST_THREADS) as source,
    ):
        store = StagingStore(root)
        started = time.perf_counter()

        def one(course: str) -> int:
            key = PartitionKey("bench", "canvas", "gradebook", "w1", course)
            stage_domain(source, store, key, run_id="rest")
            return store.manifest(key).streams["submissions"]["rows"]

        with ThreadPoolExecutor(REST_THREADS) as pool:
            rows = sum(pool.map(one, courses))
        seconds = time.perf_counter() - started
        stats = source.stats()
        return {"seconds": seconds, "submissions": rows, "calls": stats["requests"]}


def run() -> list[Figure]:
    with emulator_process("canvas", *_args()) as base_url:
        httpx.get(base_url, timeout=30)
        courses = _live_courses(base_url)
        bulk, bulk_rss = measure(_bulk, base_url, courses)
        rest, rest_rss = measure(_rest, base_url, courses[:REST_SAMPLE])
    scale = len(courses) / REST_SAMPLE
    rest_seconds = rest["seconds"] * scale
    rest_calls = rest["calls"] * scale + 1  # + the course list
    n = bulk["submissions"]
    print(
        f"   bulk: {n:,} submissions in {bulk['seconds']:.1f}s, {bulk['calls']} vendor calls, "
        f"{bulk_rss:.0f} MB; REST sample: {rest['submissions']:,} submissions in "
        f"{rest['seconds']:.1f}s, {rest['calls']} calls, {rest_rss:.0f} MB "
        f"(x{scale:.1f} → {rest_seconds:.0f}s, {rest_calls:.0f} calls)"
    )
    return [
        Figure.compare(
            f"bulk_{n / 1e6:.1f}m_submissions_wall_seconds_vs_rest_extrapolated",
            bulk["seconds"],
            "s",
            baseline_name=f"rest_{REST_SAMPLE}_course_sample_x{scale:.1f}",
            baseline_value=rest_seconds,
            peak_rss_mb=bulk_rss,
        ),
        Figure.compare(
            f"bulk_{n / 1e6:.1f}m_submissions_vendor_calls_vs_rest_extrapolated",
            bulk["calls"],
            "calls",
            baseline_name=f"rest_{REST_SAMPLE}_course_sample_x{scale:.1f}",
            baseline_value=rest_calls,
        ),
        Figure.compare(
            f"bulk_{n / 1e6:.1f}m_submissions_peak_rss_mb_vs_rest_sample",
            bulk_rss,
            "MB",
            baseline_name=f"rest_{REST_SAMPLE}_course_sample",
            baseline_value=rest_rss,
            peak_rss_mb=bulk_rss,
        ),
    ]

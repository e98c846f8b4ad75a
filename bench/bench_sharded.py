"""A 10,000-course institution synced with sharding, the way it runs in production (issue 9).

A real ``prefect server start``, the ``local-process`` pool, ``prefect --no-prompt deploy`` of the
local deployments in prefect.yaml, two process workers, and the Canvas emulator in its own
process. The institution deployment splits the courses into ``SHARDS`` ``sync-shard`` runs (one
per worker process), each mapping one task per course; the parent loads and reports.

The vendor quota is the emulator's Canvas leaky bucket (canvas-api.md §3): a request costs
``REQUEST_COST`` bucket units and the bucket drains ``OUTFLOW`` units a second, so the quota is
``OUTFLOW / REQUEST_COST`` requests a second. The institution's config mirrors it as operators
would: ``quota.shared_requests_per_second`` (one Prefect rate limit shared by every shard) at the
quota, and a course limit of ``COURSE_LIMIT`` across all shards. Courses are small (two students,
one assignment) and only the roster domain is synced, so the run is about orchestration and
quota, not payload.

Figures (each against a baseline measured in the same run):

* ``sharded_10k_request_rate`` — requests a second at the emulator while courses were being
  staged (from 1 % to 99 % of the run's requests), against the quota: the issue's target is
  ≥ 0.9 with under 1 % throttled.
* ``sharded_10k_throttled_share`` — throttled responses / requests, against the 1 % ceiling.
* ``sharded_10k_wall_seconds`` — the institution flow run's time (Prefect's total_run_time: list,
  shards, load, report), against the least the quota allows: requests ÷ quota.
* ``sharded_10k_orchestration_seconds_per_course`` — flow time minus the time spent in HTTP, per
  course: (flow seconds × course limit − Σ round-trip seconds) ÷ courses, i.e. lane-seconds a
  course held that were not on the wire (Prefect task runs, slot hand-over, staging writes,
  pacing waits, the list and the load), against the round-trip seconds per course. Peak RSS is
  the largest shard process's.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

from bench.emulated import CanvasInProcess
from bench.prefect_server import prefect_cli, prefect_server, process_workers
from bench.results import Figure

COURSES = int(os.environ.get("LMS_SYNC_BENCH_SHARDED_COURSES", "10000"))
SHARDS = 2
# Canvas admits about hwm / up-front cost = 600 / 50 = 12 requests in flight (canvas-api.md §3);
# a course task has one request in flight at a time.
COURSE_LIMIT = 12
OUTFLOW = 10.0
# 0.2 units a request: a 50/s quota. Like a real vendor's, it sits below what the workers can
# push: this 2-core machine (server, emulator, two shard processes) tops out near 76 requests a
# second with two shards (measured with a 400/s quota), so at 80/s the machine, not the quota,
# would be measured.
REQUEST_COST = float(os.environ.get("LMS_SYNC_BENCH_SHARDED_REQUEST_COST", "0.2"))
QUOTA = OUTFLOW / REQUEST_COST  # requests a second the bucket sustains
TOKEN = "bench-shard-token"
INSTITUTION = "bench-sharded"


def run() -> list[Figure]:
    from emulators.canvas.settings import CanvasEmulatorSettings
    from emulators.canvas.throttle import ThrottleSettings

    shape = {"seed": 21, "courses": COURSES, "students_per_course": 2, "assignments_per_course": 1}
    throttle = ThrottleSettings(outflow=OUTFLOW, request_cost=REQUEST_COST)
    settings = CanvasEmulatorSettings(token=TOKEN, throttle=throttle)
    with (
        tempfile.TemporaryDirectory(prefix="lms-sync-bench-sharded-") as tmp,
        CanvasInProcess(shape, settings) as emu,
    ):
        work = Path(tmp)
        (work / "prefect").mkdir()
        with prefect_server(work / "prefect") as env:
            env.update(_institution_env(work, emu.base_url))
            prefect_cli(env, "work-pool", "create", "local-process", "--type", "process")
            prefect_cli(
                env, "--no-prompt", "deploy", "-n", "full-sync-local", "-n", "sync-shard-local"
            )
            with process_workers(env, SHARDS, work):
                return _measure(env, emu, work)


def _institution_env(work: Path, base_url: str) -> dict[str, str]:
    return {
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "LMS_SYNC_INSTITUTION_ID": INSTITUTION,
        "LMS_SYNC_BASE_URL": base_url,
        "LMS_SYNC_TOKEN": TOKEN,
        "LMS_SYNC_STAGING_URI": str(work / "staging"),
        "LMS_SYNC_SERVING_DSN": str(work / "serving.duckdb"),
        "LMS_SYNC_HMAC_KEY": secrets.token_hex(32),
        "LMS_SYNC_QUOTA__MAX_CONCURRENT_COURSES": str(COURSE_LIMIT),
        "LMS_SYNC_QUOTA__SHARED_REQUESTS_PER_SECOND": str(QUOTA),
        "LMS_SYNC_QUOTA__BURST": str(int(4 * QUOTA)),  # a batch of permits in hand, one coming
        "LMS_SYNC_SHARD_DEPLOYMENT": "sync-shard/sync-shard-local",
    }


def _measure(env: dict[str, str], emu: CanvasInProcess, work: Path) -> list[Figure]:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from transforms.staging import StagingStore

    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append((time.monotonic(), emu.stats()["requests"]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        run = run_deployment(
            "sync-institution/full-sync-local",
            parameters={"shards": SHARDS, "domains": ["roster"]},
            timeout=None,
        )
        with get_client(sync_client=True) as client:
            flow_seconds = client.read_flow_run(run.id).total_run_time.total_seconds()
    done.set()
    sampler.join()
    if not run.state.is_completed():
        raise RuntimeError(f"the sharded run ended {run.state.name}: {run.state.message}")
    stats = emu.stats()
    notes = StagingStore(work / "staging").notes(institution=INSTITUTION, run_id=str(run.id))
    shards = [n for name, n in notes.items() if "-shard-" in name]
    courses = sum(len(n["staged"]) for n in shards)
    round_trip = sum(
        n["http"].get("request_seconds", 0.0) - n["http"].get("pacing_wait_seconds", 0.0)
        for n in shards
    )
    pacing_wait = sum(n["http"].get("pacing_wait_seconds", 0.0) for n in shards)
    slot_calls = sum(n["http"].get("course_slot_acquisitions", 0) for n in shards)
    peak_rss = max(n.get("peak_rss_mb", 0.0) for n in shards)
    requests, throttled = stats["requests"], stats["throttled"]
    rate = _staging_rate(samples, requests)
    overhead = (flow_seconds * COURSE_LIMIT - round_trip) / courses
    print(
        f"  {courses:,} courses in {SHARDS} shards (pids {sorted({n['pid'] for n in shards})}); "
        f"flow {flow_seconds:.0f}s; {requests:,} requests, {throttled} throttled; "
        f"staging rate {rate:.1f}/s of a {QUOTA:.0f}/s quota ({rate / QUOTA:.2f}, target ≥ 0.9); "
        f"round trips {round_trip:.0f}s, pacing waits {pacing_wait:.0f}s; "
        f"course-slot lease calls {slot_calls}; largest shard peak RSS {peak_rss:.0f} MB"
    )
    return [
        Figure.compare(
            "sharded_10k_request_rate", rate, "req/s",
            baseline_name="emulated quota (bucket outflow / request cost)", baseline_value=QUOTA,
        ),
        Figure.compare(
            "sharded_10k_throttled_share", throttled / requests, "share",
            baseline_name="ceiling", baseline_value=0.01,
        ),
        Figure.compare(
            "sharded_10k_wall_seconds", flow_seconds, "s",
            baseline_name="requests / quota", baseline_value=requests / QUOTA,
            peak_rss_mb=peak_rss,
        ),
        Figure.compare(
            "sharded_10k_orchestration_seconds_per_course", overhead, "s",
            baseline_name="round-trip seconds per course", baseline_value=round_trip / courses,
            peak_rss_mb=peak_rss,
        ),
    ]  # fmt: skip


def _staging_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Requests a second between the samples where 1 % and 99 % of the run's requests were done
    (the course list before and the load after send none or few)."""
    start = next(s for s in samples if s[1] >= 0.01 * total)
    end = next(s for s in samples if s[1] >= 0.99 * total)
    return (end[1] - start[1]) / max(end[0] - start[0], 1e-9)

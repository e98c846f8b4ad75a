"""Canvas connector throughput under a quota, and memory while staging one very large course.

* ``canvas_requests_per_s_vs_sequential`` / ``_vs_unpaced``: the connector (16 course extractions
  at once through one paced, retrying client) against two naive clients over the **same emulated
  institution and quota** (emulator in its own process, same bucket, same latency): a sequential
  loop, and 16 unpaced threads that retry a throttled request after one second. Figures are
  successful page requests per second of wall time for the same work (every course's gradebook;
  the sequential baseline runs the first quarter of the courses — its rate does not need more).
* ``canvas_throttled_share``: throttled responses / all responses, connector vs unpaced client.
* ``canvas_stage_peak_rss_{50,100,200}k``: peak RSS of a fresh process staging one course of that
  many submissions through the connector and StagingStore, beside a naive client that collects the
  course's records in a list and writes them once; ``canvas_stage_rss_growth_200k_vs_50k`` shows
  staging stays flat while the naive one grows.
"""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import polars as pl

from bench.emulated import emulator_process
from bench.results import Figure
from bench.rss import measure
from connectors.canvas.source import CanvasSource
from flows.stage import stage_domain
from transforms.staging import PartitionKey, StagingStore

TOKEN = "bench-token"
COURSES = 24
SEQUENTIAL_COURSES = 6  # a rate needs no full pass: the slow baseline runs a quarter of the work
PER_PAGE = 50
THREADS = 16  # course extractions at once, for the connector and the unpaced client alike
STUDENTS = 40
ASSIGNMENTS = 25
# Canvas defaults for the bucket (hwm 600, outflow 10/s, up-front 50); the simulated request cost
# makes the sustained quota ~100 requests/s, and 150 ms of service time (a submissions page on a
# busy instance) means a client needs about a dozen requests in flight to use it: the up-front cost
# those hold is what fills the bucket.
QUOTA_ARGS = ("--latency-ms", "150", "--request-cost", "0.1")
RSS_STUDENTS = {50_000: 250, 100_000: 500, 200_000: 1000}
RSS_ASSIGNMENTS = 200


def run() -> list[Figure]:
    return [*_throughput(), *_memory()]


def _emulator_args(courses: int, students: int, assignments: int) -> list[str]:
    return [
        "--seed", "3", "--courses", str(courses), "--students-per-course", str(students),
        "--assignments-per-course", str(assignments), "--token", TOKEN,
    ]  # fmt: skip


def _throughput() -> list[Figure]:
    args = [*_emulator_args(COURSES, STUDENTS, ASSIGNMENTS), *QUOTA_ARGS]
    results = {}
    for name, fn in (
        ("connector", _connector_gradebook),
        ("sequential", _naive_sequential),
        ("unpaced", _naive_unpaced),
    ):
        with emulator_process("canvas", *args) as base_url:
            (pages, responses, throttled, seconds), rss = measure(fn, base_url)
        results[name] = (pages / seconds, throttled / max(responses, 1), rss)
        print(
            f"  {name:<10} {pages} pages in {seconds:.1f}s = {pages / seconds:.1f}/s, "
            f"{throttled}/{responses} throttled, peak RSS {rss:.0f} MB"
        )
    conn, seq, unpaced = results["connector"], results["sequential"], results["unpaced"]
    return [
        Figure.compare(
            "canvas_requests_per_s_vs_sequential", conn[0], "requests/s",
            baseline_name="naive sequential client", baseline_value=seq[0], peak_rss_mb=conn[2],
        ),
        Figure.compare(
            "canvas_requests_per_s_vs_unpaced", conn[0], "requests/s",
            baseline_name="naive unpaced 16-thread client", baseline_value=unpaced[0],
            peak_rss_mb=conn[2],
        ),
        Figure.compare(
            "canvas_throttled_share", conn[1], "share of responses",
            baseline_name="naive unpaced 16-thread client", baseline_value=unpaced[1],
            peak_rss_mb=conn[2],
        ),
    ]  # fmt: skip


def _course_ids(base_url: str) -> list[str]:
    with CanvasSource(base_url=base_url, token=TOKEN) as source:
        return [c["id"] for c in source.list_courses()]


def _connector_gradebook(base_url: str) -> tuple[int, int, int, float]:
    courses = _course_ids(base_url)
    with (
        tempfile.TemporaryDirectory() as root,
        CanvasSource(
            base_url=base_url, token=TOKEN, max_in_flight=THREADS, per_page=PER_PAGE
        ) as source,
    ):
        store = StagingStore(root)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            outcomes = list(
                pool.map(
                    lambda c: stage_domain(
                        source,
                        store,
                        PartitionKey("bench", "canvas", "gradebook", "w", c),
                        run_id="bench",
                    ),
                    courses,
                )
            )
        seconds = time.perf_counter() - started
        stats = source.stats()
    pages = sum(o.pages for o in outcomes)
    return pages, stats["requests"], stats["throttled"], seconds


def _naive_fetch_all(
    client: httpx.Client, url: str, counters: dict[str, int], lock: threading.Lock
) -> list:
    """The common script: follow Link next; on a throttle, sleep a second and try again."""
    records: list = []
    while url:
        response = client.get(url)
        with lock:
            counters["responses"] += 1
        if response.status_code in (403, 429) and "Rate Limit" in response.text:
            with lock:
                counters["throttled"] += 1
            time.sleep(1.0)
            continue
        response.raise_for_status()
        with lock:
            counters["pages"] += 1
        records.extend(response.json())
        url = response.links.get("next", {}).get("url")
    return records


def _naive_course(client: httpx.Client, base: str, course: str, counters, lock) -> None:
    for path in (
        f"courses/{course}/assignments?per_page={PER_PAGE}",
        f"courses/{course}/students/submissions?student_ids[]=all&per_page={PER_PAGE}",
        f"courses/{course}/enrollments?type[]=StudentEnrollment&per_page={PER_PAGE}",
    ):
        _naive_fetch_all(client, f"{base}/api/v1/{path}", counters, lock)


def _naive(base_url: str, threads: int, limit: int | None = None) -> tuple[int, int, int, float]:
    courses = _course_ids(base_url)[:limit]
    counters = {"pages": 0, "responses": 0, "throttled": 0}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(headers=headers, timeout=60, limits=httpx.Limits(max_connections=32)) as c:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda k: _naive_course(c, base_url, k, counters, lock), courses))
        seconds = time.perf_counter() - started
    return counters["pages"], counters["responses"], counters["throttled"], seconds


def _naive_sequential(base_url: str) -> tuple[int, int, int, float]:
    return _naive(base_url, 1, SEQUENTIAL_COURSES)


def _naive_unpaced(base_url: str) -> tuple[int, int, int, float]:
    return _naive(base_url, THREADS)


def _memory() -> list[Figure]:
    figures: list[Figure] = []
    peaks: dict[int, tuple[float, float]] = {}
    for rows, students in RSS_STUDENTS.items():
        args = _emulator_args(1, students, RSS_ASSIGNMENTS)
        with emulator_process("canvas", *args, "--no-throttle") as base_url:
            staged, rss = measure(_stage_one_course, base_url)
            collected, naive_rss = measure(_collect_one_course, base_url)
        assert staged == collected, (staged, collected)
        peaks[rows] = (rss, naive_rss)
        print(f"  {staged} submissions: staged {rss:.0f} MB, collect-then-write {naive_rss:.0f} MB")
        figures.append(
            Figure.compare(
                f"canvas_stage_peak_rss_{rows // 1000}k", rss, "MB",
                baseline_name="naive collect-then-write client", baseline_value=naive_rss,
                peak_rss_mb=rss,
            )
        )  # fmt: skip
    small, large = min(peaks), max(peaks)
    growth = peaks[large][0] / peaks[small][0]
    naive_growth = peaks[large][1] / peaks[small][1]
    figures.append(
        Figure.compare(
            f"canvas_stage_rss_growth_{large // 1000}k_vs_{small // 1000}k", growth, "x",
            baseline_name="naive collect-then-write growth", baseline_value=naive_growth,
            peak_rss_mb=peaks[large][0],
        )
    )  # fmt: skip
    return figures


def _stage_one_course(base_url: str) -> int:
    with tempfile.TemporaryDirectory() as root, CanvasSource(base_url=base_url, token=TOKEN) as src:
        store = StagingStore(root)
        (course,) = [c["id"] for c in src.list_courses()]
        key = PartitionKey("bench", "canvas", "gradebook", "w", course)
        stage_domain(src, store, key, run_id="bench")
        manifest = store.manifest(key)
        return manifest.streams["submissions"]["rows"]


def _collect_one_course(base_url: str) -> int:
    counters = {"pages": 0, "responses": 0, "throttled": 0}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(headers=headers, timeout=60) as client, tempfile.TemporaryDirectory() as root:
        (course,) = [c["id"] for c in CanvasSource(base_url=base_url, token=TOKEN).list_courses()]
        query = "student_ids[]=all&per_page=100"
        url = f"{base_url}/api/v1/courses/{course}/students/submissions?{query}"
        records = _naive_fetch_all(client, url, counters, threading.Lock())
        frame = pl.DataFrame(records, infer_schema_length=None)
        frame.write_parquet(f"{root}/submissions.parquet")
        return frame.height

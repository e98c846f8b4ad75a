"""Moodle extraction rate: the connector beside a naive sequential client, same emulated site.

The emulator runs in its own process with latency modelled on moodle-api.md §5 (scaled by
``LATENCY_SCALE``: a 100-user grade report takes 1.4 s at scale 1) and ``WORKERS`` PHP workers,
as on the measured site (4). Both clients read the same four domains of each course (roster,
gradebook, engagement, attendance):

* ``moodle_records_per_s_vs_sequential`` — records staged per second of wall time by the
  connector (``THREADS`` course extractions at once through one pooled, retrying client, pages
  streamed to staging), against a naive loop that calls each function in turn with ``httpx``
  and keeps the decoded records (it runs the first ``SEQUENTIAL_COURSES`` courses: a rate needs
  no full pass).
* ``moodle_requests_per_s_vs_sequential`` — the same, in requests per second.

Peak RSS is the connector's process.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.emulated import emulator_process
from bench.results import Figure
from bench.rss import measure
from connectors.moodle.source import MoodleSource
from flows.stage import stage_domain
from transforms.staging import PartitionKey, StagingStore

TOKEN = "bench-moodle-token"
COURSES = 16
SEQUENTIAL_COURSES = 4
STUDENTS = 40
ASSIGNMENTS = 8
THREADS = 8
PER_PAGE = 100
LATENCY_SCALE = "0.25"
WORKERS = "4"


def run() -> list[Figure]:
    args = [
        "--seed", "7", "--courses", str(COURSES), "--students-per-course", str(STUDENTS),
        "--assignments-per-course", str(ASSIGNMENTS), "--token", TOKEN,
        "--latency-scale", LATENCY_SCALE, "--workers", WORKERS,
    ]  # fmt: skip
    results = {}
    for name, fn in (("connector", _connector), ("sequential", _naive_sequential)):
        with emulator_process("moodle", *args) as base_url:
            (records, requests, seconds), rss = measure(fn, base_url)
        results[name] = (records / seconds, requests / seconds, rss)
        print(
            f"  {name:<10} {records} records, {requests} requests in {seconds:.1f}s = "
            f"{records / seconds:.0f} records/s, {requests / seconds:.1f} requests/s, "
            f"peak RSS {rss:.0f} MB"
        )
    conn, seq = results["connector"], results["sequential"]
    return [
        Figure.compare(
            "moodle_records_per_s_vs_sequential", conn[0], "records/s",
            baseline_name="naive sequential client", baseline_value=seq[0], peak_rss_mb=conn[2],
        ),
        Figure.compare(
            "moodle_requests_per_s_vs_sequential", conn[1], "requests/s",
            baseline_name="naive sequential client", baseline_value=seq[1], peak_rss_mb=conn[2],
        ),
    ]  # fmt: skip


def _connector(base_url: str) -> tuple[int, int, float]:
    with (
        tempfile.TemporaryDirectory() as root,
        MoodleSource(
            base_url=base_url, token=TOKEN, max_in_flight=THREADS, per_page=PER_PAGE
        ) as source,
    ):
        store = StagingStore(root)
        started = time.perf_counter()
        courses = [c["id"] for c in source.list_courses()]

        def one(course_id: str) -> int:
            return sum(
                stage_domain(
                    source,
                    store,
                    PartitionKey("bench", "moodle", domain, "w", course_id),
                    run_id="bench",
                ).rows
                for domain in source.domains
            )

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            records = sum(pool.map(one, courses))
        seconds = time.perf_counter() - started
        requests = source.stats()["requests"]
    return records, requests, seconds


def _naive_sequential(base_url: str) -> tuple[int, int, float]:
    """The common script: one call after another, every record kept in memory."""
    url = f"{base_url}/webservice/rest/server.php"
    counters = {"requests": 0}

    def call(client: httpx.Client, function: str, **params: str):
        counters["requests"] += 1
        query = {"wstoken": TOKEN, "wsfunction": function, "moodlewsrestformat": "json", **params}
        response = client.get(url, params=query)
        response.raise_for_status()
        return response.json()

    kept: list = []
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        courses = [c["id"] for c in call(client, "core_course_get_courses") if c["id"] != 1]
        for cid in courses[:SEQUENTIAL_COURSES]:
            c = str(cid)
            kept += call(client, "core_course_get_courses", **{"options[ids][0]": c})
            users = call(client, "core_enrol_get_enrolled_users", courseid=c)
            kept += users
            kept += call(
                client,
                "core_enrol_get_enrolled_users",
                courseid=c,
                **{"options[0][name]": "onlyactive", "options[0][value]": "1"},
            )
            courses_json = call(client, "mod_assign_get_assignments", **{"courseids[0]": c})
            assignments = [a for co in courses_json["courses"] for a in co["assignments"]]
            kept += assignments
            ids = {f"assignmentids[{i}]": str(a["id"]) for i, a in enumerate(assignments)}
            grades = call(client, "mod_assign_get_grades", **ids)
            kept += [g for a in grades["assignments"] for g in a["grades"]]
            subs = call(client, "mod_assign_get_submissions", **ids)
            kept += [s for a in subs["assignments"] for s in a["submissions"]]
            report = call(client, "gradereport_user_get_grade_items", courseid=c)
            kept += [i for u in report["usergrades"] for i in u["gradeitems"]]
            kept += call(client, "core_enrol_get_enrolled_users", courseid=c)
            for u in users:
                if u["roles"][0]["shortname"] == "student":
                    status = call(
                        client,
                        "core_completion_get_activities_completion_status",
                        courseid=c,
                        userid=str(u["id"]),
                    )
                    kept += status["statuses"]
            for section in call(client, "core_course_get_contents", courseid=c):
                for m in section["modules"]:
                    if m["modname"] == "attendance":
                        sessions = call(
                            client, "mod_attendance_get_sessions", attendanceid=str(m["instance"])
                        )
                        kept += [log for s in sessions for log in s["attendance_log"]]
    seconds = time.perf_counter() - started
    return len(kept), counters["requests"], seconds

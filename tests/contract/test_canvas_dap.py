"""Canvas Data 2 bulk path ↔ the Canvas emulator: the export-job state machine and the staged
streams, compared with ground truth and with what the REST path stages for the same institution."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from connectors.backoff import RetryPolicy
from connectors.canvas.dap import DapClient, DapExport
from connectors.canvas.dap_tables import BULK_COURSE, stage_bulk_domain
from connectors.canvas.source import CanvasSource
from connectors.export_jobs import (
    ExportFailed,
    JobPhase,
    MemoryJobStore,
    PollSchedule,
    StagingJobStore,
    download_object,
    run_export,
)
from emulators.canvas.bulk import services
from emulators.canvas.institution import ANCHOR, build_institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import (
    DEFAULT_DAP_CLIENT_ID,
    DEFAULT_DAP_CLIENT_SECRET,
    DEFAULT_TOKEN,
    CanvasEmulatorSettings,
)
from flows.stage import stage_domain
from transforms.staging import LINEAGE_SCHEMA, PartitionKey, StagingStore

FAST = PollSchedule(initial=0.05, growth=0.0, cap=0.2, jitter=0.1)
STREAMS = ("assignments", "submissions", "course_grades")
# Lineage differs by path by design (URL, page, run); the course a row belongs to must not.
LINEAGE = [n for n in LINEAGE_SCHEMA.names if n != "_course_id"]
DAY = 86_400


@pytest.fixture(scope="module")
def institution():
    return build_institution(seed=5, courses=5, students_per_course=12, assignments_per_course=8)


@pytest.fixture
def canvas(institution):
    settings = CanvasEmulatorSettings(dap_processing_seconds=0.2)
    with CanvasEmulator(institution, settings=settings) as emulator:
        dap, _ = services(emulator)
        # Job creation is limited to 5/min (canvas-api.md §5.5); the tests that are not about
        # throttling create more than that in seconds.
        dap.settings = replace(
            dap.settings, rate_limits={**dap.settings.rate_limits, "create_job": 1000}
        )
        yield emulator


@pytest.fixture
def dap_client(canvas):
    with DapClient(
        base_url=canvas.base_url,
        client_id=DEFAULT_DAP_CLIENT_ID,
        client_secret=DEFAULT_DAP_CLIENT_SECRET,
        retry=RetryPolicy.fast(),
    ) as client:
        yield client


def _stream(root: Path, window: str, stream: str) -> pl.DataFrame:
    frame = pl.read_parquet(
        str(
            root
            / "u"
            / "canvas"
            / "gradebook"
            / f"window={window}"
            / "course=*"
            / f"{stream}.parquet"
        )
    )
    return frame.drop(LINEAGE).sort("id")


def _rest(canvas, store: StagingStore) -> list[str]:
    with CanvasSource(base_url=canvas.base_url, token=DEFAULT_TOKEN) as source:
        courses = [c["id"] for c in source.list_courses()]
        for course in courses:
            key = PartitionKey("u", "canvas", "gradebook", "rest", course)
            stage_domain(source, store, key, run_id="rest")
    return courses


def _bulk(client, store, window, courses, marks=None, jobs=None):
    key = PartitionKey("u", "canvas", "gradebook", window, BULK_COURSE)
    return stage_bulk_domain(
        client,
        store,
        key,
        run_id=f"run-{window}",
        course_ids=courses,
        watermarks=marks,
        jobs=jobs,
        schedule=FAST,
    )


def test_snapshot_then_incrementals_equal_ground_truth_and_rest(canvas, dap_client, tmp_path):
    store = StagingStore(tmp_path)
    dap, _ = services(canvas)
    courses = _rest(canvas, store)

    dap.clock = ANCHOR - 60 * DAY  # the data as it was two months ago
    first = _bulk(dap_client, store, "w1", courses)
    dap.clock = ANCHOR - 20 * DAY
    second = _bulk(dap_client, store, "w2", courses, first.watermarks)
    dap.clock = ANCHOR + 3600  # every change of the ground truth has happened
    third = _bulk(dap_client, store, "w3", courses, second.watermarks)

    assert first.snapshots == ["assignments", "submissions", "enrollments", "scores"]
    assert second.snapshots == third.snapshots == []
    assert first.rows < second.rows < third.rows
    assert set(third.watermarks.values()) == {"2026-11-20T01:00:00Z"}
    for stream in STREAMS:
        bulk, rest = _stream(tmp_path, "w3", stream), _stream(tmp_path, "rest", stream)
        assert bulk.equals(rest), stream
    # Ground truth: every submission of the synced courses, none of a deleted course.
    inst = canvas.institution
    truth = sorted(str(s["id"]) for c in courses for s in inst.iter_submissions(int(c)))
    assert _stream(tmp_path, "w3", "submissions")["id"].to_list() == sorted(truth)
    assert "104" not in courses  # index 3: the deleted course

    # A regrade and a deletion after that: the next incremental carries a U and a D record.
    subs = _stream(tmp_path, "w3", "submissions")
    regraded, deleted = subs["id"][0], subs["id"][1]
    dap.change(
        "submissions", int(regraded), at=ANCHOR + 4000, values={"score": 1.5, "grade": "1.5"}
    )
    dap.change("submissions", int(deleted), at=ANCHOR + 4100, values=None)
    dap.clock = ANCHOR + 7200
    fourth = _bulk(dap_client, store, "w4", courses, third.watermarks)
    after = _stream(tmp_path, "w4", "submissions")
    row = after.filter(pl.col("id") == regraded)
    assert row["score"].to_list() == ["1.5"] and row["grade"].to_list() == ["1.5"]
    # Absent from the complete partition: the loader's delete-by-absence soft-deletes it.
    assert deleted not in after["id"].to_list()
    assert after.height == subs.height - 1
    assert fourth.snapshots == []


def test_killed_run_resumes_the_same_job(canvas, dap_client, tmp_path):
    dap, _ = services(canvas)
    dap.settings = replace(dap.settings, processing_seconds=1.0)
    jobs = StagingJobStore(StagingStore(tmp_path), institution="u")
    request = {"table": "assignments", "format": "jsonl", "since": None}

    class Killed(BaseException):
        pass

    def die(_seconds: float) -> None:
        raise Killed  # the worker is killed while the vendor is still working

    with pytest.raises(Killed):
        run_export(
            DapExport(dap_client),
            jobs,
            "t/assignments",
            request,
            workdir=tmp_path / "w",
            fetch=lambda i, p: download_object(dap_client.downloads, i, p),
            sleep=die,
        )
    saved = jobs.load("t/assignments")
    assert saved["phase"] == "monitor" and dap.jobs_created == 1

    record = run_export(
        DapExport(dap_client),
        jobs,
        "t/assignments",
        request,
        workdir=tmp_path / "w",
        schedule=FAST,
        fetch=lambda i, p: download_object(dap_client.downloads, i, p),
    )
    assert record.job_id == saved["job_id"]
    assert dap.jobs_created == 1  # resumed polling; no second query
    assert record.phase is JobPhase.NORMALIZE and record.files


def test_job_failure_is_raised_and_recorded(canvas, dap_client, tmp_path):
    dap, _ = services(canvas)
    dap.fail_next_jobs = 1
    jobs = MemoryJobStore()
    with pytest.raises(ExportFailed, match="ProcessingError"):
        run_export(
            DapExport(dap_client),
            jobs,
            "t/s",
            {"table": "scores", "since": None},
            workdir=tmp_path,
            schedule=FAST,
            fetch=lambda i, p: download_object(dap_client.downloads, i, p),
        )
    assert jobs.load("t/s")["phase"] == "failed"


def test_expired_job_and_expired_url_are_requested_again(canvas, dap_client, tmp_path):
    dap, _ = services(canvas)
    adapter = DapExport(dap_client)
    resolve = adapter.resolve
    expired_once: list[str] = []

    def resolve_after_expiry(job_id, doc):
        if not expired_once:
            expired_once.append(job_id)
            dap.expire_job(job_id)  # the job's 24 h passed before we resolved it
        return resolve(job_id, doc)

    adapter.resolve = resolve_after_expiry
    offset = [0.0]
    real_wall = dap.wall
    dap.wall = lambda: real_wall() + offset[0]
    fetched: list[str] = []

    def fetch(item, path):
        if not fetched:
            offset[0] += 1000  # the pre-signed URL's 15 minutes passed
        fetched.append(item.object_id)
        return download_object(dap_client.downloads, item, path)

    record = run_export(
        adapter,
        MemoryJobStore(),
        "t/e",
        {"table": "enrollments", "since": None},
        workdir=tmp_path,
        schedule=FAST,
        fetch=fetch,
    )
    assert dap.jobs_created == 2 and record.created_jobs == 2
    assert any("expired" in h for h in record.history)
    assert any("URL expired" in h for h in record.history)
    assert dap.calls["object_url"] >= 3  # expired job, expired URL, fresh URL
    assert record.phase is JobPhase.NORMALIZE


def test_snapshot_required_falls_back_to_a_snapshot(canvas, dap_client, tmp_path):
    dap, _ = services(canvas)
    dap.settings = replace(dap.settings, max_incremental_seconds=7 * DAY)
    request = {"table": "assignments", "format": "jsonl", "since": "2026-01-01T00:00:00Z"}
    record = run_export(
        DapExport(dap_client),
        MemoryJobStore(),
        "t/a",
        request,
        workdir=tmp_path,
        schedule=FAST,
        fetch=lambda i, p: download_object(dap_client.downloads, i, p),
    )
    assert record.request["since"] is None and record.original_request == request
    assert any("SnapshotRequired" in h for h in record.history)
    assert "at" in record.result


def test_throttled_polls_back_off_and_finish(canvas, tmp_path):
    dap, _ = services(canvas)
    dap.settings = replace(
        dap.settings,
        processing_seconds=0.6,
        rate_limits={**dap.settings.rate_limits, "get_job": 2},
    )
    shift = [0.0]
    dap.monotonic = lambda: time.monotonic() + shift[0]

    def wait(seconds: float) -> None:
        shift[0] += seconds  # the emulator's minute passes while we honour Retry-After
        time.sleep(0.05)

    retry = replace(RetryPolicy(), sleep=wait)
    with DapClient(
        base_url=canvas.base_url,
        client_id=DEFAULT_DAP_CLIENT_ID,
        client_secret=DEFAULT_DAP_CLIENT_SECRET,
        retry=retry,
    ) as client:
        record = run_export(
            DapExport(client),
            MemoryJobStore(),
            "t/t",
            {"table": "scores"},
            workdir=tmp_path,
            schedule=FAST,
            fetch=lambda i, p: download_object(client.downloads, i, p),
        )
        stats = client.client.stats.snapshot()
    assert dap.throttled["get_job"] >= 1
    assert stats["throttled"] >= 1
    assert record.phase is JobPhase.NORMALIZE


def test_poll_interval_widens_with_age_and_respects_the_vendor_limit():
    schedule = PollSchedule(initial=1.0, growth=0.1, cap=30.0, jitter=0.2)
    early = [schedule.interval(age=0, floor=0.12) for _ in range(50)]
    late = [schedule.interval(age=120, floor=0.12) for _ in range(50)]
    capped = [schedule.interval(age=10_000, floor=0.12) for _ in range(50)]
    assert min(early) >= 0.8 and max(early) <= 1.2
    assert min(late) >= 9.6 and max(late) <= 14.4
    assert max(capped) <= 30.0
    assert min(PollSchedule(initial=0.01).interval(age=0, floor=0.12) for _ in range(20)) >= 0.12


def test_account_report_runs_on_the_same_state_machine(canvas, tmp_path):
    from connectors.auth import BearerAuth
    from connectors.canvas.dap import RequestingClient
    from connectors.canvas.reports import AccountReportExport, fetch_report_file
    from connectors.classify import CANVAS_RULES

    _, reports = services(canvas)
    client = RequestingClient(
        vendor="canvas",
        base_url=f"{canvas.base_url}/api/v1/",
        auth=BearerAuth(DEFAULT_TOKEN),
        rules=CANVAS_RULES,
        retry=RetryPolicy.fast(),
    )
    jobs = MemoryJobStore()
    request = {"report": "grade_export_csv", "parameters": {"include_deleted": "false"}}

    class Killed(BaseException):
        pass

    def die(_seconds: float) -> None:
        raise Killed

    adapter = AccountReportExport(client)
    fetch = lambda item, path: fetch_report_file(client, item, path)  # noqa: E731
    with pytest.raises(Killed):
        run_export(adapter, jobs, "r", request, workdir=tmp_path, fetch=fetch, sleep=die)
    record = run_export(adapter, jobs, "r", request, workdir=tmp_path, fetch=fetch, schedule=FAST)
    assert reports.created == 1  # resumed the saved run
    (info,) = record.files.values()
    lines = Path(info["path"]).read_text().splitlines()
    assert lines[0].startswith("student name,student id")
    inst = canvas.institution
    expected = sum(
        1
        for c in inst.course_ids()
        if inst.course(c)["workflow_state"] == "available"
        for e in inst.enrollments(c)
        if e["type"] == "StudentEnrollment" and e["enrollment_state"] in ("active", "completed")
    )
    assert len(lines) - 1 == expected
    reports.fail_next = 1
    with pytest.raises(ExportFailed):
        run_export(
            adapter, MemoryJobStore(), "r2", request, workdir=tmp_path, fetch=fetch, schedule=FAST
        )
    client.close()

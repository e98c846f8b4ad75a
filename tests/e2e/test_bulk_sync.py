"""The bulk path (issue 8) through the flow: ``bulk_domains = ["gradebook"]`` against the Canvas
emulator's Canvas Data 2, beside a REST-only twin of the same institution.

One chain, shared by the tests (module fixture):

1. a first sync of each: the bulk database takes four DAP snapshots;
2. changes — regrades, resubmissions, a deleted enrollment, a deleted assignment (so DAP's
   incrementals carry ``D`` records for the assignment and the submissions that left), two added
   students (their seeded timestamps predate the snapshot; DAP stamps their rows with the time
   they were added, so the incremental carries them);
3. the bulk sync dies three times: while its first export job is still running (a poll raises),
   inside the gradebook load before commit, and after the commit before the cursor is written;
4. a clean rerun, and an incremental REST sync of the twin.

* ``test_bulk_lands_ground_truth_and_the_rest_tables`` — after 1 and after 4: serving equals
  ground truth, and every canonical table equals the REST twin's row for row (lineage and run
  columns aside, ``tests/e2e/serving.py``); the removed assignment and its submissions are
  soft-deleted; the added students' enrollments and submissions are served.
* ``test_watermarks_advance_only_after_commit_and_the_rerun_reuses_jobs`` — the watermarks in
  ``_sync_state`` stay at the snapshot's until the clean rerun; the resumed run polls the same
  jobs (all four started before the first poll died); the reruns reuse the committed partition
  and create no further jobs.
* ``test_rebuild_from_staging_lands_the_bulk_partitions`` — ``rebuild --from-staging`` of the
  bulk+REST institution (both windows, no vendor call) serves the same tables, row for row, and
  the same watermarks as the chain's last run.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime

import duckdb
import pytest

from connectors.canvas.dap import DapExport
from connectors.export_jobs import StagingJobStore
from emulators.canvas.bulk import services
from emulators.canvas.institution import Institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import (
    DEFAULT_DAP_CLIENT_ID,
    DEFAULT_DAP_CLIENT_SECRET,
    CanvasEmulatorSettings,
)
from flows.replay import rebuild_from_staging
from flows.settings import ConfigError, load_config
from tests.e2e.conftest import HMAC_ENV, TOKEN, SyncRun
from tests.e2e.ground_truth import expected_tables
from tests.e2e.serving import assert_live_equals, business_digest
from transforms.staging import StagingStore

pytestmark = pytest.mark.e2e

INSTITUTION = "e2e-university"
BULK = {
    "bulk_domains": ["gradebook"],
    "dap_client_id": DEFAULT_DAP_CLIENT_ID,
    "dap_client_secret": DEFAULT_DAP_CLIENT_SECRET,
}


class Crash(RuntimeError):
    """An injected failure."""


def _keep(run: SyncRun) -> SyncRun:
    """The run with a copy of its serving database as it is now (later runs change it)."""
    copy = run.serving.with_name(f"{run.flow_run_id}.duckdb")
    shutil.copyfile(run.serving, copy)
    return replace(run, serving=copy)


def _state(serving) -> dict[str, tuple]:
    with duckdb.connect(str(serving), read_only=True) as con:
        rows = con.execute(
            "SELECT domain, cursor, staging_window, watermarks FROM _sync_state"
        ).fetchall()
    return {d: (c, w, json.loads(m) if m else {}) for d, c, w, m in rows}


@pytest.fixture(scope="module")
def chain(run_sync, hmac_key_hex, tmp_path_factory):
    inst = Institution(seed=8181, courses=5, students_per_course=10, assignments_per_course=8)
    key = bytes.fromhex(hmac_key_hex)
    live = inst.course_ids(include_deleted=False)
    bulk_dir = tmp_path_factory.mktemp("bulk")
    rest_dir = tmp_path_factory.mktemp("bulk-rest-twin")
    settings = CanvasEmulatorSettings(token=TOKEN, dap_processing_seconds=0.1)
    out: dict = {"inst": inst}
    with CanvasEmulator(inst, settings=settings) as emu:
        dap, _ = services(emu)
        # Four jobs a sync; DAP allows five a minute (canvas-api.md §5.5), this chain runs faster.
        dap.settings = replace(
            dap.settings, rate_limits={**dap.settings.rate_limits, "create_job": 1000}
        )
        dap.clock = int(time.time())
        first = run_sync(emu.base_url, bulk_dir, window=None, **BULK)
        assert first.state.is_completed(), first.state.message
        rest = run_sync(emu.base_url, rest_dir, window=None)
        assert rest.state.is_completed(), rest.state.message
        out["first"] = (_keep(first), _keep(rest), expected_tables(inst, live, key), dap.clock)
        out["jobs_first"] = dap.jobs_created

        at = dap.clock + 1
        while time.time() < at + 1:  # changes stamped after the snapshot, before the next sync
            time.sleep(0.1)
        inst.apply_changes(
            seed=3,
            at=datetime.fromtimestamp(at, UTC),
            fraction=0.05,
            delete_enrollments=1,
            remove_assignments=1,
            add_students=2,
        )
        dap.clock = at + 1
        out["removed"] = {
            "assignments": [str(i) for c in live for i, _ in inst.removed_assignments(c)],
            "submissions": [str(i) for c in live for i, _ in inst.removed_submissions(c)],
        }
        joined = inst.changes.students_added_at
        out["added"] = {  # the DAP-fed tables: course grades come from the enrollments table
            "course_grades": [
                str(e["id"]) for c in live for e in inst.enrollments(c) if e["user_id"] in joined
            ],
            "submissions": [
                str(s["id"]) for c in live for s in inst.iter_submissions(c)
                if s["user_id"] in joined
            ],
        }  # fmt: skip

        crashes = []
        polls = {"n": 0}
        real_poll = DapExport.poll

        def poll_once_then_die(self, job_id):
            polls["n"] += 1
            if polls["n"] == 1:
                raise Crash("worker lost while the export job runs")
            return real_poll(self, job_id)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(DapExport, "poll", poll_once_then_die)
            run = run_sync(emu.base_url, bulk_dir, window=None, **BULK)
        jobs = StagingJobStore(StagingStore(bulk_dir / "staging"), institution=INSTITUTION)
        crashes.append((run, _state(run.serving), dap.jobs_created, jobs.load(_JOB)))

        for point in ("load:gradebook", "cursor:gradebook"):

            def die_at(name: str, point: str = point) -> None:
                if name == point:
                    raise Crash(f"injected at {point}")

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr("transforms.pipeline.chaos_kill", die_at)
                run = run_sync(emu.base_url, bulk_dir, window=None, **BULK)
            crashes.append((run, _state(run.serving), dap.jobs_created, jobs.load(_JOB)))
        out["crashes"] = crashes

        last = run_sync(emu.base_url, bulk_dir, window=None, **BULK)
        assert last.state.is_completed(), last.state.message
        rest = run_sync(emu.base_url, rest_dir, window=None)
        assert rest.state.is_completed(), rest.state.message
        out["last"] = (_keep(last), _keep(rest), expected_tables(inst, live, key), dap.clock)
        out["jobs_last"] = dap.jobs_created
        out["config"] = {
            "institution_id": INSTITUTION, "vendor": "canvas", "base_url": emu.base_url,
            "token": TOKEN, "staging_uri": str(bulk_dir / "staging"),
            "serving_dsn": str(bulk_dir / "serving.duckdb"), "hmac_key_ref": f"env:{HMAC_ENV}",
            "engagement_lookback_days": 3650, **BULK,
        }  # fmt: skip
    return out


_JOB = "canvas/dap/gradebook/assignments"  # the first table a gradebook sync exports


@pytest.mark.parametrize("step", ["first", "last"])
def test_bulk_lands_ground_truth_and_the_rest_tables(chain, step):
    bulk, rest, expected, _ = chain[step]
    assert_live_equals(bulk.serving, expected)
    ours, theirs = business_digest(bulk.serving), business_digest(rest.serving)
    for table in ours:
        assert ours[table] == theirs[table], table
    if step == "last":
        assert bulk.result["mode"] == rest.result["mode"] == "incremental"
        # What the first sync served of what was removed (an added student's submission of the
        # removed assignment never existed in a sync).
        with duckdb.connect(str(chain["first"][0].serving), read_only=True) as con:
            removed = {
                table: [
                    r[0]
                    for r in con.execute(
                        f"SELECT source_id FROM {table} WHERE source_id IN (SELECT unnest($ids))",
                        {"ids": ids},
                    ).fetchall()
                ]
                for table, ids in chain["removed"].items()
            }
        assert removed["assignments"] and removed["submissions"]
        with duckdb.connect(str(bulk.serving), read_only=True) as con:
            for table, ids in removed.items():
                rows = con.execute(
                    f"SELECT count(*), count(deleted_at) FROM {table}"
                    " WHERE source_id IN (SELECT unnest($ids))",
                    {"ids": ids},
                ).fetchone()
                assert rows == (len(ids), len(ids)), table  # landed first, soft-deleted now
        added = chain["added"]
        assert added["course_grades"] and added["submissions"]
        with duckdb.connect(str(bulk.serving), read_only=True) as con:
            for table, ids in added.items():
                rows = con.execute(
                    f"SELECT count(*), count(deleted_at) FROM {table}"
                    " WHERE source_id IN (SELECT unnest($ids))",
                    {"ids": ids},
                ).fetchone()
                assert rows == (len(ids), 0), table  # served by the incremental


def test_watermarks_advance_only_after_commit_and_the_rerun_reuses_jobs(chain):
    first, *_, snapshot_clock = chain["first"]
    last, *_, clock = chain["last"]
    snapshot = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snapshot_clock))
    incremental = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock))
    tables = {"assignments", "submissions", "enrollments", "scores"}
    assert _state(first.serving)["gradebook"][2] == dict.fromkeys(tables, snapshot)
    assert chain["jobs_first"] == 4

    (polled, s1, jobs1, job1), (loading, s2, jobs2, job2), (cursor, s3, jobs3, job3) = chain[
        "crashes"
    ]
    for run, state in ((polled, s1), (loading, s2), (cursor, s3)):
        assert not run.state.is_completed()
        assert state["gradebook"][2] == dict.fromkeys(tables, snapshot), run.state.message
    # Died while the vendor worked: every table's job had started (they run at once) and was
    # saved; the next run polled them, no new ones.
    assert jobs1 == 4 + 4 and job1["phase"] == "monitor"
    assert job2["job_id"] == job1["job_id"] and jobs2 == 4 + 4
    # The load and cursor crashes reused the committed partition: no new export jobs.
    assert jobs3 == jobs2 == chain["jobs_last"]
    assert job3["phase"] == "done"
    assert _state(last.serving)["gradebook"][2] == dict.fromkeys(tables, incremental)
    # The gradebook cursor moved only with the clean run; the window stayed the same meanwhile.
    assert s2["gradebook"][:2] == s3["gradebook"][:2] == _state(first.serving)["gradebook"][:2]


def test_rebuild_from_staging_lands_the_bulk_partitions(chain, tmp_path):
    last, _, expected, _ = chain["last"]
    rebuilt = tmp_path / "rebuilt.duckdb"
    result = rebuild_from_staging(None, into=str(rebuilt), overrides=chain["config"])
    assert [w["window"] for w in result["windows"]] == [
        _state(chain["first"][0].serving)["gradebook"][1],
        _state(last.serving)["gradebook"][1],
    ]
    ours, theirs = business_digest(rebuilt), business_digest(last.serving)
    for table in theirs:
        assert ours[table] == theirs[table], table
    assert_live_equals(rebuilt, expected)
    before, after = _state(last.serving), _state(rebuilt)
    assert {d: s[1:] for d, s in after.items()} == {d: s[1:] for d, s in before.items()}
    assert after["gradebook"][2]  # the watermarks of the last incremental, restored


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"vendor": "moodle"}, "vendor 'moodle'"),
        ({"bulk_domains": ["engagement"]}, "no Canvas Data 2 plan for 'engagement'"),
        ({"dap_client_secret": None}, "dap_client_id and dap_client_secret: required"),
    ],
)
def test_bulk_config_errors_name_the_field(extra, names):
    config = {
        "institution_id": "u", "base_url": "https://canvas.example.edu", "token": "t",
        **BULK, **extra,
    }  # fmt: skip
    with pytest.raises(ConfigError) as error:
        load_config(**config)
    assert "bulk_domains" in str(error.value) and names in str(error.value)
    assert DEFAULT_DAP_CLIENT_SECRET not in str(error.value)

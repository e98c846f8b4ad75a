"""The institution deployment with sharding on, end to end, the way it runs in production.

A real Prefect server (the session's), the `local-process` pool, `prefect --no-prompt deploy` of the
local deployments in prefect.yaml, two process workers, and the Canvas emulator on loopback. The
parent run splits the courses into two `sync-shard` deployment runs; the test checks that the shards
ran in separate processes, that the served tables equal the emulator's ground truth, and — measured
at the emulator — that no more requests were in flight for the token than the course limit allows,
with nothing throttled.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from bench.prefect_server import prefect_cli, process_workers
from emulators.canvas.institution import Institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import CanvasEmulatorSettings
from tests.e2e.ground_truth import TABLES, actual_tables, expected_tables
from transforms.staging import StagingStore

pytestmark = pytest.mark.deploy

TOKEN = "shard-token"
COURSE_LIMIT = 2  # the institution's course GCL: at most this many courses in flight, all pods


@pytest.fixture(scope="module")
def institution() -> Institution:
    return Institution(seed=909, courses=7, students_per_course=8, assignments_per_course=8)


@pytest.fixture(scope="module")
def workers(prefect_env, institution, tmp_path_factory) -> Iterator[dict]:
    """Deploy the local deployments, start two process workers configured for one institution."""
    work = tmp_path_factory.mktemp("sharded")
    key = secrets.token_hex(32)
    emulator = CanvasEmulator(institution, settings=CanvasEmulatorSettings(token=TOKEN)).start()
    env = {
        **prefect_env,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "LMS_SYNC_INSTITUTION_ID": "sharded-u",
        "LMS_SYNC_BASE_URL": emulator.base_url,
        "LMS_SYNC_TOKEN": TOKEN,
        "LMS_SYNC_STAGING_URI": str(work / "staging"),
        "LMS_SYNC_SERVING_DSN": str(work / "serving.duckdb"),
        "LMS_SYNC_HMAC_KEY": key,
        "LMS_SYNC_ENGAGEMENT_LOOKBACK_DAYS": "3650",
        "LMS_SYNC_QUOTA__MAX_CONCURRENT_COURSES": str(COURSE_LIMIT),
        "LMS_SYNC_SHARD_DEPLOYMENT": "sync-shard/sync-shard-local",
    }
    prefect_cli(env, "work-pool", "create", "local-process", "--type", "process", "--overwrite")
    prefect_cli(env, "--no-prompt", "deploy", "-n", "full-sync-local", "-n", "sync-shard-local")
    try:
        with process_workers(env, 2, work):
            yield {"env": env, "work": work, "key": bytes.fromhex(key), "emulator": emulator}
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def sharded_run(workers, client_settings) -> dict:
    from prefect.deployments import run_deployment

    with client_settings():
        run = run_deployment("sync-institution/full-sync-local", timeout=300)
    return {"run": run, **workers}


def test_sharded_run_completes_with_shards_in_their_own_processes(sharded_run):
    run = sharded_run["run"]
    assert run.state.is_completed(), run.state.message
    notes = StagingStore(sharded_run["work"] / "staging").notes(
        institution="sharded-u", run_id=str(run.id)
    )
    assert set(notes) == {"canvas-shard-0", "canvas-shard-1"}
    pids = {note["pid"] for note in notes.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    shard_runs = {note["flow_run_id"] for note in notes.values()}
    assert len(shard_runs) == 2 and str(run.id) not in shard_runs
    staged = [c for note in notes.values() for c in note["staged"]]
    assert sorted(staged) == sorted(staged_set := set(staged)) and len(staged_set) == 6


def test_sharded_tables_equal_ground_truth(sharded_run, institution):
    live = institution.course_ids(include_deleted=False)
    expected = expected_tables(institution, live, sharded_run["key"])
    serving = sharded_run["work"] / "serving.duckdb"
    with duckdb.connect(str(serving), read_only=True) as con:
        actual = actual_tables(con)
    for table in TABLES:
        assert expected[table], table
        assert actual[table] == expected[table], table


def test_the_course_limit_held_across_processes(sharded_run):
    stats = sharded_run["emulator"].stats.snapshot()
    peak = stats["peak_in_flight"][TOKEN]
    print(json.dumps({"peak_in_flight": peak, "requests": stats["requests"]}))
    # Each course task sends one request at a time, and the course GCL is shared by both shards.
    assert 1 <= peak <= COURSE_LIMIT
    assert stats["throttled"] == 0


def test_run_summary_counts_every_course(sharded_run, client_settings):
    from prefect.client.orchestration import get_client

    with client_settings(), get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    (summary,) = [
        a
        for a in artifacts
        if a.key == "lms-sync-sharded-u-canvas-summary" and a.flow_run_id == sharded_run["run"].id
    ]
    rows = json.loads(summary.data) if isinstance(summary.data, str) else summary.data
    totals = rows[-1]
    assert totals["courses staged"] == 6 and totals["courses failed"] == 0
    assert totals["requests"] > 0


@pytest.fixture(autouse=True)
def _show_worker_logs_on_failure(request, workers) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for log in sorted(Path(workers["work"]).glob("worker-*.log")):
            print(log.read_text()[-4000:])

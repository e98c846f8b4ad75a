"""Canvas end to end (issue 4): emulator on loopback → ``sync_institution`` on a real Prefect test
server → DuckDB, checked against the emulator's own ground truth.

* ``test_clean_run_equals_ground_truth`` — every canonical table equals, row for row, what the
  Institution holds after mapping (``ground_truth.py``, computed without the mapping code).
* ``test_second_run_of_the_window_changes_nothing`` — same window again: nothing refetched, every
  serving table byte-for-byte identical.
* ``test_ten_percent_faults_land_the_same_tables`` — 10 % injected faults of every kind, same
  tables.
* ``test_planted_bad_records_are_quarantined_and_the_rest_loads`` — an impossible score and a
  malformed date land in ``_quarantine`` under their rules; counts say so; the rest loads.
* ``test_deleted_course_fails_the_run_and_the_rest_loads`` — a 404 course: run Failed, others in.
* ``test_quarantine_report_query_finds_the_records`` — the query the quarantine artifact tells
  the operator to run works.
* ``test_quarantine_above_threshold_fails_the_run`` — a quarantine share above the configured
  threshold ends the run Failed, with the counts in its message.
* ``test_no_pii_in_serving_logs_spans_or_artifacts`` — no name/email/login/SIS id in any text cell
  of any serving table, the JSON log, exported spans, Prefect artifacts or Prefect run logs.
* ``test_served_rows_carry_real_exported_trace_ids`` — lineage trace/span ids are real, were
  exported, and each run's rows share the run's one trace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from emulators.canvas.faults import FAULT_KINDS, FaultSettings
from emulators.canvas.institution import Institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import CanvasEmulatorSettings
from tests.e2e.conftest import TOKEN, SyncRun
from tests.e2e.ground_truth import TABLES, actual_tables, expected_tables, table_dump_digest
from tests.e2e.pii import span_texts, text_cells
from transforms.staging import StagingStore

pytestmark = pytest.mark.e2e

SEED = 4242
COURSES = 5  # indexes 0..4: available, unpublished, completed, deleted, available
STUDENTS = 10  # >= 8, so every enrollment state occurs in every course
ASSIGNMENTS = 6


def _institution(cls: type[Institution] = Institution) -> Institution:
    return cls(
        seed=SEED,
        courses=COURSES,
        students_per_course=STUDENTS,
        assignments_per_course=ASSIGNMENTS,
    )


def _key(hex_key: str) -> bytes:
    # transforms/tokenize.py load_hmac_key: 64+ even hex chars are the key's bytes.
    return bytes.fromhex(hex_key)


def _assert_tables_match(run: SyncRun, inst: Institution, course_ids: list[int], key: bytes):
    expected = expected_tables(inst, course_ids, key)
    with duckdb.connect(str(run.serving), read_only=True) as con:
        actual = actual_tables(con)
    for table in TABLES:
        want, got = expected[table], actual[table]
        assert want, f"ground truth for {table} is empty: the institution is too small"
        missing = sorted(set(want) - set(got), key=repr)[:3]
        extra = sorted(set(got) - set(want), key=repr)[:3]
        assert got == want, (
            f"{table}: {len(got)} rows served, {len(want)} expected;\n"
            f"  expected but not served: {missing}\n  served but not expected: {extra}"
        )


def _artifacts(run: SyncRun) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.flow_run_id])
            )
        )


def _artifact(run: SyncRun, kind: str):
    """The run's ``summary`` table (rows) or ``quarantine`` markdown (text), read back from the
    Prefect server."""
    found = [a for a in _artifacts(run) if a.key == f"lms-sync-e2e-university-canvas-{kind}"]
    assert len(found) == 1, [a.key for a in _artifacts(run)]
    data = found[0].data
    return json.loads(data) if kind == "summary" and isinstance(data, str) else data


def _digests(path: Path) -> dict[str, tuple[int, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: table_dump_digest(con, t) for t in (*TABLES, "_quarantine")}


@dataclass
class Scenario:
    inst: Institution
    run: SyncRun
    emulator_stats: dict
    live_courses: list[int]


@pytest.fixture(scope="module")
def clean(run_sync, tmp_path_factory) -> Iterator[Scenario]:
    """One healthy sync of the institution (Canvas's default throttle on)."""
    inst = _institution()
    settings = CanvasEmulatorSettings(token=TOKEN, latency_ms=2)
    with CanvasEmulator(inst, settings=settings) as emu:
        run = run_sync(emu.base_url, tmp_path_factory.mktemp("clean"))
        stats = emu.stats.snapshot()
    yield Scenario(inst, run, stats, inst.course_ids(include_deleted=False))


def test_clean_run_equals_ground_truth(clean: Scenario, hmac_key_hex: str):
    assert clean.run.state.is_completed(), clean.run.state.message
    assert clean.run.result["courses"] == len(clean.live_courses) == 4
    _assert_tables_match(clean.run, clean.inst, clean.live_courses, _key(hmac_key_hex))
    with duckdb.connect(str(clean.run.serving), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM _quarantine").fetchone() == (0,)
        runs = con.execute(
            "SELECT domain, status, courses_loaded, quarantined FROM _sync_runs ORDER BY 1"
        ).fetchall()
        cursors = con.execute("SELECT domain, cursor IS NOT NULL FROM _sync_state").fetchall()
    domains = ["attendance", "engagement", "gradebook", "roster"]
    assert runs == [(d, "completed", 4, 0) for d in domains]
    assert sorted(cursors) == [(d, True) for d in domains]


@pytest.fixture(scope="module")
def second_run(clean: Scenario, run_sync) -> Iterator[tuple[dict, dict, SyncRun, dict]]:
    before = _digests(clean.run.serving)
    with CanvasEmulator(clean.inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        again = run_sync(emu.base_url, clean.run.serving.parent)
        stats = emu.stats.snapshot()
    yield before, _digests(clean.run.serving), again, stats


def test_second_run_of_the_window_changes_nothing(clean: Scenario, second_run):
    before, after, again, stats = second_run
    assert again.state.is_completed(), again.state.message
    assert all(n > 0 for n, _ in (before[t] for t in TABLES))
    assert after == before
    # Checkpointed: every course's partitions were reused; only the course list was fetched.
    assert set(stats["paths"]) == {"/api/v1/accounts/1/courses"}, stats["paths"]
    wrote = [
        r["table"] for r in again.result["tables"] if r["inserted"] or r["updated"] or r["deleted"]
    ]
    assert wrote == [], f"the second run wrote rows to {wrote}"
    summary = _artifact(again, "summary")
    by_domain = {r["domain"]: r for r in summary}
    for domain in ("roster", "gradebook", "engagement", "attendance"):
        assert by_domain[domain]["courses reused"] == 4
        assert by_domain[domain]["courses staged"] == 0


@pytest.fixture(scope="module")
def faulty(run_sync, tmp_path_factory) -> Iterator[Scenario]:
    """The same institution behind 10 % injected faults of every kind.

    ``timeout`` faults stall ``slow_seconds``; the institution's read timeout is set below that so
    a stall is a real client timeout.
    """
    inst = _institution()
    settings = CanvasEmulatorSettings(
        token=TOKEN,
        latency_ms=2,
        # One record per page: ~800 requests, so every fault kind is drawn several times.
        default_per_page=1,
        max_per_page=1,
        faults=FaultSettings(rate=0.10, seed=11, slow_seconds=2.5, kinds=FAULT_KINDS),
    )
    http = {"connect_timeout_seconds": 2.0, "read_timeout_seconds": 1.0}
    with CanvasEmulator(inst, settings=settings) as emu:
        run = run_sync(emu.base_url, tmp_path_factory.mktemp("faulty"), http=http)
        stats = emu.stats.snapshot()
    yield Scenario(inst, run, stats, inst.course_ids(include_deleted=False))


def test_ten_percent_faults_land_the_same_tables(faulty: Scenario, hmac_key_hex: str):
    assert faulty.run.state.is_completed(), faulty.run.state.message
    faults = faulty.emulator_stats["faults"]
    print(f"injected {faults}, client {faulty.run.result['http']}")
    assert set(faults) == FAULT_KINDS, f"not every fault kind was injected: {faults}"
    assert sum(faults.values()) >= 30, faults
    assert faulty.run.result["http"]["retried"] > 0
    _assert_tables_match(faulty.run, faulty.inst, faulty.live_courses, _key(hmac_key_hex))
    with duckdb.connect(str(faulty.run.serving), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM _quarantine").fetchone() == (0,)


class PlantedInstitution(Institution):
    """The seeded institution with a few submissions served (and held as ground truth) with
    fields replaced — the e2e suite's way to plant bad records without touching the emulator:
    ``iter_submissions`` is what the submissions endpoints page through."""

    planted: dict[int, dict]

    def iter_submissions(self, course_id: int, **kwargs):
        for sub in super().iter_submissions(course_id, **kwargs):
            patch = getattr(self, "planted", {}).get(sub["id"])
            yield {**sub, **patch} if patch else sub


def _plant(inst: PlantedInstitution) -> tuple[int, int]:
    """An out-of-range score and a malformed date on two graded points submissions of the first
    course; returns their ids."""
    inst.planted = {}
    cid = inst.course_ids()[0]
    points = {
        a["id"]: a["points_possible"]
        for a in inst.assignments(cid)
        if a["grading_type"] == "points" and a["points_possible"]
    }
    graded = [
        s
        for s in inst.iter_submissions(cid)
        if s["assignment_id"] in points and s["workflow_state"] == "graded"
    ]
    over, bad_date = graded[0], graded[1]
    too_high = points[over["assignment_id"]] + 50.0
    inst.planted = {
        over["id"]: {"score": too_high, "entered_score": too_high},
        bad_date["id"]: {"submitted_at": "2026-02-30T25:61:00Z"},
    }
    return over["id"], bad_date["id"]


@pytest.fixture(scope="module")
def planted(run_sync, tmp_path_factory) -> Iterator[tuple[Scenario, int, int]]:
    inst = _institution(PlantedInstitution)
    over, bad_date = _plant(inst)
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        run = run_sync(emu.base_url, tmp_path_factory.mktemp("planted"))
        stats = emu.stats.snapshot()
    yield Scenario(inst, run, stats, inst.course_ids(include_deleted=False)), over, bad_date


def test_planted_bad_records_are_quarantined_and_the_rest_loads(planted, hmac_key_hex: str):
    scenario, over, bad_date = planted
    run = scenario.run
    assert run.state.is_completed(), run.state.message
    with duckdb.connect(str(run.serving), read_only=True) as con:
        held = con.execute(
            'SELECT "table", natural_key, rule, reason, run_id FROM _quarantine ORDER BY rule'
        ).fetchall()
        actual = actual_tables(con)
        runs = dict(
            con.execute(
                "SELECT domain, quarantined FROM _sync_runs WHERE status = 'completed'"
            ).fetchall()
        )
    assert [(t, k, r) for t, k, r, _, _ in held] == [
        ("submissions", str(over), "range"),
        ("submissions", str(bad_date), "type"),
    ]
    too_high = scenario.inst.planted[over]["score"]
    assert held[0][3] == f"score = {too_high} outside 0…{too_high - 50.0} (submissions, course 101)"
    assert "submitted_at=2026-02-30T25:61:00Z" in held[1][3]
    assert {r[4] for r in held} == {run.result["run_id"]}

    # The counts say so: the LoadReport (flow result), _sync_runs, and both artifacts.
    by_table = {r["table"]: r for r in run.result["tables"]}
    assert by_table["submissions"]["quarantined"] == 2
    assert by_table["submissions"]["quarantined_by_rule"] == "range=1, type=1"
    assert sum(r["quarantined"] for r in run.result["tables"]) == 2
    assert runs["gradebook"] == 2 and runs["roster"] == 0
    summary = {r["domain"]: r for r in _artifact(run, "summary")}
    assert summary["gradebook"]["quarantined"] == 2
    assert summary["(all, HTTP)"]["quarantined"] == 2
    assert "| submissions | 2 | range=1, type=1 |" in _artifact(run, "quarantine")

    # The rest loads: every table equals ground truth, submissions minus the two planted rows.
    expected = expected_tables(scenario.inst, scenario.live_courses, _key(hmac_key_hex))
    planted_ids = {str(over), str(bad_date)}
    expected["submissions"] = [r for r in expected["submissions"] if r[0] not in planted_ids]
    assert by_table["submissions"]["loaded"] == len(expected["submissions"])
    for table in TABLES:
        assert actual[table] == expected[table], table


def test_quarantine_report_query_finds_the_records(planted):
    scenario, over, bad_date = planted
    report = _artifact(scenario.run, "quarantine")
    query = re.search(r"`(select \* from _quarantine[^`]*)`", report)
    assert query, report
    with duckdb.connect(str(scenario.run.serving), read_only=True) as con:
        found = con.execute(f"SELECT natural_key FROM ({query.group(1)})").fetchall()
    assert sorted(found) == sorted([(str(over),), (str(bad_date),)])


def test_quarantine_above_threshold_fails_the_run(run_sync, tmp_path):
    inst = _institution(PlantedInstitution)
    _plant(inst)
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        run = run_sync(emu.base_url, tmp_path, quarantine_threshold=0.001)
    assert run.state.is_failed()
    assert "2 of " in run.state.message and "records quarantined" in run.state.message
    assert "above the threshold of 0.1%" in run.state.message
    with duckdb.connect(str(run.serving), read_only=True) as con:
        # What passed validation still loaded; the failure is about trust, not lost data.
        assert con.execute("SELECT count(*) FROM _quarantine").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM submissions").fetchone()[0] > 0


@pytest.fixture(scope="module")
def deleted_course(run_sync, tmp_path_factory) -> Iterator[tuple[Scenario, int]]:
    inst = _institution()
    gone = next(c["id"] for c in inst.courses() if c["workflow_state"] == "deleted")
    live = inst.course_ids(include_deleted=False)
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        run = run_sync(
            emu.base_url,
            tmp_path_factory.mktemp("deleted"),
            course_ids=[str(c) for c in [*live[:2], gone, *live[2:]]],
        )
        stats = emu.stats.snapshot()
    yield Scenario(inst, run, stats, live), gone


def test_deleted_course_fails_the_run_and_the_rest_loads(deleted_course, hmac_key_hex: str):
    scenario, gone = deleted_course
    run = scenario.run
    assert run.state.is_failed(), f"expected Failed, got {run.state.type}: {run.state.message}"
    assert not run.state.is_completed()
    message = run.state.message or ""
    assert "1 of 5 courses not synced" in message and str(gone) in message, message
    assert "404" in message, message
    # A 404 is permanent: the course was asked for once per attempt, not retried.
    assert scenario.emulator_stats["paths"][f"/api/v1/courses/{gone}"] == 1
    quarantine_report = _artifact(run, "quarantine")
    assert "Courses not synced" in quarantine_report
    assert f"| {gone} | permanent |" in quarantine_report, quarantine_report
    summary = {r["domain"]: r for r in _artifact(run, "summary")}
    assert summary["roster"]["courses failed"] == 1
    assert summary["roster"]["courses staged"] == 4
    _assert_tables_match(run, scenario.inst, scenario.live_courses, _key(hmac_key_hex))
    with duckdb.connect(str(run.serving), read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM courses WHERE source_id = ?", [str(gone)]
        ).fetchone() == (0,)


# ---- PII and lineage ---------------------------------------------------------------------------


def _pii_finder(inst: Institution):
    """A case-insensitive search for any of the institution's PII strings."""
    values = sorted(inst.pii_values(), key=len, reverse=True)
    assert len(values) > 50 and all(len(v) >= 3 for v in values)
    pattern = re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE)

    def find(text: str | None) -> str | None:
        if not text:
            return None
        match = pattern.search(text)
        return match.group(0) if match else None

    return find


def test_no_pii_in_serving_logs_spans_or_artifacts(
    clean, second_run, faulty, planted, deleted_course, observed
):
    scenarios = [clean, faulty, planted[0], deleted_course[0]]
    runs = [s.run for s in scenarios] + [second_run[2]]
    find = _pii_finder(clean.inst)
    for scenario in scenarios:  # every scenario serves the same people
        assert scenario.inst.pii_values() == clean.inst.pii_values()
    leaks: list[str] = []

    cells = 0
    for scenario in scenarios:
        for table, column, value in text_cells(scenario.run.serving):
            cells += 1
            if hit := find(value):
                leaks.append(f"serving {table}.{column}: {hit!r}")
    assert cells > 5_000

    lines = observed.log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 20
    for line in lines:
        entry = json.loads(line)  # every line is one JSON object
        if hit := find(line):
            leaks.append(f"log line {entry.get('message')!r}: {hit!r}")
    logged_runs = {json.loads(line).get("run_id") for line in lines}
    assert {r.flow_run_id for r in runs} <= logged_runs

    spans = observed.spans.get_finished_spans()
    assert len(spans) > 500
    for name, text in span_texts(spans):
        if hit := find(text):
            leaks.append(f"span {name}: {hit!r}")

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
        prefect_logs = []
        while True:
            page = client.read_logs(
                log_filter=LogFilter(
                    flow_run_id=LogFilterFlowRunId(any_=[r.flow_run_id for r in runs])
                ),
                limit=200,
                offset=len(prefect_logs),
            )
            prefect_logs += page
            if len(page) < 200:
                break
    assert {str(a.flow_run_id) for a in artifacts} >= {r.flow_run_id for r in runs}
    assert len(artifacts) >= 2 * len(runs)
    for artifact in artifacts:
        text = f"{artifact.key} {artifact.description} {json.dumps(artifact.data)}"
        if hit := find(text):
            leaks.append(f"artifact {artifact.key}: {hit!r}")
    assert prefect_logs
    for log in prefect_logs:
        if hit := find(log.message):
            leaks.append(f"prefect log {log.name}: {hit!r}")
    for run in runs:
        if hit := find(run.state.message):
            leaks.append(f"flow state message: {hit!r}")

    assert leaks == [], "\n".join(sorted(set(leaks))[:20])

    # Control: the scanner does find PII where it legitimately lives (raw staging, restricted).
    store = StagingStore(str(clean.run.staging))
    staged_users = store.scan(
        "users", store.committed(institution="e2e-university", vendor="canvas")
    ).collect()
    hits = {find(str(v)) for row in staged_users.iter_rows() for v in row} - {None}
    assert len(hits) > 40, hits


def test_served_rows_carry_real_exported_trace_ids(clean, faulty, planted, observed):
    spans = observed.spans.get_finished_spans()
    exported = {
        (format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")) for s in spans
    }
    exported_traces = {t for t, _ in exported}
    run_traces = {format(s.context.trace_id, "032x") for s in spans if s.name == "sync_run"}
    for scenario in (clean, faulty, planted[0]):
        with duckdb.connect(str(scenario.run.serving), read_only=True) as con:
            for table in (*TABLES, "_quarantine"):
                rows = con.execute(f"SELECT DISTINCT _trace_id, _span_id FROM {table}").fetchall()
                if table == "_quarantine" and not rows:
                    continue
                assert rows, table
                for trace_id, span_id in rows:
                    assert trace_id and re.fullmatch(r"[0-9a-f]{32}", trace_id), (table, trace_id)
                    assert span_id and re.fullmatch(r"[0-9a-f]{16}", span_id), (table, span_id)
                    assert int(trace_id, 16) != 0 and int(span_id, 16) != 0, table
                    assert trace_id in exported_traces, f"{table}: trace {trace_id} not exported"
                    assert (trace_id, span_id) in exported, f"{table}: span {span_id} not exported"
            # DESIGN.md: one trace per run, the run's own (its ``sync_run`` span).
            traces = {
                t
                for table in TABLES
                for (t,) in con.execute(f"SELECT DISTINCT _trace_id FROM {table}").fetchall()
            }
            assert len(traces) == 1 and traces <= run_traces, traces

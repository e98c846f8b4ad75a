"""Blackboard end to end (issue 7): emulator on loopback → ``sync_institution`` on a real Prefect
test server → DuckDB, checked against the emulator's own ground truth (computed here, without the
mapping code, from the rules ``connectors/blackboard/mapping.py`` documents).

Same assertions as Canvas: tables equal ground truth, idempotent re-run, PII scan clean, planted bad
records quarantined, 10 % faults survived; plus a token expiring mid-sync, an exhausted daily quota
failing the run cleanly and the next run of the window completing it, and the budget preflight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from emulators.blackboard.institution import Institution
from emulators.blackboard.server import BlackboardEmulator
from emulators.blackboard.settings import BlackboardEmulatorSettings
from emulators.canvas.faults import FaultSettings
from tests.e2e.conftest import SyncRun
from tests.e2e.ground_truth import TABLES, actual_tables, table_dump_digest, token
from tests.e2e.pii import pii_finder, scan_for_pii
from transforms.staging import StagingStore

pytestmark = pytest.mark.e2e

KEY, SECRET = "e2e-bb-key", "e2e-bb-secret"
SEED = 777


def _institution(cls: type[Institution] = Institution) -> Institution:
    # Courses 0..3: available, unpublished, completed, Disabled (not synced).
    return cls(
        seed=SEED, courses=4, students_per_course=10, columns_per_course=5, meetings_per_course=3
    )


def _settings(**kw) -> BlackboardEmulatorSettings:
    return BlackboardEmulatorSettings(client_id=KEY, client_secret=SECRET, **kw)


def _run(run_sync, emu: BlackboardEmulator, workdir: Path, **overrides) -> SyncRun:
    quota = {"max_concurrent_courses": 4, "requests_per_second": 500.0, "burst": 100}
    return run_sync(
        emu.base_url,
        workdir,
        vendor="blackboard",
        token=None,
        client_id=KEY,
        client_secret=SECRET,
        quota={**quota, **overrides.pop("quota", {})},
        **overrides,
    )


def _z(iso: str | None) -> str | None:
    return None if iso is None else iso[:19] + "Z"


_ROLE = {"Instructor": "teacher", "TeachingAssistant": "ta", "Student": "student"}
_STATE = {"Yes": "active", "No": "inactive", "Disabled": "deleted"}
_RANK = ("teacher", "ta", "designer", "student", "observer", "other")
_STATUS = ("active", "invited", "completed", "inactive", "rejected", "deleted")


def expected_tables(inst: Institution, course_ids: list[str], key: bytes) -> dict[str, list]:
    out: dict[str, list] = {t: [] for t in TABLES}
    people: dict[str, dict] = {}

    def person(user: dict) -> str:
        sis = user.get("externalId") or user.get("studentId")
        return token(key, f"sis:{sis}") if sis else token(key, f"blackboard:{user['id']}")

    for cid in course_ids:
        c = inst.course(cid)
        state = (
            "completed"
            if c["closedComplete"]
            else {"No": "unpublished"}.get(c["availability"]["available"], "available")
        )
        duration = c["availability"]["duration"]
        if (c["termId"], None, None, None, None, None) not in out["terms"]:
            out["terms"].append((c["termId"], None, None, None, None, None))
        out["courses"].append(
            (cid, c["termId"], c["name"], c["courseId"], c["externalId"], state,
             _z(duration["start"]), _z(duration["end"]), None, None, None)
        )  # fmt: skip
        membership_of: dict[str, str] = {}
        for m in inst.memberships(cid, expand_user=True):
            user, tok = m["user"], person(m["user"])
            membership_of[m["userId"]] = m["id"]
            role, mstate = _ROLE[m["courseRoleId"]], _STATE[m["availability"]["available"]]
            deleted = _z(m["modified"]) if mstate == "deleted" else None
            out["enrollments"].append(
                (m["id"], cid, None, tok, tok, role, mstate, None, None, _z(m.get("lastAccessed")),
                 None, None, deleted)
            )  # fmt: skip
            p = people.setdefault(m["userId"], {"user": user, "roles": [], "states": []})
            p["roles"].append(role)
            p["states"].append(mstate)
            if m.get("lastAccessed"):
                day = m["lastAccessed"][:10]
                out["engagement_daily"].append(
                    (f"{m['id']}:{day}", cid, m["id"], tok, tok, day, None, None, None,
                     _z(m["lastAccessed"]))
                )  # fmt: skip
        users = {u["id"]: u for u in (m["user"] for m in inst.memberships(cid, expand_user=True))}
        for col in inst.columns(cid):
            due = col["grading"].get("due")
            if not col["externalGrade"]:
                out["assignments"].append(
                    (col["id"], cid, col["name"], float(col["score"]["possible"]), _z(due),
                     col["grading"]["type"], col["availability"]["available"] == "Yes", False, None)
                )  # fmt: skip
            # Attempt = how many attempts the student made on the column (null: none).
            made: dict[str, int] = {}
            for a in inst.attempts(cid, col["id"]):
                made[a["userId"]] = made.get(a["userId"], 0) + 1
            for g in inst.grades(cid, col["id"]):
                tok = person(users[g["userId"]])
                text = g.get("text") or g.get("displayGrade", {}).get("text")
                score = None if g.get("score") is None else round(float(g["score"]), 6)
                membership = membership_of[g["userId"]]
                if col["externalGrade"]:
                    out["course_grades"].append(
                        (membership, cid, membership, tok, tok, score, score, text, text, None)
                    )
                    continue
                submitted = g.get("lastRelevantDate")
                late = None if not (submitted and due) else submitted[:19] > due[:19]
                out["submissions"].append(
                    (f"{membership}:{col['id']}", cid, col["id"], tok, tok, score, text,
                     "submitted" if g.get("status") == "NeedsGrading" else "graded",
                     _z(submitted), None, late, None, g["exempt"], made.get(g["userId"]), None,
                     None)
                )  # fmt: skip
        for meeting in inst.meetings(cid):
            for r in inst.meeting_users(cid, meeting["id"]):
                tok = person(users[r["userId"]])
                out["attendance"].append(
                    (str(r["id"]), cid, tok, tok, meeting["start"][:10], r["status"].lower(),
                     "blackboard.meetings")
                )  # fmt: skip
    for uid, p in people.items():
        user = p["user"]
        sis = user.get("externalId") or user.get("studentId")
        vendor = token(key, f"blackboard:{uid}")
        out["people"].append(
            (vendor, token(key, f"sis:{sis}") if sis else vendor,
             token(key, f"sis:{sis}") if sis else None, token(key, f"login:{user['userName']}"),
             token(key, f"email:{user['contact']['email'].strip().lower()}"), "v1",
             min(p["roles"], key=_RANK.index), None, min(p["states"], key=_STATUS.index), None)
        )  # fmt: skip
    return {t: sorted(rows, key=repr) for t, rows in out.items()}


def _assert_tables_match(run: SyncRun, inst: Institution, key: bytes) -> None:
    expected = expected_tables(inst, inst.course_ids(include_disabled=False), key)
    with duckdb.connect(str(run.serving), read_only=True) as con:
        actual = actual_tables(con)
    for table in TABLES:
        want, got = expected[table], actual[table]
        if table not in ("sections", "attendance_rates"):
            assert want, f"ground truth for {table} is empty: the institution is too small"
        missing = [r for r in want if r not in got][:2]
        extra = [r for r in got if r not in want][:2]
        assert got == want, f"{table}: {len(got)} served, {len(want)} expected;\n{missing}\n{extra}"


def _digests(path: Path) -> dict[str, tuple[int, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: table_dump_digest(con, t) for t in (*TABLES, "_quarantine")}


@dataclass
class Scenario:
    inst: Institution
    run: SyncRun
    stats: dict


@pytest.fixture(scope="module")
def clean(run_sync, tmp_path_factory) -> Iterator[Scenario]:
    inst = _institution()
    with BlackboardEmulator(inst, settings=_settings()) as emu:
        run = _run(run_sync, emu, tmp_path_factory.mktemp("bb-clean"), daily_call_budget_share=0.5)
        stats = emu.stats.snapshot()
    yield Scenario(inst, run, stats)


def test_clean_run_equals_ground_truth(clean, hmac_key_hex):
    assert clean.run.state.is_completed(), clean.run.state.message
    assert clean.run.result["courses"] == 3
    http = clean.run.result["http"]
    assert http["quota"]["remaining"] == 10_000 - clean.stats["requests"]
    assert (
        http["estimate"]["calls_needed"]
        >= clean.stats["requests"] - http["estimate"]["probe_calls"] - 2
    )
    _assert_tables_match(clean.run, clean.inst, bytes.fromhex(hmac_key_hex))
    with duckdb.connect(str(clean.run.serving), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM _quarantine").fetchone() == (0,)
        runs = con.execute(
            "SELECT domain, status, courses_loaded FROM _sync_runs ORDER BY 1"
        ).fetchall()
    assert runs == [(d, "completed", 3) for d in ("attendance", "gradebook", "roster")]


def test_second_run_of_the_window_changes_nothing(clean, run_sync):
    before = _digests(clean.run.serving)
    with BlackboardEmulator(clean.inst, settings=_settings()) as emu:
        again = _run(run_sync, emu, clean.run.serving.parent, daily_call_budget_share=0.5)
        paths = emu.stats.snapshot()["paths"]
    assert again.state.is_completed(), again.state.message
    # Only the token and the course list: every partition of the window is reused, and the
    # budget check probes no course whose partitions are already committed.
    assert sum(paths.values()) == 2, paths
    estimate = again.result["http"]["estimate"]
    assert estimate["courses_already_staged"] == 3 and estimate["probe_calls"] == 0
    assert estimate["calls_needed"] == 1
    assert _digests(clean.run.serving) == before


@pytest.fixture(scope="module")
def faulty(run_sync, tmp_path_factory) -> Iterator[Scenario]:
    inst = _institution()
    settings = _settings(
        latency_ms=2,
        page_caps={k: 4 for k in BlackboardEmulatorSettings().page_caps},
        faults=FaultSettings(rate=0.10, seed=3, slow_seconds=1.0),
    )
    with BlackboardEmulator(inst, settings=settings) as emu:
        # The token also expires twice during the run: refreshed on the 401, no page lost.
        stop = threading.Event()

        def expire() -> None:
            for after in (40, 120):
                while emu.stats.requests < after and not stop.is_set():
                    stop.wait(0.005)
                emu.tokens.expire_all()

        expirer = threading.Thread(target=expire, daemon=True)
        expirer.start()
        run = _run(run_sync, emu, tmp_path_factory.mktemp("bb-faulty"))
        stop.set()
        stats = emu.stats.snapshot()
    yield Scenario(inst, run, stats)


def test_faults_and_an_expiring_token_land_the_same_tables(faulty, hmac_key_hex):
    assert faulty.run.state.is_completed(), faulty.run.state.message
    assert sum(faulty.stats["faults"].values()) >= 5, faulty.stats["faults"]
    http = faulty.run.result["http"]
    assert http["retried"] > 0 and http["tokens"]["refreshed_on_401"] >= 1
    _assert_tables_match(faulty.run, faulty.inst, bytes.fromhex(hmac_key_hex))


class PlantedInstitution(Institution):
    """Serves (and holds as ground truth) an impossible score and an unknown attendance status."""

    def grades(self, course_id, column_id, **kw):
        out = super().grades(course_id, column_id, **kw)
        if course_id == self.course_ids()[0] and column_id == self.columns(course_id)[1]["id"]:
            graded = [g for g in out if g.get("score") is not None]
            graded[0] = {**graded[0], "score": -5.0}
            out = [graded[0] if g["userId"] == graded[0]["userId"] else g for g in out]
        return out

    def meeting_users(self, course_id, meeting_id):
        out = super().meeting_users(course_id, meeting_id)
        if course_id == self.course_ids()[0] and meeting_id == self.meetings(course_id)[0]["id"]:
            out = [{**out[0], "status": "Tardy"}, *out[1:]]
        return out


def test_planted_bad_records_are_quarantined_and_the_rest_loads(run_sync, tmp_path_factory):
    inst = _institution(PlantedInstitution)
    with BlackboardEmulator(inst, settings=_settings()) as emu:
        run = _run(run_sync, emu, tmp_path_factory.mktemp("bb-planted"))
    assert run.state.is_completed(), run.state.message
    with duckdb.connect(str(run.serving), read_only=True) as con:
        held = sorted(con.execute('SELECT "table", rule FROM _quarantine').fetchall())
        loaded = con.execute("SELECT count(*) FROM submissions").fetchone()[0]
    assert held == [("attendance", "enum"), ("submissions", "range")], held
    assert loaded > 10


def test_exhausted_quota_fails_the_run_cleanly_and_the_next_run_completes(
    run_sync, tmp_path_factory, hmac_key_hex
):
    inst = _institution()
    workdir = tmp_path_factory.mktemp("bb-quota")
    with BlackboardEmulator(inst, settings=_settings()) as emu:
        # Another application of the developer group spends the day's quota mid-run.
        def drain() -> None:
            while emu.stats.requests < 25:
                threading.Event().wait(0.002)
            emu.quota.exhaust()

        threading.Thread(target=drain, daemon=True).start()
        first = _run(
            run_sync,
            emu,
            workdir,
            quota={"max_concurrent_courses": 1},
        )
        assert first.state.is_failed()
        message = first.state.message or ""
        assert "not synced" in message and "daily API quota is spent" in message, message
        with duckdb.connect(str(first.serving), read_only=True) as con:
            loaded = con.execute("SELECT count(*) FROM courses").fetchone()[0]
        assert 1 <= loaded < 3  # what was synced is served; the rest is named in the failure
        emu.quota.reset()  # a new day
        second = _run(run_sync, emu, workdir)
    assert second.state.is_completed(), second.state.message
    _assert_tables_match(second, inst, bytes.fromhex(hmac_key_hex))


def test_budget_share_fails_before_any_course_is_synced(run_sync, tmp_path_factory):
    inst = _institution()
    with BlackboardEmulator(inst, settings=_settings(daily_quota=500)) as emu:
        run = _run(
            run_sync, emu, tmp_path_factory.mktemp("bb-budget"), daily_call_budget_share=0.05
        )
        paths = emu.stats.snapshot()["paths"]
    assert run.state.is_failed()
    assert "daily_call_budget_share" in (run.state.message or "")
    assert not any("/attempts" in p or "/meetings/" in p for p in paths)


def test_no_pii_in_serving_logs_spans_or_artifacts(clean, faulty, observed):
    assert faulty.inst.pii_values() == clean.inst.pii_values()
    find = pii_finder(clean.inst.pii_values(), minimum=30)
    scan = scan_for_pii(find, runs=[clean.run, faulty.run], observed=observed)
    assert scan.leaks == [], "\n".join(scan.leaks[:20])
    assert scan.cells > 1_000 and scan.log_lines > 10 and scan.spans > 100
    assert scan.artifacts >= 4 and scan.prefect_logs > 0
    assert SECRET not in observed.log_file.read_text(encoding="utf-8")
    # Control: the finder does see PII where it legitimately lives (raw staging, restricted).
    store = StagingStore(str(clean.run.staging))
    members = store.scan(
        "memberships", store.committed(institution="e2e-university", vendor="blackboard")
    ).collect()
    hits = {find(str(v)) for row in members.iter_rows() for v in row} - {None}
    assert len(hits) > 20, hits


class RegradedInstitution(Institution):
    """After :meth:`regrade`, one student's grade in one Attempts-graded column changes, with a
    ``changeIndex`` above every other (what Learn does on any grade change)."""

    changed: tuple[str, str] | None = None

    def regrade(self) -> tuple[str, str]:
        course = self.course_ids()[0]
        column = next(c for c in self.columns(course) if c["grading"]["type"] == "Attempts")
        self.changed = (course, column["id"])
        return self.changed

    def grades(self, course_id, column_id, **kw):
        out = super().grades(course_id, column_id, **kw)
        if self.changed != (course_id, column_id):
            return out
        target = next(g for g in out if g.get("score") is not None)
        bumped = {**target, "score": 1.0, "text": "1", "changeIndex": 99_000_000}
        bumped["displayGrade"] = {**target["displayGrade"], "score": 1.0, "text": "1"}
        return [bumped if g is target else g for g in out]


def test_incremental_gradebook_reads_only_changed_columns(run_sync, tmp_path, hmac_key_hex):
    inst = _institution(RegradedInstitution)
    key = bytes.fromhex(hmac_key_hex)
    with BlackboardEmulator(inst, settings=_settings()) as emu:
        first = _run(run_sync, emu, tmp_path, window=None)
        assert first.state.is_completed(), first.state.message
        _assert_tables_match(first, inst, key)
        course, column = inst.regrade()
        before = dict(emu.stats.snapshot()["paths"])
        second = _run(run_sync, emu, tmp_path, window=None)
        after = emu.stats.snapshot()["paths"]
    assert second.state.is_completed(), second.state.message
    assert second.result["mode"] == "incremental"
    _assert_tables_match(second, inst, key)
    with duckdb.connect(str(second.serving), read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM submissions WHERE score = 1.0 AND deleted_at IS NULL"
        ).fetchone() == (1,)
    paths = {p: n - before.get(p, 0) for p, n in after.items() if n > before.get(p, 0)}
    grade_lists = [p for p in paths if p.endswith("/users") and "/gradebook/columns/" in p]
    attempt_lists = [p for p in paths if p.endswith("/attempts")]
    last_changed = [p for p in paths if p.endswith("/users/lastChanged")]
    # Only the changed column's grades and attempts are read again; every graded column of
    # every course is asked for its newest changeIndex, once.
    assert grade_lists == [
        f"/learn/api/public/v2/courses/{course}/gradebook/columns/{column}/users"
    ]
    assert attempt_lists == [
        f"/learn/api/public/v2/courses/{course}/gradebook/columns/{column}/attempts"
    ]
    graded = sum(
        1
        for c in inst.course_ids(include_disabled=False)
        for col in inst.columns(c)
        if inst.grades(c, col["id"])
    )
    assert len(last_changed) == graded and all(paths[p] == 1 for p in last_changed)
    store = StagingStore(str(second.staging))
    gradebook = store.committed(
        institution="e2e-university",
        vendor="blackboard",
        window=second.result["window"],
        domain="gradebook",
    )
    assert gradebook and all(
        set(m.partial) == {"grades", "last_changed", "attempts"} for m in gradebook
    )

"""Moodle end to end (issue 6): emulator on loopback → ``sync_institution`` on the real Prefect
test server (``tests/e2e/conftest.py``) → DuckDB, checked against the emulator's ground truth.

The expected rows are computed here from the Institution alone, following the rules
``connectors/moodle/mapping.py`` documents, with tokens by ``hmac.new`` — not by the mapping code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import pytest

from emulators.canvas.institution import build_institution as build_canvas
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.moodle.faults import FaultSettings
from emulators.moodle.institution import (
    PASS_GRADE,
    SCALE_ITEMS,
    Institution,
    StudentWork,
    build_institution,
    grade_text,
)
from emulators.moodle.server import MoodleEmulator
from emulators.moodle.settings import MoodleEmulatorSettings
from tests.e2e.conftest import TOKEN as CANVAS_TOKEN
from tests.e2e.conftest import SyncRun
from tests.e2e.ground_truth import actual_tables, table_dump_digest, token
from tests.e2e.pii import pii_finder, scan_for_pii
from transforms.staging import StagingStore

pytestmark = pytest.mark.e2e

TOKEN = "e2e-moodle-token"
MOODLE_TABLES = (
    "courses",
    "people",
    "enrollments",
    "assignments",
    "submissions",
    "course_grades",
    "attendance",
    "engagement_daily",
    "activity_completion",
)
FAST = {"max_concurrent_courses": 8, "requests_per_second": 1000, "burst": 200}
_RANK = ("admin", "teacher", "ta", "designer", "student", "other")
_ROLE = {"editingteacher": "teacher", "teacher": "ta", "student": "student", "manager": "admin"}
_ATT = {"P": "present", "L": "late", "E": "excused", "A": "absent"}
_COMPLETION = ("incomplete", "complete", "complete_pass", "complete_fail")
_TRACKING = ("none", "manual", "automatic")


def _z(epoch: int | None) -> str | None:
    return None if not epoch else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _f(value) -> float | None:
    return None if value is None else round(float(value), 6)


def _shown(text: str) -> str | None:
    import re

    s = re.sub(r"<[^>]*>", "", text).strip()
    return None if s in ("-", "") else s


def expected(inst: Institution, key: bytes, *, planted: set[str] = frozenset()) -> dict:
    out: dict[str, list[tuple]] = {t: [] for t in MOODLE_TABLES}
    people: dict[int, dict] = {}

    def tok(uid: int) -> str:
        sis = people[uid]["sis"]
        return token(key, f"sis:{sis}") if sis else token(key, f"moodle:{uid}")

    for cid in inst.course_ids():
        c = inst.course(cid)
        state = "available" if c["visible"] else "unpublished"
        out["courses"].append(
            (str(cid), None, c["fullname"], c["shortname"], c["idnumber"] or None, state,
             _z(c["startdate"]), _z(c["enddate"]), None, None, None)
        )  # fmt: skip
        active = {u["id"] for u in inst.enrolled_users(cid, onlyactive=True)}
        for u in inst.enrolled_users(cid):
            role = _ROLE[u["roles"][0]["shortname"]]
            p = people.setdefault(
                u["id"],
                {"sis": u.get("idnumber"), "login": u["username"], "email": u["email"],
                 "roles": [], "states": []},
            )  # fmt: skip
            p["roles"].append(role)
            p["states"].append("active" if u["id"] in active else "inactive")
        for u in inst.enrolled_users(cid):
            t = tok(u["id"])
            state = "active" if u["id"] in active else "inactive"
            role = _ROLE[u["roles"][0]["shortname"]]
            eid = f"{cid}:{u['id']}"
            out["enrollments"].append(
                (eid, str(cid), None, t, t, role, state, None, None,
                 _z(u["lastcourseaccess"]), None, None, None)
            )  # fmt: skip
            if role == "student":
                for st in inst.completion_statuses(cid, u["id"]):
                    out["activity_completion"].append(
                        (f"{eid}:{st['cmid']}", str(cid), eid, t, t, str(st["cmid"]),
                         st["modname"], _COMPLETION[st["state"]], _z(st["timecompleted"]),
                         _TRACKING[st["tracking"]], None)
                    )  # fmt: skip
            if role == "student" and u["lastcourseaccess"]:
                day = _z(u["lastcourseaccess"])[:10]
                out["engagement_daily"].append(
                    (f"{eid}:{day}", str(cid), eid, t, t, day, None, None, None,
                     _z(u["lastcourseaccess"]))
                )  # fmt: skip
        report = {g["userid"]: g["gradeitems"] for g in inst.grade_report(cid)}
        for uid, items in report.items():
            total = items[-1]
            t = tok(uid)
            out["course_grades"].append(
                (f"{cid}:{uid}", str(cid), f"{cid}:{uid}", t, t, _f(total["graderaw"]), None,
                 _shown(total["gradeformatted"]), None, None)
            )  # fmt: skip
        for a in inst.assignments(cid):
            g = a["grade"]
            out["assignments"].append(
                (str(a["id"]), str(cid), a["name"], _f(g) if g > 0 else None, _z(a["duedate"]),
                 "scale" if g < 0 else "points" if g > 0 else "not_graded", True, False, None)
            )  # fmt: skip
        for spec in inst.assign_specs(cid):
            for uid in inst.student_ids(cid):
                w = inst.work(cid, spec, uid)
                s = w.submission
                if s is None or str(s["id"]) in planted:
                    continue
                t = tok(uid)
                item = next(i for i in report[uid] if i.get("iteminstance") == spec.id)
                grade = w.grade
                if grade is not None and s["gradingstatus"] == "graded":
                    status = "graded"
                elif s["status"] == "submitted":
                    status = "submitted"
                else:
                    status = "unsubmitted"
                submitted = s["status"] == "submitted"
                # Pass/fail only where the assignment has a grade to pass and a grade exists.
                passed = None
                if spec.kind == "pass" and grade is not None:
                    passed = float(grade["grade"]) >= PASS_GRADE
                out["submissions"].append(
                    (str(s["id"]), str(cid), str(spec.id), t, t,
                     _f(grade["grade"]) if grade else None, _shown(item["gradeformatted"]),
                     status, _z(s["timemodified"]) if submitted else None,
                     _z(grade["timemodified"]) if grade else None,
                     submitted and bool(spec.duedate) and s["timemodified"] > spec.duedate,
                     None, None, 1, passed, None)
                )  # fmt: skip
        for session in inst.sessions(inst.attendance_id(cid)):
            acronyms = {str(st["id"]): st["acronym"] for st in session["statuses"]}
            day = _z(session["sessdate"])[:10]
            for log in session["attendance_log"]:
                t = tok(log["studentid"])
                out["attendance"].append(
                    (log["id"], str(cid), t, t, day, _ATT[acronyms[log["statusid"]]],
                     "moodle.mod_attendance")
                )  # fmt: skip
    for uid, p in people.items():
        moodle = token(key, f"moodle:{uid}")
        sis = token(key, f"sis:{p['sis']}") if p["sis"] else None
        out["people"].append(
            (moodle, sis or moodle, sis, token(key, f"login:{p['login']}"),
             token(key, f"email:{p['email'].strip().lower()}"), "v1",
             min(p["roles"], key=_RANK.index), None, min(p["states"]), None)
        )  # fmt: skip
    return {t: sorted(rows, key=repr) for t, rows in out.items()}


def _assert_tables(run: SyncRun, inst: Institution, key: bytes, **kw) -> None:
    want = expected(inst, key, **kw)
    with duckdb.connect(str(run.serving), read_only=True) as con:
        got = actual_tables(con)
    for table in MOODLE_TABLES:
        assert want[table], f"ground truth for {table} is empty"
        missing = sorted(set(want[table]) - set(got[table]), key=repr)[:2]
        extra = sorted(set(got[table]) - set(want[table]), key=repr)[:2]
        assert got[table] == want[table], f"{table}: missing {missing}; extra {extra}"


def _digests(run: SyncRun) -> dict:
    with duckdb.connect(str(run.serving), read_only=True) as con:
        return {t: table_dump_digest(con, t) for t in (*MOODLE_TABLES, "_quarantine")}


@dataclass
class Clean:
    inst: Institution
    run: SyncRun


def _inst(cls=Institution, **kw) -> Institution:
    return cls(seed=606, courses=4, students_per_course=9, assignments_per_course=6, **kw)


@pytest.fixture(scope="module")
def clean(run_sync, tmp_path_factory) -> Iterator[Clean]:
    inst = _inst()
    workdir = tmp_path_factory.mktemp("moodle-clean")
    with MoodleEmulator(inst, settings=MoodleEmulatorSettings(token=TOKEN)) as emu:
        run = run_sync(emu.base_url, workdir, vendor="moodle", token=TOKEN, quota=FAST)
        yield Clean(inst, run)


def test_clean_run_equals_ground_truth(clean, hmac_key_hex):
    assert clean.run.state.is_completed(), clean.run.state.message
    _assert_tables(clean.run, clean.inst, bytes.fromhex(hmac_key_hex))
    with duckdb.connect(str(clean.run.serving), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM _quarantine").fetchone()[0] == 0
        grades = {r[0] for r in con.execute("SELECT grade FROM submissions").fetchall()}
    assert grades & set(SCALE_ITEMS) and not any("<" in (g or "") for g in grades)
    with duckdb.connect(str(clean.run.serving), read_only=True) as con:
        passed = {r[0] for r in con.execute("SELECT DISTINCT passed FROM submissions").fetchall()}
        states = {r[0] for r in con.execute("SELECT state FROM activity_completion").fetchall()}
    assert passed == {True, False, None}
    assert states == {"incomplete", "complete", "complete_pass", "complete_fail"}


def test_second_run_of_the_window_changes_nothing(clean, run_sync):
    before = _digests(clean.run)
    with MoodleEmulator(clean.inst, settings=MoodleEmulatorSettings(token=TOKEN)) as emu:
        again = run_sync(
            emu.base_url, clean.run.serving.parent, vendor="moodle", token=TOKEN, quota=FAST
        )
        assert emu.stats.snapshot()["requests"] <= 1  # every partition reused (course list only)
    assert again.state.is_completed()
    assert _digests(again) == before


def test_no_pii_in_serving_logs_spans_or_artifacts(clean, observed):
    # The site administrator is "Admin User", user name "admin": the single words are also the
    # canonical role "admin" and ordinary text, so only the full name and the email are searched.
    find = pii_finder(clean.inst.pii_values(), ignore=("Admin", "User", "admin"), minimum=50)
    scan = scan_for_pii(find, runs=[clean.run], observed=observed)
    assert scan.leaks == [], "\n".join(scan.leaks[:20])
    assert scan.cells > 1_000 and scan.log_lines > 10 and scan.spans > 50
    assert scan.artifacts >= 2 and scan.prefect_logs > 0
    # Control: the finder does see PII where it legitimately lives (raw staging, restricted).
    store = StagingStore(str(clean.run.staging))
    users = store.scan(
        "enrolled_users", store.committed(institution="e2e-university", vendor="moodle")
    ).collect()
    hits = {find(str(v)) for row in users.iter_rows() for v in row} - {None}
    assert len(hits) > 20, hits


def test_ten_percent_faults_land_the_same_tables(run_sync, tmp_path, hmac_key_hex):
    inst = _inst()
    settings = MoodleEmulatorSettings(
        token=TOKEN, faults=FaultSettings(rate=0.10, seed=4, slow_seconds=1.0)
    )
    with MoodleEmulator(inst, settings=settings) as emu:
        run = run_sync(emu.base_url, tmp_path, vendor="moodle", token=TOKEN, quota=FAST)
        faults = emu.stats.snapshot()["faults"]
    assert run.state.is_completed(), run.state.message
    assert sum(faults.values()) > 0
    _assert_tables(run, inst, bytes.fromhex(hmac_key_hex))


class _Planted(Institution):
    """One grade that is not a number: its submission must be quarantined (rule ``type``)."""

    def _grade_row(self, a, uid, sid, at, u):
        row = super()._grade_row(a, uid, sid, at, u)
        if uid == 100_004 and a.kind == "points":
            row = {**row, "grade": "ninety"}
        return row


def test_planted_bad_record_is_quarantined_and_the_rest_loads(run_sync, tmp_path, hmac_key_hex):
    inst = _inst(_Planted)
    bad = {
        str(w.submission["id"])
        for spec in inst.assign_specs(2)
        if spec.kind == "points" and (w := inst.work(2, spec, 100_004)).grade is not None
    }
    assert bad
    with MoodleEmulator(inst, settings=MoodleEmulatorSettings(token=TOKEN)) as emu:
        run = run_sync(emu.base_url, tmp_path, vendor="moodle", token=TOKEN, quota=FAST)
    assert run.state.is_completed(), run.state.message
    with duckdb.connect(str(run.serving), read_only=True) as con:
        rows = con.execute('SELECT "table", natural_key, rule FROM _quarantine').fetchall()
    assert {(t, r) for t, _, r in rows} == {("submissions", "type")} and len(rows) == len(bad)
    assert all(any(b in natural for b in bad) for _, natural, _ in rows)
    # The planted grade is not in the report's formatted text either; everything else matches.
    want = expected(inst, bytes.fromhex(hmac_key_hex), planted=bad)
    with duckdb.connect(str(run.serving), read_only=True) as con:
        got = actual_tables(con)
    for table in ("courses", "people", "enrollments", "attendance", "submissions"):
        assert got[table] == want[table], table


def test_canvas_and_moodle_share_a_person_token(run_sync, tmp_path, hmac_key_hex):
    canvas = build_canvas(seed=77, courses=2, students_per_course=9, assignments_per_course=8)
    sis = next(
        e["user"]["sis_user_id"]
        for e in canvas.enrollments(101)
        if e["type"] == "StudentEnrollment" and e["user"]["sis_user_id"]
    )
    moodle = build_institution(seed=78, courses=2, students_per_course=6, shared_sis_ids=(sis,))
    key = bytes.fromhex(hmac_key_hex)
    with (
        CanvasEmulator(canvas, settings=CanvasEmulatorSettings(token=CANVAS_TOKEN)) as c_emu,
        MoodleEmulator(moodle, settings=MoodleEmulatorSettings(token=TOKEN)) as m_emu,
    ):
        # One institution config with both LMSs as sources: one flow run lands both.
        second = run_sync(
            c_emu.base_url,
            tmp_path,
            window="both",
            sources=[
                {"vendor": "canvas", "base_url": c_emu.base_url, "token": CANVAS_TOKEN},
                {"vendor": "moodle", "base_url": m_emu.base_url, "token": TOKEN, "quota": FAST},
            ],
        )
    assert second.state.is_completed(), second.state.message
    assert {r["vendor"] for r in second.result["tables"]} == {"canvas", "moodle"}
    shared = token(key, f"sis:{sis}")
    with duckdb.connect(str(second.serving), read_only=True) as con:
        vendors = con.execute(
            "SELECT DISTINCT vendor FROM enrollments WHERE person_token = ? ORDER BY 1", [shared]
        ).fetchall()
        people = con.execute(
            "SELECT vendor, count(*) FROM people WHERE person_token = ? GROUP BY 1 ORDER BY 1",
            [shared],
        ).fetchall()
    assert vendors == [("canvas",), ("moodle",)]
    assert people == [("canvas", 1), ("moodle", 1)]


class _Regraded(Institution):
    """After :meth:`regrade`, one student's grade on one assignment changes (``timemodified`` =
    the moment given, as Moodle stamps a regrade)."""

    changed: tuple[int, int, int, int] | None = None

    def regrade(self, at: int) -> tuple[int, int]:
        cid = self.course_ids()[0]
        spec = next(s for s in self.assign_specs(cid) if s.kind == "points")
        uid = next(u for u in self.student_ids(cid) if self.work(cid, spec, u).grade is not None)
        self.changed = (cid, spec.id, uid, at)
        return cid, spec.id

    def work(self, course_id, a, uid):
        w = super().work(course_id, a, uid)
        if self.changed is None or self.changed[:3] != (course_id, a.id, uid):
            return w
        grade = {**w.grade, "grade": grade_text(1.0), "timemodified": self.changed[3]}
        return StudentWork(w.submission, grade)


def test_incremental_gradebook_reads_only_assignments_changed_since(
    run_sync, tmp_path, hmac_key_hex
):
    inst = _inst(_Regraded)
    key = bytes.fromhex(hmac_key_hex)
    with MoodleEmulator(inst, settings=MoodleEmulatorSettings(token=TOKEN)) as emu:
        first = run_sync(emu.base_url, tmp_path, window=None, vendor="moodle", token=TOKEN,
                         quota=FAST)  # fmt: skip
        assert first.state.is_completed(), first.state.message
        course, assignment = inst.regrade(int(time.time()) - 1)
        second = run_sync(emu.base_url, tmp_path, window=None, vendor="moodle", token=TOKEN,
                          quota=FAST)  # fmt: skip
    assert second.state.is_completed(), second.state.message
    assert second.result["mode"] == "incremental"
    _assert_tables(second, inst, key)
    store = StagingStore(str(second.staging))
    gradebook = store.committed(institution="e2e-university", vendor="moodle",
                                window=second.result["window"], domain="gradebook")  # fmt: skip
    assert gradebook and all(set(m.partial) == {"grades", "submissions"} for m in gradebook)
    grades = store.scan("grades", gradebook).collect()
    # Only the regraded assignment was read again, and in full.
    assert set(grades["assignmentid"].to_list()) == {str(assignment)}
    assert grades.height == len(inst.grades(course, assignment))

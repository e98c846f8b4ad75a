"""The serving tables a correct sync must produce, computed from the emulator's Institution alone.

Nothing here runs the mapping, the normalizer or the loader: each expected row is built from the
Canvas JSON the Institution serves, following the rules ``connectors/canvas/mapping.py``
documents (and DESIGN.md), with tokens computed by ``hmac.new``. The actual rows are read from
DuckDB with every foreign key resolved through a join to the referenced table (so a dangling key
shows up as ``None``), timestamps rendered as UTC ``...Z`` text and floats rounded to 6 places.

Rules followed, as documented:

* people: one row per user with an enrollment in a loaded course; ``source_id`` = token of
  ``"canvas:" + user id``; ``person_token`` = token of ``"sis:" + SIS id`` if the user has one, else
  the canvas token; role = most senior enrollment type (teacher > ta > designer > student >
  observer), status = most current state (active > invited > completed > inactive > rejected >
  deleted; ``creation_pending`` counts as invited); grade level always null. Login and SIS ids
  come with every enrollment (embedded user); the email only from ``courses/:id/users``, which
  lists users whose enrollment state is active, invited, rejected, completed or inactive.
* enrollments: every state; a deleted enrollment is ``state = 'deleted'`` with ``deleted_at`` = its
  ``updated_at``; ``creation_pending`` → ``invited``.
* submissions: every submission of a published assignment; grade = ``entered_grade`` else ``grade``.
* course_grades: one row per student enrollment (every state), deleted ones soft-deleted as above.
* attendance: one ``present`` row on the UTC date of a student enrollment's ``last_attended_at``.
* attendance_rates: the Roll Call Attendance assignment's submissions; rate = score.
* engagement_daily: the course's page views of each student, per UTC day: count, participations,
  summed ``interaction_seconds``, latest ``created_at``; identity = enrollment id + day.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Iterable

import duckdb

from emulators.canvas.institution import Institution

__all__ = ["TABLES", "actual_tables", "expected_tables", "token"]

TABLES = (
    "terms",
    "courses",
    "sections",
    "people",
    "enrollments",
    "assignments",
    "submissions",
    "course_grades",
    "attendance",
    "attendance_rates",
    "engagement_daily",
)

_ROLE = {
    "StudentEnrollment": "student",
    "TeacherEnrollment": "teacher",
    "TaEnrollment": "ta",
    "DesignerEnrollment": "designer",
    "ObserverEnrollment": "observer",
}
_ROLE_RANK = ("teacher", "ta", "designer", "student", "observer", "other")
_STATE = {"creation_pending": "invited"}
_STATUS_RANK = ("active", "invited", "completed", "inactive", "rejected", "deleted")
_LISTED_USER_STATES = {"active", "invited", "rejected", "completed", "inactive"}
_ROLL_CALL = "Roll Call Attendance"


def token(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def _f(value: float | int | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _day(iso: str | None) -> str | None:
    return None if iso is None else iso[:10]


def _sorted(rows: Iterable[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


def expected_tables(
    inst: Institution, course_ids: list[int], key: bytes, *, key_version: str = "v1"
) -> dict[str, list[tuple]]:
    """Every canonical table's rows for a sync of ``course_ids`` (all domains loaded)."""
    out: dict[str, list[tuple]] = {t: [] for t in TABLES}

    def person(user_id: int, sis: str | None) -> str:
        return token(key, f"sis:{sis}") if sis else token(key, f"canvas:{user_id}")

    terms: dict[int, tuple] = {}
    people: dict[int, dict] = {}
    for cid in course_ids:
        course = inst.course(cid, include_term=True)
        term = course["term"]
        terms[term["id"]] = (
            str(term["id"]),
            term["name"],
            term["sis_term_id"],
            term["start_at"],
            term["end_at"],
            None,
        )
        out["courses"].append(
            (
                str(cid),
                str(term["id"]),
                course["name"],
                course["course_code"],
                course["sis_course_id"],
                course["workflow_state"],
                course["start_at"],
                course["end_at"],
                course["time_zone"],
                None,  # school: Canvas has none
                None,
            )
        )
        for s in inst.sections(cid):
            out["sections"].append(
                (str(s["id"]), str(cid), s["name"], s["sis_section_id"], None, None, None)
            )

        listed = {u["id"]: u for u in inst.users(cid)}
        enrollments = inst.enrollments(cid)
        student_enrollment: dict[int, dict] = {}
        for e in enrollments:
            user = e["user"]
            sis = user["sis_user_id"]
            role = _ROLE[e["type"]]
            state = _STATE.get(e["enrollment_state"], e["enrollment_state"])
            tok = person(e["user_id"], sis)
            p = people.setdefault(
                e["user_id"],
                {"sis": sis, "login": user["login_id"], "email": None, "roles": [], "states": []},
            )
            p["roles"].append(role)
            p["states"].append(state)
            if e["user_id"] in listed:
                p["email"] = listed[e["user_id"]]["email"]
            deleted_at = e["updated_at"] if state == "deleted" else None
            out["enrollments"].append(
                (
                    str(e["id"]),
                    str(cid),
                    str(e["course_section_id"]),
                    tok,
                    tok,
                    role,
                    state,
                    e["start_at"],
                    e["end_at"],
                    e["last_activity_at"],
                    e["total_activity_time"],
                    None,  # is_primary: Canvas has no primary-teacher flag
                    deleted_at,
                )
            )
            if e["type"] != "StudentEnrollment":
                continue
            student_enrollment[e["user_id"]] = e
            g = e["grades"]
            out["course_grades"].append(
                (
                    str(e["id"]),
                    str(cid),
                    str(e["id"]),
                    tok,
                    tok,
                    _f(g["current_score"]),
                    _f(g["final_score"]),
                    g["current_grade"],
                    g["final_grade"],
                    deleted_at,
                )
            )
            if e["last_attended_at"] is not None:
                day = _day(e["last_attended_at"])
                out["attendance"].append(
                    (
                        f"{e['id']}:{day}",
                        str(cid),
                        tok,
                        tok,
                        day,
                        "present",
                        "canvas.last_attended_at",
                    )
                )

        assignments = inst.assignments(cid)
        for a in assignments:
            out["assignments"].append(
                (
                    str(a["id"]),
                    str(cid),
                    a["name"],
                    _f(a["points_possible"]),
                    a["due_at"],
                    a["grading_type"],
                    a["published"],
                    False,
                    None,
                )
            )
        roll_call = {a["id"] for a in assignments if a["name"] == _ROLL_CALL}
        sis_of = {e["user_id"]: e["user"]["sis_user_id"] for e in enrollments}
        for sub in inst.iter_submissions(cid):
            tok = person(sub["user_id"], sis_of[sub["user_id"]])
            grade = sub["entered_grade"] if sub["entered_grade"] is not None else sub["grade"]
            out["submissions"].append(
                (
                    str(sub["id"]),
                    str(cid),
                    str(sub["assignment_id"]),
                    tok,
                    tok,
                    _f(sub["score"]),
                    grade,
                    sub["workflow_state"],
                    sub["submitted_at"],
                    sub["graded_at"],
                    sub["late"],
                    sub["missing"],
                    sub["excused"],
                    sub["attempt"],
                    None,  # passed: Canvas has no pass mark
                    None,
                )
            )
            if sub["assignment_id"] in roll_call:
                out["attendance_rates"].append(
                    (
                        str(sub["id"]),
                        str(cid),
                        tok,
                        tok,
                        _f(sub["score"]),
                        grade,
                        sub["graded_at"],
                        "canvas.rollcall",
                        None,
                    )
                )

        daily: dict[tuple[int, str], list[dict]] = defaultdict(list)
        for user_id in student_enrollment:
            for view in inst.page_views(user_id):
                if view["context_type"] == "Course" and view["links"]["context"] == cid:
                    daily[(user_id, _day(view["created_at"]))].append(view)
        for (user_id, day), views in daily.items():
            e = student_enrollment[user_id]
            tok = person(user_id, e["user"]["sis_user_id"])
            out["engagement_daily"].append(
                (
                    f"{e['id']}:{day}",
                    str(cid),
                    str(e["id"]),
                    tok,
                    tok,
                    day,
                    len(views),
                    sum(1 for v in views if v["participated"]),
                    _f(sum(v["interaction_seconds"] for v in views)),
                    max(v["created_at"] for v in views),
                )
            )

    out["terms"] = list(terms.values())
    for user_id, p in people.items():
        canvas = token(key, f"canvas:{user_id}")
        out["people"].append(
            (
                canvas,
                token(key, f"sis:{p['sis']}") if p["sis"] else canvas,
                token(key, f"sis:{p['sis']}") if p["sis"] else None,
                token(key, f"login:{p['login']}") if p["login"] else None,
                token(key, f"email:{p['email'].strip().lower()}") if p["email"] else None,
                key_version,
                min(p["roles"], key=_ROLE_RANK.index),
                None,
                min(p["states"], key=_STATUS_RANK.index),
                None,
            )
        )
    return {t: _sorted(rows) for t, rows in out.items()}


def _ts(col: str) -> str:
    return f"strftime(timezone('UTC', {col}), '%Y-%m-%dT%H:%M:%SZ')"


def _day_sql(col: str) -> str:
    return f"strftime({col}, '%Y-%m-%d')"


def _round(col: str) -> str:
    return f"round({col}, 6)"


def _person(alias: str = "x") -> str:
    """The row's person_token, then the token of the people row its person_key points at."""
    return (
        f"{alias}.person_token, "
        f"(SELECT p.person_token FROM people p WHERE p.person_key = {alias}.person_key)"
    )


def _course(alias: str = "x") -> str:
    return f"(SELECT c.source_id FROM courses c WHERE c.course_key = {alias}.course_key)"


_ACTUAL_SQL = {
    "terms": f"""SELECT source_id, name, sis_term_id, {_ts("start_at")}, {_ts("end_at")},
        {_ts("deleted_at")} FROM terms""",
    "courses": f"""SELECT x.source_id,
        (SELECT t.source_id FROM terms t WHERE t.term_key = x.term_key),
        x.name, x.course_code, x.sis_course_id, x.state, {_ts("x.start_at")}, {_ts("x.end_at")},
        x.time_zone,
        (SELECT s.source_id FROM schools s WHERE s.school_key = x.school_key),
        {_ts("x.deleted_at")} FROM courses x""",
    "sections": f"""SELECT x.source_id, {_course()}, x.name, x.sis_section_id,
        {_ts("x.start_at")}, {_ts("x.end_at")}, {_ts("x.deleted_at")} FROM sections x""",
    "people": f"""SELECT source_id, person_token, sis_id_token, login_id_token, email_token,
        token_key_version, role, grade_level, status, {_ts("deleted_at")} FROM people""",
    "enrollments": f"""SELECT x.source_id, {_course()},
        (SELECT s.source_id FROM sections s WHERE s.section_key = x.section_key),
        {_person()}, x.role, x.state, {_ts("x.start_at")}, {_ts("x.end_at")},
        {_ts("x.last_activity_at")}, x.total_activity_seconds, x.is_primary,
        {_ts("x.deleted_at")} FROM enrollments x""",
    "assignments": f"""SELECT x.source_id, {_course()}, x.title, {_round("x.points_possible")},
        {_ts("x.due_at")}, x.grading_type, x.published, x.extra_credit_allowed,
        {_ts("x.deleted_at")} FROM assignments x""",
    "submissions": f"""SELECT x.source_id, {_course()},
        (SELECT a.source_id FROM assignments a WHERE a.assignment_key = x.assignment_key),
        {_person()}, {_round("x.score")}, x.grade, x.status, {_ts("x.submitted_at")},
        {_ts("x.graded_at")}, x.late, x.missing, x.excused, x.attempt, x.passed,
        {_ts("x.deleted_at")} FROM submissions x""",
    "course_grades": f"""SELECT x.source_id, {_course()},
        (SELECT e.source_id FROM enrollments e WHERE e.enrollment_key = x.enrollment_key),
        {_person()}, {_round("x.current_score")}, {_round("x.final_score")}, x.current_grade,
        x.final_grade, {_ts("x.deleted_at")} FROM course_grades x""",
    "attendance": f"""SELECT x.source_id, {_course()}, {_person()}, {_day_sql("x.session_date")},
        x.status, x.source FROM attendance x""",
    "attendance_rates": f"""SELECT x.source_id, {_course()}, {_person()},
        {_round("x.rate_percent")}, x.grade, {_ts("x.graded_at")}, x.source, {_ts("x.deleted_at")}
        FROM attendance_rates x""",
    "engagement_daily": f"""SELECT x.source_id, {_course()},
        (SELECT e.source_id FROM enrollments e WHERE e.enrollment_key = x.enrollment_key),
        {_person()}, {_day_sql("x.day")}, x.page_views, x.participations,
        {_round("x.active_seconds")}, {_ts("x.last_access_at")} FROM engagement_daily x""",
    # Tables no Canvas sync fills (OneRoster schools, Moodle activity completion).
    "schools": f"""SELECT x.source_id, x.name, x.type, x.identifier,
        (SELECT s.source_id FROM schools s WHERE s.school_key = x.parent_school_key),
        {_ts("x.deleted_at")} FROM schools x""",
    "activity_completion": f"""SELECT x.source_id, {_course()},
        (SELECT e.source_id FROM enrollments e WHERE e.enrollment_key = x.enrollment_key),
        {_person()}, x.activity_id, x.module_type, x.state, {_ts("x.completed_at")}, x.tracking,
        {_ts("x.deleted_at")} FROM activity_completion x""",
}


def actual_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every canonical table's rows in the same shape as :func:`expected_tables` (plus the
    tables a Canvas sync leaves empty, for the other vendors' tests)."""
    return {t: _sorted(con.execute(sql).fetchall()) for t, sql in _ACTUAL_SQL.items()}


def table_dump_digest(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, str]:
    """(row count, sha256 of every column of every row, rows in a total order)."""
    cols = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
    order = ", ".join(f'"{c}"::VARCHAR NULLS FIRST' for c in cols)
    digest = hashlib.sha256()
    rows = con.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()
    for row in rows:
        digest.update(repr(row).encode("utf-8"))
        digest.update(b"\n")
    return len(rows), digest.hexdigest()

"""Moodle → canonical model, as data: one TableMap per canonical table.

Input: the staged streams of ``connectors/moodle/endpoints.py`` (text columns). Moodle times are
unix seconds (moodle-api.md §2) and 0 means "none" (``duedate`` §3.6, ``lastcourseaccess``
blackboard-moodle-attendance.md §2b); :func:`_epoch` turns them into UTC ISO text that the shared
``Parse`` grammar types — text that is not a number passes through unchanged, so it is flagged
(rule ``type``) rather than hidden.

What Moodle does not have, and why it is null:

* ``terms`` — Moodle has no terms (categories are not terms): no rows; ``courses.term_id`` null.
* ``sections`` — Moodle groups are not sections: no rows; ``enrollments.section_id`` null.
* ``people.grade_level`` — no grade level in Moodle user records: null.
* ``courses.state`` — ``visible`` 1 → available, 0 → unpublished; Moodle has no concluded or
  deleted state in ``core_course_get_courses``. ``time_zone`` null (courses carry none).
* ``enrollments`` — Moodle exposes no enrolment id, state or dates here (§3.3): the id is
  ``<course>:<user>``; state is ``active`` if the user is in the ``onlyactive=1`` list, else
  ``inactive`` (suspended or outside its dates); an unenrolled user is absent from the full
  roster and soft-deleted by the loader (full roster comparison). ``last_activity_at`` =
  ``lastcourseaccess``; ``total_activity_seconds`` null (no web service reports it).
* ``people.role`` — the most senior role shortname: manager → admin, editingteacher → teacher,
  teacher (non-editing) → ta, coursecreator → designer, student → student, guest → other;
  status = active if any enrolment is active, else inactive.
* ``assignments`` — ``grade`` > 0 is points possible; < 0 is a scale (moodle-api.md §3.6, §6):
  ``grading_type`` "scale", points null; 0 is "not_graded". ``published`` true (the function
  lists only assignments the token can see). ``extra_credit_allowed`` false.
* ``submissions`` — a submission row (§3.8) joined to its grade (§3.7) and its grade-report item
  (§3.5). ``score`` = the grade (for a scale, the item's index, as Moodle stores it); ``grade`` =
  the text the grade report shows — the scale label, or the number with the pass/fail icon's HTML
  removed (§3.5, §6). ``status``: graded when ``gradingstatus`` is graded and a grade exists, else
  submitted when ``status`` is submitted, else unsubmitted (draft and "new"). ``submitted_at`` =
  ``timemodified`` of a submitted row; ``late`` when that is after a non-zero due date;
  ``missing``/``excused`` null (Moodle has neither flag); ``attempt`` = ``attemptnumber`` + 1.
  ``passed`` — pass/fail against the item's grade to pass, as Moodle itself evaluates it: the web
  services expose no ``gradepass`` number, only the pass/fail icon the grade report puts in
  ``gradeformatted`` when the item has a grade to pass (``title="Pass"`` → true, ``title="Fail"``
  → false, §3.5); no icon (no grade to pass, or no grade yet) → null.
* ``course_grades`` — the grade report's course-total item (``itemtype`` course, §3.5):
  ``current_*`` = its raw value and formatted text; Moodle has one total, so ``final_*`` null.
* ``attendance`` — one row per mod_attendance log entry (blackboard-moodle-attendance.md §2a),
  status by acronym P/L/E/A → present/late/excused/absent (an unknown acronym passes through
  and is quarantined by the enum rule); ``session_date`` the UTC date of ``sessdate``; unmarked
  students have no log row, so no row.
* ``engagement_daily`` — Moodle's web services expose no page views or time spent (§2b: no
  logstore function): one row per student enrolment on the UTC day of ``lastcourseaccess``, with
  ``last_access_at``; views, participations and seconds null.
* ``activity_completion`` — one row per student × tracked activity
  (``core_completion_get_activities_completion_status``, §3.9): ``activity_id`` = ``cmid``,
  ``module_type`` = ``modname``, state 0/1/2/3 → incomplete/complete/complete_pass/complete_fail
  (anything else passes through and the enum rule quarantines it), ``completed_at`` =
  ``timecompleted`` (0 → null), tracking 0/1/2 → none/manual/automatic. Identity =
  ``<course>:<user>:<cmid>``; a student who leaves the course loses their rows (full comparison).
"""

from __future__ import annotations

import polars as pl

from transforms.mapping import (
    PERSON_IDENTIFIER_AGGS,
    Aggregate,
    Join,
    Parse,
    TableMap,
    VendorMapping,
    people_columns,
    ranked_first,
)

__all__ = ["MOODLE", "moodle_mapping"]

VENDOR = "moodle"
COURSE = pl.col("_course_id")

# Role shortnames → canonical roles, most senior first.
ROLE_BY_SHORTNAME = (
    ("manager", "admin"),
    ("editingteacher", "teacher"),
    ("teacher", "ta"),
    ("coursecreator", "designer"),
    ("student", "student"),
    ("guest", "other"),
)
ROLE_RANK = {"admin": 0, "teacher": 1, "ta": 2, "designer": 3, "student": 4, "other": 5}
ATTENDANCE_BY_ACRONYM = {"P": "present", "L": "late", "E": "excused", "A": "absent"}
COMPLETION_STATE = {"0": "incomplete", "1": "complete", "2": "complete_pass", "3": "complete_fail"}
COMPLETION_TRACKING = {"0": "none", "1": "manual", "2": "automatic"}


def _epoch(col: str) -> pl.Expr:
    """Unix seconds text → ``YYYY-MM-DDTHH:MM:SSZ``; "0" and null → null; other text unchanged."""
    s = pl.col(col).cast(pl.String).str.strip_chars()
    n = s.cast(pl.Int64, strict=False)
    iso = pl.from_epoch(n, time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        pl.when(s.is_null() | (s == "0") | (s == ""))
        .then(pl.lit(None, pl.String))
        .when(n.is_not_null())
        .then(iso)
        .otherwise(s)
    )


def _role(col: str) -> pl.Expr:
    """The most senior role in a staged ``roles`` JSON array; an unknown one passes through (so
    the enum rule quarantines it)."""
    expr = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
    for shortname, role in ROLE_BY_SHORTNAME:
        expr = expr.when(pl.col(col).str.contains(f'"shortname":"{shortname}"', literal=True))
        expr = expr.then(pl.lit(role))
    return expr.otherwise(pl.col(col).str.extract(r'"shortname":"([^"]*)"', 1))


def _nonempty(col: str) -> pl.Expr:
    s = pl.col(col)
    return pl.when(s == "").then(None).otherwise(s)


def _shown(col: str) -> pl.Expr:
    """A grade-report text as shown, HTML removed (§3.5: pass/fail icon); "-" means no grade."""
    s = pl.col(col).str.replace_all(r"<[^>]*>", "").str.strip_chars()
    return pl.when((s == "-") | (s == "")).then(None).otherwise(s)


def _passed(col: str) -> pl.Expr:
    """The grade report's pass/fail icon (§3.5) → true/false; no icon → null."""
    s = pl.col(col)
    return (
        pl.when(s.str.contains('title="Pass"', literal=True))
        .then(pl.lit(True))
        .when(s.str.contains('title="Fail"', literal=True))
        .then(pl.lit(False))
        .otherwise(pl.lit(None, pl.Boolean))
    )


def _enrolment_id(user: str) -> pl.Expr:
    return pl.concat_str([COURSE, pl.col(user)], separator=":")


def _state() -> pl.Expr:
    return (
        pl.when(pl.col("is_active").is_not_null())
        .then(pl.lit("active"))
        .otherwise(pl.lit("inactive"))
    )


_ACTIVE = Join(
    stream="active_users",
    on=(("id", "id"), ("_course_id", "_course_id")),
    columns={"is_active": pl.lit("1")},
)


def moodle_mapping() -> VendorMapping:
    tables = (
        TableMap(
            table="courses",
            domain="roster",
            stream="course",
            columns={
                "source_id": pl.col("id"),
                "term_id": pl.lit(None, pl.String),  # Moodle has no terms
                "name": pl.col("fullname"),
                "course_code": pl.col("shortname"),
                "sis_course_id": _nonempty("idnumber"),
                "state": pl.when(pl.col("visible") == "0")
                .then(pl.lit("unpublished"))
                .when(pl.col("visible") == "1")
                .then(pl.lit("available"))
                .otherwise(pl.col("visible")),
                "start_at": Parse(_epoch("startdate"), "timestamp"),
                "end_at": Parse(_epoch("enddate"), "timestamp"),
                "time_zone": pl.lit(None, pl.String),
            },
        ),
        TableMap(
            table="people",
            domain="roster",
            stream="enrolled_users",
            joins=(_ACTIVE,),
            aggregate=Aggregate(
                by={"user_id": pl.col("id")},
                pre={
                    "role": _role("roles"),
                    "status": _state(),
                    "sis": _nonempty("idnumber"),
                    "login": _nonempty("username"),
                    "mail": _nonempty("email"),
                },
                aggs={
                    "role": ranked_first("role", ROLE_RANK),
                    "status": pl.col("status").min(),  # "active" < "inactive"
                    **PERSON_IDENTIFIER_AGGS,
                },
            ),
            # Moodle has no grade level.
            columns=people_columns(grade_level=pl.lit(None, pl.Int32)),
        ),
        TableMap(
            table="enrollments",
            domain="roster",
            stream="enrolled_users",
            joins=(_ACTIVE,),
            columns={
                "source_id": _enrolment_id("id"),
                "course_id": COURSE,
                "section_id": pl.lit(None, pl.String),  # Moodle has no sections
                "user_id": pl.col("id"),
                "role": _role("roles"),
                "state": _state(),
                "start_at": pl.lit(None, pl.Datetime("us", "UTC")),
                "end_at": pl.lit(None, pl.Datetime("us", "UTC")),
                "last_activity_at": Parse(_epoch("lastcourseaccess"), "timestamp"),
                "total_activity_seconds": pl.lit(None, pl.Int64),
            },
        ),
        TableMap(
            table="assignments",
            domain="gradebook",
            stream="assignments",
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "title": pl.col("name"),
                "points_possible": Parse(
                    pl.when(pl.col("grade").cast(pl.Int64, strict=False) <= 0)
                    .then(pl.lit(None, pl.String))
                    .otherwise(pl.col("grade")),
                    "float",
                ),
                "due_at": Parse(_epoch("duedate"), "timestamp"),
                "grading_type": pl.when(pl.col("grade").cast(pl.Int64, strict=False) < 0)
                .then(pl.lit("scale"))
                .when(pl.col("grade").cast(pl.Int64, strict=False) == 0)
                .then(pl.lit("not_graded"))
                .otherwise(pl.lit("points")),
                "published": pl.lit(True),
                "extra_credit_allowed": pl.lit(False),
            },
        ),
        TableMap(
            table="submissions",
            domain="gradebook",
            stream="submissions",
            joins=(
                Join(
                    stream="grades",
                    on=(("assignmentid", "assignmentid"), ("userid", "userid")),
                    columns={"g_grade": pl.col("grade"), "g_time": pl.col("timemodified")},
                ),
                Join(
                    stream="grade_items",
                    on=(("assignmentid", "iteminstance"), ("userid", "userid")),
                    columns={"shown": pl.col("gradeformatted")},
                    filter=pl.col("itemmodule") == "assign",
                ),
                Join(
                    stream="assignments",
                    on=(("assignmentid", "id"),),
                    columns={"duedate": pl.col("duedate")},
                ),
            ),
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "assignment_id": pl.col("assignmentid"),
                "user_id": pl.col("userid"),
                "score": Parse(pl.col("g_grade"), "float"),
                "grade": _shown("shown"),
                "status": pl.when(
                    (pl.col("gradingstatus") == "graded") & pl.col("g_grade").is_not_null()
                )
                .then(pl.lit("graded"))
                .when(pl.col("status") == "submitted")
                .then(pl.lit("submitted"))
                .when(pl.col("status").is_in(["draft", "new", "reopened"]))
                .then(pl.lit("unsubmitted"))
                .otherwise(pl.col("status")),
                "submitted_at": Parse(
                    pl.when(pl.col("status") == "submitted").then(_epoch("timemodified")),
                    "timestamp",
                ),
                "graded_at": Parse(_epoch("g_time"), "timestamp"),
                "late": (pl.col("status") == "submitted")
                & (pl.col("duedate").cast(pl.Int64, strict=False) > 0)
                & (
                    pl.col("timemodified").cast(pl.Int64, strict=False)
                    > pl.col("duedate").cast(pl.Int64, strict=False)
                ),
                "missing": pl.lit(None, pl.Boolean),
                "excused": pl.lit(None, pl.Boolean),
                "attempt": Parse(
                    (pl.col("attemptnumber").cast(pl.Int64, strict=False) + 1).cast(pl.String),
                    "int",
                ),
                "passed": _passed("shown"),
            },
        ),
        TableMap(
            table="course_grades",
            domain="gradebook",
            stream="grade_items",
            filter=pl.col("itemtype") == "course",
            columns={
                "source_id": _enrolment_id("userid"),
                "course_id": COURSE,
                "enrollment_id": _enrolment_id("userid"),
                "user_id": pl.col("userid"),
                "current_score": Parse(pl.col("graderaw"), "float"),
                "final_score": pl.lit(None, pl.Float64),
                "current_grade": _shown("gradeformatted"),
                "final_grade": pl.lit(None, pl.String),
            },
        ),
        TableMap(
            table="attendance",
            domain="attendance",
            stream="attendance_log",
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "user_id": pl.col("studentid"),
                "session_date": Parse(_epoch("sessdate"), "date"),
                "status": pl.col("acronym").replace(ATTENDANCE_BY_ACRONYM),
                "source": pl.lit("moodle.mod_attendance"),
            },
        ),
        TableMap(
            table="engagement_daily",
            domain="engagement",
            stream="enrolment_activity",
            filter=(pl.col("lastcourseaccess") != "0")
            & pl.col("roles").str.contains('"shortname":"student"', literal=True),
            columns={
                "source_id": pl.concat_str(
                    [
                        _enrolment_id("id"),
                        pl.from_epoch(
                            pl.col("lastcourseaccess").cast(pl.Int64, strict=False)
                        ).dt.strftime("%Y-%m-%d"),
                    ],
                    separator=":",
                ),
                "course_id": COURSE,
                "enrollment_id": _enrolment_id("id"),
                "user_id": pl.col("id"),
                "day": Parse(_epoch("lastcourseaccess"), "date"),
                "page_views": pl.lit(None, pl.Int64),
                "participations": pl.lit(None, pl.Int64),
                "active_seconds": pl.lit(None, pl.Float64),
                "last_access_at": Parse(_epoch("lastcourseaccess"), "timestamp"),
            },
        ),
        TableMap(
            table="activity_completion",
            domain="engagement",
            stream="completion",
            columns={
                "source_id": pl.concat_str(
                    [_enrolment_id("userid"), pl.col("cmid")], separator=":"
                ),
                "course_id": COURSE,
                "enrollment_id": _enrolment_id("userid"),
                "user_id": pl.col("userid"),
                "activity_id": pl.col("cmid"),
                "module_type": pl.col("modname"),
                "state": pl.col("state").replace(COMPLETION_STATE),
                "completed_at": Parse(_epoch("timecompleted"), "timestamp"),
                "tracking": pl.col("tracking").replace(COMPLETION_TRACKING),
            },
        ),
    )
    return VendorMapping(vendor=VENDOR, tables=tables)


MOODLE = moodle_mapping()

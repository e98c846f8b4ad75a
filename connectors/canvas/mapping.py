"""Canvas → canonical model, as data: one TableMap per canonical table.

Input: the staged streams of ``connectors/canvas/endpoints.py`` (string columns, ``.`` → ``__``).
Ids are kept as text exactly as staged, so ids that Canvas serves as JSON strings ("3589026") and as
numbers (3589026) both work. Course-scoped rows take their course from the partition
(``_course_id``), which is also what soft deletion is scoped by.

What Canvas does not have, and why it is null or a parameter:

* ``people.grade_level`` — Canvas has no grade level on users or enrollments: always null.
* ``assignments.extra_credit_allowed`` — Canvas has no per-assignment extra-credit flag (scores
  above ``points_possible`` are always accepted). The mapping parameter ``extra_credit_allowed``
  (default False) sets it for every assignment: False makes an over-range score a quarantined
  ``range`` error, True lets it load.
* ``attendance`` — Canvas holds no per-session attendance. The honest mapping: one ``present`` row
  on the UTC date of an enrollment's ``last_attended_at`` (source ``canvas.last_attended_at``); Roll
  Call's per-student percentage (its "Roll Call Attendance" assignment score; the assignment has
  100 points, so the score *is* the percent) goes to ``attendance_rates``, never expanded into
  invented session rows.
* ``engagement_daily`` — from ``page_views`` of the course (``links.context`` = course id and
  ``context_type`` = Course), per UTC day: views, participations (``participated`` true), active
  seconds (sum of ``interaction_seconds``), last access; joined to ``enrollment_activity`` for the
  student's enrollment (row identity = enrollment id + day; a page view user with no student
  enrollment in the course has no identity and is quarantined). ``student_summaries`` holds only
  course-to-date totals, so it is not mapped to a daily table.
* ``submissions.grade`` is the grade as entered (``entered_grade``, falling back to ``grade`` on
  older Canvas); ``score`` is Canvas's ``score`` (after late-policy deductions).
* ``people.role``/``status``: a person's role is their most senior enrollment type among the loaded
  courses (teacher > ta > designer > student > observer); status is their most current enrollment
  state (active > invited > completed > inactive > rejected > deleted). Per-course role and state
  live on ``enrollments``.
"""

from __future__ import annotations

import polars as pl

from connectors.canvas.endpoints import ROLL_CALL_ASSIGNMENT_NAME
from transforms.mapping import (
    PERSON_IDENTIFIER_AGGS,
    Aggregate,
    Join,
    Parse,
    TableMap,
    VendorMapping,
    boolean,
    integer,
    num,
    parse_date,
    parse_timestamp,
    people_columns,
    ranked_first,
    ts,
)

__all__ = ["CANVAS", "canvas_mapping"]

VENDOR = "canvas"

ROLE_BY_TYPE = {
    "StudentEnrollment": "student",
    "TeacherEnrollment": "teacher",
    "TaEnrollment": "ta",
    "DesignerEnrollment": "designer",
    "ObserverEnrollment": "observer",
    "StudentViewEnrollment": "other",  # Canvas's "Test Student"
}
ROLE_RANK = {"teacher": 0, "ta": 1, "designer": 2, "student": 3, "observer": 4, "other": 5}

STATE_BY_ENROLLMENT_STATE = {
    "active": "active",
    "invited": "invited",
    "creation_pending": "invited",
    "completed": "completed",
    "inactive": "inactive",
    "rejected": "rejected",
    "deleted": "deleted",
}
STATUS_RANK = {
    "active": 0,
    "invited": 1,
    "completed": 2,
    "inactive": 3,
    "rejected": 4,
    "deleted": 5,
}

COURSE = pl.col("_course_id")


def _role(col: str) -> pl.Expr:
    # Unknown types pass through unchanged, so the enum rule quarantines them (schema drift).
    return pl.col(col).replace(ROLE_BY_TYPE)


def _state(col: str) -> pl.Expr:
    return pl.col(col).replace(STATE_BY_ENROLLMENT_STATE)


def _deleted_when(state: pl.Expr, at: pl.Expr) -> pl.Expr:
    """Vendor-side deletion: the record's own update time (else its fetch time), so a re-run of
    the same staging writes the same value."""
    return pl.when(state == "deleted").then(pl.coalesce(at, pl.col("_fetched_at")))


def canvas_mapping(*, extra_credit_allowed: bool = False) -> VendorMapping:
    tables = (
        TableMap(
            table="terms",
            domain="roster",
            stream="course",
            columns={
                "source_id": pl.coalesce(pl.col("term__id"), pl.col("enrollment_term_id")),
                "name": pl.col("term__name"),
                "sis_term_id": pl.col("term__sis_term_id"),
                "start_at": ts("term__start_at"),
                "end_at": ts("term__end_at"),
            },
        ),
        TableMap(
            table="courses",
            domain="roster",
            stream="course",
            columns={
                "source_id": pl.col("id"),
                "term_id": pl.coalesce(pl.col("term__id"), pl.col("enrollment_term_id")),
                "name": pl.col("name"),
                "course_code": pl.col("course_code"),
                "sis_course_id": pl.col("sis_course_id"),
                "state": pl.col("workflow_state"),
                "start_at": ts("start_at"),
                "end_at": ts("end_at"),
                "time_zone": pl.col("time_zone"),
                "deleted_at": _deleted_when(
                    pl.col("workflow_state"), pl.lit(None, pl.Datetime("us", "UTC"))
                ),
            },
        ),
        TableMap(
            table="sections",
            domain="roster",
            stream="sections",
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "name": pl.col("name"),
                "sis_section_id": pl.col("sis_section_id"),
                "start_at": ts("start_at"),
                "end_at": ts("end_at"),
            },
        ),
        TableMap(
            table="people",
            domain="roster",
            stream="enrollments",
            joins=(
                Join(
                    stream="users",
                    on=(("user_id", "id"),),
                    columns={
                        "u_sis_user_id": pl.col("sis_user_id"),
                        "u_login_id": pl.col("login_id"),
                        "u_email": pl.col("email"),
                    },
                ),
            ),
            aggregate=Aggregate(
                by={"user_id": pl.col("user_id")},
                pre={
                    "role": _role("type"),
                    "status": _state("enrollment_state"),
                    "sis": pl.coalesce("u_sis_user_id", "user__sis_user_id", "sis_user_id"),
                    "login": pl.coalesce("u_login_id", "user__login_id"),
                    "mail": pl.col("u_email"),
                },
                aggs={
                    "role": ranked_first("role", ROLE_RANK),
                    "status": ranked_first("status", STATUS_RANK),
                    **PERSON_IDENTIFIER_AGGS,
                },
            ),
            # Canvas has no grade level on users or enrollments.
            columns=people_columns(grade_level=pl.lit(None, pl.Int32)),
        ),
        TableMap(
            table="enrollments",
            domain="roster",
            stream="enrollments",
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "section_id": pl.col("course_section_id"),
                "user_id": pl.col("user_id"),
                "role": _role("type"),
                "state": _state("enrollment_state"),
                "start_at": ts("start_at"),
                "end_at": ts("end_at"),
                "last_activity_at": ts("last_activity_at"),
                "total_activity_seconds": integer("total_activity_time"),
                "deleted_at": _deleted_when(
                    pl.col("enrollment_state"), parse_timestamp(pl.col("updated_at"))
                ),
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
                "points_possible": num("points_possible"),
                "due_at": ts("due_at"),
                "grading_type": pl.col("grading_type"),
                "published": boolean("published"),
                "extra_credit_allowed": pl.lit(extra_credit_allowed),
            },
        ),
        TableMap(
            table="submissions",
            domain="gradebook",
            stream="submissions",
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "assignment_id": pl.col("assignment_id"),
                "user_id": pl.col("user_id"),
                "score": num("score"),
                "grade": pl.coalesce(pl.col("entered_grade"), pl.col("grade")),
                "status": pl.col("workflow_state"),
                "submitted_at": ts("submitted_at"),
                "graded_at": ts("graded_at"),
                "late": boolean("late"),
                "missing": boolean("missing"),
                "excused": boolean("excused"),
                "attempt": integer("attempt"),
            },
        ),
        TableMap(
            table="course_grades",
            domain="gradebook",
            stream="course_grades",
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "enrollment_id": pl.col("id"),
                "user_id": pl.col("user_id"),
                "current_score": num("grades__current_score"),
                "final_score": num("grades__final_score"),
                "current_grade": pl.col("grades__current_grade"),
                "final_grade": pl.col("grades__final_grade"),
                "deleted_at": _deleted_when(
                    pl.col("enrollment_state"), parse_timestamp(pl.col("updated_at"))
                ),
            },
        ),
        TableMap(
            table="attendance",
            domain="attendance",
            stream="last_attended",
            filter=pl.col("last_attended_at").is_not_null(),
            columns={
                "source_id": pl.concat_str(
                    [pl.col("id"), parse_date(pl.col("last_attended_at")).cast(pl.String)],
                    separator=":",
                ),
                "course_id": COURSE,
                "user_id": pl.col("user_id"),
                "session_date": Parse(pl.col("last_attended_at"), "date"),
                "status": pl.lit("present"),
                "source": pl.lit("canvas.last_attended_at"),
            },
        ),
        TableMap(
            table="attendance_rates",
            domain="attendance",
            stream="rollcall_submissions",
            # Keep only the Roll Call assignment's submissions when the assignments stream is
            # staged in the same run; otherwise the stream is taken as already restricted to it.
            joins=(
                Join(
                    stream="assignments",
                    on=(("assignment_id", "id"), ("_course_id", "_course_id")),
                    how="semi",
                    filter=pl.col("name") == ROLL_CALL_ASSIGNMENT_NAME,
                ),
            ),
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "user_id": pl.col("user_id"),
                "rate_percent": num("score"),
                "grade": pl.coalesce(pl.col("entered_grade"), pl.col("grade")),
                "graded_at": ts("graded_at"),
                "source": pl.lit("canvas.rollcall"),
            },
        ),
        TableMap(
            table="engagement_daily",
            domain="engagement",
            stream="page_views",
            filter=(pl.col("links__context") == pl.col("_course_id"))
            & (pl.col("context_type") == "Course"),
            joins=(
                Join(
                    stream="enrollment_activity",
                    on=(("links__user", "user_id"), ("_course_id", "_course_id")),
                    columns={"enrollment_id": pl.col("id")},
                ),
            ),
            aggregate=Aggregate(
                by={
                    "course_id": COURSE,
                    "user_id": pl.col("links__user"),
                    "enrollment_id": pl.col("enrollment_id"),
                    "day": Parse(pl.col("created_at"), "date"),
                },
                pre={
                    "seconds": num("interaction_seconds"),
                    "participated": boolean("participated"),
                    "at": ts("created_at"),
                },
                aggs={
                    "page_views": pl.len().cast(pl.Int64),
                    "participations": pl.col("participated").sum().cast(pl.Int64),
                    "active_seconds": pl.col("seconds").sum(),
                    "last_access_at": pl.col("at").max(),
                },
            ),
            columns={
                "source_id": pl.concat_str(
                    [pl.col("enrollment_id"), pl.col("day").cast(pl.String)], separator=":"
                ),
                "course_id": pl.col("course_id"),
                "enrollment_id": pl.col("enrollment_id"),
                "user_id": pl.col("user_id"),
                "day": pl.col("day"),
                "page_views": pl.col("page_views"),
                "participations": pl.col("participations"),
                "active_seconds": pl.col("active_seconds"),
                "last_access_at": pl.col("last_access_at"),
            },
        ),
    )
    return VendorMapping(
        vendor=VENDOR, tables=tables, params={"extra_credit_allowed": extra_credit_allowed}
    )


CANVAS = canvas_mapping()

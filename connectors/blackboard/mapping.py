"""Blackboard Learn → canonical model, as data: one TableMap per canonical table.

Input: the staged streams of ``connectors/blackboard/endpoints.py`` (text columns, ``.`` → ``__``).
Field meanings follow blackboard-learn-openapi.json (CourseV2, CourseMembership + User,
GradeColumnV2, GradeV2, CourseMeeting, AttendanceRecord). Course-scoped rows take their course from
the partition (``_course_id``, Learn's primary course id ``_123_1``).

People: ``user_id`` is the primary user id; the SIS id is ``externalId``, else ``studentId`` (the
loader makes ``person_token`` = HMAC of ``"sis:" + SIS id`` when present, else of
``"blackboard:" + user id``, so a student joins across the institution's LMSs). Login id =
``userName``; email = ``contact.email``. Rows that would be keyed by a person (grades) take their
identity from the membership instead (``<membership id>:<column id>``), so no vendor user id is
ever a ``source_id``.

What Learn does not have, and why it is null:

* ``sections`` — Learn has no sections in this API (cross-listing uses child courses): no rows;
  ``enrollments.section_id`` is null.
* ``terms`` — only the course's ``termId`` is read (the term object costs a call per term): name,
  SIS id and dates are null.
* ``people.grade_level`` — ``educationLevel`` is K8|HighSchool|Freshman…|PostGraduateSchool, never a
  K–12 grade: null.
* ``enrollments.start_at``/``end_at``/``total_activity_seconds``/``is_primary`` — not in
  CourseMembership (Learn has no primary-instructor flag there): null;
  ``last_activity_at`` = ``lastAccessed`` (batched by Learn, up to five minutes behind).
* ``submissions`` — one per (column, student) grade of a non-total column (GradeV2): ``score`` =
  ``score``, ``grade`` = ``text`` (else ``displayGrade.text``), status ``graded``/``submitted``
  (NeedsGrading), ``excused`` = ``exempt``, ``submitted_at`` = ``lastRelevantDate`` (the date of the
  attempt the grade rests on), ``late`` = submitted after the column's ``grading.due``;
  ``graded_at`` and ``missing`` are not in GradeV2: null. ``attempt`` = the number of attempts the
  student has made on an Attempts-graded column (AttemptV2 carries no attempt number: the source
  numbers each user's attempts on a column 1, 2, … in ``attemptDate`` order, so the count is the
  latest attempt's number); null for columns graded without attempts. ``passed`` null: a
  GradeV2/GradeColumnV2 carries no grade-to-pass (a pass/fail *schema* is only display text).
* ``course_grades`` — the grades of the column with ``externalGrade`` true (the external/overall
  grade): current score and grade from it; ``final_*`` = the same (Learn has one overall grade).
* ``attendance`` — meeting attendance records: ``session_date`` = the meeting ``start`` (UTC date),
  status lower-cased (present|late|absent|excused), source ``blackboard.meetings``. Unmarked
  students have no record (unmarked is not absent).
* ``attendance_rates`` — Learn computes no per-student rate in this API: no rows.
* ``engagement_daily`` — Learn has no activity feed; the honest row is one per membership on the
  UTC day of its ``lastAccessed``, with ``last_access_at`` set and the counts null. It reads the
  roster stream, so engagement costs no call of its own.
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
    boolean,
    num,
    parse_timestamp,
    people_columns,
    ranked_first,
    ts,
)

__all__ = ["blackboard_mapping"]

VENDOR = "blackboard"
COURSE = pl.col("_course_id")

ROLE_BY_COURSE_ROLE = {  # CourseMembership.courseRoleId (spec enum)
    "Instructor": "teacher",
    "BbFacilitator": "teacher",
    "TeachingAssistant": "ta",
    "Grader": "ta",
    "CourseBuilder": "designer",
    "Student": "student",
    "Guest": "observer",
}
ROLE_RANK = {"teacher": 0, "ta": 1, "designer": 2, "student": 3, "observer": 4, "other": 5}
STATE_BY_AVAILABILITY = {"Yes": "active", "No": "inactive", "Disabled": "deleted"}
STATUS_RANK = {
    "active": 0,
    "invited": 1,
    "completed": 2,
    "inactive": 3,
    "rejected": 4,
    "deleted": 5,
}
ATTENDANCE_STATUS = {"Present": "present", "Late": "late", "Absent": "absent", "Excused": "excused"}


def _role() -> pl.Expr:
    # Custom course roles pass through unchanged, so the enum rule quarantines them visibly.
    return pl.col("courseRoleId").replace(ROLE_BY_COURSE_ROLE)


def _state() -> pl.Expr:
    return pl.col("availability__available").replace(STATE_BY_AVAILABILITY)


def _membership_of_user() -> Join:
    """The student's membership id in the row's course (grades carry only the user id)."""
    return Join(
        stream="memberships",
        on=(("userId", "userId"), ("_course_id", "_course_id")),
        columns={"membership_id": pl.col("id")},
    )


def _latest_attempt() -> Join:
    """The student's attempt count on the grade's column: the number of their latest attempt."""
    keys = ("columnId", "userId", "_course_id")
    number = pl.col("attemptNumber").cast(pl.Int64, strict=False)
    return Join(
        stream="attempts",
        on=tuple((k, k) for k in keys),
        columns={"attempts_made": pl.col("attemptNumber")},
        filter=number == number.max().over(keys),
    )


def _column_is_total(total: bool) -> Join:
    flag = pl.col("externalGrade") == "true"
    return Join(
        stream="columns",
        on=(("columnId", "id"), ("_course_id", "_course_id")),
        how="semi",
        filter=flag if total else ~flag,
    )


def blackboard_mapping(*, extra_credit_allowed: bool = False) -> VendorMapping:
    tables = (
        TableMap(
            table="terms",
            domain="roster",
            stream="course",
            filter=pl.col("termId").is_not_null(),
            columns={
                "source_id": pl.col("termId"),
                "name": pl.lit(None, pl.String),
                "sis_term_id": pl.lit(None, pl.String),
                "start_at": Parse(pl.lit(None, pl.String), "timestamp"),
                "end_at": Parse(pl.lit(None, pl.String), "timestamp"),
            },
        ),
        TableMap(
            table="courses",
            domain="roster",
            stream="course",
            columns={
                "source_id": pl.col("id"),
                "term_id": pl.col("termId"),
                "name": pl.col("name"),
                "course_code": pl.col("courseId"),
                "sis_course_id": pl.col("externalId"),
                "state": pl.when(pl.col("availability__available") == "Disabled")
                .then(pl.lit("deleted"))
                .when(pl.col("closedComplete") == "true")
                .then(pl.lit("completed"))
                .when(pl.col("availability__available") == "No")
                .then(pl.lit("unpublished"))
                .when(pl.col("availability__available").is_in(["Yes", "Term"]))
                .then(pl.lit("available"))
                .otherwise(pl.col("availability__available")),
                "start_at": ts("availability__duration__start"),
                "end_at": ts("availability__duration__end"),
                "time_zone": pl.lit(None, pl.String),
                "deleted_at": pl.when(pl.col("availability__available") == "Disabled").then(
                    pl.coalesce(parse_timestamp(pl.col("modified")), pl.col("_fetched_at"))
                ),
            },
        ),
        TableMap(
            table="people",
            domain="roster",
            stream="memberships",
            aggregate=Aggregate(
                by={"user_id": pl.col("userId")},
                pre={
                    "role": _role(),
                    "status": _state(),
                    "sis": pl.coalesce(pl.col("user__externalId"), pl.col("user__studentId")),
                    "login": pl.col("user__userName"),
                    "mail": pl.col("user__contact__email"),
                },
                aggs={
                    "role": ranked_first("role", ROLE_RANK),
                    "status": ranked_first("status", STATUS_RANK),
                    **PERSON_IDENTIFIER_AGGS,
                },
            ),
            # educationLevel is not a K-12 grade.
            columns=people_columns(grade_level=pl.lit(None, pl.Int32)),
        ),
        TableMap(
            table="enrollments",
            domain="roster",
            stream="memberships",
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "section_id": pl.lit(None, pl.String),
                "user_id": pl.col("userId"),
                "role": _role(),
                "state": _state(),
                "start_at": Parse(pl.lit(None, pl.String), "timestamp"),
                "end_at": Parse(pl.lit(None, pl.String), "timestamp"),
                "last_activity_at": ts("lastAccessed"),
                "total_activity_seconds": pl.lit(None, pl.Int64),
                "deleted_at": pl.when(pl.col("availability__available") == "Disabled").then(
                    pl.coalesce(parse_timestamp(pl.col("modified")), pl.col("_fetched_at"))
                ),
            },
        ),
        TableMap(
            table="assignments",
            domain="gradebook",
            stream="columns",
            filter=pl.col("externalGrade") != "true",
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "title": pl.col("name"),
                "points_possible": num("score__possible"),
                "due_at": ts("grading__due"),
                "grading_type": pl.col("grading__type"),
                "published": pl.col("availability__available") == "Yes",
                "extra_credit_allowed": pl.lit(extra_credit_allowed),
            },
        ),
        TableMap(
            table="submissions",
            domain="gradebook",
            stream="grades",
            joins=(
                _column_is_total(False),
                _membership_of_user(),
                _latest_attempt(),
                Join(
                    stream="columns",
                    on=(("columnId", "id"), ("_course_id", "_course_id")),
                    columns={"column_due": pl.col("grading__due")},
                ),
            ),
            columns={
                "source_id": pl.concat_str(
                    [pl.col("membership_id"), pl.col("columnId")], separator=":"
                ),
                "course_id": COURSE,
                "assignment_id": pl.col("columnId"),
                "user_id": pl.col("userId"),
                "score": num("score"),
                "grade": pl.coalesce(pl.col("text"), pl.col("displayGrade__text")),
                "status": pl.when(pl.col("status") == "NeedsGrading")
                .then(pl.lit("submitted"))
                .otherwise(pl.lit("graded")),
                "submitted_at": ts("lastRelevantDate"),
                "graded_at": Parse(pl.lit(None, pl.String), "timestamp"),
                "late": parse_timestamp(pl.col("lastRelevantDate"))
                > parse_timestamp(pl.col("column_due")),
                "missing": pl.lit(None, pl.Boolean),
                "excused": boolean("exempt"),
                "attempt": Parse(pl.col("attempts_made"), "int"),
                "passed": pl.lit(None, pl.Boolean),
            },
        ),
        TableMap(
            table="course_grades",
            domain="gradebook",
            stream="grades",
            joins=(_column_is_total(True), _membership_of_user()),
            columns={
                "source_id": pl.col("membership_id"),
                "course_id": COURSE,
                "enrollment_id": pl.col("membership_id"),
                "user_id": pl.col("userId"),
                "current_score": num("score"),
                "final_score": num("score"),
                "current_grade": pl.coalesce(pl.col("text"), pl.col("displayGrade__text")),
                "final_grade": pl.coalesce(pl.col("text"), pl.col("displayGrade__text")),
            },
        ),
        TableMap(
            table="attendance",
            domain="attendance",
            stream="attendance_records",
            joins=(
                Join(
                    stream="meetings",
                    on=(("meetingId", "id"), ("_course_id", "_course_id")),
                    columns={"meeting_start": pl.col("start")},
                ),
            ),
            columns={
                "source_id": pl.col("id"),
                "course_id": COURSE,
                "user_id": pl.col("userId"),
                "session_date": Parse(pl.col("meeting_start"), "date"),
                # Unknown statuses pass through unchanged, so the enum rule quarantines them.
                "status": pl.col("status").replace(ATTENDANCE_STATUS),
                "source": pl.lit("blackboard.meetings"),
            },
        ),
        TableMap(
            table="engagement_daily",
            domain="roster",
            stream="memberships",
            filter=pl.col("lastAccessed").is_not_null(),
            columns={
                "source_id": pl.concat_str(
                    [
                        pl.col("id"),
                        parse_timestamp(pl.col("lastAccessed")).dt.date().cast(pl.String),
                    ],
                    separator=":",
                ),
                "course_id": COURSE,
                "enrollment_id": pl.col("id"),
                "user_id": pl.col("userId"),
                "day": Parse(pl.col("lastAccessed"), "date"),
                "page_views": pl.lit(None, pl.Int64),
                "participations": pl.lit(None, pl.Int64),
                "active_seconds": pl.lit(None, pl.Float64),
                "last_access_at": ts("lastAccessed"),
            },
        ),
    )
    return VendorMapping(
        vendor=VENDOR, tables=tables, params={"extra_credit_allowed": extra_credit_allowed}
    )

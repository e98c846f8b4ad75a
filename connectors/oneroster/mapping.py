"""OneRoster 1.2 → canonical model, as data: one TableMap per canonical table.

Input: the streams of ``connectors/oneroster/streams.py`` — the same text columns whether they came
from a CSV bundle or the REST services. Every row names its own class (``classSourcedId``); the
partition (``@district``, ``@delta`` or a class id) is never used as a course, so one map serves
full and delta syncs alike.

Choices, and what is null and why:

* **A class is a canonical course.** The class is what an LMS course is synced from (a Canvas
  course's SIS id is usually the class ``sourcedId``), what the Source protocol runs one task per,
  and what scopes the loader's soft deletes. ``courses``: name = class ``title``, course_code =
  ``classCode``, sis_course_id = ``sourcedId``, term = the first of ``termSourcedIds``;
  ``start_at``/``end_at`` null (a class's dates are its terms', and it may have several);
  ``time_zone`` null. The catalog course (courses.csv) is staged but has no canonical table yet.
* **One section per class** (``sections``: id, name and ``sis_section_id`` = the class), so an
  LMS that imports each OneRoster class as a section (sis_section_id = class sourcedId) joins too;
  ``enrollments.section_id`` = the class.
* ``schools`` — orgs of type ``school`` or ``district`` (natural key = org ``sourcedId``): name,
  type, ``identifier`` (the org's own code, e.g. a state school id — not a person's), parent =
  ``parentSourcedId`` (a school's district). Other org types (department, local, state,
  national) are not schools: no rows. ``courses.school_id`` = the class's ``schoolSourcedId``.
* ``terms`` — every academic session (schoolYear, term, semester, gradingPeriod): name = title,
  sis_term_id = sourcedId, dates from ``startDate``/``endDate`` (UTC midnight).
* ``people`` — one per user: SIS id = the ``{SIS:…}`` entry of ``userIds`` (any case), else
  ``identifier``; login = ``username``; role = the user's primary role (roles.csv / REST
  ``roles``); grade level = the first of ``grades`` through ``parse_grade_level`` (``KG`` → 0,
  ``05`` → 5; ``PK``/``TK``/``UG``/``IT``/``PR`` → null without a flag; anything else flagged);
  status ``inactive`` when ``enabledUser`` is false. A user's school (``primaryOrgSourcedId``)
  has no canonical column: the enrollments' classes carry their schools.
* ``enrollments`` — role mapped from the 1.2 vocabulary (aide → ta, guardian/parent/relative →
  observer, the administrator roles → admin, proctor/counselor → other; anything else passes
  through and the enum rule quarantines it); dates = ``beginDate``/``endDate``; activity null.
  ``is_primary`` = the ``primary`` flag (true/false; empty → null, as the spec makes it optional
  and meaningful for teachers only).
* ``assignments`` — line items: points = ``resultValueMax``, due = ``dueDate``, grading type
  ``points``; ``published`` and ``extra_credit_allowed`` null (OneRoster has neither).
* ``submissions`` — results: score = ``score``; status from ``scoreStatus`` (fully graded → graded,
  partially graded → pending_review, submitted → submitted, not submitted → unsubmitted, exempt →
  graded with ``excused``); ``graded_at`` = ``scoreDate`` of a (partially) graded result;
  ``grade`` null (a 1.2 result's score is a number; no text grade is staged); submitted_at, late,
  missing and attempt null; ``passed`` null (a 1.2 line item carries no pass mark).
* no ``course_grades``, ``attendance`` or ``engagement_daily``: OneRoster carries none.
* **Deletion**: ``status = tobedeleted`` (delta files and REST) → ``deleted_at`` =
  ``dateLastModified`` (else the fetch time) and state/status ``deleted``.
"""

from __future__ import annotations

import polars as pl

from transforms.mapping import (
    Aggregate,
    Parse,
    TableMap,
    VendorMapping,
    boolean,
    num,
    parse_timestamp,
    people_columns,
    ts,
)

__all__ = ["oneroster_mapping"]

VENDOR = "oneroster"

ROLE = {  # OneRoster 1.2 RoleEnum → canonical role
    "student": "student",
    "teacher": "teacher",
    "aide": "ta",
    "administrator": "admin",
    "districtAdministrator": "admin",
    "siteAdministrator": "admin",
    "systemAdministrator": "admin",
    "principal": "admin",
    "proctor": "other",
    "counselor": "other",
    "guardian": "observer",
    "parent": "observer",
    "relative": "observer",
}
SCORE_STATUS = {
    "fully graded": "graded",
    "partially graded": "pending_review",
    "submitted": "submitted",
    "not submitted": "unsubmitted",
    "exempt": "graded",
}
_SIS_IN_USER_IDS = r"\{(?i:sis):([^}]*)\}"


def _deleted() -> pl.Expr:
    return pl.col("status") == "tobedeleted"


def _deleted_at() -> pl.Expr:
    return pl.when(_deleted()).then(
        pl.coalesce(parse_timestamp(pl.col("dateLastModified")), pl.col("_fetched_at"))
    )


def _first(column: str) -> pl.Expr:
    """The first item of a comma list cell (``"09,10"`` → ``"09"``)."""
    return pl.col(column).str.split(",").list.first().str.strip_chars()


def _no_date() -> Parse:
    return Parse(pl.lit(None, pl.String), "timestamp")


def oneroster_mapping() -> VendorMapping:
    tables = (
        TableMap(
            table="schools",
            domain="roster",
            stream="orgs",
            filter=pl.col("type").is_in(["school", "district"]),
            # One group over every partition (orgs live only in the district partition).
            aggregate=Aggregate(
                by={"sid": pl.col("sourcedId")},
                pre={
                    "name": pl.col("name"),
                    "type": pl.col("type"),
                    "identifier": pl.col("identifier"),
                    "parent": pl.col("parentSourcedId"),
                    "gone": _deleted_at(),
                },
                aggs={
                    n: pl.col(n).last() for n in ("name", "type", "identifier", "parent", "gone")
                },
            ),
            columns={
                "source_id": pl.col("sid"),
                "parent_id": pl.col("parent"),
                "name": pl.col("name"),
                "type": pl.col("type"),
                "identifier": pl.col("identifier"),
                "deleted_at": pl.col("gone"),
            },
        ),
        TableMap(
            table="terms",
            domain="roster",
            stream="academic_sessions",
            # One group over every partition (sessions live only in the district partition).
            aggregate=Aggregate(
                by={"sid": pl.col("sourcedId")},
                pre={
                    "title": pl.col("title"),
                    "start": pl.col("startDate"),
                    "end": pl.col("endDate"),
                    "gone": _deleted_at(),
                },
                aggs={n: pl.col(n).last() for n in ("title", "start", "end", "gone")},
            ),
            columns={
                "source_id": pl.col("sid"),
                "name": pl.col("title"),
                "sis_term_id": pl.col("sid"),
                "start_at": Parse(pl.col("start"), "timestamp"),
                "end_at": Parse(pl.col("end"), "timestamp"),
                "deleted_at": pl.col("gone"),
            },
        ),
        TableMap(
            table="courses",
            domain="roster",
            stream="classes",
            columns={
                "source_id": pl.col("sourcedId"),
                "term_id": _first("termSourcedIds"),
                "school_id": pl.col("schoolSourcedId"),
                "name": pl.col("title"),
                "course_code": pl.col("classCode"),
                "sis_course_id": pl.col("sourcedId"),
                "state": pl.when(_deleted()).then(pl.lit("deleted")).otherwise(pl.lit("available")),
                "start_at": _no_date(),
                "end_at": _no_date(),
                "time_zone": pl.lit(None, pl.String),
                "deleted_at": _deleted_at(),
            },
        ),
        TableMap(
            table="sections",
            domain="roster",
            stream="classes",
            columns={
                "source_id": pl.col("sourcedId"),
                "course_id": pl.col("sourcedId"),
                "name": pl.col("title"),
                "sis_section_id": pl.col("sourcedId"),
                "start_at": _no_date(),
                "end_at": _no_date(),
                "deleted_at": _deleted_at(),
            },
        ),
        TableMap(
            table="people",
            domain="roster",
            stream="users",
            aggregate=Aggregate(
                by={"user_id": pl.col("sourcedId")},
                pre={
                    "sis": pl.coalesce(
                        pl.col("userIds").str.extract(_SIS_IN_USER_IDS, 1), pl.col("identifier")
                    ),
                    "login": pl.col("username"),
                    "mail": pl.col("email"),
                    # Custom roles pass through unchanged, so the enum rule quarantines them.
                    "role": pl.col("role").replace(ROLE),
                    "grade": Parse(_first("grades"), "grade_level"),
                    "status": pl.when(_deleted())
                    .then(pl.lit("deleted"))
                    .when(pl.col("enabledUser").str.to_lowercase() == "false")
                    .then(pl.lit("inactive"))
                    .otherwise(pl.lit("active")),
                    "gone": _deleted_at(),
                },
                aggs={
                    n: pl.col(n).last()
                    for n in ("sis", "login", "mail", "role", "grade", "status", "gone")
                },
            ),
            columns=people_columns(grade_level=pl.col("grade"), deleted_at=pl.col("gone")),
        ),
        TableMap(
            table="enrollments",
            domain="roster",
            stream="enrollments",
            columns={
                "source_id": pl.col("sourcedId"),
                "course_id": pl.col("classSourcedId"),
                "section_id": pl.col("classSourcedId"),
                "user_id": pl.col("userSourcedId"),
                "role": pl.col("role").replace(ROLE),
                "state": pl.when(_deleted()).then(pl.lit("deleted")).otherwise(pl.lit("active")),
                "start_at": ts("beginDate"),
                "end_at": ts("endDate"),
                "last_activity_at": _no_date(),
                "total_activity_seconds": pl.lit(None, pl.Int64),
                "is_primary": boolean("primary"),
                "deleted_at": _deleted_at(),
            },
        ),
        TableMap(
            table="assignments",
            domain="gradebook",
            stream="line_items",
            columns={
                "source_id": pl.col("sourcedId"),
                "course_id": pl.col("classSourcedId"),
                "title": pl.col("title"),
                "points_possible": num("resultValueMax"),
                "due_at": ts("dueDate"),
                "grading_type": pl.lit("points"),
                "published": pl.lit(None, pl.Boolean),
                "extra_credit_allowed": pl.lit(None, pl.Boolean),
                "deleted_at": _deleted_at(),
            },
        ),
        TableMap(
            table="submissions",
            domain="gradebook",
            stream="results",
            columns={
                "source_id": pl.col("sourcedId"),
                "course_id": pl.col("classSourcedId"),
                "assignment_id": pl.col("lineItemSourcedId"),
                "user_id": pl.col("studentSourcedId"),
                "score": num("score"),
                "grade": pl.lit(None, pl.String),
                # Unknown scoreStatus values pass through, so the enum rule quarantines them.
                "status": pl.when(_deleted())
                .then(pl.lit("deleted"))
                .otherwise(pl.col("scoreStatus").replace(SCORE_STATUS)),
                "submitted_at": _no_date(),
                "graded_at": Parse(
                    pl.when(pl.col("scoreStatus").is_in(["fully graded", "partially graded"]))
                    .then(pl.col("scoreDate"))
                    .otherwise(pl.lit(None, pl.String)),
                    "timestamp",
                ),
                "late": pl.lit(None, pl.Boolean),
                "missing": pl.lit(None, pl.Boolean),
                "excused": pl.col("scoreStatus") == "exempt",
                "attempt": pl.lit(None, pl.Int64),
                "deleted_at": _deleted_at(),
            },
        ),
    )
    return VendorMapping(vendor=VENDOR, tables=tables)

"""The canonical serving model: tables, columns, natural keys and references (DESIGN.md).

Every canonical row has

* ``<entity>_key`` — ``UUID`` from ``md5(entity ‖ 0x1F ‖ vendor ‖ 0x1F ‖ source_id)``, computed in
  DuckDB as ``md5_number(...)::UUID``. The same value in Python is :func:`row_key`. It depends on
  nothing but those three strings, so it is stable across runs, processes and machines.
* ``vendor`` and ``source_id`` — the natural key. ``source_id`` is the vendor's own id of the
  thing, except for people, whose vendor user id is PII: their ``source_id`` is the vendor-user
  token (``tokenize.py``).
* foreign keys as ``*_key`` columns built with the same function from the referenced source id,
  and for person-linked tables ``person_key`` plus ``person_token``.
* ``deleted_at`` (soft delete) and the lineage columns copied from the staged row.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

__all__ = [
    "BOOKKEEPING_DDL",
    "LINEAGE",
    "TABLES",
    "Column",
    "Ref",
    "Table",
    "row_key",
    "table",
]

KEY_SEPARATOR = "\x1f"

LINEAGE: tuple[tuple[str, str], ...] = (
    ("_run_id", "VARCHAR"),
    ("_staging_path", "VARCHAR"),
    ("_trace_id", "VARCHAR"),
    ("_span_id", "VARCHAR"),
    ("_fetched_at", "TIMESTAMPTZ"),
)

ROLES = ("student", "teacher", "ta", "designer", "observer", "admin", "other")
PERSON_STATUSES = ("active", "invited", "inactive", "completed", "rejected", "deleted")
ENROLLMENT_STATES = ("active", "invited", "inactive", "completed", "rejected", "deleted")
COURSE_STATES = ("unpublished", "available", "completed", "deleted")
SUBMISSION_STATUSES = ("unsubmitted", "submitted", "pending_review", "graded", "deleted")
ATTENDANCE_STATUSES = ("present", "late", "absent", "excused")
COMPLETION_STATES = ("incomplete", "complete", "complete_pass", "complete_fail")
COMPLETION_TRACKING = ("none", "manual", "automatic")
SCHOOL_TYPES = ("school", "district")


def row_key(entity: str, vendor: str, source_id: str) -> uuid.UUID:
    """The ``*_key`` of a row, exactly as the loader computes it in SQL
    (``md5_number(entity || chr(31) || vendor || chr(31) || source_id)::UUID``)."""
    digest = hashlib.md5(KEY_SEPARATOR.join((entity, vendor, source_id)).encode()).digest()
    return uuid.UUID(bytes=digest[::-1])


def key_sql(entity: str, source_sql: str, vendor_sql: str = "$vendor") -> str:
    """SQL for the key of ``entity`` whose source id is the SQL expression ``source_sql``."""
    return (
        f"CASE WHEN ({source_sql}) IS NULL THEN NULL ELSE md5_number('{entity}' || chr(31) || "
        f"{vendor_sql} || chr(31) || ({source_sql}))::UUID END"
    )


@dataclass(frozen=True)
class Column:
    """A value column. ``enum``: allowed values (rule ``enum``); ``required``: must be non-null
    (rule ``required``); ``not_future``: a timestamp that cannot lie in the future (rule
    ``future``)."""

    name: str
    type: str
    enum: tuple[str, ...] | None = None
    required: bool = False
    not_future: bool = False


@dataclass(frozen=True)
class Ref:
    """A foreign key: ``<entity>_key`` built from the normalized column ``source``. ``must_resolve``
    means a row whose referenced row is in no serving table is quarantined (rule ``reference``)."""

    entity: str
    source: str
    must_resolve: bool = False
    required: bool = False
    name: str | None = None  # the key column, when not ``<entity>_key`` (a self-reference)

    @property
    def column(self) -> str:
        return self.name or f"{_singular(self.entity)}_key"


@dataclass(frozen=True)
class Table:
    """A canonical serving table.

    ``person``: the table carries ``person_key``/``person_token`` resolved from a vendor user id in
    the normalized column ``user_id``; rows whose person is unknown are quarantined (``reference``).
    ``course_ref``: the Ref that scopes the row to a course — soft deletion of rows missing from
    the source only touches courses whose partition for the domain was loaded in this run.
    ``delete_absent``: whether a row missing from a complete course partition is soft-deleted.
    ``added`` / ``added_refs``: columns and references added after the table first shipped. They
    are part of ``columns`` / ``refs`` like any other, but sit after the lineage columns in the
    serving layout — where ``ALTER TABLE ADD COLUMN`` puts them in a database made before them, so
    old and new databases have the same layout (``load.ensure_schema``).
    """

    name: str
    columns: tuple[Column, ...]
    refs: tuple[Ref, ...] = ()
    person: bool = False
    course_ref: str | None = None
    delete_absent: bool = False
    added: tuple[Column, ...] = ()
    added_refs: tuple[Ref, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", (*self.columns, *self.added))
        object.__setattr__(self, "refs", (*self.refs, *self.added_refs))

    @property
    def entity(self) -> str:
        return self.name

    @property
    def key(self) -> str:
        return f"{_singular(self.name)}_key"

    @property
    def is_people(self) -> bool:
        return self.name == "people"

    def serving_columns(self) -> list[tuple[str, str]]:
        cols: list[tuple[str, str]] = [
            (self.key, "UUID"),
            ("vendor", "VARCHAR"),
            ("source_id", "VARCHAR"),
        ]
        cols += [(r.column, "UUID") for r in self.refs if r not in self.added_refs]
        if self.person:
            cols += [("person_key", "UUID"), ("person_token", "VARCHAR")]
        if self.is_people:
            cols += [
                ("person_token", "VARCHAR"),
                ("sis_id_token", "VARCHAR"),
                ("login_id_token", "VARCHAR"),
                ("email_token", "VARCHAR"),
                ("token_key_version", "VARCHAR"),
            ]
        cols += [(c.name, c.type) for c in self.columns if c not in self.added]
        cols += [("deleted_at", "TIMESTAMPTZ")]
        cols += list(LINEAGE)
        cols += self.added_columns()
        return cols

    def added_columns(self) -> list[tuple[str, str]]:
        """(name, type) of the columns added after the table first shipped, in layout order."""
        return [(r.column, "UUID") for r in self.added_refs] + [
            (c.name, c.type) for c in self.added
        ]

    def ddl(self) -> str:
        body = ",\n    ".join(f"{n} {t}" for n, t in self.serving_columns())
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n)"


def _singular(name: str) -> str:
    irregular = {
        "people": "person",
        "engagement_daily": "engagement",
        "attendance": "attendance",
        "activity_completion": "activity_completion",
    }
    if name in irregular:
        return irregular[name]
    if name == "attendance_rates":
        return "attendance_rate"
    return name[:-1] if name.endswith("s") else name


_TS = "TIMESTAMPTZ"
_COURSE = Ref("courses", "course_id", must_resolve=False, required=True)

# Columns added after the first release are appended to a table's DDL for new databases and added
# by ``ensure_schema`` (ALTER TABLE ADD COLUMN IF NOT EXISTS) to databases made before them.
TABLES: tuple[Table, ...] = (
    Table(
        "schools",
        refs=(Ref("schools", "parent_id", name="parent_school_key"),),
        columns=(
            Column("name", "VARCHAR"),
            Column("type", "VARCHAR", enum=SCHOOL_TYPES),
            Column("identifier", "VARCHAR"),
        ),
    ),
    Table(
        "terms",
        columns=(
            Column("name", "VARCHAR"),
            Column("sis_term_id", "VARCHAR"),
            Column("start_at", _TS),
            Column("end_at", _TS),
        ),
    ),
    Table(
        "courses",
        refs=(Ref("terms", "term_id"),),
        columns=(
            Column("name", "VARCHAR"),
            Column("course_code", "VARCHAR"),
            Column("sis_course_id", "VARCHAR"),
            Column("state", "VARCHAR", enum=COURSE_STATES),
            Column("start_at", _TS),
            Column("end_at", _TS),
            Column("time_zone", "VARCHAR"),
        ),
        # OneRoster (issue 10): the class's school; null for LMSs (they carry no school).
        added_refs=(Ref("schools", "school_id"),),
    ),
    Table(
        "sections",
        refs=(_COURSE,),
        course_ref="courses",
        delete_absent=True,
        columns=(
            Column("name", "VARCHAR"),
            Column("sis_section_id", "VARCHAR"),
            Column("start_at", _TS),
            Column("end_at", _TS),
        ),
    ),
    Table(
        "people",
        columns=(
            Column("role", "VARCHAR", enum=ROLES),
            Column("grade_level", "INTEGER"),
            Column("status", "VARCHAR", enum=PERSON_STATUSES),
        ),
    ),
    Table(
        "enrollments",
        refs=(_COURSE, Ref("sections", "section_id", must_resolve=True)),
        person=True,
        course_ref="courses",
        delete_absent=True,
        columns=(
            Column("role", "VARCHAR", enum=ROLES, required=True),
            Column("state", "VARCHAR", enum=ENROLLMENT_STATES, required=True),
            Column("start_at", _TS),
            Column("end_at", _TS),
            Column("last_activity_at", _TS, not_future=True),
            Column("total_activity_seconds", "BIGINT"),
        ),
        # OneRoster ``primary``: the class's primary teacher; null where a vendor has no flag.
        added=(Column("is_primary", "BOOLEAN"),),
    ),
    Table(
        "assignments",
        refs=(_COURSE,),
        course_ref="courses",
        delete_absent=True,
        columns=(
            Column("title", "VARCHAR"),
            Column("points_possible", "DOUBLE"),
            Column("due_at", _TS),
            Column("grading_type", "VARCHAR"),
            Column("published", "BOOLEAN"),
            Column("extra_credit_allowed", "BOOLEAN"),
        ),
    ),
    Table(
        "submissions",
        refs=(_COURSE, Ref("assignments", "assignment_id", must_resolve=True, required=True)),
        person=True,
        course_ref="courses",
        delete_absent=True,
        columns=(
            Column("score", "DOUBLE"),
            Column("grade", "VARCHAR"),
            Column("status", "VARCHAR", enum=SUBMISSION_STATUSES),
            Column("submitted_at", _TS, not_future=True),
            Column("graded_at", _TS, not_future=True),
            Column("late", "BOOLEAN"),
            Column("missing", "BOOLEAN"),
            Column("excused", "BOOLEAN"),
            Column("attempt", "INTEGER"),
        ),
        # Pass/fail against the vendor's grade-to-pass; null where there is no pass mark.
        added=(Column("passed", "BOOLEAN"),),
    ),
    Table(
        "course_grades",
        refs=(_COURSE, Ref("enrollments", "enrollment_id", must_resolve=False, required=True)),
        person=True,
        course_ref="courses",
        delete_absent=True,
        columns=(
            Column("current_score", "DOUBLE"),
            Column("final_score", "DOUBLE"),
            Column("current_grade", "VARCHAR"),
            Column("final_grade", "VARCHAR"),
        ),
    ),
    Table(
        "attendance",
        refs=(_COURSE,),
        person=True,
        course_ref="courses",
        columns=(
            Column("session_date", "DATE", required=True, not_future=True),
            Column("status", "VARCHAR", enum=ATTENDANCE_STATUSES, required=True),
            Column("source", "VARCHAR", required=True),
        ),
    ),
    Table(
        "attendance_rates",
        refs=(_COURSE,),
        person=True,
        course_ref="courses",
        delete_absent=True,
        columns=(
            Column("rate_percent", "DOUBLE"),
            Column("grade", "VARCHAR"),
            Column("graded_at", _TS, not_future=True),
            Column("source", "VARCHAR", required=True),
        ),
    ),
    Table(
        "engagement_daily",
        refs=(_COURSE, Ref("enrollments", "enrollment_id")),
        person=True,
        course_ref="courses",
        columns=(
            Column("day", "DATE", required=True, not_future=True),
            Column("page_views", "BIGINT"),
            Column("participations", "BIGINT"),
            Column("active_seconds", "DOUBLE"),
            Column("last_access_at", _TS, not_future=True),
        ),
    ),
    Table(
        "activity_completion",
        refs=(_COURSE, Ref("enrollments", "enrollment_id")),
        person=True,
        course_ref="courses",
        delete_absent=True,
        columns=(
            Column("activity_id", "VARCHAR", required=True),
            Column("module_type", "VARCHAR"),
            Column("state", "VARCHAR", enum=COMPLETION_STATES, required=True),
            Column("completed_at", _TS, not_future=True),
            Column("tracking", "VARCHAR", enum=COMPLETION_TRACKING),
        ),
    ),
)

_BY_NAME = {t.name: t for t in TABLES}


def table(name: str) -> Table:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown canonical table {name!r}") from None


BOOKKEEPING_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS _sync_runs (
    run_id VARCHAR, institution VARCHAR, vendor VARCHAR, domain VARCHAR,
    started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, courses_loaded INTEGER,
    extracted BIGINT, quarantined BIGINT, inserted BIGINT, updated BIGINT, deleted BIGINT,
    status VARCHAR
)""",
    """CREATE TABLE IF NOT EXISTS _sync_state (
    institution VARCHAR, vendor VARCHAR, domain VARCHAR, cursor TIMESTAMPTZ,
    run_id VARCHAR, updated_at TIMESTAMPTZ, staging_window VARCHAR
)""",
    # Databases made before incremental sync: the window the cursor's load read.
    "ALTER TABLE _sync_state ADD COLUMN IF NOT EXISTS staging_window VARCHAR",
    """CREATE TABLE IF NOT EXISTS _quarantine (
    quarantine_key UUID, "table" VARCHAR, vendor VARCHAR, natural_key VARCHAR, course_id VARCHAR,
    rule VARCHAR, reason VARCHAR, run_id VARCHAR, record JSON,
    _staging_path VARCHAR, _trace_id VARCHAR, _span_id VARCHAR, _fetched_at TIMESTAMPTZ
)""",
)

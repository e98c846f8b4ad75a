from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from staged_shape import recorded, staged

from connectors.canvas.mapping import CANVAS
from transforms.load import connect
from transforms.mapping import (
    Parse,
    clean_sql,
    parse_grade_level,
    parse_sql,
    parse_timestamp,
    parsed,
)
from transforms.normalize import normalize, typed_sql


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("Grade 5", 5), ("5", 5), ("GR05", 5), ("05", 5), ("5th", 5), ("5th grade", 5),
        ("12", 12), ("grade 12", 12), ("K", 0), ("KG", 0), ("Kindergarten", 0), ("0", 0),
        ("00", 0), ("PK", None), ("PreK", None), ("TK", None), ("UG", None), ("13", None),
        ("junk", None), (None, None), ("", None), (" 7 ", 7),
    ],
)  # fmt: skip
def test_grade_level(raw, want) -> None:
    out = pl.DataFrame({"g": [raw]}, schema={"g": pl.String}).select(parse_grade_level(pl.col("g")))
    assert out.item() == want


def test_grade_level_accepts_integers_and_flags_only_unknown_text() -> None:
    df = pl.DataFrame({"g": ["5", "PK", "UG", "13", "junk", None]})
    value, failed = parsed(Parse(pl.col("g"), "grade_level"))
    out = df.select(value.alias("v"), failed.alias("f"))
    assert out["f"].to_list() == [False, False, False, True, True, False]
    assert pl.DataFrame({"g": [5, 0]}).select(
        parse_grade_level(pl.col("g"))
    ).to_series().to_list() == [5, 0]


def test_timestamps_with_offsets_become_utc() -> None:
    s = pl.DataFrame({"t": ["2013-05-01T00:00:00-06:00", "2013-12-13T20:16:35Z", "nope"]})
    out = s.select(parse_timestamp(pl.col("t"))).to_series().to_list()
    assert out[0] == datetime(2013, 5, 1, 6, tzinfo=UTC)
    assert out[1] == datetime(2013, 12, 13, 20, 16, 35, tzinfo=UTC)
    assert out[2] is None


TIMESTAMPS = [
    "2026-11-11T10:00:00-06:00", "2026-11-10T10:00:00Z", "2026-11-10T10:00:00z",
    "2026-11-10 10:00:00.123+05:30", "2026-11-10", "2026-11-10T10:00:00", "0001-01-01",
    "2026-11-10T10:00:00.123456789Z", "2026-11-10T10:00:00.1Z", "2026-11-10T10:00:00+14:00",
    "2026-13-45T99:00:00Z", "2026-02-30", "2026-11-10T24:00:00Z", "2026-11-10T23:59:60Z",
    "2026-11-10 10:00", "2026-1-5", "2026-11-10T1:00:00Z", "2026-11-10t10:00:00",
    "2026-11-10T10:00:00.Z", "2026-11-10T10:00:00+0530", "20261110", "infinity", "yesterday",
    " 2026-11-10 ", "", None,
]  # fmt: skip
CORPUS = {
    "float": ["1e3", "1_000", "0x10", " 85 ", "NaN", "inf", "-inf", "Infinity", "1e400", "3.5",
              "1,5", "+3", ".5", "-0", "1.", "1e", "--1", "1.5.5", "abc", "\t7\n", " ", "", None],
    "int": ["1e3", "1_000", "0x10", " 85 ", "3.0", "3.5", "+3", "-0", "007", "1.", "x", "",
            "9007199254740993", "99999999999999999999", None],
    "bool": ["true", "false", "TRUE", "False", " true ", "yes", "1", "", None],
    "timestamp": TIMESTAMPS,
    "date": TIMESTAMPS,
    "grade_level": ["Grade 5", "5", "GR05", "05", "5th", "5th grade", "12", "grade 12", "K",
                    "KG", "Kindergarten", "0", "00", "PK", "PreK", "TK", "UG", "13", "junk",
                    " 7 ", "-1", "G-3", "Y10", "", None],
}  # fmt: skip


@pytest.mark.parametrize("kind", list(CORPUS))
def test_sql_and_polars_parsers_accept_the_same_text(kind) -> None:
    """One grammar, two compilations: value and failure flag agree on every input."""
    values = CORPUS[kind]
    frame = pl.DataFrame({"s": values}, schema={"s": pl.String})
    value, failed = parsed(Parse(pl.col("s"), kind))
    polars_rows = [tuple(r) for r in frame.select(value, failed.alias("f")).rows()]
    sql_value, sql_failed = parse_sql(kind, clean_sql("s"))
    sql_rows = (
        connect(":memory:")
        .execute(
            f"SELECT {sql_value}, {sql_failed} FROM (SELECT unnest($v) AS s,"
            " generate_subscripts($v, 1) AS i) ORDER BY i",
            {"v": values},
        )
        .fetchall()
    )
    for text, want, got in zip(values, polars_rows, sql_rows, strict=True):
        assert repr(want) == repr(got) or want == got, (kind, text, want, got)


def _tmap(name: str):
    return next(t for t in CANVAS.tables if t.table == name)


def _normalized(tmap, frames) -> pl.DataFrame | None:
    """Both stages of normalization: the Polars map, then the loader's SQL typing."""
    lf = normalize(tmap, frames)
    if lf is None:
        return None
    con = connect(":memory:")
    con.register("stage1", lf.collect())
    return pl.from_arrow(con.sql(typed_sql(tmap, "stage1")).to_arrow_table())


def test_recorded_payloads_normalize_unchanged_including_string_ids() -> None:
    frames = {
        "course": staged("course", [recorded("courses__149650_include_term")], course_id="149650"),
        "users": staged(
            "users", recorded("courses__862539__users_include_enrollments_search_term_jav"),
            course_id="862539",
        ),
        "enrollments": staged(
            "enrollments", recorded("courses__862539__enrollments"), course_id="862539"
        ),
        "sections": staged(
            "sections", recorded("courses__sis_course_id_2013-spring-CSE-142-A__sections"),
            course_id="814322",
        ),
        "assignments": staged(
            "assignments", recorded("courses__862539__assignments__index"), course_id="862539"
        ),
        "submissions": staged(
            "submissions", recorded("courses__862539__students__submissions_student_ids_all"),
            course_id="862539",
        ),
    }  # fmt: skip
    for tmap in CANVAS.tables:
        df = _normalized(tmap, frames)
        if df is None:
            continue
        assert df["_type_errors"].null_count() == df.height, (tmap.table, df["_type_errors"])
    courses = _normalized(_tmap("courses"), frames)
    assert courses["source_id"].to_list() == ["149650"]
    assert courses["start_at"].to_list() == [None]
    terms = _normalized(_tmap("terms"), frames)
    assert terms["start_at"].to_list() == [datetime(2013, 6, 15, 7, tzinfo=UTC)]
    subs = _normalized(_tmap("submissions"), frames)
    assert subs["score"].to_list()[:2] == [99991.02, 56.0]
    assert subs["user_id"].to_list()[0] == "496164"
    enr = _normalized(_tmap("enrollments"), frames)
    assert enr.select("role", "state", "total_activity_seconds").row(0) == ("ta", "invited", 0)
    # Canvas served these user ids as JSON strings: they join like numeric ids.
    users = staged(
        "users", recorded("courses__862539__users_include_enrollments_search_term_jav"),
        course_id="862539",
    ).collect()  # fmt: skip
    assert users["id"].to_list() == ["3589026", "496168", "496333"]


def test_drifted_values_are_flagged_not_hidden() -> None:
    rec = {"id": 1, "assignment_id": 2, "user_id": "3", "score": "eighty", "late": "maybe",
           "submitted_at": "yesterday", "workflow_state": "graded", "attempt": 1}  # fmt: skip
    frames = {"submissions": staged("submissions", [rec], course_id="10")}
    df = _normalized(_tmap("submissions"), frames)
    errors = df["_type_errors"].item()
    assert (
        "score=eighty" in errors and "late=maybe" in errors and "submitted_at=yesterday" in errors
    )
    assert df["score"].item() is None


def test_engagement_daily_aggregates_course_page_views() -> None:
    views = [
        {"id": "a", "context_type": "Course", "interaction_seconds": 10.5, "participated": True,
         "created_at": "2026-11-01T10:00:00Z", "links": {"user": 7, "context": 10}},
        {"id": "b", "context_type": "Course", "interaction_seconds": 4, "participated": False,
         "created_at": "2026-11-01T23:30:00-02:00", "links": {"user": 7, "context": 10}},
        {"id": "c", "context_type": "Course", "interaction_seconds": 1, "participated": False,
         "created_at": "2026-11-01T11:00:00Z", "links": {"user": 7, "context": 99}},
        {"id": "d", "context_type": "User", "interaction_seconds": 1, "participated": False,
         "created_at": "2026-11-01T11:00:00Z", "links": {"user": 7, "context": 10}},
    ]  # fmt: skip
    activity = [{"id": 500, "user_id": 7, "enrollment_state": "active"}]
    frames = {
        "page_views": staged("page_views", views, course_id="10"),
        "enrollment_activity": staged("enrollment_activity", activity, course_id="10"),
    }
    df = normalize(_tmap("engagement_daily"), frames).collect().sort("day")
    rows = df.select("source_id", "day", "page_views", "participations", "active_seconds").rows()
    assert [(r[0], str(r[1]), *r[2:]) for r in rows] == [
        ("500:2026-11-01", "2026-11-01", 1, 1, 10.5),
        ("500:2026-11-02", "2026-11-02", 1, 0, 4.0),
    ]

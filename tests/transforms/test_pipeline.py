"""load_staged end to end over hand-built staged frames and real DuckDB files."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from staged_shape import NOW, concat, recorded, staged, table_digest

from connectors.canvas.mapping import CANVAS
from transforms.canonical import TABLES, row_key
from transforms.pipeline import load_staged
from transforms.tokenize import HmacKey, token_values

# Identifiers that must never reach serving tables, quarantine, logs or spans.
USERS = [
    {"id": 9000001, "name": "Ada Lovelace", "sortable_name": "Lovelace, Ada", "short_name": "Ada",
     "sis_user_id": "SIS-ADA-77", "login_id": "alovelace", "email": "ada@example.edu"},
    {"id": "9000002", "name": "Alan Turing", "sortable_name": "Turing, Alan", "short_name": "Al",
     "sis_user_id": None, "login_id": "aturing", "email": "alan@example.edu"},
    {"id": 9000003, "name": "Grace Hopper", "sortable_name": "Hopper, Grace", "short_name": "G",
     "sis_user_id": "SIS-GRACE-99", "login_id": "ghopper", "email": "grace@example.edu"},
]  # fmt: skip
PII = [
    "Ada Lovelace", "Lovelace", "Alan Turing", "Grace Hopper", "ada@example.edu",
    "alan@example.edu", "grace@example.edu", "SIS-ADA-77", "SIS-GRACE-99", "alovelace",
    "aturing", "ghopper", "9000001", "9000002", "9000003",
]  # fmt: skip


def _enrollment(eid: int, uid, section: int, typ: str = "StudentEnrollment", state="active"):
    return {
        "id": eid, "user_id": uid, "course_section_id": section, "type": typ,
        "enrollment_state": state, "updated_at": "2026-10-01T00:00:00Z",
        "last_activity_at": "2026-11-19T08:00:00-05:00", "total_activity_time": 3600,
        "user": {"sis_user_id": None, "login_id": None},
    }  # fmt: skip


def _submission(sid: int, aid: int, uid, score, *, submitted="2026-11-10T10:00:00Z"):
    return {
        "id": sid, "assignment_id": aid, "user_id": uid, "score": score,
        "grade": None if score is None else str(score), "workflow_state": "graded",
        "submitted_at": submitted, "graded_at": "2026-11-11T10:00:00Z", "late": False,
        "missing": False, "excused": None, "attempt": 1,
    }  # fmt: skip


def institution(
    course: str = "10", *, drop_submission: bool = False, drop_enrollment: bool = False
):
    c = int(course)
    course_rec = {
        "id": c,
        "name": f"Course {course}",
        "course_code": f"C{course}",
        "workflow_state": "available",
        "enrollment_term_id": 5,
        "start_at": "2026-09-01T00:00:00-07:00",
        "term": {
            "id": 5,
            "name": "Fall",
            "sis_term_id": "2026FA",
            "start_at": "2026-09-01T00:00:00Z",
        },
    }
    sections = [{"id": c * 100 + 1, "course_id": c, "name": "Section A"}]
    enrollments = [
        _enrollment(c * 1000 + 1, 9000001, c * 100 + 1),
        _enrollment(c * 1000 + 2, "9000002", c * 100 + 1),
        _enrollment(c * 1000 + 3, 9000003, c * 100 + 1, "TeacherEnrollment"),
    ]
    if drop_enrollment:
        enrollments = enrollments[:1] + enrollments[2:]
    assignments = [
        {"id": c * 10 + 1, "name": "Essay", "points_possible": 10, "due_at": "2026-11-15T23:59:00Z",
         "grading_type": "points", "published": True},
        {"id": c * 10 + 2, "name": "Quiz", "points_possible": "20.0", "due_at": None,
         "grading_type": "points", "published": "true"},
    ]  # fmt: skip
    submissions = [
        _submission(c * 10000 + 1, c * 10 + 1, 9000001, 8.5),
        _submission(c * 10000 + 2, c * 10 + 1, "9000002", 10),
        _submission(c * 10000 + 3, c * 10 + 2, 9000001, 19.0),
        _submission(c * 10000 + 4, c * 10 + 2, "9000002", None),
        # out of range: 25 > 10 points and Canvas has no extra credit flag → quarantine (range)
        _submission(c * 10000 + 5, c * 10 + 1, 9000003, 25),
        # malformed date → quarantine (type)
        _submission(c * 10000 + 6, c * 10 + 2, 9000003, 5, submitted="2026-13-45T99:00:00Z"),
        # unknown user → quarantine (reference)
        _submission(c * 10000 + 7, c * 10 + 2, 1234567, 5),
    ]
    if drop_submission:
        submissions = submissions[1:]
    grades = [
        {"id": c * 1000 + 1, "user_id": 9000001, "enrollment_state": "active",
         "grades": {"current_score": 85.0, "final_score": 80.5, "current_grade": "B",
                    "final_grade": "B-"}},
    ]  # fmt: skip
    return {
        "course": staged("course", [course_rec], course_id=course),
        "sections": staged("sections", sections, course_id=course),
        "users": staged("users", USERS, course_id=course),
        "enrollments": staged("enrollments", enrollments, course_id=course),
        "assignments": staged("assignments", assignments, course_id=course),
        "submissions": staged("submissions", submissions, course_id=course),
        "course_grades": staged("course_grades", grades, course_id=course),
        "last_attended": staged(
            "last_attended",
            [{"id": c * 1000 + 1, "user_id": 9000001, "last_attended_at": "2026-11-18T14:00:00Z"}],
            course_id=course,
        ),
    }


def merged(*insts):
    out = {}
    for inst in insts:
        for stream, lf in inst.items():
            out[stream] = concat(out[stream], lf) if stream in out else lf
    return out


ALL = {"roster", "gradebook", "attendance", "engagement"}


def run(db: Path, frames, key, courses=("10",), *, mapping=CANVAS, vendor="canvas", **kw):
    return load_staged(
        frames=frames, courses_loaded={d: list(courses) for d in ALL}, mapping=mapping,
        serving_dsn=str(db), hmac_key=key, run_id="run-1", institution="demo-u",
        vendor=vendor, now=NOW, **kw,
    )  # fmt: skip


def rows(db: Path, sql: str, params=None):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_load_quarantines_bad_rows_and_loads_the_rest(tmp_path, key) -> None:
    db = tmp_path / "serving.duckdb"
    report = run(db, institution(), key)
    by = {r["table"]: r for r in report.to_rows()}
    assert by["submissions"]["extracted"] == 7
    assert report.tables["submissions"].quarantined == {"range": 1, "type": 1, "reference": 1}
    assert by["submissions"]["inserted"] == 4 == by["submissions"]["loaded"]
    assert by["people"]["inserted"] == 3
    assert by["enrollments"]["inserted"] == 3
    assert by["attendance"]["inserted"] == 1
    assert by["course_grades"]["inserted"] == 1

    q = rows(db, "SELECT rule, reason, natural_key FROM _quarantine ORDER BY rule")
    assert [r[0] for r in q] == ["range", "reference", "type"]
    assert "score = 25.0 outside 0…10.0" in q[0][1] and "course 10" in q[0][1]
    assert "submitted_at=2026-13-45T99:00:00Z" in q[2][1]
    assert q[0][2] == "100005"

    # One person per user; tokens, never ids; SIS id decides the person token.
    people = rows(db, "SELECT source_id, person_token, sis_id_token, role, status, grade_level "
                      "FROM people ORDER BY role")  # fmt: skip
    assert {p[3] for p in people} == {"student", "teacher"}
    (sis_token,) = token_values(duckdb.connect(), ["sis:SIS-ADA-77"], key)
    (vendor_token,) = token_values(duckdb.connect(), ["canvas:9000002"], key)
    tokens = {p[1] for p in people}
    assert sis_token in tokens and vendor_token in tokens
    assert all(p[5] is None for p in people)  # Canvas has no grade level

    # Keys are the documented function of (entity, vendor, source_id).
    (sub_key, course_key, person_key, token) = rows(
        db, "SELECT submission_key, course_key, person_key, person_token FROM submissions "
            "WHERE source_id = '100001'"
    )[0]  # fmt: skip
    assert sub_key == row_key("submissions", "canvas", "100001")
    assert course_key == row_key("courses", "canvas", "10")
    (vut,) = token_values(duckdb.connect(), ["canvas:9000001"], key)
    assert person_key == row_key("people", "canvas", vut)
    assert token == sis_token

    # Values: UTC timestamps, doubles, text grades.
    enr = rows(db, "SELECT role, state, last_activity_at, total_activity_seconds FROM enrollments "
                   "WHERE source_id = '10001'")  # fmt: skip
    assert enr[0][:2] == ("student", "active") and enr[0][3] == 3600
    assert enr[0][2].utcoffset().total_seconds() == 0 and enr[0][2].hour == 13
    assert rows(db, "SELECT points_possible FROM assignments ORDER BY source_id") == [
        (10.0,),
        (20.0,),
    ]

    runs = rows(db, "SELECT domain, status FROM _sync_runs ORDER BY domain")
    assert ("gradebook", "completed") in runs and ("roster", "completed") in runs
    state = rows(db, "SELECT domain, cursor FROM _sync_state WHERE institution = 'demo-u'")
    assert {d for d, _ in state} >= {"roster", "gradebook"}


def test_reload_of_same_staging_is_byte_identical(tmp_path, key) -> None:
    db = tmp_path / "serving.duckdb"
    frames = institution()
    run(db, frames, key)
    names = [t.name for t in TABLES] + ["_quarantine"]
    before = {n: table_digest(db, n) for n in names}
    report = run(db, frames, key)
    after = {n: table_digest(db, n) for n in names}
    assert before == after
    assert all(t.inserted == t.updated == t.deleted == 0 for t in report.tables.values())


def test_missing_rows_are_soft_deleted_only_in_loaded_courses(tmp_path, key) -> None:
    db = tmp_path / "serving.duckdb"
    run(db, merged(institution("10"), institution("20")), key, courses=("10", "20"))
    # Next run: course 10 lost a submission and an enrollment; course 20 failed to fetch.
    report = run(db, institution("10", drop_submission=True, drop_enrollment=True), key)
    assert report.tables["submissions"].deleted == 1
    assert report.tables["enrollments"].deleted == 1
    deleted = rows(db, "SELECT source_id, deleted_at FROM submissions WHERE deleted_at IS NOT NULL")
    assert deleted == [("100001", NOW)]
    assert rows(db, "SELECT count(*) FROM submissions WHERE source_id LIKE '2000%'") == [(4,)]
    assert rows(
        db, "SELECT count(*) FROM submissions WHERE source_id LIKE '2000%' AND deleted_at IS NULL"
    ) == [(4,)]  # fmt: skip
    assert rows(db, "SELECT count(*) FROM enrollments WHERE deleted_at IS NOT NULL") == [(1,)]
    # The quarantined rows of course 10 still exist in the source: not deleted.
    # Re-running the second load is a no-op, deletion time included.
    again = run(db, institution("10", drop_submission=True, drop_enrollment=True), key)
    assert again.tables["submissions"].deleted == 0


def test_vendor_deleted_enrollment_is_soft_deleted(tmp_path, key) -> None:
    db = tmp_path / "serving.duckdb"
    frames = institution()
    gone = _enrollment(10009, 9000001, 1001, state="deleted")
    frames["enrollments"] = concat(
        frames["enrollments"], staged("enrollments", [gone], course_id="10")
    )
    run(db, frames, key)
    assert rows(
        db, "SELECT state, deleted_at IS NOT NULL FROM enrollments WHERE source_id = '10009'"
    ) == [("deleted", True)]


def test_same_sis_id_in_two_vendors_is_one_person(tmp_path, key) -> None:
    db = tmp_path / "serving.duckdb"
    run(db, institution(), key)
    other = dataclasses.replace(CANVAS, vendor="moodle")
    run(db, institution(), key, mapping=other, vendor="moodle")
    tokens = rows(db, "SELECT vendor, person_token FROM people WHERE sis_id_token IS NOT NULL "
                      "ORDER BY person_token, vendor")  # fmt: skip
    assert len(tokens) == 4
    by_token: dict[str, set[str]] = {}
    for vendor, tok in tokens:
        by_token.setdefault(tok, set()).add(vendor)
    assert all(v == {"canvas", "moodle"} for v in by_token.values())
    # Without a SIS id the token is per vendor.
    assert rows(
        db, "SELECT count(DISTINCT person_token) FROM people WHERE sis_id_token IS NULL"
    ) == [(2,)]


def test_different_keys_give_different_tokens(tmp_path) -> None:
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    run(a, institution(), HmacKey(b"a" * 32, "v1"))
    run(b, institution(), HmacKey(b"b" * 32, "v1"))
    ta = {r[0] for r in rows(a, "SELECT person_token FROM people")}
    tb = {r[0] for r in rows(b, "SELECT person_token FROM people")}
    assert ta and tb and ta.isdisjoint(tb)


def test_no_pii_anywhere_in_serving_logs_or_spans(tmp_path, key, caplog) -> None:
    db = tmp_path / "serving.duckdb"
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    caplog.set_level(logging.DEBUG)
    frames = merged(
        institution(),
        {
            "users": staged(
                "users",
                recorded("courses__862539__users_include_enrollments_search_term_jav"),
                course_id="10",
            )
        },
    )
    run(db, frames, key, tracer=provider.get_tracer("test"))

    con = duckdb.connect(str(db), read_only=True)
    texts: list[str] = []
    for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
        cols = [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]
        for c in cols:
            texts += [
                str(v[0])
                for v in con.execute(f'SELECT DISTINCT "{c}"::VARCHAR FROM "{name}"').fetchall()
            ]
    con.close()
    blob = "\n".join(texts)
    for pii in [
        *PII,
        "JAMES AVERAGE",
        "javerage",
        "javerage@uw.edu",
        "15AE3883B6EC44C349E04E5FE089ABEB",
    ]:
        assert pii not in blob, pii
    spans = exporter.get_finished_spans()
    assert spans, "transform/load spans are emitted"
    span_text = repr([(s.name, dict(s.attributes or {})) for s in spans])
    log_text = "\n".join(r.getMessage() for r in caplog.records)
    for pii in PII:
        assert pii not in span_text and pii not in log_text
    assert any(s.name == "load submissions" and s.attributes["rows.loaded"] == 4 for s in spans)


def test_domain_without_complete_partitions_is_skipped(tmp_path, key) -> None:
    db = tmp_path / "serving.duckdb"
    report = load_staged(
        frames=institution(), courses_loaded={"roster": ["10"]}, mapping=CANVAS,
        serving_dsn=str(db), hmac_key=key, run_id="r", institution="i", vendor="canvas", now=NOW,
    )  # fmt: skip
    assert "submissions" not in report.tables and report.tables["people"].inserted == 3


def test_vendor_mismatch_is_a_clear_error(tmp_path, key) -> None:
    with pytest.raises(ValueError, match="does not match"):
        run(tmp_path / "x.duckdb", institution(), key, vendor="moodle")


def test_repeated_source_ids_keep_the_last_fetched_record(tmp_path, key) -> None:
    db = tmp_path / "serving.duckdb"
    frames = institution()
    later = datetime(2026, 11, 20, 11, 30, tzinfo=UTC)
    again = _submission(100001, 101, 9000001, 9.5)
    frames["submissions"] = concat(
        frames["submissions"],
        staged("submissions", [again], course_id="10", run_id="run-2", fetched_at=later),
    )
    report = run(db, frames, key)
    assert report.tables["submissions"].extracted == 7
    assert rows(db, "SELECT score, _run_id FROM submissions WHERE source_id = '100001'") == [
        (9.5, "run-2")
    ]


def test_first_load_into_empty_tables_equals_merging_into_loaded_ones(tmp_path, key) -> None:
    """Course 10 and 20 in one run (every table empty: the streaming first load) leave the same
    tables as course 10, then course 20 (the merge path with quarantine, update and insert)."""
    one, two = tmp_path / "one.duckdb", tmp_path / "two.duckdb"
    run(one, merged(institution("10"), institution("20")), key, courses=("10", "20"))
    run(two, institution("10"), key)
    report = run(two, merged(institution("10"), institution("20")), key, courses=("10", "20"))
    assert report.tables["submissions"].inserted == 4
    names = [t.name for t in TABLES] + ["_quarantine"]
    assert {n: table_digest(one, n) for n in names} == {n: table_digest(two, n) for n in names}

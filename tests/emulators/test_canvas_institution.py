"""The synthetic institution: deterministic per seed, covering every Canvas shape we map."""

from __future__ import annotations

import json
import re
import tracemalloc
from collections import Counter

from emulators.canvas import Institution, build_institution
from emulators.canvas.institution import (
    ANCHOR,
    GRADING_TYPES,
    ROLL_CALL_NAME,
    STUDENT_ENROLLMENT_STATES,
    iso,
)

_ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _snapshot(inst: Institution) -> str:
    data = {
        "courses": inst.courses(),
        "terms": inst.terms(),
        **{
            str(cid): {
                "sections": inst.sections(cid),
                "users": inst.users(cid),
                "enrollments": inst.enrollments(cid),
                "assignments": inst.assignments(cid),
                "submissions": list(inst.iter_submissions(cid)),
                "summaries": inst.student_summaries(cid),
                "views": [inst.page_views(u["id"]) for u in inst.users(cid)],
            }
            for cid in inst.course_ids()
        },
    }
    return json.dumps(data, sort_keys=True)


def test_same_seed_same_institution_other_seed_differs() -> None:
    a = build_institution(seed=3, courses=4, students_per_course=10)
    b = build_institution(seed=3, courses=4, students_per_course=10)
    c = build_institution(seed=4, courses=4, students_per_course=10)
    assert _snapshot(a) == _snapshot(b)
    assert _snapshot(a) != _snapshot(c)


def test_courses_cover_every_state_and_terms(institution: Institution) -> None:
    courses = institution.courses()
    assert {c["workflow_state"] for c in courses} == {
        "available",
        "unpublished",
        "completed",
        "deleted",
    }
    assert all(c["root_account_id"] == 1 and c["account_id"] == 1 for c in courses)
    term_ids = {t["id"] for t in institution.terms()}
    assert all(c["enrollment_term_id"] in term_ids and c["term"]["id"] in term_ids for c in courses)
    assert all(len(institution.sections(c["id"])) >= 2 for c in courses)


def test_people_roles_states_unicode_and_missing_sis(institution: Institution) -> None:
    enrollments = [e for cid in institution.course_ids() for e in institution.enrollments(cid)]
    assert {e["enrollment_state"] for e in enrollments} >= set(STUDENT_ENROLLMENT_STATES)
    assert {e["type"] for e in enrollments} == {
        "StudentEnrollment",
        "TeacherEnrollment",
        "TaEnrollment",
        "ObserverEnrollment",
    }
    observer = next(e for e in enrollments if e["type"] == "ObserverEnrollment")
    assert observer["associated_user_id"] is not None
    assert all("user" in e for e in enrollments)
    assert all("grades" in e for e in enrollments if e["type"] == "StudentEnrollment")
    assert not any("grades" in e for e in enrollments if e["type"] != "StudentEnrollment")
    assert any(e["last_attended_at"] for e in enrollments)
    assert any(e["last_attended_at"] is None for e in enrollments)
    assert any(e["total_activity_time"] > 0 and e["last_activity_at"] for e in enrollments)
    users = [u for cid in institution.course_ids() for u in institution.users(cid)]
    names = {u["name"] for u in users}
    assert {"Zoë Ñúñez", "李小龙", "Øystein"} <= names
    assert any(u["sis_user_id"] is None for u in users)
    assert all(u["email"] and u["login_id"] for u in users)
    assert len({u["id"] for u in users}) == len(users)


def test_assignments_cover_grading_types_and_roll_call(institution: Institution) -> None:
    for cid in institution.course_ids():
        assignments = institution.assignments(cid)
        assert {a["grading_type"] for a in assignments} == set(GRADING_TYPES)
        assert any(not a["published"] for a in assignments)
        assert any(a["points_possible"] is None for a in assignments)
        roll_call = [a for a in assignments if a["name"] == ROLL_CALL_NAME]
        assert len(roll_call) == 1
        rc = roll_call[0]
        assert (rc["grading_type"], rc["points_possible"], rc["published"]) == (
            "percent",
            100.0,
            True,
        )
        assert rc["submission_types"] == ["external_tool"]


def test_submissions_cover_every_status(institution: Institution) -> None:
    cid = institution.course_ids()[0]
    subs = list(institution.iter_submissions(cid))
    assert len(subs) == institution.submission_count(cid)
    assert [s["id"] for s in subs] == sorted(s["id"] for s in subs)
    published = {a["id"] for a in institution.assignments(cid) if a["published"]}
    assert {s["assignment_id"] for s in subs} == published
    states = Counter(s["workflow_state"] for s in subs)
    assert states["graded"] and states["submitted"] and states["unsubmitted"]
    assert any(s["workflow_state"] == "unsubmitted" and s["score"] is None for s in subs)
    late = [s for s in subs if s["late"]]
    assert late and all(s["seconds_late"] > 0 and s["late_policy_status"] == "late" for s in late)
    assert any(s["missing"] for s in subs)
    excused = [s for s in subs if s["excused"]]
    assert excused and all(s["score"] is None for s in excused)
    assert any(s["attempt"] and s["attempt"] > 1 for s in subs)
    assert any(s["grade_matches_current_submission"] is False for s in subs)
    grades = {s["grade"] for s in subs}
    assert {"complete", "incomplete"} <= grades
    assert any(g and re.fullmatch(r"[A-D][+-]?|F", g) for g in grades)
    assert any(g and g.endswith("%") for g in grades)
    by_assignment = {a["id"]: a for a in institution.assignments(cid)}
    roll_call = [s for s in subs if by_assignment[s["assignment_id"]]["name"] == ROLL_CALL_NAME]
    graded = [s for s in roll_call if s["score"] is not None]
    assert graded and all(s["grade"] == f"{int(s['score'])}%" for s in graded)


def test_timestamps_are_past_utc_z(institution: Institution) -> None:
    anchor = iso(ANCHOR)
    cid = institution.course_ids()[0]
    activity = [
        *(s[k] for s in institution.iter_submissions(cid) for k in ("submitted_at", "graded_at")),
        *(e[k] for e in institution.enrollments(cid) for k in ("last_activity_at", "created_at")),
        *(v["created_at"] for u in institution.users(cid) for v in institution.page_views(u["id"])),
    ]
    stamps = [t for t in activity if t is not None]
    assert stamps and all(_ISO_Z.match(t) and t < anchor for t in stamps)


def test_page_views_and_summaries(institution: Institution) -> None:
    cid = institution.course_ids()[0]
    views = [v for u in institution.users(cid) for v in institution.page_views(u["id"])]
    assert views and all(
        v["links"]["context"] == cid and v["context_type"] == "Course" for v in views
    )
    assert any(v["participated"] for v in views)
    one = institution.page_views(views[0]["links"]["user"])
    assert [v["created_at"] for v in one] == sorted((v["created_at"] for v in one), reverse=True)
    summaries = institution.student_summaries(cid)
    assert summaries and all(s["tardiness_breakdown"]["total"] > 0 for s in summaries)


def test_pii_values_cover_every_user_string(institution: Institution) -> None:
    pii = institution.pii_values()
    for cid in institution.course_ids():
        for u in institution.users(cid):
            for key in ("name", "short_name", "sortable_name", "email", "login_id"):
                assert u[key] in pii
            if u["sis_user_id"]:
                assert u["sis_user_id"] in pii


def test_large_course_generates_submissions_lazily() -> None:
    big = build_institution(seed=1, courses=1, students_per_course=1000, assignments_per_course=200)
    cid = big.course_ids()[0]
    first, stop = big.submission_id_bounds(cid)
    assert big.submission_count(cid) == stop - first > 199_000
    ids = []
    tracemalloc.start()
    try:
        for sub in big.iter_submissions(cid, start_id=stop - 20_000):
            ids.append(sub["id"])  # keep only the id, as a streaming consumer would
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ids == list(range(stop - 20_000, stop))
    # 20k materialized submissions take ~30 MB; one at a time stays near the id list itself.
    assert peak < 5_000_000, f"generation held {peak / 1e6:.1f} MB"
    assert big.submission(cid, stop - 1)["id"] == stop - 1

"""Endpoints, filters and error shapes (canvas-api.md §2, §4) against a real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from emulators.canvas import CanvasEmulator, Institution
from emulators.canvas.settings import CanvasEmulatorSettings

from .conftest import fetch_all

NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}


def _deleted(institution: Institution) -> int:
    return next(c["id"] for c in institution.courses() if c["workflow_state"] == "deleted")


def _live(institution: Institution) -> int:
    return institution.course_ids()[0]


# ---- auth -------------------------------------------------------------------------------------


def test_no_credentials_is_unauthenticated(canvas: CanvasEmulator) -> None:
    response = httpx.get(f"{canvas.base_url}/api/v1/accounts/1/courses")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="canvas-lms"'
    assert response.json() == {
        "status": "unauthenticated",
        "errors": [{"message": "user authorization required"}],
    }


@pytest.mark.parametrize("how", ["header", "query"])
def test_bad_token_is_invalid_access_token(canvas: CanvasEmulator, how: str) -> None:
    url = f"{canvas.base_url}/api/v1/accounts/1/courses"
    if how == "header":
        response = httpx.get(url, headers={"Authorization": "Bearer nope"})
    else:
        response = httpx.get(url, params={"access_token": "nope"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="canvas-lms"'
    assert response.json() == {"errors": [{"message": "Invalid access token."}]}


def test_access_token_query_param_works(canvas: CanvasEmulator) -> None:
    response = httpx.get(
        f"{canvas.base_url}/api/v1/accounts/1/courses",
        params={"access_token": canvas.settings.token},
    )
    assert response.status_code == 200


# ---- 404s -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix",
    [
        "",
        "/sections",
        "/enrollments",
        "/users",
        "/assignments",
        "/students/submissions?student_ids[]=all",
        "/analytics/student_summaries",
    ],
)
def test_deleted_course_is_404_everywhere(
    client: httpx.Client, institution: Institution, suffix: str
) -> None:
    response = client.get(f"/api/v1/courses/{_deleted(institution)}{suffix}")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "path", ["/api/v1/courses/999999", "/api/v1/nothing/here", "/api/v1/accounts/2/courses"]
)
def test_unknown_is_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# ---- courses ----------------------------------------------------------------------------------


def test_account_courses_default_excludes_deleted(client: httpx.Client, institution) -> None:
    default = fetch_all(client, "/api/v1/accounts/1/courses", {"per_page": 100})
    assert {c["workflow_state"] for c in default} == {"available", "unpublished", "completed"}
    everything = fetch_all(
        client, "/api/v1/accounts/1/courses", {"state[]": "all", "include[]": "term"}
    )
    assert everything == institution.courses()
    only = fetch_all(client, "/api/v1/accounts/1/courses", {"state[]": "completed"})
    assert {c["workflow_state"] for c in only} == {"completed"}
    term = only[0]["enrollment_term_id"]
    by_term = fetch_all(
        client, "/api/v1/accounts/1/courses", {"enrollment_term_id": term, "state[]": "all"}
    )
    assert by_term and all(c["enrollment_term_id"] == term for c in by_term)
    assert [c["id"] for c in default] == sorted(c["id"] for c in default)


def test_single_course_with_term(client: httpx.Client, institution: Institution) -> None:
    cid = _live(institution)
    plain = client.get(f"/api/v1/courses/{cid}").json()
    with_term = client.get(f"/api/v1/courses/{cid}", params={"include[]": "term"}).json()
    assert "term" not in plain and with_term["term"]["id"] == plain["enrollment_term_id"]
    assert with_term == institution.course(cid, include_term=True)


def test_terms(client: httpx.Client, institution: Institution) -> None:
    body = client.get("/api/v1/accounts/1/terms").json()
    assert body == {"enrollment_terms": institution.terms()}


# ---- roster -----------------------------------------------------------------------------------


def test_enrollments_default_states_and_filters(client: httpx.Client, institution) -> None:
    cid = _live(institution)
    path = f"/api/v1/courses/{cid}/enrollments"
    default = fetch_all(client, path, {"per_page": 100})
    assert {e["enrollment_state"] for e in default} == {"active", "invited"}
    assert default == [
        e for e in institution.enrollments(cid) if e["enrollment_state"] in ("active", "invited")
    ]
    students = fetch_all(client, path, {"type[]": "StudentEnrollment", "state[]": "deleted"})
    assert students and all(
        e["type"] == "StudentEnrollment" and e["enrollment_state"] == "deleted" for e in students
    )


def test_users_with_enrollments(client: httpx.Client, institution: Institution) -> None:
    cid = _live(institution)
    path = f"/api/v1/courses/{cid}/users"
    states = ["active", "invited", "rejected", "completed", "inactive"]
    params = [("include[]", "enrollments"), *(("enrollment_state[]", s) for s in states)]
    users = fetch_all(client, path, [*params, ("per_page", "100")])
    assert [{k: v for k, v in u.items() if k != "enrollments"} for u in users] == institution.users(
        cid
    )
    assert all(u["enrollments"] and "user" not in u["enrollments"][0] for u in users)
    teachers = fetch_all(client, path, {"enrollment_type[]": "teacher"})
    assert teachers and all("email" in u and "login_id" in u for u in teachers)
    assert len(teachers) < len(users)


def test_sections_with_students(client: httpx.Client, institution: Institution) -> None:
    cid = _live(institution)
    sections = client.get(f"/api/v1/courses/{cid}/sections").json()
    assert sections == institution.sections(cid)
    with_students = client.get(
        f"/api/v1/courses/{cid}/sections", params={"include[]": "students"}
    ).json()
    assert sum(len(s["students"]) for s in with_students) > 0


def test_student_summaries_match_ground_truth(client: httpx.Client, institution) -> None:
    cid = _live(institution)
    got = fetch_all(client, f"/api/v1/courses/{cid}/analytics/student_summaries", {"per_page": 4})
    assert got == institution.student_summaries(cid)


# ---- submissions ------------------------------------------------------------------------------


def _subs(client: httpx.Client, cid: int, **params: str) -> httpx.Response:
    return client.get(
        f"/api/v1/courses/{cid}/students/submissions",
        params=[("student_ids[]", "all"), ("per_page", "100"), *params.items()],
    )


@pytest.mark.parametrize("name", ["submitted_since", "graded_since"])
@pytest.mark.parametrize("value", ["yesterday", "2026-10-01", "2026-10-01 00:00:00", "1696118400"])
def test_since_validation(client: httpx.Client, institution, name: str, value: str) -> None:
    response = _subs(client, _live(institution), **{name: value})
    assert response.status_code == 400
    assert response.json() == {"errors": {name: f"Invalid datetime for {name}"}}


@pytest.mark.parametrize(
    ("name", "column"), [("submitted_since", "submitted_at"), ("graded_since", "graded_at")]
)
def test_since_is_strictly_after_and_drops_nulls(
    client: httpx.Client, institution: Institution, name: str, column: str
) -> None:
    cid = _live(institution)
    every = list(institution.iter_submissions(cid))
    stamps = sorted(s[column] for s in every if s[column])
    pivot = stamps[len(stamps) // 2]
    got = fetch_all(
        client,
        f"/api/v1/courses/{cid}/students/submissions",
        {"student_ids[]": "all", name: pivot, "per_page": 10},
    )
    assert got == [s for s in every if s[column] is not None and s[column] > pivot]
    assert all(s[column] != pivot for s in got)
    offset = _subs(client, cid, **{name: pivot.replace("Z", "+00:00")}).json()
    assert offset == got[: len(offset)]


def test_assignment_ids_must_be_published(client: httpx.Client, institution) -> None:
    cid = _live(institution)
    unpublished = next(a["id"] for a in institution.assignments(cid) if not a["published"])
    published = next(a["id"] for a in institution.assignments(cid) if a["published"])
    for bad in (unpublished, 424242):
        response = _subs(client, cid, **{"assignment_ids[]": str(bad)})
        assert response.status_code == 403
        assert response.json() == {"error": "invalid assignment ids requested"}
    ok = _subs(client, cid, **{"assignment_ids[]": str(published)}).json()
    assert ok and all(s["assignment_id"] == published for s in ok)


def test_workflow_state_and_student_filters(client: httpx.Client, institution) -> None:
    cid = _live(institution)
    graded = fetch_all(
        client,
        f"/api/v1/courses/{cid}/students/submissions",
        {"student_ids[]": "all", "workflow_state": "graded", "per_page": 50},
    )
    assert graded == [
        s for s in institution.iter_submissions(cid) if s["workflow_state"] == "graded"
    ]
    student = graded[0]["user_id"]
    mine = client.get(
        f"/api/v1/courses/{cid}/students/submissions",
        params={"student_ids[]": str(student), "per_page": 100},
    ).json()
    assert mine and {s["user_id"] for s in mine} == {student}
    assert client.get(f"/api/v1/courses/{cid}/students/submissions").json() == []
    bad_state = _subs(client, cid, enrollment_state="weird")
    assert bad_state.status_code == 400 and bad_state.json() == {
        "error": "invalid enrollment_state"
    }


def test_per_assignment_submissions(client: httpx.Client, institution: Institution) -> None:
    cid = _live(institution)
    assignments = institution.assignments(cid)
    published = next(a["id"] for a in assignments if a["published"] and a["position"] == 3)
    got = fetch_all(client, f"/api/v1/courses/{cid}/assignments/{published}/submissions")
    expected = [s for s in institution.iter_submissions(cid) if s["assignment_id"] == published]
    assert got == expected and [s["user_id"] for s in got] == sorted(s["user_id"] for s in got)
    unpublished = next(a["id"] for a in assignments if not a["published"])
    assert client.get(f"/api/v1/courses/{cid}/assignments/{unpublished}/submissions").json() == []
    missing = client.get(f"/api/v1/courses/{cid}/assignments/1/submissions")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("name", "column"), [("submitted_since", "submitted_at"), ("graded_since", "graded_at")]
)
def test_since_after_changes_answers_from_the_index_exactly_as_a_scan(
    name: str, column: str
) -> None:
    """A ``*_since`` after every seeded timestamp is answered from the changed submissions only;
    what it lists must equal filtering every submission (and miss nothing added or deleted)."""
    inst = Institution(seed=5, courses=2, students_per_course=12, assignments_per_course=9)
    cid = inst.course_ids()[0]
    first = datetime(2026, 11, 22, 8, tzinfo=UTC)
    inst.apply_changes(fraction=0.1, seed=3, at=first, add_students=2, delete_enrollments=1)
    inst.apply_changes(fraction=0.1, seed=4, at=first + timedelta(hours=2))
    pivot = "2026-11-22T09:00:00Z"
    every = list(inst.iter_submissions(cid))
    expected = [s for s in every if s[column] is not None and s[column] > pivot]
    assert expected  # the second round of changes is after the pivot
    assert inst.iter_submissions_after(cid, "2026-11-19T00:00:00Z") is None  # must scan
    with (
        CanvasEmulator(inst, settings=CanvasEmulatorSettings(token="t")) as emu,
        httpx.Client(base_url=emu.base_url, headers={"Authorization": "Bearer t"}) as http,
    ):
        got = fetch_all(
            http,
            f"/api/v1/courses/{cid}/students/submissions",
            {"student_ids[]": "all", name: pivot, "per_page": 3},
        )
        earlier = fetch_all(
            http,
            f"/api/v1/courses/{cid}/students/submissions",
            {"student_ids[]": "all", name: "2026-11-22T07:00:00Z", "per_page": 50},
        )
    assert got == expected
    assert earlier == [
        s for s in every if s[column] is not None and s[column] > "2026-11-22T07:00:00Z"
    ]
    assert len(earlier) > len(got)

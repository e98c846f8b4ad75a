"""The Blackboard emulator over HTTP: tokens, paging, fields=, quota, errors, ground truth, CLI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from emulators.blackboard import BlackboardEmulator, BlackboardEmulatorSettings, build_institution
from emulators.blackboard.institution import Institution
from emulators.cli import build_parser

P = "/learn/api/public"
KEY, SECRET = "emu-key", "emu-secret"


@pytest.fixture(scope="module")
def inst() -> Institution:
    return build_institution(seed=5, courses=4, students_per_course=23)


@pytest.fixture(scope="module")
def bb(inst) -> Iterator[BlackboardEmulator]:
    settings = BlackboardEmulatorSettings(client_id=KEY, client_secret=SECRET, daily_quota=100_000)
    with BlackboardEmulator(inst, settings=settings) as emulator:
        yield emulator


def _token(client: httpx.Client, **kw) -> httpx.Response:
    return client.post(f"{P}/v1/oauth2/token", auth=kw.pop("auth", (KEY, SECRET)), **kw)


@pytest.fixture
def client(bb) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bb.base_url, timeout=10) as c:
        token = _token(c, data={"grant_type": "client_credentials"}).json()["access_token"]
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def _all(client: httpx.Client, path: str, **params) -> tuple[list[dict], int]:
    response = client.get(path, params=params)
    pages, records = 1, list(response.json()["results"])
    while "paging" in response.json():
        response = client.get(response.json()["paging"]["nextPage"])
        records += response.json()["results"]
        pages += 1
    return records, pages


def test_token_grant_type_in_body_or_query_and_refusals(bb):
    with httpx.Client(base_url=bb.base_url) as c:
        body = _token(c, data={"grant_type": "client_credentials"}).json()
        query = _token(c, params={"grant_type": "client_credentials"}).json()
        assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 3600
        assert query["access_token"] == body["access_token"]  # one live token per key
        bad = _token(c, auth=(KEY, "nope"), data={"grant_type": "client_credentials"})
        assert bad.status_code == 401 and bad.json()["status"] == "401"
        assert _token(c, data={"grant_type": "password"}).status_code == 400
        refused = c.get(f"{P}/v3/courses", headers={"Authorization": "Bearer expired"})
        assert refused.status_code == 401
        assert refused.json() == {
            "status": "401",
            "message": "Bearer token is invalid",
            "extraInfo": refused.json()["extraInfo"],
        }


def test_paging_caps_next_page_and_fields(client, inst):
    cid = inst.course_ids()[0]
    records, pages = _all(client, f"{P}/v1/courses/{cid}/users", limit=10, expand="user")
    assert records == inst.memberships(cid, expand_user=True) and pages == 3
    first = client.get(f"{P}/v1/courses/{cid}/users", params={"limit": 500}).json()
    assert len(first["results"]) == len(inst.memberships(cid))  # 25 ≤ the cap of 200
    capped = client.get(
        f"{P}/v3/courses", params={"limit": 1, "fields": "id,availability.available"}
    )
    assert capped.json()["results"] == [{"id": cid, "availability": {"available": "Yes"}}]
    assert capped.json()["paging"]["nextPage"].startswith(f"{P}/v3/courses?fields=")
    grades, _ = _all(
        client,
        f"{P}/v2/courses/{cid}/gradebook/columns/{inst.columns(cid)[1]['id']}/users",
        limit=7,
    )
    assert grades == inst.grades(cid, inst.columns(cid)[1]["id"])
    assert client.get(f"{P}/v3/courses", params={"offset": -1}).status_code == 400


def test_errors_are_rest_exceptions(client, inst):
    for path in (f"{P}/v3/courses/_9_1", f"{P}/v1/courses/_100_1/meetings/1/users", f"{P}/nope"):
        response = client.get(path)
        assert response.status_code == 404 and set(response.json()) >= {"status", "message"}


def test_course_references_and_attendance(client, inst):
    course = inst.courses()[1]
    by_code = client.get(f"{P}/v3/courses/courseId:{course['courseId']}").json()
    assert by_code == course
    meeting = inst.meetings(course["id"])[0]
    records, _ = _all(client, f"{P}/v1/courses/{course['id']}/meetings/{meeting['id']}/users")
    assert records == inst.meeting_users(course["id"], meeting["id"])
    assert {r["status"] for r in records} <= {"Present", "Late", "Absent", "Excused"}
    assert all(isinstance(r["id"], int) and isinstance(r["meetingId"], str) for r in records)


def test_quota_headers_and_429_when_spent(inst):
    settings = BlackboardEmulatorSettings(client_id=KEY, client_secret=SECRET, daily_quota=3)
    with (
        BlackboardEmulator(inst, settings=settings) as emu,
        httpx.Client(base_url=emu.base_url) as c,
    ):
        token = _token(c, data={"grant_type": "client_credentials"})
        assert token.headers["x-rate-limit-remaining"] == "2"
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert c.get(f"{P}/v3/courses", headers=headers).headers["x-rate-limit-limit"] == "3"
        c.get(f"{P}/v3/courses", headers=headers)
        spent = c.get(f"{P}/v3/courses", headers=headers)
        assert spent.status_code == 429 and spent.headers["x-rate-limit-remaining"] == "0"
        assert spent.json()["status"] == "429"
        assert int(spent.headers["x-rate-limit-reset"]) > 86_000
        emu.quota.reset()
        assert c.get(f"{P}/v3/courses", headers=headers).status_code == 200


def test_ground_truth_is_deterministic_and_lists_pii():
    a = build_institution(seed=9, courses=4, students_per_course=12)
    b = build_institution(seed=9, courses=4, students_per_course=12)
    cid = a.course_ids()[0]
    assert a.memberships(cid, expand_user=True) == b.memberships(cid, expand_user=True)
    assert {c["availability"]["available"] for c in a.courses()} == {"Yes", "No", "Disabled"}
    pii = a.pii_values()
    assert "Zoë Ñúñez" in pii and any(v.startswith("SIS") for v in pii)
    assert any("externalId" not in u for u in a.users())  # manual accounts: no SIS id
    assert a.counts()["attendance"] > 0


def test_cli_parses_the_documented_arguments():
    args = build_parser().parse_args(
        ["blackboard", "--port", "0", "--seed", "3", "--courses", "2", "--students-per-course",
         "5", "--client-id", "K", "--client-secret", "S2"]
    )  # fmt: skip
    assert (args.vendor, args.client_id, args.client_secret, args.courses) == (
        "blackboard",
        "K",
        "S2",
        2,
    )

"""Paging exactly per canvas-api.md §1.2, against a real server."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from emulators.canvas import Institution
from emulators.canvas.paging import decode_bookmark, encode_bookmark

from .conftest import fetch_all

_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="(?P<rel>[a-z]+)"$')


def _rels(response: httpx.Response) -> list[tuple[str, str]]:
    parts = response.headers["link"].split(",")
    matches = [_LINK.match(p) for p in parts]
    assert all(matches), response.headers["link"]
    return [(m["rel"], m["url"]) for m in matches if m]


def _course(institution: Institution) -> int:
    return institution.course_ids()[0]


@pytest.mark.parametrize("per_page", [1, 7, 100])
def test_every_record_exactly_once(
    client: httpx.Client, institution: Institution, per_page: int
) -> None:
    cid = _course(institution)
    all_states = [("state[]", s) for s in ("active", "invited", "completed", "inactive")] + [
        ("state[]", s) for s in ("deleted", "rejected", "creation_pending")
    ]
    cases = [
        (f"/api/v1/courses/{cid}/enrollments", all_states, institution.enrollments(cid)),
        (
            f"/api/v1/courses/{cid}/students/submissions",
            [("student_ids[]", "all")],
            list(institution.iter_submissions(cid)),
        ),
        (
            "/api/v1/accounts/1/courses",
            [("state[]", "all")],
            institution.courses(include_term=False),
        ),
        (f"/api/v1/courses/{cid}/assignments", [], institution.assignments(cid)),
    ]
    for path, params, expected in cases:
        got = fetch_all(client, path, [*params, ("per_page", str(per_page))])
        assert got == expected, path


def test_link_header_format_order_and_params(
    client: httpx.Client, institution: Institution
) -> None:
    cid = _course(institution)
    response = client.get(
        f"/api/v1/courses/{cid}/assignments",
        params=[("include[]", "submission"), ("page", "2"), ("per_page", "3")],
    )
    rels = _rels(response)
    assert [r for r, _ in rels] == ["current", "next", "prev", "first", "last"]
    for _, url in rels:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.netloc == client.base_url.netloc.decode()
        query = parse_qsl(parts.query)
        assert query[0] == ("include[]", "submission")
        assert [k for k, _ in query[-2:]] == ["page", "per_page"]
        assert query[-1] == ("per_page", "3")
    pages = {rel: dict(parse_qsl(urlsplit(url).query))["page"] for rel, url in rels}
    last = -(-len(institution.assignments(cid)) // 3)
    assert pages == {"current": "2", "next": "3", "prev": "1", "first": "1", "last": str(last)}


def test_access_token_is_stripped_from_links(canvas, institution: Institution) -> None:
    cid = _course(institution)
    response = httpx.get(
        f"{canvas.base_url}/api/v1/courses/{cid}/assignments",
        params={"access_token": canvas.settings.token, "per_page": 2},
    )
    assert response.status_code == 200
    assert "access_token" not in response.headers["link"]


def test_first_page_has_no_prev_and_account_courses_have_no_last(client: httpx.Client) -> None:
    response = client.get("/api/v1/accounts/1/courses", params={"per_page": 1})
    assert [r for r, _ in _rels(response)] == ["current", "next", "first"]


def test_bookmark_collections(client: httpx.Client, institution: Institution) -> None:
    cid = _course(institution)
    path = f"/api/v1/courses/{cid}/students/submissions"
    first = client.get(path, params=[("student_ids[]", "all"), ("per_page", "5")])
    rels = dict(_rels(first))
    assert "last" not in rels and "prev" not in rels
    assert dict(parse_qsl(urlsplit(rels["first"]).query))["page"] == "first"
    token = dict(parse_qsl(urlsplit(rels["next"]).query))["page"]
    assert token.startswith("bookmark:") and "=" not in token
    assert decode_bookmark(token) == first.json()[-1]["id"]
    second = client.get(rels["next"])
    assert second.json()[0]["id"] > first.json()[-1]["id"]
    # Undecodable bookmark → first page; numeric page > 1 → 404.
    junk = client.get(
        path, params=[("student_ids[]", "all"), ("per_page", "5"), ("page", "bookmark:%%%")]
    )
    assert junk.json() == first.json()
    numeric = client.get(path, params=[("student_ids[]", "all"), ("page", "2")])
    assert numeric.status_code == 404
    assert numeric.json() == {"errors": [{"message": "The specified resource does not exist."}]}


def test_bookmark_roundtrip() -> None:
    value = ["Ñúñez, Zoë", 12]
    token = encode_bookmark(value)
    assert token.startswith("bookmark:") and "+" not in token and "/" not in token
    assert decode_bookmark(token) == value
    assert decode_bookmark("bookmark:not-json!!") is None


def test_ordinal_page_past_end_is_empty(client: httpx.Client, institution: Institution) -> None:
    cid = _course(institution)
    response = client.get(f"/api/v1/courses/{cid}/sections", params={"page": 99})
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize(("asked", "served"), [("0", 1), ("-5", 1), ("1000", 100), ("x", 10)])
def test_per_page_clamped(client: httpx.Client, institution: Institution, asked, served) -> None:
    cid = _course(institution)
    response = client.get(
        f"/api/v1/courses/{cid}/students/submissions",
        params=[("student_ids[]", "all"), ("per_page", asked)],
    )
    assert len(response.json()) == served
    assert f"per_page={served}" in response.headers["link"]


def test_page_views_newest_first_bookmarked(client: httpx.Client, institution: Institution) -> None:
    cid = _course(institution)
    user = next(u for u in institution.users(cid) if len(institution.page_views(u["id"])) > 3)
    expected = institution.page_views(user["id"])
    got = fetch_all(client, f"/api/v1/users/{user['id']}/page_views", {"per_page": 2})
    assert got == expected
    start, end = expected[-2]["created_at"], expected[1]["created_at"]
    window = client.get(
        f"/api/v1/users/{user['id']}/page_views",
        params={"start_time": start, "end_time": end, "per_page": 100},
    ).json()
    assert window == [v for v in expected if start <= v["created_at"] < end]

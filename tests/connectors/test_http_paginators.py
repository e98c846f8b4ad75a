"""Paginators, through the client: Link header (ordinal, bookmark, relative), offset, nextPage."""

from __future__ import annotations

import httpx
import pytest

from connectors import (
    ForeignHostError,
    LinkHeaderPaginator,
    MalformedResponseError,
    NextPagePaginator,
    OffsetPaginator,
    PaginationLoopError,
    SinglePage,
)
from tests.connectors.http_fakes import make_client

HOST = "https://lms.test"


def _link(url: str, rel: str = "next") -> str:
    return f'<{url}>; rel="{rel}"'


def _pages(client, path, paginator, params=None):  # type: ignore[no-untyped-def]
    return list(
        client.paginate(path, params=params, paginator=paginator, endpoint="e", course_id="1")
    )


def test_link_header_ordinal_pages_absolute_urls() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        links = [_link(f"{HOST}/api/v1/courses/1/users?page={page}&per_page=2", "current")]
        if page < 3:
            links.append(_link(f"{HOST}/api/v1/courses/1/users?page={page + 1}&per_page=2"))
        return httpx.Response(
            200, json=[page * 10, page * 10 + 1], headers={"Link": ",".join(links)}
        )

    pages = _pages(make_client(handler), "courses/1/users", LinkHeaderPaginator(), {"per_page": 2})
    assert [p.records for p in pages] == [[10, 11], [20, 21], [30, 31]]
    assert [p.number for p in pages] == [1, 2, 3]
    assert pages[2].url.endswith("page=3&per_page=2")


def test_link_header_bookmarks_relative_urls_and_header_case() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("page", "first")
        following = {"first": "bookmark:WzEwXQ", "bookmark:WzEwXQ": "bookmark:WzIwXQ"}.get(page)
        headers = {}
        if following:
            headers["LINK"] = _link(f"/api/v1/courses/1/enrollments?page={following}&per_page=10")
        return httpx.Response(200, json=[page], headers=headers)

    pages = _pages(make_client(handler), "courses/1/enrollments", LinkHeaderPaginator())
    assert [p.records for p in pages] == [["first"], ["bookmark:WzEwXQ"], ["bookmark:WzIwXQ"]]


def test_link_header_repeated_next_url_is_a_loop() -> None:
    same = _link(f"{HOST}/api/v1/courses/1/users?page=2&per_page=10")
    client = make_client(lambda request: httpx.Response(200, json=[1], headers={"Link": same}))
    with pytest.raises(PaginationLoopError) as info:
        _pages(client, "courses/1/users", LinkHeaderPaginator())
    assert info.value.page_number == 2
    assert "page=2" not in str(info.value)  # query (bookmarks may encode names) is not shown


def test_link_to_another_host_is_refused_before_sending() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(
            200, json=[1], headers={"Link": _link("https://evil.test/steal?page=2")}
        )

    with pytest.raises(ForeignHostError) as info:
        _pages(make_client(handler), "courses/1/users", LinkHeaderPaginator())
    assert len(sent) == 1 and info.value.kind == "configuration"
    assert "evil.test" in str(info.value)


def test_offset_paginator_moodle_options_stops_on_short_page() -> None:
    users = list(range(7))

    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["options[0][value]"])
        size = int(request.url.params["options[1][value]"])
        return httpx.Response(200, json=users[start : start + size])

    paginator = OffsetPaginator(
        offset_param="options[0][value]", limit_param="options[1][value]", limit=3
    )
    params = [
        ("courseid", "2"),
        ("options[0][name]", "limitfrom"),
        ("options[1][name]", "limitnumber"),
    ]
    pages = _pages(make_client(handler, vendor="moodle"), "server.php", paginator, params)
    assert [p.records for p in pages] == [[0, 1, 2], [3, 4, 5], [6]]


def test_offset_paginator_exact_multiple_ends_on_empty_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json=[offset, offset + 1] if offset < 4 else [])

    pages = _pages(make_client(handler), "x", OffsetPaginator(limit=2))
    assert [p.records for p in pages] == [[0, 1], [2, 3], []]


def test_next_page_paginator_blackboard() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        body: dict[str, object] = {"results": [offset, offset + 1]}
        if offset < 4:
            body["paging"] = {"nextPage": f"/learn/api/public/v1/users?offset={offset + 2}&limit=2"}
        return httpx.Response(200, json=body)

    client = make_client(handler, vendor="blackboard", base_url=f"{HOST}/learn/api/public/v1/")
    pages = _pages(client, "users", NextPagePaginator(), {"limit": 2})
    assert [p.records for p in pages] == [[0, 1], [2, 3], [4, 5]]
    assert pages[1].url == f"{HOST}/learn/api/public/v1/users?offset=2&limit=2"


def test_next_page_null_ends_paging() -> None:
    body = {"results": [1], "paging": {"nextPage": None}}
    pages = _pages(make_client(lambda r: httpx.Response(200, json=body)), "u", NextPagePaginator())
    assert len(pages) == 1


def test_single_page_and_records_key() -> None:
    client = make_client(lambda r: httpx.Response(200, json={"items": [1, 2]}))
    assert _pages(client, "x", SinglePage(records_key="items"))[0].records == [1, 2]


def test_records_in_the_wrong_place_is_malformed() -> None:
    client = make_client(lambda r: httpx.Response(200, json={"unexpected": True}))
    with pytest.raises(MalformedResponseError, match="expected a JSON list under 'results'"):
        _pages(client, "x", NextPagePaginator())


def test_pages_stream_one_at_a_time() -> None:
    served: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        served.append(page)
        return httpx.Response(
            200, json=[page], headers={"Link": _link(f"{HOST}/x?page={page + 1}")}
        )

    pages = make_client(handler).paginate("x", paginator=LinkHeaderPaginator(), endpoint="x")
    next(pages)
    next(pages)
    assert served == [1, 2]

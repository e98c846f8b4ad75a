"""Tokens, credential query params, names and emails never reach errors, spans or page URLs."""

from __future__ import annotations

import httpx
import pytest

from connectors import (
    CANVAS_RULES,
    MOODLE_RULES,
    BearerAuth,
    ConnectorError,
    LinkHeaderPaginator,
    PaginationLoopError,
    QueryTokenAuth,
    RetryPolicy,
)
from connectors.redaction import redact_url, scrub
from tests.connectors.http_fakes import Scripted, make_client

TOKEN = "7~SuperSecretCanvasToken0123456789"
WSTOKEN = "f00dfacecafe1234567890abcdef0000"


def _all_text(error: ConnectorError) -> str:
    return f"{error} {error!r} {error.to_dict()}"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, json={"errors": [{"message": f"no user jane.doe@school.edu {TOKEN}"}]}),
        httpx.Response(400, json={"message": f"bad request ?access_token={TOKEN}"}),
        httpx.Response(500, text=f"<html>Authorization: Bearer {TOKEN} Jane Doe</html>"),
        httpx.ReadTimeout(f"timed out GET https://lms.test/?access_token={TOKEN}"),
    ],
)
def test_errors_never_carry_tokens_or_emails(answer: httpx.Response | Exception) -> None:
    client = make_client(
        Scripted(answer),
        auth=BearerAuth(TOKEN),
        rules=CANVAS_RULES,
        retry=RetryPolicy.fast(max_attempts=2),
    )
    with pytest.raises(ConnectorError) as info:
        client.get_json(f"courses/1/users?access_token={TOKEN}", endpoint="courses/{id}/users")
    text = _all_text(info.value)
    assert TOKEN not in text and "SuperSecret" not in text
    assert "jane.doe@school.edu" not in text and "Jane Doe" not in text
    assert info.value.__cause__ is None  # nothing chained that could print the URL


def test_moodle_wstoken_is_masked_in_page_urls_and_errors() -> None:
    body = {"exception": "x", "errorcode": "invalidparameter", "message": f"wstoken={WSTOKEN}"}
    client = make_client(
        Scripted(httpx.Response(200, json=[1]), httpx.Response(200, json=body)),
        vendor="moodle",
        auth=QueryTokenAuth("wstoken", WSTOKEN),
        rules=MOODLE_RULES,
    )
    result = client.get_json("server.php", params={"wsfunction": "f"}, endpoint="f")
    assert WSTOKEN not in result.url and "wstoken=REDACTED" in result.url
    with pytest.raises(ConnectorError) as info:
        client.get_json("server.php", params={"wsfunction": "f"}, endpoint="f")
    assert WSTOKEN not in _all_text(info.value)


def test_span_attributes_hold_no_secrets_urls_or_queries(spans) -> None:  # type: ignore[no-untyped-def]
    tracer, exporter = spans
    handler = Scripted(
        httpx.Response(429),
        httpx.Response(200, json=[{"id": 1}]),
        httpx.Response(404, json={"errors": [{"message": f"user jane@x.edu {TOKEN}"}]}),
    )
    client = make_client(handler, auth=BearerAuth(TOKEN), rules=CANVAS_RULES, tracer=tracer)
    params = {"search_term": "jane@x.edu", "access_token": TOKEN}
    page = next(
        client.paginate(
            "courses/9/users",
            params=params,
            paginator=LinkHeaderPaginator(),
            endpoint="courses/{id}/users",
            course_id="9",
        )
    )
    with pytest.raises(ConnectorError):
        client.get_json("users/123/page_views", endpoint="users/{id}/page_views", course_id="9")

    finished = exporter.get_finished_spans()
    assert [s.name for s in finished] == [
        "GET canvas courses/{id}/users",
        "GET canvas users/{id}/page_views",
    ]
    ok, failed = finished
    assert ok.attributes["lms.vendor"] == "canvas"
    assert ok.attributes["lms.course_id"] == "9"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.attributes["lms.retry_count"] == 1
    assert ok.attributes["lms.throttled"] is True
    assert failed.attributes["error.type"] == "PermanentError"
    assert (page.trace_id, page.span_id) == (
        format(ok.context.trace_id, "032x"),
        format(ok.context.span_id, "016x"),
    )
    assert len(page.trace_id) == 32 and len(page.span_id) == 16
    for span in finished:
        dumped = f"{span.name} {dict(span.attributes)} {span.status.description} {span.events}"
        for secret in (TOKEN, "jane", "123", "?", "https://"):
            assert secret not in dumped, (secret, dumped)


def test_loop_error_hides_bookmark_query() -> None:
    bookmark = "bookmark:WyJEb2UsIEphbmUiLDQyXQ"  # base64 of ["Doe, Jane",42]
    link = f'<https://lms.test/api/v1/courses/1/enrollments?page={bookmark}>; rel="next"'
    client = make_client(lambda request: httpx.Response(200, json=[], headers={"Link": link}))
    with pytest.raises(PaginationLoopError) as info:
        list(
            client.paginate("courses/1/enrollments", paginator=LinkHeaderPaginator(), endpoint="e")
        )
    assert bookmark not in _all_text(info.value)


def test_redaction_helpers() -> None:
    assert redact_url(f"https://m.test/x?wstoken={WSTOKEN}&a=1") == (
        "https://m.test/x?wstoken=REDACTED&a=1"
    )
    assert scrub("x" * 500).endswith("…") and len(scrub("x" * 500)) == 200
    assert repr(BearerAuth(TOKEN)) == "BearerAuth(token=***)"
    assert TOKEN not in repr(QueryTokenAuth("wstoken", TOKEN))

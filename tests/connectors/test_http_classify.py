from __future__ import annotations

import httpx
import pytest

from connectors import BLACKBOARD_RULES, CANVAS_RULES, MOODLE_RULES, Action, classify
from connectors.classify import vendor_message

THROTTLE_BODY = "403 Forbidden (Rate Limit Exceeded)\n"


@pytest.mark.parametrize(
    ("status", "action", "kind"),
    [
        (200, Action.OK, "transient"),
        (400, Action.FAIL, "permanent"),
        (401, Action.FAIL, "configuration"),
        (403, Action.FAIL, "permanent"),
        (404, Action.FAIL, "permanent"),
        (422, Action.FAIL, "permanent"),
        (409, Action.FAIL, "permanent"),
        (408, Action.RETRY, "transient"),
        (429, Action.THROTTLED, "transient"),
        (500, Action.RETRY, "transient"),
        (502, Action.RETRY, "transient"),
        (503, Action.RETRY, "transient"),
        (504, Action.RETRY, "transient"),
    ],
)
def test_default_status_table(status: int, action: Action, kind: str) -> None:
    verdict = classify(httpx.Response(status, json={}))
    assert (verdict.action, verdict.kind) == (action, kind)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout("t"),
        httpx.ReadTimeout("t"),
        httpx.WriteTimeout("t"),
        httpx.PoolTimeout("t"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("reset"),
        httpx.ConnectError("refused"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_transport_failures_are_transient(exc: Exception) -> None:
    verdict = classify(exc)
    assert (verdict.action, verdict.kind) == (Action.RETRY, "transient")


def test_unknown_exception_fails() -> None:
    assert classify(RuntimeError("bug")).action is Action.FAIL
    assert classify(httpx.UnsupportedProtocol("ftp")).kind == "configuration"


def test_truncated_json_in_200_is_retried() -> None:
    verdict = classify(httpx.Response(200, content=b'[{"id": 1}, {"id"'))
    assert (verdict.action, verdict.kind) == (Action.RETRY, "transient")


def test_ok_verdict_carries_parsed_json() -> None:
    assert classify(httpx.Response(200, json=[{"id": 1}])).data == [{"id": 1}]


def test_canvas_403_throttle_versus_permission_403() -> None:
    throttle = httpx.Response(403, text=THROTTLE_BODY, headers={"X-Rate-Limit-Remaining": "13.6"})
    denied = httpx.Response(
        403, json={"status": "unauthorized", "errors": [{"message": "user not authorized"}]}
    )
    assert classify(throttle, rules=CANVAS_RULES).action is Action.THROTTLED
    assert classify(denied, rules=CANVAS_RULES).action is Action.FAIL
    assert classify(denied, rules=CANVAS_RULES).kind == "permanent"


def test_canvas_429_is_throttled() -> None:
    response = httpx.Response(429, text="429 Too Many Requests (Rate Limit Exceeded)")
    assert classify(response, rules=CANVAS_RULES).action is Action.THROTTLED


def test_canvas_401_token_versus_permission() -> None:
    bad_token = httpx.Response(
        401,
        headers={"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
        json={"errors": [{"message": "Invalid access token."}]},
    )
    not_allowed = httpx.Response(401, json={"status": "unauthorized", "errors": []})
    assert classify(bad_token, rules=CANVAS_RULES).kind == "configuration"
    assert classify(not_allowed, rules=CANVAS_RULES).kind == "permanent"


@pytest.mark.parametrize(
    ("errorcode", "kind"),
    [
        ("invalidtoken", "configuration"),
        ("accessexception", "permanent"),
        ("invalidparameter", "permanent"),
        ("invalidrecord", "permanent"),
    ],
)
def test_moodle_error_inside_http_200(errorcode: str, kind: str) -> None:
    body = {"exception": "moodle_exception", "errorcode": errorcode, "message": "m"}
    verdict = classify(httpx.Response(200, json=body), rules=MOODLE_RULES)
    assert (verdict.action, verdict.kind) == (Action.FAIL, kind)


def test_moodle_pluginfile_error_shape_and_warnings_are_not_errors() -> None:
    pluginfile = {"error": "Invalid token - token not found", "errorcode": "invalidtoken"}
    warnings = {"assignments": [], "warnings": [{"warningcode": "3", "message": "No grades"}]}
    assert classify(httpx.Response(200, json=pluginfile), rules=MOODLE_RULES).kind == (
        "configuration"
    )
    assert classify(httpx.Response(200, json=warnings), rules=MOODLE_RULES).action is Action.OK
    assert classify(httpx.Response(200, json=[]), rules=MOODLE_RULES).action is Action.OK


def test_blackboard_429() -> None:
    body = {"status": "429", "code": "quota", "message": "Rate limit exceeded"}
    verdict = classify(httpx.Response(429, json=body), rules=BLACKBOARD_RULES)
    assert verdict.action is Action.THROTTLED


def test_vendor_rules_run_before_the_table() -> None:
    def ignore_404(outcome: object, data: object) -> object:
        if isinstance(outcome, httpx.Response) and outcome.status_code == 404:
            from connectors.classify import Verdict

            return Verdict(Action.OK, "transient", "gone is fine")
        return None

    assert classify(httpx.Response(404), rules=(ignore_404,)).action is Action.OK


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"errors": [{"message": "The specified resource does not exist."}]},
            "The specified resource does not exist.",
        ),
        (
            {"errorcode": "invalidrecord", "message": "Can't find data record"},
            "invalidrecord: Can't find data record",
        ),
        ({"status": "404", "code": "x", "message": "Course not found"}, "Course not found"),
        ({"error": "too many students"}, "too many students"),
    ],
)
def test_vendor_message_reads_error_fields_only(body: dict[str, object], message: str) -> None:
    assert vendor_message(httpx.Response(404, json=body)) == message


def test_vendor_message_ignores_non_error_bodies() -> None:
    assert vendor_message(httpx.Response(500, text="<html>Jane Doe jane@x.edu</html>")) == ""

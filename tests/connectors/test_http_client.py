"""The retry loop of `VendorClient.get_json`, driven through `httpx.MockTransport`."""

from __future__ import annotations

import json

import httpx
import pytest

from connectors import (
    CANVAS_RULES,
    MOODLE_RULES,
    AuthenticationError,
    BearerAuth,
    CircuitBreaker,
    CircuitOpenError,
    PermanentError,
    RetryBudgetExhausted,
    RetryPolicy,
)
from tests.connectors.http_fakes import FakeClock, Scripted, make_client

OK = httpx.Response(200, json=[{"id": 1}])
ENDPOINT = "courses/{course_id}/enrollments"


def _get(client, **kwargs):  # type: ignore[no-untyped-def]
    return client.get_json("courses/42/enrollments", endpoint=ENDPOINT, course_id="42", **kwargs)


def test_transient_then_success() -> None:
    handler = Scripted(httpx.Response(503), httpx.Response(502), OK)
    result = _get(make_client(handler))
    assert result.data == [{"id": 1}]
    assert result.attempts == 3
    assert len(handler.requests) == 3
    assert result.fetched_at.tzinfo is not None


def test_permanent_error_after_exactly_one_attempt() -> None:
    body = {"errors": [{"message": "The specified resource does not exist."}]}
    handler = Scripted(httpx.Response(404, json=body))
    client = make_client(handler, rules=CANVAS_RULES)
    with pytest.raises(PermanentError) as info:
        _get(client)
    assert len(handler.requests) == 1
    assert str(info.value) == (
        "canvas course 42: GET courses/{course_id}/enrollments → 404 Not Found: "
        "The specified resource does not exist."
    )
    assert info.value.kind == "permanent"
    assert info.value.to_dict()["status"] == 404
    assert client.stats.snapshot()["failed"] == 1


def test_permission_403_is_permanent_not_throttle() -> None:
    handler = Scripted(httpx.Response(403, json={"errors": [{"message": "not authorized"}]}))
    with pytest.raises(PermanentError):
        _get(make_client(handler, rules=CANVAS_RULES))
    assert len(handler.requests) == 1


def test_bad_token_fails_at_once() -> None:
    handler = Scripted(
        httpx.Response(
            401,
            headers={"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
            json={"errors": [{"message": "Invalid access token."}]},
        )
    )
    client = make_client(handler, rules=CANVAS_RULES, auth=BearerAuth("s3cr3t-token-value"))
    with pytest.raises(AuthenticationError) as info:
        _get(client)
    assert len(handler.requests) == 1
    assert info.value.kind == "configuration"
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in repr(info.value.to_dict())


def test_moodle_invalid_token_in_200_fails_at_once() -> None:
    body = {
        "exception": "moodle_exception",
        "errorcode": "invalidtoken",
        "message": "Invalid token",
    }
    handler = Scripted(httpx.Response(200, json=body))
    client = make_client(handler, vendor="moodle", rules=MOODLE_RULES)
    with pytest.raises(AuthenticationError, match="invalidtoken"):
        client.get_json("server.php", endpoint="core_enrol_get_enrolled_users")
    assert len(handler.requests) == 1


def test_truncated_json_is_retried() -> None:
    handler = Scripted(httpx.Response(200, content=b'[{"id": 1}, {"i'), OK)
    result = _get(make_client(handler))
    assert result.data == [{"id": 1}] and result.attempts == 2


def test_connection_errors_are_retried() -> None:
    handler = Scripted(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), OK)
    assert _get(make_client(handler)).attempts == 3


def test_budget_exhaustion_names_endpoint_course_and_last_status() -> None:
    handler = Scripted(httpx.Response(503))
    client = make_client(handler, retry=RetryPolicy.fast(max_attempts=4))
    with pytest.raises(RetryBudgetExhausted) as info:
        _get(client)
    error = info.value
    assert len(handler.requests) == 4
    assert (error.attempts, error.last_status, error.course_id) == (4, 503, "42")
    assert error.kind == "transient"
    assert "canvas course 42" in str(error) and ENDPOINT in str(error) and "503" in str(error)
    stats = client.stats.snapshot()
    assert stats["requests"] == 4 and stats["retried"] == 3 and stats["responses"] == {503: 4}


def test_budget_exhaustion_by_total_time() -> None:
    handler = Scripted(httpx.Response(503, headers={"Retry-After": "5"}))
    clock = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    policy = RetryPolicy(max_total_seconds=12, sleep=sleep, clock=clock)
    with pytest.raises(RetryBudgetExhausted) as info:
        _get(make_client(handler, retry=policy))
    assert slept == [5.0, 5.0]  # a third wait would pass 12 s
    assert info.value.attempts == 3


def test_throttled_responses_are_retried_and_counted() -> None:
    throttle = httpx.Response(403, text="403 Forbidden (Rate Limit Exceeded)\n")
    handler = Scripted(throttle, httpx.Response(429), OK)
    client = make_client(handler, rules=CANVAS_RULES)
    assert _get(client).attempts == 3
    assert client.stats.snapshot()["throttled"] == 2


def test_retry_after_is_honoured() -> None:
    slept: list[float] = []
    handler = Scripted(httpx.Response(429, headers={"Retry-After": "3"}), OK)
    _get(make_client(handler, retry=RetryPolicy(sleep=slept.append)))
    assert slept == [3.0]


def test_breaker_opens_after_503s_and_then_sends_nothing() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_seconds=30, clock=clock)
    handler = Scripted(httpx.Response(503), httpx.Response(503), httpx.Response(503), OK)
    client = make_client(handler, breaker=breaker)
    with pytest.raises(CircuitOpenError):
        _get(client)
    assert len(handler.requests) == 3
    with pytest.raises(CircuitOpenError):
        _get(client)
    assert len(handler.requests) == 3  # failed fast: nothing sent
    assert client.stats.snapshot()["circuit_open"] == 2
    clock.advance(30)
    assert _get(client).data == [{"id": 1}]  # half-open probe succeeds, circuit closes
    assert len(handler.requests) == 4


def test_breaker_ignores_throttles_and_permanent_errors() -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    throttle = httpx.Response(429)
    handler = Scripted(httpx.Response(503), throttle, httpx.Response(503), throttle, OK)
    assert _get(make_client(handler, breaker=breaker, rules=CANVAS_RULES)).attempts == 5


def test_breaker_opens_on_connection_refused() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    handler = Scripted(httpx.ConnectError("refused"))
    with pytest.raises(CircuitOpenError):
        _get(make_client(handler, breaker=breaker))
    assert len(handler.requests) == 2


def test_errors_pickle_for_prefect() -> None:
    import pickle

    handler = Scripted(httpx.Response(404, json={"errors": [{"message": "gone"}]}))
    with pytest.raises(PermanentError) as info:
        _get(make_client(handler))
    clone = pickle.loads(pickle.dumps(info.value))
    assert str(clone) == str(info.value) and clone.status == 404


def test_context_manager_closes() -> None:
    with make_client(Scripted(OK)) as client:
        assert json.dumps(_get(client).data)

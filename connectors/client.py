"""`VendorClient`: one pooled, paced, retrying, traced HTTP client per vendor connection.

Layering (each layer knows nothing of the one above):

    VendorClient.paginate ── pages via a Paginator, loop + foreign-host checks
    VendorClient.get_json ── breaker → send → classify → OK | FAIL (raise) | RETRY (back off)
    httpx.Client          ── keep-alive pool, auth, timeouts, base URL
    PacedTransport        ── waits for the Pacer before each request (optional)
    HTTPTransport         ── sockets (or httpx.MockTransport in tests)

One worked exchange: `get_json("courses/42/enrollments", endpoint="courses/{id}/enrollments",
course_id="42")` sends GET, gets `503`, waits (Retry-After or jittered backoff), sends again,
gets `200 [..]` and returns `JsonResponse(data=[..], attempts=2, ...)`. Had the vendor answered
`404 {"errors":[{"message":"The specified resource does not exist."}]}` it would have raised
`PermanentError` after that single attempt.

Traces: each `get_json` call (one attempt group) is a span named `GET <vendor> <endpoint>` with
vendor, templated endpoint, course id, status, retry count and throttled — never a URL, query
string or token. Pages carry that span's trace and span ids for lineage.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from connectors.backoff import RetryPolicy
from connectors.breaker import CircuitBreaker
from connectors.classify import Action, Outcome, Rule, Verdict, classify, vendor_message
from connectors.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConnectorError,
    ForeignHostError,
    MalformedResponseError,
    PaginationLoopError,
    PermanentError,
    RetryBudgetExhausted,
)
from connectors.pacing import PacedTransport, Pacer
from connectors.paginators import PageRequest, Paginator, QueryParams
from connectors.redaction import redact_url

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=30.0)
_TRACER_NAME = "lms_sync.connectors"


@dataclass(frozen=True)
class JsonResponse:
    """A successful response with its parsed JSON; `url` has credentials masked."""

    data: Any
    response: httpx.Response
    url: str
    attempts: int
    fetched_at: datetime
    trace_id: str
    span_id: str


@dataclass(frozen=True)
class Page:
    """One page of records, with the lineage staging records beside them."""

    records: list[Any]
    number: int
    url: str
    status: int
    fetched_at: datetime
    raw: bytes
    trace_id: str
    span_id: str
    attempts: int


_SCOPE: ContextVar[str | None] = ContextVar("lms_sync_stats_scope", default=None)


@contextmanager
def stats_scope(name: str) -> Iterator[None]:
    """Attribute the requests made inside (in this thread or task) to ``name`` as well.

    Many course tasks share one client; a scope lets a run report requests, throttles and retries
    per domain without a client per domain.
    """
    token = _SCOPE.set(name)
    try:
        yield
    finally:
        _SCOPE.reset(token)


class ClientStats:
    """Thread-safe counters of one client (and its pacer, if any), in total and per scope."""

    def __init__(self, pacer: Pacer | None = None) -> None:
        self._lock = threading.Lock()
        self._by_scope: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._pacer = pacer
        self._requests = 0
        self._responses: Counter[int] = Counter()
        self._throttled = 0
        self._retried = 0
        self._failed = 0
        self._circuit_open = 0
        self._wait_seconds = 0.0
        self._request_seconds = 0.0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snapshot: dict[str, Any] = {
                "requests": self._requests,
                "responses": dict(sorted(self._responses.items())),
                "throttled": self._throttled,
                "retried": self._retried,
                "failed": self._failed,
                "circuit_open": self._circuit_open,
                "wait_seconds": round(self._wait_seconds, 6),
                # Time inside requests: pacing waits (below) plus the round trips themselves.
                "request_seconds": round(self._request_seconds, 6),
                "by_scope": {k: dict(v) for k, v in sorted(self._by_scope.items())},
            }
        if self._pacer is not None:
            snapshot["pacing"] = self._pacer.snapshot()
            snapshot["pacing_wait_seconds"] = snapshot["pacing"]["wait_seconds"]
        return snapshot

    def _attempt(self, response: httpx.Response | None, verdict: Verdict, seconds: float) -> None:
        with self._lock:
            self._requests += 1
            self._request_seconds += seconds
            if response is not None:
                self._responses[response.status_code] += 1
            self._throttled += verdict.action is Action.THROTTLED
            self._count("requests")
            if verdict.action is Action.THROTTLED:
                self._count("throttled")

    def _retry(self, wait_seconds: float) -> None:
        with self._lock:
            self._retried += 1
            self._wait_seconds += wait_seconds
            self._count("retried")

    def _failure(self, error: ConnectorError) -> None:
        with self._lock:
            self._failed += 1
            self._circuit_open += isinstance(error, CircuitOpenError)
            self._count("failed")

    def _count(self, name: str) -> None:
        scope = _SCOPE.get()
        if scope is not None:
            self._by_scope[scope][name] += 1


class VendorClient:
    """HTTP access to one vendor instance, shared by many threads (httpx.Client is thread-safe).

    `max_connections` sizes the keep-alive pool of the default transport; when `transport` is
    given (tests, or a custom pool) it is used as is. Relative paths are joined to `base_url`
    (a leading "/" is joined too, httpx-style); absolute URLs must be on `base_url`'s host.
    """

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        rules: Sequence[Rule] = (),
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.vendor = vendor
        self._rules = tuple(rules)
        self._retry = retry if retry is not None else RetryPolicy()
        self._breaker = breaker
        self._tracer = tracer if tracer is not None else trace.get_tracer(_TRACER_NAME)
        self.stats = ClientStats(pacer)
        inner = transport or httpx.HTTPTransport(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
        )
        self._http = httpx.Client(
            base_url=base_url,
            auth=auth,
            headers=headers,
            timeout=timeout,
            transport=PacedTransport(inner, pacer, rules=self._rules) if pacer else inner,
            follow_redirects=False,
        )

    def __enter__(self) -> VendorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get_json(
        self,
        path_or_url: str,
        *,
        params: QueryParams | None = None,
        endpoint: str,
        course_id: str | None = None,
    ) -> JsonResponse:
        """GET and parse JSON, retrying transient failures; raise a typed error otherwise.

        `endpoint` is the templated name used in spans and errors (`courses/{id}/enrollments`):
        it must not contain ids of people.
        """
        context = {"vendor": self.vendor, "endpoint": endpoint, "course_id": course_id}
        with self._tracer.start_as_current_span(
            f"GET {self.vendor} {endpoint}",
            kind=SpanKind.CLIENT,
            attributes=_span_attributes(self.vendor, endpoint, course_id),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                url = self._resolve(path_or_url, context)
                return self._attempts(url, params, context, span)
            except ConnectorError as error:
                self.stats._failure(error)
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                raise

    def paginate(
        self,
        path: str,
        *,
        params: QueryParams | None = None,
        paginator: Paginator,
        endpoint: str,
        course_id: str | None = None,
    ) -> Iterator[Page]:
        """Yield pages one at a time (never the whole collection) until the paginator stops."""
        request = paginator.next_request(request=PageRequest.of(path, params), reference=None)
        seen: set[str] = set()
        number = 0
        while True:
            number += 1
            result = self.get_json(
                request.url, params=request.params or None, endpoint=endpoint, course_id=course_id
            )
            try:
                records = paginator.records(result.data)
            except ValueError as exc:
                raise MalformedResponseError(
                    vendor=self.vendor, endpoint=endpoint, course_id=course_id, detail=str(exc)
                ) from None
            yield Page(
                records=records,
                number=number,
                url=result.url,
                status=result.response.status_code,
                fetched_at=result.fetched_at,
                raw=result.response.content,
                trace_id=result.trace_id,
                span_id=result.span_id,
                attempts=result.attempts,
            )
            reference = paginator.next_reference(
                request=request, response=result.response, data=result.data
            )
            if reference is None:
                return
            if reference in seen:
                raise PaginationLoopError(
                    vendor=self.vendor,
                    endpoint=endpoint,
                    course_id=course_id,
                    reference=reference,
                    page_number=number,
                )
            seen.add(reference)
            request = paginator.next_request(request=request, reference=reference)

    def _resolve(self, path_or_url: str, context: dict[str, Any]) -> str:
        url = httpx.URL(path_or_url)
        if not url.is_absolute_url:
            return path_or_url
        base = self._http.base_url
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise ForeignHostError(host=url.host, expected_host=base.host, **context)
        return path_or_url

    def _attempts(
        self, url: str, params: QueryParams | None, context: dict[str, Any], span: Span
    ) -> JsonResponse:
        started = self._retry.clock()
        throttled = False
        attempt = 0
        while True:
            attempt += 1
            if self._breaker is not None:
                self._breaker.acquire(**context)
            sent = time.perf_counter()
            outcome = self._send(url, params)
            seconds = time.perf_counter() - sent
            verdict = classify(outcome, rules=self._rules)
            response = outcome if isinstance(outcome, httpx.Response) else None
            self.stats._attempt(response, verdict, seconds)
            self._record_health(verdict)
            throttled = throttled or verdict.action is Action.THROTTLED
            span.set_attributes({"lms.retry_count": attempt - 1, "lms.throttled": throttled})
            if response is not None:
                span.set_attribute("http.response.status_code", response.status_code)
            if verdict.action is Action.OK:
                assert response is not None
                return self._success(response, verdict, attempt, span)
            if verdict.action is Action.FAIL:
                raise self._failure(outcome, verdict, context) from None
            wait = self._retry.next_wait(attempt=attempt, response=response)
            elapsed = self._retry.clock() - started
            if not self._retry.allows(attempt=attempt, elapsed_seconds=elapsed, wait_seconds=wait):
                exhausted = RetryBudgetExhausted(
                    attempts=attempt,
                    elapsed_seconds=elapsed,
                    last_status=response.status_code if response is not None else None,
                    last_error=_describe(outcome, verdict),
                    **context,
                )
                # The start of the last body, for a dead letter (excerpted PII-free there).
                exhausted.last_body = response.content[:1024] if response is not None else b""
                raise exhausted from None
            self.stats._retry(wait)
            self._retry.sleep(wait)

    def _send(self, url: str, params: QueryParams | None) -> Outcome:
        try:
            return self._http.get(url, params=params)
        except Exception as exc:  # classified, never swallowed: FAIL raises, RETRY counts
            return exc

    def _record_health(self, verdict: Verdict) -> None:
        if self._breaker is None:
            return
        if verdict.action is Action.RETRY:
            self._breaker.record_failure()
        else:
            self._breaker.record_success()

    def _success(
        self, response: httpx.Response, verdict: Verdict, attempt: int, span: Span
    ) -> JsonResponse:
        span_context = span.get_span_context()
        return JsonResponse(
            data=verdict.data,
            response=response,
            url=redact_url(response.request.url),
            attempts=attempt,
            fetched_at=datetime.now(UTC),
            trace_id=format(span_context.trace_id, "032x"),
            span_id=format(span_context.span_id, "016x"),
        )

    def _failure(
        self, outcome: Outcome, verdict: Verdict, context: dict[str, Any]
    ) -> ConnectorError:
        if isinstance(outcome, httpx.Response):
            error_type = AuthenticationError if verdict.kind == "configuration" else PermanentError
            return error_type(
                status=outcome.status_code,
                message=vendor_message(outcome, verdict.data) or verdict.reason,
                **context,
            )
        return PermanentError(status=None, message=_describe(outcome, verdict), **context)


def _describe(outcome: Outcome, verdict: Verdict) -> str:
    if isinstance(outcome, httpx.Response):
        return f"{outcome.status_code} ({verdict.reason})"
    return f"{type(outcome).__name__} ({verdict.reason})"


def _span_attributes(vendor: str, endpoint: str, course_id: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "lms.vendor": vendor,
        "lms.endpoint": endpoint,
        "http.request.method": "GET",
    }
    if course_id is not None:
        attributes["lms.course_id"] = course_id
    return attributes

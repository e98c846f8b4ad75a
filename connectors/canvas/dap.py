"""Canvas Data 2: the DAP query API client (canvas-api.md §5) and its export-job adapter.

One worked exchange (§5.1–5.3)::

    POST /ids/auth/login  (Basic id:secret, grant_type=client_credentials)
        → {"access_token": "<jwt>", "expires_in": 3600, "token_type": "Bearer"}
    POST /dap/query/canvas/table/submissions/data  {"format": "jsonl", "since": "2026-11-01T…Z"}
        → {"id": "9b0…", "status": "waiting"}
    GET  /dap/job/9b0…  → {"status": "complete", "objects": [{"id": "9b0…/part-00000.jsonl.gz"}],
                           "since": "…", "until": "2026-11-20T01:00:00Z", "schema_version": 1}
    POST /dap/object/url [{"id": "9b0…/part-00000.jsonl.gz"}] → {"urls": {"9b0…": {"url": "…"}}}

Every call goes through a :class:`~connectors.client.VendorClient` (retry, Retry-After on 429, the
breaker, tracing); only the pre-signed object download uses a plain client, since it must not
carry the bearer token and lives on the object store's host. DAP errors ``{"error": {"type": ..}}``
are raised as :class:`DapApiError` with their type, so ``SnapshotRequired``/``OutOfRange`` become a
snapshot fallback and ``ObjectNotFound`` (job/object) a re-request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Mapping
from contextvars import ContextVar
from typing import Any

import httpx

from connectors.backoff import RetryPolicy
from connectors.breaker import CircuitBreaker
from connectors.client import DEFAULT_TIMEOUT, JsonResponse, VendorClient
from connectors.errors import PermanentError
from connectors.export_jobs import Download, FallbackRequired, JobExpired, JobStatus

__all__ = ["DapApiError", "DapClient", "DapExport", "RequestingClient"]

VENDOR = "canvas"
NAMESPACE = "canvas"
# canvas-api.md §5.5: get job is limited to 500 calls a minute, create job (a new query) to 5.
GET_JOB_PER_MINUTE = 500
CREATE_JOB_PER_MINUTE = 5
_REFRESH_MARGIN = 300.0  # §5.1: the client refreshes when < 5 min of life remain


class DapApiError(Exception):
    """A DAP error answer: ``type`` as DAP names it (``SnapshotRequired``, ``ObjectNotFound``…)."""

    def __init__(self, status: int | None, type_: str, message: str, body: Mapping | None) -> None:
        super().__init__(f"DAP {status} {type_}: {message}")
        self.status, self.type, self.message = status, type_, message
        self.body = dict(body or {})


_REQUEST: ContextVar[tuple[str, Any, Any, Any] | None] = ContextVar("_dap_request", default=None)
_LAST: ContextVar[httpx.Response | None] = ContextVar("_dap_last", default=None)


class RequestingClient(VendorClient):
    """A VendorClient that can also POST: same retry loop, classification, breaker and spans.

    ``VendorClient`` only sends GET; this seam sends the method and body of the current call and
    remembers the last response, so a caller can read a vendor's typed error body.
    """

    def request_json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        endpoint: str,
    ) -> JsonResponse:
        token = _REQUEST.set((method, json_body, form, auth))
        try:
            return self.get_json(path, endpoint=endpoint)
        finally:
            _REQUEST.reset(token)

    def _send(self, url: str, params: Any) -> Any:
        method, body, form, auth = _REQUEST.get() or ("GET", None, None, None)
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["json"] = body
        if form is not None:
            kwargs["data"] = form
        if auth is not None:
            kwargs["auth"] = auth
        try:
            response = self._http.request(method, url, **kwargs)
        except Exception as exc:  # classified by the loop, as in VendorClient._send
            return exc
        _LAST.set(response)
        return response


class _BearerFromLogin(httpx.Auth):
    """Adds the DAP bearer token, logging in first (and again when < 5 min of life remain or on
    a 401) through ``login``."""

    def __init__(self, login: Any) -> None:
        self._login = login
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _current(self, *, force: bool = False) -> str:
        with self._lock:
            if force or self._token is None or self._expires - time.time() < _REFRESH_MARGIN:
                token, ttl = self._login()
                self._token, self._expires = token, time.time() + ttl
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._current()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._current(force=True)}"
            yield request


class DapClient:
    """The DAP query API of one Canvas Data 2 tenant."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        namespace: str = NAMESPACE,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.namespace = namespace
        self._basic = httpx.BasicAuth(client_id, client_secret)
        self.client = RequestingClient(
            vendor=VENDOR,
            base_url=base_url.rstrip("/") + "/",
            auth=_BearerFromLogin(self._login),
            retry=retry or RetryPolicy(),
            breaker=CircuitBreaker(failure_threshold=10, reset_after_seconds=30.0),
            timeout=timeout or DEFAULT_TIMEOUT,
            transport=transport,
        )
        # Pre-signed URLs: no credentials, possibly another host (the object store).
        self.downloads = httpx.Client(timeout=timeout or DEFAULT_TIMEOUT, transport=transport)
        self.logins = 0

    def close(self) -> None:
        self.client.close()
        self.downloads.close()

    def __enter__(self) -> DapClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls --

    def _call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> Any:
        try:
            return self.client.request_json(
                method, path, json_body=json_body, form=form, auth=auth, endpoint=endpoint
            ).data
        except PermanentError as exc:
            response = _LAST.get()
            error = _error_body(response)
            raise DapApiError(
                exc.status,
                str(error.get("type") or "HTTPError"),
                str(error.get("message") or exc.message),
                error,
            ) from None

    def _login(self) -> tuple[str, float]:
        self.logins += 1
        data = self._call(
            "POST",
            "ids/auth/login",
            endpoint="ids/auth/login",
            form={"grant_type": "client_credentials"},
            auth=self._basic,
        )
        return str(data["access_token"]), float(data.get("expires_in") or 3600)

    def tables(self) -> list[str]:
        path = f"dap/query/{self.namespace}/table"
        return list(self._call("GET", path, endpoint="dap/query/{ns}/table")["tables"])

    def schema(self, table: str) -> dict[str, Any]:
        path = f"dap/query/{self.namespace}/table/{table}/schema"
        return self._call("GET", path, endpoint="dap/query/{ns}/table/{table}/schema")

    def start_job(
        self,
        table: str,
        *,
        format: str = "jsonl",
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"format": format, "mode": None}
        if since:
            body["since"] = since
            if until:
                body["until"] = until
        path = f"dap/query/{self.namespace}/table/{table}/data"
        return self._call(
            "POST", path, json_body=body, endpoint="dap/query/{ns}/table/{table}/data"
        )

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"dap/job/{job_id}", endpoint="dap/job/{id}")

    def object_urls(self, object_ids: list[str]) -> dict[str, str]:
        data = self._call(
            "POST",
            "dap/object/url",
            json_body=[{"id": oid} for oid in object_ids],
            endpoint="dap/object/url",
        )
        return {oid: entry["url"] for oid, entry in data["urls"].items()}


def _error_body(response: httpx.Response | None) -> dict[str, Any]:
    if response is None:
        return {}
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


_NEEDS_SNAPSHOT = frozenset({"SnapshotRequired", "OutOfRange"})


class DapExport:
    """The export-job adapter for one DAP table. A request is
    ``{"table": ..., "format": "jsonl", "since": iso | None, "until": iso | None}``."""

    min_poll_interval = 60.0 / GET_JOB_PER_MINUTE
    initiations_per_minute: int | None = CREATE_JOB_PER_MINUTE

    def __init__(self, client: DapClient) -> None:
        self.client = client

    def initiate(self, request: Mapping[str, Any]) -> str:
        try:
            doc = self.client.start_job(
                request["table"],
                format=request.get("format", "jsonl"),
                since=request.get("since"),
                until=request.get("until"),
            )
        except DapApiError as exc:
            if exc.type in _NEEDS_SNAPSHOT and request.get("since"):
                raise FallbackRequired(
                    {**request, "since": None, "until": None}, exc.type
                ) from None
            raise
        return str(doc["id"])

    def poll(self, job_id: str) -> JobStatus:
        try:
            doc = self.client.job(job_id)
        except DapApiError as exc:
            if exc.type in ("ObjectNotFound", "NotFoundError"):
                raise JobExpired(job_id) from None
            raise
        status = doc.get("status")
        if status == "complete":
            return JobStatus("complete", doc, 1.0)
        if status == "failed":
            error = doc.get("error") or {}
            return JobStatus("failed", doc, error=f"{error.get('type')}: {error.get('message')}")
        return JobStatus("pending", doc)

    def resolve(self, job_id: str, doc: Mapping[str, Any]) -> list[Download]:
        ids = [str(o["id"]) for o in doc.get("objects", [])]
        if not ids:
            return []
        try:
            urls = self.client.object_urls(ids)
        except DapApiError as exc:
            if exc.type in ("ObjectNotFound", "NotFoundError"):
                raise JobExpired(job_id) from None
            raise
        return [_download(oid, urls[oid]) for oid in ids]

    def cancel(self, job_id: str) -> None:
        """DAP has no cancel endpoint (§5.2): an abandoned job simply expires."""


def _download(object_id: str, url: str) -> Download:
    name = object_id.rsplit("/", 1)[-1]
    if name.endswith(".parquet"):
        return Download(object_id, url, gzip=False, suffix=".parquet")
    stem = name.removesuffix(".gz")
    suffix = "." + stem.rsplit(".", 1)[-1] if "." in stem else ".jsonl"
    return Download(object_id, url, gzip=name.endswith(".gz"), suffix=suffix)

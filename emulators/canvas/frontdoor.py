"""What every Canvas request passes before and after its handler: stats, auth (canvas-api.md
§1.1, §4), the leaky-bucket throttle (§3), simulated latency and injected faults.

A raw ASGI wrapper, because two faults need the wire itself: ``reset`` drops the connection
after the response has started, ``truncated``/``malformed`` rewrite a finished body.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from emulators.canvas import errors, faults
from emulators.canvas.faults import FaultPlan
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.canvas.stats import EmulatorStats
from emulators.canvas.throttle import LeakyBucket, Throttle

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = b"application/json; charset=utf-8"


class InjectedReset(Exception):
    """Raised after a partial body so the server aborts the connection (a ``reset`` fault)."""


class _DropInjectedResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedReset))


def silence_injected_resets() -> None:
    """Keep uvicorn from logging a traceback for every reset we injected on purpose."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropInjectedResets) for f in logger.filters):
        logger.addFilter(_DropInjectedResets())


def _fmt_float(value: float) -> str:
    return repr(round(float(value), 2))


class CanvasFrontDoor:
    """ASGI middleware in front of the Canvas routes."""

    def __init__(
        self, app: ASGIApp, *, settings: CanvasEmulatorSettings, stats: EmulatorStats
    ) -> None:
        self.app = app
        self.settings = settings
        self.stats = stats
        self.throttle = Throttle(settings.throttle)
        self.fault_plan = FaultPlan(settings.faults)
        silence_injected_resets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.stats.record_request(scope["path"])
        token = _token(scope)
        if token is None:
            await _send_json(send, 401, errors.UNAUTHENTICATED, _www_auth())
            return
        if token != self.settings.token:
            await _send_json(send, 401, errors.INVALID_TOKEN, _www_auth())
            return
        bucket = self.throttle.bucket(token) if self.settings.throttle.enabled else None
        if bucket is not None and not bucket.admit():
            await self._reject(send, bucket)
            return
        settled = _Settlement(bucket, self.settings)
        self.stats.enter(token)
        try:
            await self._serve(scope, receive, send, settled)
        finally:
            self.stats.leave(token)
            settled.settle(records=0)

    async def _reject(self, send: Send, bucket: LeakyBucket) -> None:
        # canvas-api.md §3: plain text, X-Rate-Limit-Remaining, no X-Request-Cost, no Retry-After.
        self.stats.record_throttled()
        status, body = self.throttle.rejection()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"x-rate-limit-remaining", _fmt_float(bucket.remaining()).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, settled: _Settlement
    ) -> None:
        if self.settings.latency_ms:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + ("?" + query if query else "")
        kind = self.fault_plan.decide(scope["method"], target)
        state = scope.setdefault("state", {})
        if kind in ("500", "502", "503", "504"):
            self.stats.record_fault(kind)
            status = int(kind)
            headers = settled.headers(records=0)
            await _send_raw(send, status, faults.error_body(status), headers)
            return
        if kind == "timeout":
            self.stats.record_fault(kind)
            await asyncio.sleep(self.settings.faults.slow_seconds)
        if kind == "reset":
            self.stats.record_fault(kind)
            await self._reset(send, settled)
            return
        if kind == "duplicate":
            state["fault_duplicate"] = True
        if kind in ("malformed", "truncated"):
            await self._rewrite(kind, scope, receive, send, settled)
        else:
            await self.app(scope, receive, self._finishing(send, settled, state))

    def _finishing(self, send: Send, settled: _Settlement, state: dict) -> Send:
        """Adds the rate-limit headers and counts a ``duplicate`` the handler applied, before
        the response leaves (so a client that has the response also sees the count)."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                if state.get("duplicate_applied"):
                    self.stats.record_fault("duplicate")
                extra = settled.headers(records=state.get("records", 0))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return wrapped

    async def _reset(self, send: Send, settled: _Settlement) -> None:
        headers = [(b"content-type", _JSON), (b"content-length", b"4096")]
        headers += settled.headers(records=0)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'[{"id":', "more_body": True})
        raise InjectedReset("connection reset injected")

    async def _rewrite(
        self, kind: str, scope: Scope, receive: Receive, send: Send, settled: _Settlement
    ) -> None:
        captured: dict[str, Any] = {"body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["start"] = message
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        await self.app(scope, receive, capture)
        start, body = captured["start"], captured["body"]
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        if start["status"] == 200:
            self.stats.record_fault(kind)
            body = faults.malform(body) if kind == "malformed" else faults.truncate(body)
        headers.append((b"content-length", str(len(body)).encode()))
        headers += settled.headers(records=scope["state"].get("records", 0))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _Settlement:
    """Settles a request's bucket cost exactly once and renders the rate-limit headers."""

    def __init__(self, bucket: LeakyBucket | None, settings: CanvasEmulatorSettings) -> None:
        self._bucket = bucket
        self._throttle = settings.throttle
        self._remaining: float | None = None
        self._cost = 0.0
        self._done = bucket is None

    def settle(self, *, records: int) -> None:
        if self._done:
            return
        self._done = True
        self._cost = self._throttle.request_cost + self._throttle.per_record_cost * records
        self._remaining = self._bucket.settle(self._cost)

    def headers(self, *, records: int) -> list[tuple[bytes, bytes]]:
        if self._bucket is None:
            return []
        self.settle(records=records)
        return [
            (b"x-request-cost", _fmt_float(self._cost).encode()),
            (b"x-rate-limit-remaining", _fmt_float(self._remaining).encode()),
        ]


def _token(scope: Scope) -> str | None:
    """Bearer token from the Authorization header, else the ``access_token`` query param."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if key == "access_token" and value:
            return value
    return None


def _www_auth() -> list[tuple[bytes, bytes]]:
    return [(b"www-authenticate", errors.WWW_AUTHENTICATE.encode())]


async def _send_json(send: Send, status: int, payload: Any, headers: list) -> None:
    await _send_raw(send, status, json.dumps(payload).encode(), headers)


async def _send_raw(send: Send, status: int, body: bytes, headers: list) -> None:
    all_headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers + headers})
    await send({"type": "http.response.body", "body": body})

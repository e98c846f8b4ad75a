"""What every Moodle request passes before and after its handler: stats, the site-wide
web-services switch (moodle-api.md §4: HTTP 403, empty body), a PHP worker limit and injected
faults. A raw ASGI wrapper, like the Canvas one, because ``reset`` and ``truncated`` need the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from emulators.canvas.frontdoor import InjectedReset, silence_injected_resets
from emulators.canvas.stats import EmulatorStats
from emulators.moodle import faults, wire
from emulators.moodle.faults import FaultPlan
from emulators.moodle.settings import MoodleEmulatorSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class MoodleFrontDoor:
    """ASGI middleware in front of the REST server."""

    def __init__(
        self, app: ASGIApp, *, settings: MoodleEmulatorSettings, stats: EmulatorStats
    ) -> None:
        self.app = app
        self.settings = settings
        self.stats = stats
        self.fault_plan = FaultPlan(settings.faults)  # type: ignore[arg-type]  # same fields
        self._workers = asyncio.Semaphore(settings.workers) if settings.workers else None
        silence_injected_resets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        params = dict(parse_qsl(query))
        # Stats by function: every request goes to the same path.
        function = params.get("wsfunction")
        self.stats.record_request(f"{scope['path']}#{function}" if function else scope["path"])
        if not self.settings.webservices_enabled:
            await _send_raw(send, 403, b"", b"text/html; charset=utf-8")
            return
        if self._workers is None:
            await self._serve(scope, receive, send, query, params)
            return
        async with self._workers:
            await self._serve(scope, receive, send, query, params)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, query: str, params: dict[str, str]
    ) -> None:
        target = scope["path"] + ("?" + query if query else "")
        kind = self.fault_plan.decide(scope["method"], target)
        state = scope.setdefault("state", {})
        if kind in ("500", "502", "503", "504"):
            self.stats.record_fault(kind)
            await _send_raw(send, int(kind), faults.html_error(int(kind)), b"text/html")
            return
        if kind == "dberror":
            self.stats.record_fault(kind)
            if params.get("moodlewsrestformat") == "json":
                body, ctype = wire.dumps_json(faults.DB_ERROR), b"application/json"
            else:
                body, ctype = wire.xml_exception(faults.DB_ERROR), b"application/xml"
            await _send_raw(send, 200, body, ctype)
            return
        if kind == "timeout":
            self.stats.record_fault(kind)
            await asyncio.sleep(self.settings.faults.slow_seconds)
        if kind == "reset":
            self.stats.record_fault(kind)
            headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'[{"id":', "more_body": True})
            raise InjectedReset("connection reset injected")
        if kind == "duplicate":
            state["fault_duplicate"] = True
        if kind in ("malformed", "truncated"):
            await self._rewrite(kind, scope, receive, send)
            return
        await self.app(scope, receive, self._counting(send, state))

    def _counting(self, send: Send, state: dict) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("duplicate_applied"):
                self.stats.record_fault("duplicate")
            await send(message)

        return wrapped

    async def _rewrite(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        captured: dict[str, Any] = {"body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["start"] = message
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        await self.app(scope, receive, capture)
        start, body = captured["start"], captured["body"]
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        if start["status"] == 200 and not _is_error(body):
            self.stats.record_fault(kind)
            body = faults.malform(body) if kind == "malformed" else faults.truncate(body)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _is_error(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and "exception" in data


async def _send_raw(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

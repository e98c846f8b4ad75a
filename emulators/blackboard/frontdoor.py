"""What every Learn request passes before and after its handler: stats, the daily quota
(reference §1c), bearer-token checks (§1a), simulated latency and injected faults.

A raw ASGI wrapper, as for Canvas, because two faults need the wire itself: ``reset`` drops the
connection mid-body, ``truncated``/``malformed`` rewrite a finished body.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from emulators.blackboard import errors
from emulators.blackboard.quota import DailyQuota
from emulators.blackboard.settings import BlackboardEmulatorSettings
from emulators.canvas import faults
from emulators.canvas.faults import FaultPlan
from emulators.canvas.frontdoor import InjectedReset, silence_injected_resets
from emulators.canvas.stats import EmulatorStats

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_PATH = "/learn/api/public/v1/oauth2/token"
_JSON = b"application/json;charset=UTF-8"


class TokenStore:
    """Issued bearer tokens and when they expire. One live token per application key: asking
    again while it is valid returns the same token with the seconds it has left (unverified on a
    live site; reference §1a)."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self._current: dict[str, str] = {}
        self.issued = 0

    def issue(self, client_id: str) -> tuple[str, int]:
        with self._lock:
            now = self._clock()
            token = self._current.get(client_id)
            if token is None or self._expiry.get(token, 0) - now < 1:
                token = secrets.token_urlsafe(24)
                self._expiry[token] = now + self.ttl
                self._current[client_id] = token
                self.issued += 1
            return token, max(1, int(self._expiry[token] - now))

    def valid(self, token: str) -> bool:
        with self._lock:
            return self._expiry.get(token, 0) > self._clock()

    def expire_all(self) -> None:
        """Every issued token expires now (what an hour-long sync meets at minute 60)."""
        with self._lock:
            for token in self._expiry:
                self._expiry[token] = 0.0


class BlackboardFrontDoor:
    """ASGI middleware in front of the Learn routes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: BlackboardEmulatorSettings,
        stats: EmulatorStats,
        quota: DailyQuota,
        tokens: TokenStore,
    ) -> None:
        self.app = app
        self.settings = settings
        self.stats = stats
        self.quota = quota
        self.tokens = tokens
        self.fault_plan = FaultPlan(settings.faults)
        silence_injected_resets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.stats.record_request(scope["path"])
        if not self.quota.take():
            self.stats.record_throttled()
            await self._error(send, *errors.QUOTA_EXHAUSTED, code="rate.limit.exceeded")
            return
        if scope["path"] != TOKEN_PATH:
            token = _bearer(scope)
            if token is None or not self.tokens.valid(token):
                await self._error(send, *errors.INVALID_TOKEN)
                return
        if self.settings.latency_ms:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + ("?" + query if query else "")
        kind = self.fault_plan.decide(scope["method"], target)
        state = scope.setdefault("state", {})
        if kind in ("500", "502", "503", "504"):
            self.stats.record_fault(kind)
            status = int(kind)
            await self._error(send, status, errors.SERVER_ERRORS[status])
            return
        if kind == "timeout":
            self.stats.record_fault(kind)
            await asyncio.sleep(self.settings.faults.slow_seconds)
        if kind == "reset":
            self.stats.record_fault(kind)
            headers = [(b"content-type", _JSON), (b"content-length", b"4096")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"results":[{', "more_body": True})
            raise InjectedReset("connection reset injected")
        if kind == "duplicate":
            state["fault_duplicate"] = True
        if kind in ("malformed", "truncated"):
            await self._rewrite(kind, scope, receive, send)
        else:
            await self.app(scope, receive, self._finishing(send, state))

    def _finishing(self, send: Send, state: dict) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                if state.get("duplicate_applied"):
                    self.stats.record_fault("duplicate")
                message = {
                    **message,
                    "headers": [*message.get("headers", []), *self.quota.headers()],
                }
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
        if start["status"] == 200:
            self.stats.record_fault(kind)
            body = faults.malform(body) if kind == "malformed" else faults.truncate(body)
        headers.append((b"content-length", str(len(body)).encode()))
        headers += self.quota.headers()
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send: Send, status: int, message: str, code: str | None = None) -> None:
        body = errors.body_bytes(status, message, code=code)
        headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
        headers += self.quota.headers()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None

"""Deterministic fault injection: the failures a connector must survive, on demand.

Whether a request fails is a pure function of (fault seed, method, path + query, how many times
this exact URL was requested before), so a run is reproducible and a retry of the same URL gets
a fresh decision, as it would against a flaky real server.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

FAULT_KINDS = frozenset(
    {"500", "502", "503", "504", "reset", "timeout", "malformed", "truncated", "duplicate"}
)

# canvas-api.md §4: unhandled errors carry a generic message and the status in snake case.
_ERROR_CODES = {
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


@dataclass(frozen=True)
class FaultSettings:
    """Which faults to inject, how often (0..1 per request) and how slow a ``timeout`` is."""

    rate: float = 0.0
    kinds: frozenset[str] = field(default_factory=lambda: FAULT_KINDS)
    seed: int = 0
    slow_seconds: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", frozenset(self.kinds))
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, not {self.rate}")
        unknown = self.kinds - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(FAULT_KINDS)}")
        if self.rate > 0 and not self.kinds:
            raise ValueError("a fault rate needs at least one fault kind")


class FaultPlan:
    """Decides, per request, which fault (if any) to inject."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._kinds = sorted(settings.kinds)
        self._seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def decide(self, method: str, path_and_query: str) -> str | None:
        """The fault kind for this request, or None. Counts the request against its URL."""
        with self._lock:
            nth = self._seen[(method, path_and_query)]
            self._seen[(method, path_and_query)] += 1
        if self.settings.rate <= 0 or not self._kinds:
            return None
        key = f"{self.settings.seed}\0{method}\0{path_and_query}\0{nth}".encode()
        roll, pick = struct.unpack("<QQ", hashlib.blake2b(key, digest_size=16).digest())
        if roll / 2**64 >= self.settings.rate:
            return None
        return self._kinds[pick % len(self._kinds)]


def error_body(status: int) -> bytes:
    """A Canvas-like JSON body for an injected 5xx."""
    code = _ERROR_CODES[status]
    return b'{"errors":[{"message":"An error occurred.","error_code":"' + code.encode() + b'"}]}'


def malform(body: bytes) -> bytes:
    """A body that is not JSON: the real payload with its first key/value colon broken."""
    if b'":' in body:
        return body.replace(b'":', b'"=', 1)
    return b"[," + body[1:] if body else b"[,"


def truncate(body: bytes) -> bytes:
    """The payload cut mid-way (at least one byte short, never empty)."""
    return body[: max(1, len(body) // 2)] if len(body) > 1 else b"["

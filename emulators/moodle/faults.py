"""Deterministic fault injection for the Moodle emulator: the Canvas emulator's kinds and plan
(same options, same reproducibility), plus one Moodle-only kind.

* ``500 502 503 504 reset timeout malformed truncated`` — as for Canvas (a 5xx from the web
  server in front of PHP has an HTML body, not a Moodle error).
* ``duplicate`` — offset pages: the previous page's last record repeated at the top of the final
  (short) page, as when an enrolment sorting earlier is added between two requests.
* ``dberror`` — an error **inside HTTP 200**, Moodle's way (moodle-api.md §4):
  ``{"exception":"dml_read_exception","errorcode":"dmlreadexception","message":"Error reading
  from database"}``. The exception class and code come from moodle/moodle
  ``lib/dml/dml_read_exception.php``; that a live site answers a database hiccup this way is not
  in moodle-api.md (unverified). It is transient: the same call succeeds later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.canvas.faults import FAULT_KINDS as _CANVAS_KINDS
from emulators.canvas.faults import FaultPlan, malform, truncate

__all__ = ["FAULT_KINDS", "FaultPlan", "FaultSettings", "html_error", "malform", "truncate"]

FAULT_KINDS = frozenset(_CANVAS_KINDS | {"dberror"})

DB_ERROR = {
    "exception": "dml_read_exception",
    "errorcode": "dmlreadexception",
    "message": "Error reading from database",
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


def html_error(status: int) -> bytes:
    """The web server's own error page for an injected 5xx."""
    return f"<html><body><h1>{status}</h1><p>Server error</p></body></html>".encode()

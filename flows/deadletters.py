"""Dead letters: what a course that exhausted its retries leaves for ``lms-sync replay``.

A letter holds the request (vendor, templated endpoint, method, course, the domains and window it
was fetching, the fetch plan), the last response status and a body excerpt, the error and its
attempt count — never a token, a URL with credentials, a name or an email. Letters live in staging
beside the run notes (``_dead_letters/{institution}/{vendor}/``), the store every pod shares;
replay removes a letter once its course loads.

The excerpt keeps only an error body's messages and codes (``errors[].message``,
``error_code``, ``error``, ``exception``), cut to 200 characters, with anything that looks like an
email, a long number or a quoted value masked.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

_MASKS = (
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),  # emails
    re.compile(r"\b\d{4,}\b"),  # ids, phone numbers
    re.compile(r"'[^']*'|\"[^\"]*\""),  # quoted values
)
_KEYS = ("message", "error_code", "error", "errorcode", "exception", "status")


def excerpt(body: bytes | None, *, limit: int = 200) -> str:
    """A PII-free excerpt of an error body.

    >>> excerpt(b'{"errors":[{"message":"An error occurred.","error_code":"service_unavailable"}]}')
    'An error occurred. service_unavailable'
    >>> excerpt(b'<html>jane.doe@example.edu 1234567</html>')
    '<html><masked> <masked></html>'
    """
    if not body:
        return ""
    text = body.decode("utf-8", "replace")
    try:
        parts = [str(v) for v in _strings(json.loads(text))]
        text = " ".join(parts) if parts else ""
    except ValueError:
        pass
    for mask in _MASKS:
        text = mask.sub("<masked>", text)
    return text[:limit]


def _strings(value: Any) -> list[Any]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if k in _KEYS and isinstance(v, str | int | float):
                out.append(v)
            elif isinstance(v, dict | list):
                out += _strings(v)
        return out
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def letter(
    *,
    error: BaseException,
    course_id: str,
    vendor: str,
    window: str,
    domains: list[str],
    plans: dict[str, Any],
    run_id: str,
    full: bool,
) -> dict[str, Any]:
    """The letter for a course whose task failed with ``error``."""
    details = error.to_dict() if hasattr(error, "to_dict") else {}
    return {
        "course_id": course_id,
        "vendor": vendor,
        "window": window,
        "domains": domains,
        "plans": plans,
        "full": full,
        "run_id": run_id,
        "at": datetime.now(UTC).isoformat(),
        "request": {
            "method": details.get("method", "GET"),
            "endpoint": details.get("endpoint"),
            "course_id": course_id,
        },
        "last_status": details.get("last_status", details.get("status")),
        "body_excerpt": excerpt(getattr(error, "last_body", None)),
        "error": type(error).__name__,
        "kind": getattr(error, "kind", "transient"),
        "message": _mask(str(error))[:500],
        "attempts": details.get("attempts", 1),
    }


def _mask(text: str) -> str:
    for mask in _MASKS[:2]:
        text = mask.sub("<masked>", text)
    return text

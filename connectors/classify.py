"""Decide what a response or transport exception means: retry, throttled, fail, or OK.

A pure, table-driven function (Airbyte's error-handler idea). Vendor rules run first — each a small
callable that returns a `Verdict` or None — and the default table answers everything they leave.
A successful response's body is parsed here, once, so vendor rules can inspect it (Moodle reports
errors inside HTTP 200) and a truncated body is retried rather than handed on; the parsed JSON
travels back on `Verdict.data`.

    >>> r = httpx.Response(403, text="403 Forbidden (Rate Limit Exceeded)\\n")
    >>> classify(r, rules=CANVAS_RULES).action
    <Action.THROTTLED: 'throttled'>
    >>> classify(r).action          # without Canvas rules a 403 is a permission error
    <Action.FAIL: 'fail'>
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from connectors.errors import Kind


class Action(StrEnum):
    OK = "ok"
    RETRY = "retry"
    THROTTLED = "throttled"
    FAIL = "fail"


@dataclass(frozen=True)
class Verdict:
    """What to do with one attempt. `data` is the parsed JSON of a successful response."""

    action: Action
    kind: Kind
    reason: str
    data: Any = field(default=None, compare=False, repr=False)


Outcome = httpx.Response | BaseException
# A vendor rule: (response or exception, parsed JSON or None) -> Verdict, or None for no opinion.
Rule = Callable[[Outcome, Any], Verdict | None]

_STATUS_TABLE: dict[int, Verdict] = {
    400: Verdict(Action.FAIL, "permanent", "bad request"),
    401: Verdict(Action.FAIL, "configuration", "credentials refused"),
    403: Verdict(Action.FAIL, "permanent", "forbidden"),
    404: Verdict(Action.FAIL, "permanent", "not found"),
    408: Verdict(Action.RETRY, "transient", "request timeout"),
    422: Verdict(Action.FAIL, "permanent", "unprocessable request"),
    429: Verdict(Action.THROTTLED, "transient", "too many requests"),
}
_SERVER_ERROR = Verdict(Action.RETRY, "transient", "server error")
_OTHER_STATUS = Verdict(Action.FAIL, "permanent", "unexpected status")

_EXCEPTION_TABLE: tuple[tuple[tuple[type[BaseException], ...], Verdict], ...] = (
    ((httpx.TimeoutException,), Verdict(Action.RETRY, "transient", "timeout")),
    (
        (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError),
        Verdict(Action.RETRY, "transient", "connection broken mid-exchange"),
    ),
    (
        (httpx.ConnectError, ConnectionError),
        Verdict(Action.RETRY, "transient", "connection refused or reset"),
    ),
    (
        (httpx.UnsupportedProtocol, httpx.ProxyError, httpx.InvalidURL),
        Verdict(Action.FAIL, "configuration", "unusable URL or proxy"),
    ),
)
_OTHER_EXCEPTION = Verdict(Action.FAIL, "permanent", "unexpected transport error")
_INVALID_JSON = Verdict(Action.RETRY, "transient", "body is not valid JSON (truncated?)")


def classify(outcome: Outcome, *, rules: Sequence[Rule] = ()) -> Verdict:
    """Classify one attempt: vendor `rules` first, then the default table."""
    data = None
    if isinstance(outcome, httpx.Response) and outcome.is_success and outcome.content:
        try:
            data = json.loads(outcome.content)
        except (ValueError, UnicodeDecodeError):
            return _INVALID_JSON
    for rule in rules:
        verdict = rule(outcome, data)
        if verdict is not None:
            return verdict
    if isinstance(outcome, httpx.Response):
        return _default_for_status(outcome.status_code, data)
    for types, verdict in _EXCEPTION_TABLE:
        if isinstance(outcome, types):
            return verdict
    return _OTHER_EXCEPTION


def _default_for_status(status: int, data: Any) -> Verdict:
    if 200 <= status < 300:
        return Verdict(Action.OK, "transient", "success", data)
    if status >= 500:
        return _SERVER_ERROR
    return _STATUS_TABLE.get(status, _OTHER_STATUS)


# --- Canvas -------------------------------------------------------------------------------------


def _canvas_throttle(outcome: Outcome, data: Any) -> Verdict | None:
    """Canvas refuses over-quota requests with 403 + "Rate Limit Exceeded" (429 since late 2025)."""
    if not isinstance(outcome, httpx.Response):
        return None
    if outcome.status_code == 429 or (
        outcome.status_code == 403 and b"Rate Limit Exceeded" in outcome.content
    ):
        return Verdict(Action.THROTTLED, "transient", "canvas rate limit exceeded")
    return None


def _canvas_unauthorized(outcome: Outcome, data: Any) -> Verdict | None:
    """A 401 is a bad token only with WWW-Authenticate; without it the user lacks a permission."""
    if not isinstance(outcome, httpx.Response) or outcome.status_code != 401:
        return None
    if "www-authenticate" in outcome.headers:
        return Verdict(Action.FAIL, "configuration", "invalid access token")
    return Verdict(Action.FAIL, "permanent", "not authorized for this resource")


CANVAS_RULES: tuple[Rule, ...] = (_canvas_throttle, _canvas_unauthorized)


# --- Moodle -------------------------------------------------------------------------------------

# moodle-api.md §4: a bad token is the operator's to fix and stops the whole run. (A function
# missing from the token's service, `accessexception`, stays a per-request permanent failure.)
_MOODLE_CONFIG_CODES = frozenset({"invalidtoken"})
# Database hiccups Moodle reports inside HTTP 200 (`dml_read_exception` → "dmlreadexception",
# lib/dml in moodle/moodle; not in moodle-api.md, unverified on a live site): the call succeeds
# when repeated, so retry it like a 5xx.
_MOODLE_TRANSIENT_CODES = frozenset({"dmlreadexception", "dmlwriteexception", "dbconnectionfailed"})


def _moodle_error_in_200(outcome: Outcome, data: Any) -> Verdict | None:
    """Moodle answers HTTP 200 with `{"exception": .., "errorcode": .., "message": ..}` on error.

    `pluginfile.php` uses `{"error": .., "errorcode": ..}` instead; both shapes are handled.
    Example: 200 `{"exception":"core\\\\exception\\\\moodle_exception","errorcode":"invalidtoken",
    "message":"Invalid token - token not found"}` → FAIL configuration.
    """
    if not isinstance(data, dict) or "errorcode" not in data:
        return None
    if "exception" not in data and "error" not in data:
        return None
    code = str(data["errorcode"])
    if code in _MOODLE_CONFIG_CODES:
        return Verdict(Action.FAIL, "configuration", f"moodle {code}")
    if code in _MOODLE_TRANSIENT_CODES:
        return Verdict(Action.RETRY, "transient", f"moodle {code}")
    return Verdict(Action.FAIL, "permanent", f"moodle {code}")


def _moodle_webservices_off(outcome: Outcome, data: Any) -> Verdict | None:
    """moodle-api.md §4: only "web services switched off site-wide" is HTTP 403, with an empty
    body — a site setting, not this request's fault."""
    if isinstance(outcome, httpx.Response) and outcome.status_code == 403 and not outcome.content:
        return Verdict(Action.FAIL, "configuration", "moodle web services are disabled")
    return None


MOODLE_RULES: tuple[Rule, ...] = (_moodle_error_in_200, _moodle_webservices_off)


# --- Blackboard ---------------------------------------------------------------------------------


def _blackboard_quota(outcome: Outcome, data: Any) -> Verdict | None:
    """Blackboard's token bucket answers 429 (body `{status, code, message}`) when spent."""
    if isinstance(outcome, httpx.Response) and outcome.status_code == 429:
        return Verdict(Action.THROTTLED, "transient", "blackboard quota exhausted")
    return None


BLACKBOARD_RULES: tuple[Rule, ...] = (_blackboard_quota,)


# --- OneRoster ----------------------------------------------------------------------------------

# OneRoster 1.2 REST binding, "Status codes": a failed request carries the status-info payload
# {"imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": "...",
#  "imsx_CodeMinor": {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": "TargetEndSystem",
#  "imsx_codeMinorFieldValue": "invalid_filter_field"}]}}.
_ONEROSTER_CONFIG_MINORS = frozenset({"unauthorisedrequest", "forbidden"})
_ONEROSTER_TRANSIENT_MINORS = frozenset({"server_busy", "internal_server_error"})


def _oneroster_status_info(outcome: Outcome, data: Any) -> Verdict | None:
    """Name the imsx code minor in the verdict; unauthorised/forbidden are configuration errors
    (credentials or scopes to fix), ``server_busy`` is transient whatever the status."""
    if not isinstance(outcome, httpx.Response) or outcome.is_success:
        return None
    try:
        body = json.loads(outcome.content) if outcome.content else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or "imsx_codeMajor" not in body:
        return None
    fields = (body.get("imsx_CodeMinor") or {}).get("imsx_codeMinorField") or []
    minors = [str(f.get("imsx_codeMinorFieldValue")) for f in fields if isinstance(f, dict)]
    minor = minors[0] if minors else str(body.get("imsx_codeMajor"))
    reason = f"oneroster {minor}"
    if minor in _ONEROSTER_TRANSIENT_MINORS or outcome.status_code >= 500:
        return Verdict(Action.RETRY, "transient", reason)
    if outcome.status_code == 429:
        return Verdict(Action.THROTTLED, "transient", reason)
    if minor in _ONEROSTER_CONFIG_MINORS or outcome.status_code == 401:
        return Verdict(Action.FAIL, "configuration", reason)
    return Verdict(Action.FAIL, "permanent", reason)


ONEROSTER_RULES: tuple[Rule, ...] = (_oneroster_status_info,)


def vendor_message(outcome: Outcome, data: Any = None) -> str:
    """The vendor's own error text, from its error fields only (never the raw body).

    Understands Canvas `{"errors":[{"message":..}]}`, `{"errors":{attr:[..]}}`, `{"error":..}`,
    Moodle `{"errorcode":..,"message":..}`, Blackboard `{"status":..,"code":..,"message":..}`
    and OneRoster `{"imsx_codeMajor":..,"imsx_description":..}`.
    """
    if isinstance(outcome, BaseException):
        return type(outcome).__name__
    if data is None and outcome.content:
        try:
            data = json.loads(outcome.content)
        except (ValueError, UnicodeDecodeError):
            return ""
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    if "errorcode" in data:
        parts.append(str(data["errorcode"]))
    errors = data.get("errors")
    if isinstance(errors, list):
        parts += [str(e["message"]) for e in errors if isinstance(e, dict) and "message" in e]
    elif isinstance(errors, dict):
        parts += [str(attribute) for attribute in errors]
    for key in ("message", "error", "imsx_description"):
        if isinstance(data.get(key), str):
            parts.append(data[key])
    return ": ".join(parts)

"""Learn error bodies: the spec's ``RestException`` ``{status, code, message, developerMessage,
extraInfo}`` — every field a string, ``message`` required (blackboard-learn-openapi.json)."""

from __future__ import annotations

import json

_EXTRA_INFO = "https://developer.anthology.com/portal/displayApi"


def rest_exception(
    status: int, message: str, *, code: str | None = None, developer: str = ""
) -> dict:
    body = {"status": str(status), "message": message, "extraInfo": _EXTRA_INFO}
    if code is not None:
        body["code"] = code
    if developer:
        body["developerMessage"] = developer
    return body


def body_bytes(status: int, message: str, **kw: str) -> bytes:
    return json.dumps(rest_exception(status, message, **kw), separators=(",", ":")).encode()


class BlackboardError(Exception):
    """Raised anywhere in a handler; rendered as a RestException response."""

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.message = message
        self.code = code


def not_found(what: str = "resource") -> BlackboardError:
    return BlackboardError(404, f"The requested {what} was not found")


def bad_request(message: str) -> BlackboardError:
    return BlackboardError(400, message, code="bb-rest-bad-request")


INVALID_TOKEN = (401, "Bearer token is invalid")
INVALID_CLIENT = (401, "Invalid client credentials")
QUOTA_EXHAUSTED = (429, "The site's daily API call quota has been exhausted")
SERVER_ERRORS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

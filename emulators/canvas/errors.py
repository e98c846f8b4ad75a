"""Canvas error bodies (canvas-api.md §4), raised from handlers as CanvasError."""

from __future__ import annotations

from typing import Any

WWW_AUTHENTICATE = 'Bearer realm="canvas-lms"'

NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}
INVALID_TOKEN = {"errors": [{"message": "Invalid access token."}]}
UNAUTHENTICATED = {
    "status": "unauthenticated",
    "errors": [{"message": "user authorization required"}],
}
UNAUTHORIZED = {
    "status": "unauthorized",
    "errors": [{"message": "user not authorized to perform that action"}],
}


class CanvasError(Exception):
    """A Canvas error response: status and JSON body, raised anywhere in a handler."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found() -> CanvasError:
    return CanvasError(404, NOT_FOUND)


def bad_request(body: Any) -> CanvasError:
    return CanvasError(400, body)

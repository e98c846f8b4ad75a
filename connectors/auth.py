"""Credentials as httpx `Auth` objects whose repr never shows the secret.

Canvas and Blackboard take `Authorization: Bearer <token>`; Moodle web services take the token as
a `wstoken` query parameter (`QueryTokenAuth("wstoken", token)`). Both mask the secret in `repr`,
and `redaction.redact_url` masks the query parameter wherever a URL is reported.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class QueryTokenAuth(httpx.Auth):
    def __init__(self, param: str, token: str) -> None:
        self._param = param
        self._token = token

    def __repr__(self) -> str:
        return f"QueryTokenAuth(param={self._param!r}, token=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_set_param(self._param, self._token)
        yield request

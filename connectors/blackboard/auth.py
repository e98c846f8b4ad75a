"""OAuth2 client credentials for Learn, as an ``httpx.Auth`` flow (reference §1a).

    POST /learn/api/public/v1/oauth2/token        Authorization: Basic base64(key:secret)
    grant_type=client_credentials
    → 200 {"access_token": "…", "token_type": "bearer", "expires_in": 3599}

The token is cached and shared by every thread of the client. It is refreshed *before* it expires
(``refresh_skew_seconds``, at most a tenth of its lifetime, ahead) and again when Learn answers 401
to a request that carried it — an expired or revoked token — after which the request is sent once
more with the new token, so no page is lost. A refused token request (bad key or secret) ends the
flow with Learn's own 401, which the client classifies as a configuration error: no retries.
Neither the secret nor a token ever appears in ``repr``, a log line or an error.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Generator

import httpx

TOKEN_PATH = "/learn/api/public/v1/oauth2/token"  # spec: POST /v1/oauth2/token (OAuth2AccessToken)


class ClientCredentialsAuth(httpx.Auth):
    requires_response_body = True

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_skew_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token_url = token_url
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._basic = f"Basic {basic}"
        self._skew = refresh_skew_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._stats = {"token_requests": 0, "refreshed_on_401": 0, "refused": 0}

    def __repr__(self) -> str:
        return "ClientCredentialsAuth(client_id=***, client_secret=***, token=***)"

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._fresh()
        if token is None:
            token = yield from self._obtain(stale=None)
            if token is None:
                return  # the token endpoint's refusal is the response
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        # Learn refuses an expired or revoked token with 401: get a new one and send once more.
        token = yield from self._obtain(stale=token)
        if token is None:
            return
        with self._lock:
            self._stats["refreshed_on_401"] += 1
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _fresh(self) -> str | None:
        with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            return None

    def _obtain(self, *, stale: str | None) -> Generator[httpx.Request, httpx.Response, str | None]:
        """A valid token: the cached one if another thread already replaced ``stale``, else a new
        one from the token endpoint (one thread asks; the others wait for its answer)."""
        with self._lock:
            if (
                self._token is not None
                and self._token != stale
                and self._clock() < self._refresh_at
            ):
                return self._token
            self._stats["token_requests"] += 1
            response = yield httpx.Request(
                "POST",
                self._token_url,
                headers={
                    "Authorization": self._basic,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                content=b"grant_type=client_credentials",
            )
            token, lifetime = _parse(response)
            if token is None:
                self._stats["refused"] += response.status_code in (400, 401, 403)
                self._token = None
                return None
            self._token = token
            self._refresh_at = self._clock() + lifetime - min(self._skew, lifetime / 10)
            return token


def _parse(response: httpx.Response) -> tuple[str | None, float]:
    """``OAuth2AccessToken``: ``access_token`` and ``expires_in`` (int32 seconds, required)."""
    if response.status_code != 200:
        return None, 0.0
    try:
        data = json.loads(response.content)
        token, lifetime = data["access_token"], float(data["expires_in"])
    except (ValueError, KeyError, TypeError):
        return None, 0.0  # malformed or truncated: the client classifies and retries it
    if not isinstance(token, str) or not token or lifetime <= 0:
        return None, 0.0
    return token, lifetime

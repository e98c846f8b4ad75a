"""Test doubles for the HTTP-layer tests: a scripted MockTransport handler and a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from connectors import RetryPolicy, VendorClient

BASE_URL = "https://lms.test/api/v1/"


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Scripted:
    """A MockTransport handler that answers from a script and records every request."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[..., Any]) -> None:
        self._answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._answers[min(len(self.requests), len(self._answers)) - 1]
        if callable(answer) and not isinstance(answer, httpx.Response):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> VendorClient:
    kwargs.setdefault("vendor", "canvas")
    kwargs.setdefault("base_url", BASE_URL)
    kwargs.setdefault("retry", RetryPolicy.fast())
    return VendorClient(transport=httpx.MockTransport(handler), **kwargs)

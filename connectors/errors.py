"""Typed errors of the HTTP layer: each says what failed, where, and whether trying again can help.

Every error carries `.kind`: "transient" (try again later: the run may retry the course),
"permanent" (this request will never succeed as sent) or "configuration" (fix a setting — a token,
a base URL — before running again). `str()` names vendor, course, endpoint and status; `.to_dict()`
is the same information as plain data for dead letters and run artifacts. Neither ever contains a
token, a query string with credentials, a name or an email: vendor text is taken only from the
vendor's own error fields and passed through `redaction.scrub`.

    >>> str(PermanentError(vendor="canvas", endpoint="courses/42/enrollments", course_id="42",
    ...                    status=404, message="The specified resource does not exist."))
    'canvas course 42: GET courses/42/enrollments → 404 Not Found: The specified resource does \
not exist.'
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any, ClassVar, Literal

import httpx

from connectors.redaction import scrub, strip_query

Kind = Literal["transient", "permanent", "configuration"]


class ConnectorError(Exception):
    """Base of every error raised by `connectors`; carries the request's context."""

    kind: ClassVar[Kind] = "permanent"

    def __init__(
        self,
        *,
        vendor: str,
        endpoint: str,
        course_id: str | None = None,
        method: str = "GET",
    ) -> None:
        self.vendor = vendor
        self.endpoint = endpoint
        self.course_id = course_id
        self.method = method
        super().__init__(str(self))

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors defeat Exception's default pickling; Prefect pickles errors.
        return (_restore, (type(self), self.__dict__.copy()))

    def _where(self) -> str:
        course = f" course {self.course_id}" if self.course_id is not None else ""
        return f"{self.vendor}{course}: {self.method} {self.endpoint}"

    def _details(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Plain, PII-free data describing the error (for dead letters and artifacts)."""
        return {
            "error": type(self).__name__,
            "kind": self.kind,
            "vendor": self.vendor,
            "endpoint": self.endpoint,
            "course_id": self.course_id,
            "method": self.method,
            **self._details(),
            "message": str(self),
        }


def _restore(cls: type[ConnectorError], state: dict[str, Any]) -> ConnectorError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, str(error))
    return error


def _status_text(status: int | None) -> str:
    if status is None:
        return "no response"
    return f"{status} {httpx.codes.get_reason_phrase(status)}".rstrip()


class PermanentError(ConnectorError):
    """The vendor answered and the request will not succeed if repeated (400/403/404/422, …).

    `status` is None when no HTTP response exists (e.g. an unsupported URL scheme).
    """

    kind: ClassVar[Kind] = "permanent"

    def __init__(
        self,
        *,
        vendor: str,
        endpoint: str,
        course_id: str | None = None,
        status: int | None,
        message: str = "",
        method: str = "GET",
    ) -> None:
        self.status = status
        self.message = scrub(message)
        super().__init__(vendor=vendor, endpoint=endpoint, course_id=course_id, method=method)

    def __str__(self) -> str:
        message = f": {self.message}" if self.message else ""
        return f"{self._where()} → {_status_text(self.status)}{message}"

    def _details(self) -> dict[str, Any]:
        return {"status": self.status, "vendor_message": self.message}


class AuthenticationError(PermanentError):
    """The credentials were refused (bad, expired or revoked token): fail at once, never retry."""

    kind: ClassVar[Kind] = "configuration"


class RetryBudgetExhausted(ConnectorError):
    """Transient failures outlasted the retry policy (attempts or total time)."""

    kind: ClassVar[Kind] = "transient"

    def __init__(
        self,
        *,
        vendor: str,
        endpoint: str,
        course_id: str | None = None,
        attempts: int,
        elapsed_seconds: float,
        last_status: int | None,
        last_error: str,
        method: str = "GET",
    ) -> None:
        self.attempts = attempts
        self.elapsed_seconds = elapsed_seconds
        self.last_status = last_status
        self.last_error = last_error
        super().__init__(vendor=vendor, endpoint=endpoint, course_id=course_id, method=method)

    def __str__(self) -> str:
        return (
            f"{self._where()} → gave up after {self.attempts} attempts "
            f"in {self.elapsed_seconds:.1f}s; last: {self.last_error}"
        )

    def _details(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


class CircuitOpenError(ConnectorError):
    """The vendor failed repeatedly; requests fail fast until the breaker may close again."""

    kind: ClassVar[Kind] = "transient"

    def __init__(
        self,
        *,
        vendor: str,
        endpoint: str,
        course_id: str | None = None,
        state: str,
        failures: int,
        retry_in_seconds: float,
        method: str = "GET",
    ) -> None:
        self.state = state
        self.failures = failures
        self.retry_in_seconds = retry_in_seconds
        super().__init__(vendor=vendor, endpoint=endpoint, course_id=course_id, method=method)

    def __str__(self) -> str:
        return (
            f"{self._where()} → circuit {self.state} after {self.failures} consecutive failures; "
            f"may probe again in {self.retry_in_seconds:.1f}s"
        )

    def _details(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "failures": self.failures,
            "retry_in_seconds": round(self.retry_in_seconds, 3),
        }


class PaginationLoopError(ConnectorError):
    """The vendor handed back a page reference already followed: paging would never end."""

    kind: ClassVar[Kind] = "permanent"

    def __init__(
        self,
        *,
        vendor: str,
        endpoint: str,
        course_id: str | None = None,
        reference: str,
        page_number: int,
        method: str = "GET",
    ) -> None:
        # The query may hold a bookmark that encodes a person's sortable name: keep path + digest.
        self.reference = f"{strip_query(reference)} #{sha256(reference.encode()).hexdigest()[:12]}"
        self.page_number = page_number
        super().__init__(vendor=vendor, endpoint=endpoint, course_id=course_id, method=method)

    def __str__(self) -> str:
        return (
            f"{self._where()} → page {self.page_number} points to a page already fetched "
            f"({self.reference})"
        )

    def _details(self) -> dict[str, Any]:
        return {"reference": self.reference, "page_number": self.page_number}


class MalformedResponseError(ConnectorError):
    """A successful response whose JSON is not shaped as the endpoint declares."""

    kind: ClassVar[Kind] = "permanent"

    def __init__(
        self,
        *,
        vendor: str,
        endpoint: str,
        course_id: str | None = None,
        detail: str,
        method: str = "GET",
    ) -> None:
        self.detail = scrub(detail)
        super().__init__(vendor=vendor, endpoint=endpoint, course_id=course_id, method=method)

    def __str__(self) -> str:
        return f"{self._where()} → malformed response: {self.detail}"

    def _details(self) -> dict[str, Any]:
        return {"detail": self.detail}


class ForeignHostError(ConnectorError):
    """A URL (usually a vendor's next-page link) points off the configured host.

    Following it would send the credentials to another server, so it is refused; if the vendor
    links to its canonical host, set `base_url` to that host.
    """

    kind: ClassVar[Kind] = "configuration"

    def __init__(
        self,
        *,
        vendor: str,
        endpoint: str,
        course_id: str | None = None,
        host: str,
        expected_host: str,
        method: str = "GET",
    ) -> None:
        self.host = host
        self.expected_host = expected_host
        super().__init__(vendor=vendor, endpoint=endpoint, course_id=course_id, method=method)

    def __str__(self) -> str:
        return (
            f"{self._where()} → refused URL on host {self.host!r}: only {self.expected_host!r} "
            "receives credentials"
        )

    def _details(self) -> dict[str, Any]:
        return {"host": self.host, "expected_host": self.expected_host}

"""Canvas as a source: list an account's courses, and stream one course's domains as staged pages.

The per-domain plans below are the only Canvas-specific control flow; everything else (paging,
retries, throttling, pacing, the breaker) is the shared HTTP layer, and every field read is declared
in ``endpoints.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa

from connectors.auth import BearerAuth
from connectors.backoff import RetryPolicy
from connectors.breaker import CircuitBreaker
from connectors.canvas import endpoints as ep
from connectors.classify import CANVAS_RULES
from connectors.client import DEFAULT_TIMEOUT, VendorClient
from connectors.extract import StagedPage, stream_pages
from connectors.pacing import AdaptivePacer, Pacer, PacerChain
from connectors.paginators import LinkHeaderPaginator
from transforms.staging import stream_schema

VENDOR = "canvas"


class CanvasSource:
    """One Canvas connection: a pooled, paced, retrying client shared by every course task."""

    vendor = VENDOR
    domains = ep.DOMAINS

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        account_id: str = "1",
        max_in_flight: int = 8,
        per_page: int = 100,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        shared_pacer: Pacer | None = None,
    ) -> None:
        self.account_id = account_id
        # canvas-api.md §1.2: per_page is clamped to [1, 100]; fewer, larger pages save quota.
        self._page = [("per_page", str(per_page))]
        self.client = VendorClient(
            vendor=VENDOR,
            base_url=f"{base_url.rstrip('/')}/api/v1/",
            auth=BearerAuth(token),  # canvas-api.md §1.1
            rules=CANVAS_RULES,
            retry=retry or RetryPolicy(),
            # canvas-api.md §3: Canvas's leaky bucket is per token, so pace from its headers; a
            # shared pacer (the institution's request budget across workers) goes in front.
            pacer=PacerChain(shared_pacer, AdaptivePacer(max_in_flight=max_in_flight))
            if shared_pacer
            else AdaptivePacer(max_in_flight=max_in_flight),
            # Ten straight transient failures across all course tasks means Canvas is down, not
            # flaky: stop and say so rather than spend every course's retry budget on it.
            breaker=breaker or CircuitBreaker(failure_threshold=10, reset_after_seconds=30.0),
            timeout=timeout or DEFAULT_TIMEOUT,
            max_connections=max(max_in_flight, 1) * 2,
            transport=transport,
        )

    def __enter__(self) -> CanvasSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def stats(self) -> dict[str, Any]:
        """Requests, throttled responses, retries and waits so far, for the run summary."""
        return self.client.stats.snapshot()

    @staticmethod
    def streams(domain: str) -> dict[str, pa.Schema]:
        """The streams one domain partition holds, declared up front so empty ones are kept."""
        return {e.stream: stream_schema(e.columns) for e in ep.endpoints_for(domain)}

    def list_courses(self, *, term: str | None = None) -> Iterator[dict[str, Any]]:
        """The account's courses (canvas-api.md §2.1: deleted ones are excluded by default)."""
        params = list(self._page)
        if term:
            params.append(("enrollment_term_id", term))
        path = ep.ACCOUNT_COURSES_PATH.format(account_id=self.account_id)
        for page in self.client.paginate(
            path, params=params, paginator=LinkHeaderPaginator(), endpoint=ep.ACCOUNT_COURSES_PATH
        ):
            for course in page.records:
                yield {
                    "id": str(course["id"]),
                    "workflow_state": course.get("workflow_state"),
                    "enrollment_term_id": course.get("enrollment_term_id"),
                }

    def domain_pages(
        self,
        *,
        course_id: str,
        domain: str,
        run_id: str,
        activity_since: datetime | None = None,
    ) -> Iterator[StagedPage]:
        """Every page of one course's domain, in the order the domain's plan needs them."""
        common = {"course_id": course_id, "run_id": run_id, "params": self._page}
        if domain == "roster":
            for endpoint in (ep.COURSE, ep.SECTIONS, ep.ENROLLMENTS, ep.USERS):
                yield from stream_pages(self.client, endpoint, **common)
        elif domain == "gradebook":
            for endpoint in (ep.ASSIGNMENTS, ep.SUBMISSIONS, ep.COURSE_GRADES):
                yield from stream_pages(self.client, endpoint, **common)
        elif domain == "engagement":
            yield from self._engagement(course_id, run_id, activity_since)
        elif domain == "attendance":
            yield from self._attendance(course_id, run_id)
        else:
            raise ValueError(f"unknown Canvas domain {domain!r}; expected one of {ep.DOMAINS}")

    def _engagement(
        self, course_id: str, run_id: str, since: datetime | None
    ) -> Iterator[StagedPage]:
        common = {"course_id": course_id, "run_id": run_id}
        yield from stream_pages(self.client, ep.STUDENT_SUMMARIES, params=self._page, **common)
        students: set[str] = set()
        for page in stream_pages(self.client, ep.ENROLLMENT_ACTIVITY, params=self._page, **common):
            students.update(u for u in page.table.column("user_id").to_pylist() if u)
            yield page
        # canvas-api.md §2.9: page views are per user across all courses, newest first; the window
        # start bounds how far back we read. The normalizer keeps this course's views.
        window = [*self._page, ("start_time", _iso(since))] if since else self._page
        for user_id in sorted(students, key=_numeric_first):
            yield from stream_pages(
                self.client, ep.PAGE_VIEWS, user_id=user_id, params=window, **common
            )

    def _attendance(self, course_id: str, run_id: str) -> Iterator[StagedPage]:
        common = {"course_id": course_id, "run_id": run_id}
        roll_call = self._roll_call_assignment_id(course_id)
        if roll_call is not None:
            # canvas-api.md §2.11: Roll Call posts a percent grade per student to its assignment.
            yield from stream_pages(
                self.client,
                ep.ROLL_CALL_SUBMISSIONS,
                params=[*self._page, ("assignment_ids[]", roll_call)],
                **common,
            )
        yield from stream_pages(self.client, ep.LAST_ATTENDED, params=self._page, **common)

    def _roll_call_assignment_id(self, course_id: str) -> str | None:
        path = ep.ASSIGNMENTS.url_path(course_id=course_id)
        for page in self.client.paginate(
            path,
            params=[*ep.ASSIGNMENTS.params, *self._page],
            paginator=LinkHeaderPaginator(),
            endpoint=ep.ASSIGNMENTS.path,
            course_id=course_id,
        ):
            for assignment in page.records:
                if assignment.get("name") == ep.ROLL_CALL_ASSIGNMENT_NAME:
                    return str(assignment["id"])
        return None


def _numeric_first(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (0, value)


def _iso(moment: datetime) -> str:
    """Canvas date parameters in the form its docs show: ``2026-09-01T00:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

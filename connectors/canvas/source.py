"""Canvas as a source: list an account's courses, and stream one course's domains as staged pages.

The per-domain plans below are the only Canvas-specific control flow; everything else (paging,
retries, throttling, pacing, the breaker) is the shared HTTP layer, and every field read is declared
in ``endpoints.py``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa

from connectors.auth import BearerAuth
from connectors.backoff import RetryPolicy
from connectors.breaker import CircuitBreaker
from connectors.canvas import endpoints as ep
from connectors.classify import CANVAS_RULES
from connectors.client import DEFAULT_TIMEOUT, Page, VendorClient
from connectors.endpoint import Endpoint
from connectors.extract import (
    Increment,
    RecordPage,
    StagedPage,
    record_pages,
    staged_page,
    stream_pages,
)
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
        self._memo: OrderedDict[tuple[str, str], list[RecordPage]] = OrderedDict()
        self._memo_lock = threading.Lock()
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

    # Incremental sync: which baseline a domain compares against (domain, stream of the last
    # committed load), and which of its streams an incremental fetch leaves partial.
    incremental = True

    def baseline(self, domain: str) -> tuple[str, str] | None:
        """(domain, stream) whose last loaded rows an incremental ``domain`` fetch compares with
        (None: the domain needs only the cursor)."""
        return _BASELINES.get(domain)

    def domain_pages(
        self,
        *,
        course_id: str,
        domain: str,
        run_id: str,
        activity_since: datetime | None = None,
        increment: Increment | None = None,
    ) -> Iterator[StagedPage]:
        """Every page of one course's domain, in the order the domain's plan needs them.

        With ``increment`` (gradebook, engagement, attendance) only what changed is fetched; the
        pages say so (``partial``). The course's enrollments and assignments are fetched once per
        course task and reused by the later domains (``_memo``).
        """
        common = {"course_id": course_id, "run_id": run_id, "params": self._page}
        if domain == "roster":
            yield from stream_pages(self.client, ep.COURSE, **common)
            yield from stream_pages(self.client, ep.SECTIONS, **common)
            for fetched in self._enrollments(course_id):
                yield fetched.staged(ep.ENROLLMENTS, course_id=course_id, run_id=run_id)
            yield from stream_pages(self.client, ep.USERS, **common)
        elif domain == "gradebook":
            yield from self._gradebook(course_id, run_id, increment)
        elif domain == "engagement":
            yield from self._engagement(course_id, run_id, activity_since, increment)
        elif domain == "attendance":
            yield from self._attendance(course_id, run_id, increment)
        else:
            raise ValueError(f"unknown Canvas domain {domain!r}; expected one of {ep.DOMAINS}")

    def forget(self, course_id: str) -> None:
        """Drop what the course task kept for its later domains (called when the task ends)."""
        with self._memo_lock:
            for key in [k for k in self._memo if k[0] == course_id]:
                del self._memo[key]

    # ---- fetch once, feed several streams ------------------------------------------------------

    def _remember(self, course_id: str, name: str, pages: list[RecordPage]) -> None:
        with self._memo_lock:
            self._memo[(course_id, name)] = pages
            self._memo.move_to_end((course_id, name))
            while len(self._memo) > _MEMO_ENTRIES:
                self._memo.popitem(last=False)

    def _recall(self, course_id: str, name: str) -> list[RecordPage] | None:
        with self._memo_lock:
            return self._memo.get((course_id, name))

    def _enrollments(self, course_id: str) -> list[RecordPage]:
        """Every enrollment of the course (all types and states), fetched once per course task."""
        pages = self._recall(course_id, "enrollments")
        if pages is None:
            pages = list(
                record_pages(self.client, ep.ENROLLMENTS, course_id=course_id, params=self._page)
            )
            self._remember(course_id, "enrollments", pages)
        return pages

    def _student_pages(
        self, course_id: str, run_id: str, endpoint: Endpoint
    ) -> Iterator[StagedPage]:
        """A student-enrollment stream (course_grades, enrollment_activity, last_attended) cut
        from the one enrollments fetch: same request, same records, filtered by type."""
        for fetched in self._enrollments(course_id):
            students = [r for r in fetched.records if r.get("type") == "StudentEnrollment"]
            yield RecordPage(fetched.page, students).staged(
                endpoint, course_id=course_id, run_id=run_id
            )

    def _assignments(self, course_id: str) -> list[RecordPage]:
        pages = self._recall(course_id, "assignments")
        if pages is None:
            pages = list(
                record_pages(self.client, ep.ASSIGNMENTS, course_id=course_id, params=self._page)
            )
            self._remember(course_id, "assignments", pages)
        return pages

    def _roll_call_id(self, course_id: str) -> str | None:
        for fetched in self._assignments(course_id):
            for assignment in fetched.records:
                if assignment.get("name") == ep.ROLL_CALL_ASSIGNMENT_NAME:
                    return str(assignment["id"])
        return None

    # ---- domains -------------------------------------------------------------------------------

    def _gradebook(
        self, course_id: str, run_id: str, increment: Increment | None
    ) -> Iterator[StagedPage]:
        for fetched in self._assignments(course_id):
            yield fetched.staged(ep.ASSIGNMENTS, course_id=course_id, run_id=run_id)
        roll_call = self._roll_call_id(course_id)
        kept: list[RecordPage] = []
        for fetched in self._submission_fetches(course_id, increment):
            yield fetched.staged(
                ep.SUBMISSIONS, course_id=course_id, run_id=run_id, partial=increment is not None
            )
            if roll_call is not None:
                mine = [r for r in fetched.records if str(r.get("assignment_id")) == roll_call]
                # Keep only those records (one per student), never the whole page's body.
                raw = json.dumps(mine, ensure_ascii=False).encode()
                kept.append(RecordPage(replace(fetched.page, records=mine, raw=raw), mine))
        # Roll Call's submissions are among the course's: attendance reuses them.
        self._remember(course_id, "rollcall:" + ("partial" if increment else "full"), kept)
        yield from self._student_pages(course_id, run_id, ep.COURSE_GRADES)

    def _submission_fetches(
        self, course_id: str, increment: Increment | None, extra: list[tuple[str, str]] = ()
    ) -> Iterator[RecordPage]:
        """Every submission, or (incremental) those submitted or graded after the cursor plus
        every submission of students whose enrollment is new or changed since the last load.

        canvas-api.md §2.7: ``submitted_since``/``graded_since`` are strict ``>`` and skip null
        timestamps, and both given means both must hold — so they are two requests. The cursor
        already has the overlap window taken off, so same-second updates and skew are re-read
        (and de-duplicated by the loader's key).
        """
        base = [*self._page, *extra]
        if increment is None:
            yield from record_pages(self.client, ep.SUBMISSIONS, course_id=course_id, params=base)
            return
        since = _iso(increment.since)
        for name in ("submitted_since", "graded_since"):
            yield from record_pages(
                self.client, ep.SUBMISSIONS, course_id=course_id, params=[*base, (name, since)]
            )
        # A new student's (or one whose enrollment changed) placeholders and old work carry old
        # timestamps, so no *_since finds them: fetch those students' submissions whole.
        changed = sorted(self._changed_students(course_id, increment), key=_numeric_first)
        for chunk in range(0, len(changed), 100):  # §2.7: at most 100 explicit student ids
            ids = [("student_ids[]", u) for u in changed[chunk : chunk + 100]]
            yield from record_pages(
                self.client, ep.SUBMISSIONS, course_id=course_id, params=[*base, *ids]
            )

    def _changed_students(self, course_id: str, increment: Increment) -> set[str]:
        def students(rows) -> dict[str, str | None]:
            return {
                str(r["user_id"]): r.get("enrollment_state")
                for r in rows
                if r.get("type") == "StudentEnrollment" and r.get("user_id") is not None
            }

        now = students(r for f in self._enrollments(course_id) for r in f.records)
        before = students(increment.previous.get("enrollments", []))
        return {u for u, state in now.items() if before.get(u, "\0") != state}

    def _engagement(
        self,
        course_id: str,
        run_id: str,
        since: datetime | None,
        increment: Increment | None,
    ) -> Iterator[StagedPage]:
        activity: dict[str, tuple[str | None, str | None]] = {}
        for fetched in record_pages(
            self.client, ep.STUDENT_SUMMARIES, course_id=course_id, params=self._page
        ):
            for r in fetched.records:
                activity[str(r.get("id"))] = (
                    _text(r.get("page_views")),
                    _text(r.get("participations")),
                )
            yield fetched.staged(ep.STUDENT_SUMMARIES, course_id=course_id, run_id=run_id)
        students: set[str] = set()
        for page in self._student_pages(course_id, run_id, ep.ENROLLMENT_ACTIVITY):
            students.update(u for u in page.table.column("user_id").to_pylist() if u)
            yield page
        if increment is not None:
            # Page views only for students whose analytics totals moved since the last load
            # (student_summaries is one request; a user's page views are at least one each).
            before = {
                str(r.get("id")): (r.get("page_views"), r.get("participations"))
                for r in increment.previous.get("student_summaries", [])
            }
            students = {
                u
                for u in students
                if u in activity
                and activity[u] != before.get(u, ("0", "0"))
                and activity[u] != (None, None)
            }
        # canvas-api.md §2.9: page views are per user across all courses, newest first; the window
        # start bounds how far back we read. The normalizer keeps this course's views.
        window = [*self._page, ("start_time", _iso(since))] if since else self._page
        common = {"course_id": course_id, "run_id": run_id}
        for user_id in sorted(students, key=_numeric_first):
            for page in stream_pages(
                self.client, ep.PAGE_VIEWS, user_id=user_id, params=window, **common
            ):
                yield replace(page, partial=increment is not None)
        if increment is not None and not students:
            yield _empty_page(ep.PAGE_VIEWS, course_id=course_id, run_id=run_id)

    def _attendance(
        self, course_id: str, run_id: str, increment: Increment | None
    ) -> Iterator[StagedPage]:
        roll_call = self._roll_call_id(course_id)
        if roll_call is not None:
            # canvas-api.md §2.11: Roll Call posts a percent grade per student to its assignment;
            # the gradebook fetch of the same course task already holds those submissions.
            kind = "partial" if increment else "full"
            kept = self._recall(course_id, f"rollcall:{kind}")
            if kept is None:
                kept = list(
                    self._submission_fetches(
                        course_id, increment, extra=[("assignment_ids[]", roll_call)]
                    )
                )
            for fetched in kept:
                yield fetched.staged(
                    ep.ROLL_CALL_SUBMISSIONS,
                    course_id=course_id,
                    run_id=run_id,
                    partial=increment is not None,
                )
        yield from self._student_pages(course_id, run_id, ep.LAST_ATTENDED)


_BASELINES: dict[str, tuple[str, str]] = {
    "gradebook": ("roster", "enrollments"),
    "engagement": ("engagement", "student_summaries"),
}
_MEMO_ENTRIES = 256  # (course, stream) entries: a few per course task in flight


def _empty_page(endpoint: Endpoint, *, course_id: str, run_id: str) -> StagedPage:
    """Marks a stream partial when an incremental fetch needed no request for it."""
    now = datetime.now(UTC)
    page = Page(records=[], number=0, url="", status=0, fetched_at=now, raw=b"[]", trace_id="",
                span_id="", attempts=0)  # fmt: skip
    return staged_page(page, [], endpoint, course_id=course_id, run_id=run_id, partial=True)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _numeric_first(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (0, value)


def _iso(moment: datetime) -> str:
    """Canvas date parameters in the form its docs show: ``2026-09-01T00:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

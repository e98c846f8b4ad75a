"""Blackboard Learn as a source: list the site's courses, stream one course's domains as staged
pages, and keep the sync inside the site's daily call quota.

The per-domain plans below are the only Learn-specific control flow; paging, retries, pacing and
the breaker are the shared HTTP layer, and every field read is declared in ``endpoints.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa

from connectors.backoff import RetryPolicy
from connectors.blackboard import endpoints as ep
from connectors.blackboard.auth import TOKEN_PATH, ClientCredentialsAuth
from connectors.blackboard.quota import (
    CourseSize,
    DailyQuotaExhausted,
    QuotaBudgetExceeded,
    QuotaMeter,
    estimate_calls,
    quota_exhausted_rule,
)
from connectors.breaker import CircuitBreaker
from connectors.classify import BLACKBOARD_RULES
from connectors.client import DEFAULT_TIMEOUT, Page, VendorClient
from connectors.endpoint import Endpoint
from connectors.errors import PermanentError
from connectors.extract import (
    Increment,
    RecordPage,
    StagedPage,
    record_pages,
    staged_page,
    stream_pages,
)
from connectors.pacing import RequestRatePacer
from connectors.paginators import NextPagePaginator
from transforms.staging import stream_schema

VENDOR = "blackboard"
RULES = (quota_exhausted_rule, *BLACKBOARD_RULES)


class BlackboardSource:
    """One Learn connection: an OAuth2, paced, retrying client shared by every course task.

    ``daily_call_budget_share`` (0..1, None = unchecked) caps the share of the quota remaining at
    the start that one run may spend: before any course is synced, the source probes each course's
    size (three small ``fields=id`` calls for a course under 200 members) and raises
    :class:`QuotaBudgetExceeded` if the estimate is over it.
    """

    vendor = VENDOR
    domains = ep.DOMAINS

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        max_in_flight: int = 8,
        requests_per_second: float = 10.0,
        burst: int = 20,
        daily_call_budget_share: float | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        token_refresh_skew_seconds: float = 60.0,
    ) -> None:
        root = base_url.rstrip("/")
        self.budget_share = daily_call_budget_share
        self.auth = ClientCredentialsAuth(
            token_url=f"{root}{TOKEN_PATH}",
            client_id=client_id,
            client_secret=client_secret,
            refresh_skew_seconds=token_refresh_skew_seconds,
        )
        self.meter = QuotaMeter(RequestRatePacer(rate_per_second=requests_per_second, burst=burst))
        self.estimate: dict[str, Any] | None = None
        self._staged: dict[str, frozenset[str]] = {}
        self.client = VendorClient(
            vendor=VENDOR,
            base_url=f"{root}/learn/api/public/",
            auth=self.auth,
            rules=RULES,
            retry=retry or RetryPolicy(),
            pacer=self.meter,
            breaker=breaker or CircuitBreaker(failure_threshold=10, reset_after_seconds=30.0),
            timeout=timeout or DEFAULT_TIMEOUT,
            max_connections=max(max_in_flight, 1) * 2,
            transport=transport,
        )

    def __enter__(self) -> BlackboardSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def stats(self) -> dict[str, Any]:
        """Requests, throttles, retries, tokens, the quota left and the run's call estimate."""
        snapshot = self.client.stats.snapshot()
        snapshot["tokens"] = self.auth.stats()
        snapshot["quota"] = self.quota()
        if self.estimate is not None:
            snapshot["estimate"] = self.estimate
        return snapshot

    def quota(self) -> dict[str, Any]:
        """The site's daily quota as the newest response reported it, and this client's calls."""
        m = self.meter
        return {
            "limit": m.limit,
            "remaining": m.remaining,
            "reset_seconds": m.reset_seconds,
            "calls_this_client": m.calls,
        }

    @staticmethod
    def streams(domain: str) -> dict[str, pa.Schema]:
        return {e.stream: stream_schema(e.columns) for e in ep.endpoints_for(domain)}

    # Incremental sync (``flows/stage.py``): the gradebook compares each column's newest
    # ``changeIndex`` with the last committed load's; roster and attendance are read in full.
    incremental = True

    @staticmethod
    def baseline(domain: str) -> tuple[str, str] | None:
        """(domain, stream) of the last load an incremental ``domain`` fetch compares with."""
        return ("gradebook", "last_changed") if domain == "gradebook" else None

    # ---- courses and the budget -------------------------------------------------------------

    def list_courses(self, *, term: str | None = None) -> Iterator[dict[str, Any]]:
        """The site's courses, Disabled (SIS-deleted) ones left out; then the budget check."""
        params = [
            ("limit", str(ep.PAGE_CAPS["courses"])),
            ("fields", ",".join(ep.COURSE_LIST_FIELDS)),
        ]
        if term:
            params.append(("termId", term))
        listed = []
        for page in self.client.paginate(
            ep.COURSES_PATH, params=params, paginator=NextPagePaginator(), endpoint=ep.COURSES_PATH
        ):
            for course in page.records:
                if (course.get("availability") or {}).get("available") == "Disabled":
                    continue
                listed.append(
                    {
                        "id": course["id"],
                        "course_code": course.get("courseId"),
                        "term_id": course.get("termId"),
                    }
                )
        if self.budget_share is not None:
            self.preflight([c["id"] for c in listed])
        yield from listed

    def already_staged(self, domains_by_course: Mapping[str, Iterable[str]]) -> None:
        """The domains each course already has committed for the run's window (the flow reads
        them from staging before listing courses): a rerun of the window fetches none of those,
        so the budget estimate leaves them out and does not even probe a finished course."""
        self._staged = {c: frozenset(d) for c, d in domains_by_course.items()}

    def preflight(self, course_ids: list[str]) -> dict[str, Any]:
        """Estimate the calls syncing ``course_ids`` needs; raise if over the run's budget.
        Domains already committed for the window (``already_staged``) cost nothing."""
        before = self.meter.calls
        todo = {
            cid: tuple(d for d in ep.DOMAINS if d not in self._staged.get(cid, ()))
            for cid in course_ids
        }
        sizes = [self._probe(cid) for cid in course_ids if todo[cid]]
        probes = self.meter.calls - before
        needed = sum(estimate_calls(s, ep.PAGE_CAPS, todo[s.course_id]) for s in sizes)
        needed += 1  # + a token refresh
        start = self.meter.first_remaining
        spent = self.meter.calls
        self.estimate = {
            "courses": len(course_ids),
            "courses_already_staged": sum(1 for d in todo.values() if not d),
            "calls_needed": needed,
            "probe_calls": probes,
            "remaining_at_start": start,
        }
        if self.budget_share is None or start is None:
            return self.estimate
        allowed = int(self.budget_share * start)
        self.estimate["calls_allowed"] = allowed
        if spent + needed > allowed:
            raise QuotaBudgetExceeded(
                needed=spent + needed,
                allowed=allowed,
                share=self.budget_share,
                remaining=self.meter.remaining,
                limit=self.meter.limit,
                courses=len(course_ids),
                reset_seconds=self.meter.reset_seconds,
            )
        return self.estimate

    def _probe(self, course_id: str) -> CourseSize:
        def ids(path: str, fields: str, cap: str) -> list[dict]:
            out: list[dict] = []
            for page in self.client.paginate(
                path.format(course_id=course_id),
                params=[("limit", str(ep.PAGE_CAPS[cap])), ("fields", fields)],
                paginator=NextPagePaginator(),
                endpoint=path,
                course_id=course_id,
            ):
                out.extend(page.records)
            return out

        with _quota_errors(course_id):
            members = ids(ep.MEMBERSHIPS.path, "id", "memberships")
            columns = ids(ep.COLUMNS.path, "id,grading.type,grading.attemptsAllowed", "columns")
            meetings = ids(ep.MEETINGS.path, "id", "meetings")
        slots = tuple(
            int((c.get("grading") or {}).get("attemptsAllowed") or 1)
            for c in columns
            if (c.get("grading") or {}).get("type") == "Attempts"
        )
        return CourseSize(course_id, len(members), len(columns), slots, len(meetings))

    # ---- one course's domains ----------------------------------------------------------------

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

        ``activity_since`` is unused: Learn's engagement signals are fields of the roster.
        ``increment`` (gradebook only) fetches only the columns whose grades changed."""
        with _quota_errors(course_id):
            if domain == "roster":
                for endpoint in (ep.COURSE, ep.MEMBERSHIPS):
                    yield from self._pages(endpoint, course_id, run_id)
            elif domain == "gradebook":
                yield from self._gradebook(course_id, run_id, increment)
            elif domain == "attendance":
                yield from self._attendance(course_id, run_id)
            else:
                raise ValueError(
                    f"unknown Blackboard domain {domain!r}; expected one of {ep.DOMAINS}"
                )

    def _pages(self, endpoint: Endpoint, course_id: str, run_id: str) -> Iterator[StagedPage]:
        return stream_pages(self.client, endpoint, course_id=course_id, run_id=run_id)

    def _gradebook(
        self, course_id: str, run_id: str, increment: Increment | None
    ) -> Iterator[StagedPage]:
        """Columns in full; then per column its grades and (Attempts-graded) attempts.

        Incremental (``increment``: the last load's ``last_changed`` rows): per column one
        ``lastChanged`` call; only a column whose newest ``changeIndex`` moved is read again —
        its grades with ``changeIndex`` > the last load's (Learn's own grade cursor) and its
        attempts in full (a changed grade needs its attempt count). A column the last load did not
        see is read in full. ``grades``, ``attempts`` and ``last_changed`` are then partial.
        """
        columns: list[tuple[str, str | None]] = []
        for page in self._pages(ep.COLUMNS, course_id, run_id):
            ids = page.table.column("id").to_pylist()
            types = page.table.column("grading__type").to_pylist()
            columns += [(c, t) for c, t in zip(ids, types, strict=True) if c]
            yield page
        seen = _change_indexes(increment.previous.get("last_changed", [])) if increment else {}
        partial = increment is not None
        for column_id, grading_type in columns:
            grades = ep.for_parent(ep.GRADES, column_id=column_id)
            before = seen.get(column_id)
            if before is None:  # full sync, or a column the last load did not see
                newest: tuple[int, RecordPage] | None = None
                for fetched in self._records(grades, course_id):
                    yield fetched.staged(grades, course_id=course_id, run_id=run_id,
                                         partial=partial)  # fmt: skip
                    newest = _newest(fetched, newest)
                if newest is not None:
                    yield _only(newest, ep.LAST_CHANGED, course_id, run_id, partial)
            else:
                latest = self._last_changed(course_id, column_id)
                if latest is not None:
                    index = _index(latest.records[0]) if latest.records else None
                    yield latest.staged(ep.LAST_CHANGED, course_id=course_id, run_id=run_id,
                                        partial=True)  # fmt: skip
                    if index is not None and index <= before:
                        continue  # nothing in this column changed since the last load
                params = [("changeIndex", str(before))]
                for fetched in self._records(grades, course_id, params=params):
                    yield fetched.staged(grades, course_id=course_id, run_id=run_id, partial=True)
            if grading_type == "Attempts":  # only Attempts-graded columns have attempts
                yield from self._attempts(course_id, run_id, column_id, partial)
        if partial:
            for endpoint in (ep.GRADES, ep.LAST_CHANGED, ep.ATTEMPTS):
                yield _marker(endpoint, course_id, run_id)

    def _records(
        self, endpoint: Endpoint, course_id: str, params: list[tuple[str, str]] = ()
    ) -> Iterator[RecordPage]:
        return record_pages(self.client, endpoint, course_id=course_id, params=params)

    def _last_changed(self, course_id: str, column_id: str) -> RecordPage | None:
        """The column's last changed grade, or None when the column has no grade left (404)."""
        endpoint = ep.for_parent(ep.LAST_CHANGED, column_id=column_id)
        try:
            return next(iter(self._records(endpoint, course_id)), None)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def _attempts(
        self, course_id: str, run_id: str, column_id: str, partial: bool
    ) -> Iterator[StagedPage]:
        """The column's attempts, each numbered among its user's (AttemptV2 has no number):
        1, 2, … in ``attemptDate`` order over every page of the column."""
        endpoint = ep.for_parent(ep.ATTEMPTS, column_id=column_id)
        pages = list(self._records(endpoint, course_id))
        order = sorted(
            (r for f in pages for r in f.records),
            key=lambda r: (str(r.get("attemptDate") or ""), str(r.get("created") or ""),
                           str(r.get("id") or "")),
        )  # fmt: skip
        counts: dict[str, int] = {}
        numbers: dict[str, int] = {}
        for record in order:
            user = str(record.get("userId"))
            counts[user] = counts.get(user, 0) + 1
            numbers[str(record.get("id"))] = counts[user]
        for fetched in pages:
            records = [
                {**r, "columnId": column_id, "attemptNumber": numbers[str(r.get("id"))]}
                for r in fetched.records
            ]
            yield RecordPage(fetched.page, records).staged(
                endpoint, course_id=course_id, run_id=run_id, partial=partial
            )

    def _attendance(self, course_id: str, run_id: str) -> Iterator[StagedPage]:
        meetings: list[str] = []
        for page in self._pages(ep.MEETINGS, course_id, run_id):
            meetings += [m for m in page.table.column("id").to_pylist() if m]
            yield page
        for meeting_id in meetings:
            records = ep.for_parent(ep.MEETING_USERS, meeting_id=meeting_id)
            yield from self._pages(records, course_id, run_id)


def _index(record: Any) -> int | None:
    try:
        return int(record.get("changeIndex"))
    except (AttributeError, TypeError, ValueError):
        return None


def _change_indexes(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Newest ``changeIndex`` per column in the last load's ``last_changed`` rows."""
    out: dict[str, int] = {}
    for row in rows:
        index = _index(row)
        column = row.get("columnId")
        if index is not None and column:
            out[column] = max(index, out.get(column, index))
    return out


def _newest(
    fetched: RecordPage, best: tuple[int, RecordPage] | None
) -> tuple[int, RecordPage] | None:
    """Keep the grade with the largest ``changeIndex`` seen so far (with its page)."""
    for record in fetched.records:
        index = _index(record)
        if index is not None and (best is None or index > best[0]):
            raw = json.dumps(record, ensure_ascii=False).encode()
            best = (index, RecordPage(replace(fetched.page, records=[record], raw=raw), [record]))
    return best


def _only(
    newest: tuple[int, RecordPage], endpoint: Endpoint, course_id: str, run_id: str, partial: bool
) -> StagedPage:
    """The column's newest grade, from the grade page that held it, as a ``last_changed`` row."""
    return newest[1].staged(endpoint, course_id=course_id, run_id=run_id, partial=partial)


def _marker(endpoint: Endpoint, course_id: str, run_id: str) -> StagedPage:
    """Marks a stream partial even when an incremental fetch needed no request for it."""
    page = Page(records=[], number=0, url="", status=0, fetched_at=datetime.now(UTC), raw=b"[]",
                trace_id="", span_id="", attempts=0)  # fmt: skip
    return staged_page(page, [], endpoint, course_id=course_id, run_id=run_id, partial=True)


class _quota_errors:
    """Turn the client's 429-quota failure into :class:`DailyQuotaExhausted` for the course."""

    def __init__(self, course_id: str) -> None:
        self.course_id = course_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if (
            isinstance(exc, PermanentError)
            and exc.status == 429
            and not isinstance(exc, DailyQuotaExhausted)
        ):
            raise DailyQuotaExhausted(
                vendor=exc.vendor,
                endpoint=exc.endpoint,
                course_id=self.course_id,
                status=429,
                message=(
                    "the site's daily API quota is spent; this course was not synced — run the "
                    "same window again after the quota resets and it completes"
                ),
            ) from None
        return False

"""Moodle as a source: list a site's courses, and stream one course's domains as staged pages.

Everything goes through the shared HTTP layer (`VendorClient`: pooled client, Moodle error rules,
retries, breaker, pacing); every field read is declared in ``endpoints.py``. What is Moodle's own:

* one URL for every call; the function is a parameter, the token is ``wstoken`` (moodle-api.md §1);
* errors arrive inside HTTP 200 (§4) and are classified by ``connectors.classify.MOODLE_RULES``;
* records are nested in wrappers (§3.5–3.9), so pages are flattened before staging;
* only ``core_enrol_get_enrolled_users`` pages (``limitfrom``/``limitnumber``, a short page ends
  it; blackboard-moodle-attendance.md §2b); everything else comes in one response;
* Moodle sites publish no rate-limit headers, so pacing is a plain request-rate budget.

Per-domain plans:

* roster — the course, every enrolled user, and the ``onlyactive`` list (who is missing from it is
  suspended: Moodle has no since-filter for enrolments, so the roster is compared in full).
* gradebook — assignments, then their grades and submissions (in batches of assignment ids), then
  the user grade report (course totals, scale labels, pass/fail). Incremental (a cursor): the
  ``since`` of ``mod_assign_get_grades`` and ``mod_assign_get_submissions`` (unix seconds,
  ``timemodified >= since``) find the assignments with anything new; only those are read again,
  grades and submissions in full (a submission row and its grade row are joined, so a changed one
  needs the other), and both streams are partial. An assignment modified since is read too.
  Roster, engagement and attendance have no ``since`` in Moodle and are read in full.
* engagement — last course access of every enrolled user, then each student's activity
  completion (``core_completion_get_activities_completion_status`` is per user).
* attendance — the course's mod_attendance instances (from ``core_course_get_contents``), then
  each instance's sessions, flattened to one row per log entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa

from connectors.auth import QueryTokenAuth
from connectors.backoff import RetryPolicy
from connectors.breaker import CircuitBreaker
from connectors.classify import MOODLE_RULES
from connectors.client import DEFAULT_TIMEOUT, Page, VendorClient
from connectors.extract import Increment, StagedPage, staged_page, to_table
from connectors.moodle import endpoints as ep
from connectors.pacing import RequestRatePacer
from connectors.paginators import OffsetPaginator, PageRequest, Paginator, SinglePage
from transforms.staging import stream_schema

VENDOR = "moodle"
ASSIGNMENT_BATCH = 50  # assignment ids per grades/submissions call: keeps GET URLs short


@dataclass(frozen=True)
class _Rows:
    """A paginator whose records are nested (``rows``) and get outer fields copied on (``carry``,
    or ``extra`` constants such as the requested user id). Paging is the wrapped paginator's."""

    base: Paginator
    rows: tuple[str, ...] = ()
    carry: tuple[str, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()

    def records(self, data: Any) -> list[Any]:
        return _flatten(data, self.rows, self.carry, dict(self.extra))

    def next_reference(
        self, *, request: PageRequest, response: httpx.Response, data: Any
    ) -> str | None:
        return self.base.next_reference(request=request, response=response, data=data)

    def next_request(self, *, request: PageRequest, reference: str | None) -> PageRequest:
        return self.base.next_request(request=request, reference=reference)


def _flatten(
    data: Any, rows: tuple[str, ...], carry: tuple[str, ...], extra: dict[str, Any]
) -> list[Any]:
    """``{"assignments": [{"assignmentid": 21, "grades": [g, ...]}]}`` with rows
    ``("assignments", "grades")`` and carry ``("assignmentid",)`` → ``[{**g, "assignmentid": 21}]``.
    A top-level list is the first level; a missing or non-list level raises ValueError."""
    if not rows:
        if not isinstance(data, list):
            raise ValueError(f"expected a JSON list at the top level, got {type(data).__name__}")
        return [{**r, **extra} if extra and isinstance(r, dict) else r for r in data]
    level: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (item, {}) for item in (data if isinstance(data, list) else [data])
    ]
    for depth, key in enumerate(rows):
        last = depth == len(rows) - 1
        nxt: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for parent, carried in level:
            if not isinstance(parent, dict) or not isinstance(parent.get(key), list):
                raise ValueError(f"expected a JSON list under {key!r}")
            inherited = {**carried, **{c: parent[c] for c in carry if c in parent}}
            nxt += [(child, inherited if last else carried) for child in parent[key]]
        level = nxt
    return [
        {**child, **carried, **extra} if isinstance(child, dict) else child
        for child, carried in level
    ]


class MoodleSource:
    """One Moodle site: a pooled, paced, retrying client shared by every course task."""

    vendor = VENDOR
    domains = ep.DOMAINS

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        per_page: int = 100,
        max_in_flight: int = 8,
        requests_per_second: float | None = None,
        burst: int = 20,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if per_page < 1:
            raise ValueError("per_page (limitnumber) must be >= 1")
        self.per_page = per_page
        pacer = (
            RequestRatePacer(rate_per_second=requests_per_second, burst=burst)
            if requests_per_second
            else None
        )
        self.client = VendorClient(
            vendor=VENDOR,
            base_url=f"{base_url.rstrip('/')}/webservice/rest/",
            auth=QueryTokenAuth("wstoken", token),  # moodle-api.md §1
            rules=MOODLE_RULES,  # errors inside HTTP 200 (§4)
            retry=retry or RetryPolicy(),
            pacer=pacer,
            breaker=breaker or CircuitBreaker(failure_threshold=10, reset_after_seconds=30.0),
            timeout=timeout or DEFAULT_TIMEOUT,
            max_connections=max(max_in_flight, 1) * 2,
            transport=transport,
        )

    def __enter__(self) -> MoodleSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def stats(self) -> dict[str, Any]:
        """Requests, retries and waits so far, for the run summary."""
        return self.client.stats.snapshot()

    @staticmethod
    def streams(domain: str) -> dict[str, pa.Schema]:
        """The streams one domain partition holds, declared up front so empty ones are kept."""
        return {f.stream: stream_schema(f.endpoint.columns) for f in ep.functions_for(domain)}

    def list_courses(self, *, term: str | None = None) -> Iterator[dict[str, Any]]:
        """Every course but the site course (moodle-api.md §3.2, §6). Moodle has no terms; a
        ``term`` filter selects a course category id instead."""
        for course in self._records(ep.COURSE, course_id=None, params=()):
            if str(course.get("id")) == ep.SITE_COURSE_ID or course.get("format") == "site":
                continue
            if term is not None and str(course.get("categoryid")) != term:
                continue
            yield {
                "id": str(course["id"]),
                "workflow_state": "available" if course.get("visible") else "unpublished",
                "enrollment_term_id": None,
            }

    def domain_pages(
        self,
        *,
        course_id: str,
        domain: str,
        run_id: str,
        activity_since: datetime | None = None,
        increment: Increment | None = None,
    ) -> Iterator[StagedPage]:
        """Every page of one course's domain, in the order the domain's plan needs them
        (``increment``: the gradebook reads only what changed since its cursor)."""
        run = {"course_id": course_id, "run_id": run_id}
        if domain == "roster":
            yield from self._stage(ep.COURSE, params=[("options[ids][0]", course_id)], **run)
            course = [("courseid", course_id)]
            yield from self._stage(ep.ENROLLED_USERS, params=course, **run)
            yield from self._stage(ep.ACTIVE_USERS, params=course, **run)
        elif domain == "gradebook":
            yield from self._gradebook(course_id, run_id, increment)
        elif domain == "engagement":
            yield from self._engagement(course_id, run_id)
        elif domain == "attendance":
            yield from self._attendance(course_id, run_id)
        else:
            raise ValueError(f"unknown Moodle domain {domain!r}; expected one of {ep.DOMAINS}")

    # ---- plans --------------------------------------------------------------------------------

    # Incremental sync (``flows/stage.py``): the gradebook needs only its cursor, no baseline.
    incremental = True

    @staticmethod
    def baseline(domain: str) -> None:
        return None

    def _gradebook(
        self, course_id: str, run_id: str, increment: Increment | None = None
    ) -> Iterator[StagedPage]:
        run = {"course_id": course_id, "run_id": run_id}
        assignment_ids: list[str] = []
        modified: set[str] = set()
        since = int(increment.since.timestamp()) if increment is not None else None
        for page in self._stage(ep.ASSIGNMENTS, params=[("courseids[0]", course_id)], **run):
            ids = page.table.column("id").to_pylist()
            assignment_ids += [a for a in ids if a]
            if since is not None:
                times = page.table.column("timemodified").to_pylist()
                modified |= {a for a, t in zip(ids, times, strict=True) if a and _ge(t, since)}
            yield page
        if since is not None:
            changed = modified | self._changed_assignments(course_id, assignment_ids, since)
            assignment_ids = [a for a in assignment_ids if a in changed]
        partial = since is not None
        for batch in _batches(assignment_ids):
            # moodle-api.md §3.7: an assignment without grades is a warning, not an error.
            for function in (ep.GRADES, ep.SUBMISSIONS):
                for page in self._stage(function, params=batch, **run):
                    yield replace(page, partial=True) if partial else page
        if partial:
            for function in (ep.GRADES, ep.SUBMISSIONS):
                yield _marker(function, course_id, run_id)
        yield from self._stage(ep.GRADE_ITEMS, params=[("courseid", course_id)], **run)

    def _changed_assignments(self, course_id: str, assignment_ids: list[str], since: int) -> set:
        """Assignments with a grade or a submission modified at or after ``since``."""
        changed: set[str] = set()
        for batch in _batches(assignment_ids):
            for function in (ep.GRADES, ep.SUBMISSIONS):
                for record in self._records(
                    function, course_id=course_id, params=[*batch, ("since", str(since))]
                ):
                    changed.add(str(record.get("assignmentid")))
        return changed

    def _engagement(self, course_id: str, run_id: str) -> Iterator[StagedPage]:
        run = {"course_id": course_id, "run_id": run_id}
        students: list[str] = []
        course = [("courseid", course_id)]
        for page in self._stage(ep.ENROLMENT_ACTIVITY, params=course, **run):
            ids = page.table.column("id").to_pylist()
            roles = page.table.column("roles").to_pylist()
            students += [
                u for u, r in zip(ids, roles, strict=True) if u and _has_role(r, "student")
            ]
            yield page
        for user_id in sorted(set(students), key=int):
            yield from self._stage(
                ep.COMPLETION,
                params=[*course, ("userid", user_id)],
                extra=(("userid", int(user_id)),),
                **run,
            )

    def _attendance(self, course_id: str, run_id: str) -> Iterator[StagedPage]:
        run = {"course_id": course_id, "run_id": run_id}
        modules = self._records(ep.CONTENTS, course_id=course_id, params=[("courseid", course_id)])
        instances = sorted(
            {str(m["instance"]) for m in modules if m.get("modname") == "attendance"}, key=int
        )
        for attendance_id in instances:
            yield from self._stage(
                ep.ATTENDANCE_LOG,
                params=[("attendanceid", attendance_id)],
                flatten=_log_rows,
                **run,
            )

    # ---- the loop -----------------------------------------------------------------------------

    def _paginator(self, function: ep.Function, extra: tuple[tuple[str, Any], ...]) -> _Rows:
        if function.endpoint.paging == "offset":
            base: Paginator = OffsetPaginator(
                offset_param=ep.OFFSET_PARAM, limit_param=ep.LIMIT_PARAM, limit=self.per_page
            )
        else:
            base = SinglePage()
        return _Rows(base=base, rows=function.rows, carry=function.carry, extra=extra)

    def _pages(
        self,
        function: ep.Function,
        *,
        course_id: str | None,
        params: Iterable[tuple[str, str]],
        paginator: Paginator,
    ):
        return self.client.paginate(
            ep.SERVER_PATH,
            params=[*function.endpoint.params, *params],
            paginator=paginator,
            endpoint=function.name,
            course_id=course_id,
        )

    def _records(
        self, function: ep.Function, *, course_id: str | None, params: Iterable[tuple[str, str]]
    ) -> Iterator[dict[str, Any]]:
        """Records of a function that is read, not staged (course list, course contents)."""
        paginator = self._paginator(function, ())
        for page in self._pages(function, course_id=course_id, params=params, paginator=paginator):
            yield from (r for r in page.records if isinstance(r, Mapping))

    def _stage(
        self,
        function: ep.Function,
        *,
        course_id: str,
        run_id: str,
        params: Iterable[tuple[str, str]],
        extra: tuple[tuple[str, Any], ...] = (),
        flatten=None,
    ) -> Iterator[StagedPage]:
        """Like ``connectors.extract.stream_pages``, with Moodle's nested records: yield the
        function's pages as staged tables, dropping a record already on the previous page."""
        paginator: Paginator = self._paginator(function, extra)
        if flatten is not None:
            paginator = _Custom(base=paginator, flatten=flatten)
        endpoint = function.endpoint
        previous: set[tuple[Any, ...]] = set()
        for page in self._pages(function, course_id=course_id, params=params, paginator=paginator):
            records = [r for r in page.records if isinstance(r, Mapping)]
            keys = [tuple(_text(r.get(k)) for k in endpoint.key) for r in records]
            fresh = [r for r, k in zip(records, keys, strict=True) if k not in previous]
            previous = set(keys)
            yield StagedPage(
                stream=endpoint.stream,
                number=page.number,
                url=page.url,
                status=page.status,
                fetched_at=page.fetched_at,
                raw=page.raw,
                trace_id=page.trace_id,
                span_id=page.span_id,
                table=to_table(
                    fresh,
                    endpoint,
                    run_id=run_id,
                    course_id=course_id,
                    url=page.url,
                    page_number=page.number,
                    fetched_at=page.fetched_at,
                    trace_id=page.trace_id,
                    span_id=page.span_id,
                ),
            )


@dataclass(frozen=True)
class _Custom:
    """A paginator with a hand-written record layout (attendance sessions)."""

    base: Paginator
    flatten: Any

    def records(self, data: Any) -> list[Any]:
        return self.flatten(data)

    def next_reference(
        self, *, request: PageRequest, response: httpx.Response, data: Any
    ) -> str | None:
        return None

    def next_request(self, *, request: PageRequest, reference: str | None) -> PageRequest:
        return self.base.next_request(request=request, reference=reference)


def _log_rows(data: Any) -> list[dict[str, Any]]:
    """mod_attendance_get_sessions → one row per log entry, with its session and its status
    (blackboard-moodle-attendance.md §2a: statuses are per instance; map by acronym, not id;
    an unmarked student has no log row, so no row here either)."""
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list of sessions, got {type(data).__name__}")
    out = []
    for session in data:
        if not isinstance(session, dict) or not isinstance(session.get("attendance_log"), list):
            raise ValueError("expected a JSON list under 'attendance_log'")
        statuses = {
            str(s.get("id")): s for s in session.get("statuses") or [] if isinstance(s, dict)
        }
        for log in session["attendance_log"]:
            if not isinstance(log, dict):
                continue
            status = statuses.get(str(log.get("statusid")), {})
            out.append(
                {
                    "id": log.get("id"),
                    "sessionid": session.get("id"),
                    "attendanceid": session.get("attendanceid"),
                    "sessdate": session.get("sessdate"),
                    "duration": session.get("duration"),
                    "studentid": log.get("studentid"),
                    "statusid": log.get("statusid"),
                    "acronym": status.get("acronym"),
                    "description": status.get("description"),
                    "grade": status.get("grade"),
                    "remarks": log.get("remarks"),
                }
            )
    return out


def _batches(assignment_ids: list[str]) -> Iterator[list[tuple[str, str]]]:
    """``assignmentids[i]`` parameters, ASSIGNMENT_BATCH ids at a time (short GET URLs)."""
    for start in range(0, len(assignment_ids), ASSIGNMENT_BATCH):
        batch = assignment_ids[start : start + ASSIGNMENT_BATCH]
        yield [(f"assignmentids[{i}]", a) for i, a in enumerate(batch)]


def _ge(epoch_text: Any, since: int) -> bool:
    try:
        return int(epoch_text) >= since
    except (TypeError, ValueError):
        return True  # unreadable: read it again rather than miss a change


def _marker(function: ep.Function, course_id: str, run_id: str) -> StagedPage:
    """Marks a stream partial even when an incremental fetch needed no request for it."""
    page = Page(records=[], number=0, url="", status=0, fetched_at=datetime.now(UTC), raw=b"[]",
                trace_id="", span_id="", attempts=0)  # fmt: skip
    return staged_page(
        page, [], function.endpoint, course_id=course_id, run_id=run_id, partial=True
    )


def _has_role(roles_json: str | None, shortname: str) -> bool:
    try:
        roles = json.loads(roles_json) if roles_json else []
    except ValueError:
        return False
    return any(isinstance(r, dict) and r.get("shortname") == shortname for r in roles)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

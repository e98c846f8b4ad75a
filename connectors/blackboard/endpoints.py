"""Learn REST endpoints the connector reads, declared as data (blackboard-learn-openapi.json,
Learn 3900.123.0). Paths are relative to ``/learn/api/public/``.

Each endpoint is one staging stream; its ``fields`` are both the JSON paths staged as text columns
and the ``fields=`` projection sent to Learn (reference §1b), so a page carries only what is
staged. Page sizes are Learn's caps (reference §1b): fewer, fuller pages spend less daily quota.
Every list pages with ``paging.nextPage`` (``paging="next_page"``).

Domains: ``roster`` (course; memberships with the user embedded by ``expand=user``, which also
carry engagement: membership ``lastAccessed``, user ``lastLogin``), ``gradebook`` (columns; per
column its grades and, for Attempts-graded columns, its attempts) and ``attendance`` (meetings;
per meeting its attendance records). Engagement needs no calls of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from connectors.endpoint import Endpoint

Domain = Literal["roster", "gradebook", "attendance"]
DOMAINS: tuple[Domain, ...] = ("roster", "gradebook", "attendance")

# Largest `limit` Learn accepts per list (reference §1b; attempts/meetings unverified: 100).
PAGE_CAPS = {
    "courses": 100,
    "memberships": 200,
    "columns": 200,
    "grades": 100,
    "attempts": 100,
    "meetings": 100,
    "meeting_users": 100,
}


def _list(stream: str, domain: str, path: str, fields: tuple[str, ...], cap: str, **kw) -> Endpoint:
    params = (("limit", str(PAGE_CAPS[cap])), ("fields", ",".join(fields)), *kw.pop("params", ()))
    return Endpoint(
        stream=stream, domain=domain, path=path, fields=fields, params=params,
        paging="next_page", **kw,
    )  # fmt: skip


# GET /v3/courses (item CourseV2), account level: not part of any course partition.
COURSES_PATH = "v3/courses"
COURSE_LIST_FIELDS = ("id", "courseId", "externalId", "termId", "availability.available")

# GET /v3/courses/{courseId} → CourseV2
COURSE = Endpoint(
    stream="course",
    domain="roster",
    path="v3/courses/{course_id}",
    paging="object",
    fields=(
        "id",
        "courseId",
        "externalId",
        "name",
        "termId",
        "organization",
        "closedComplete",
        "availability.available",
        "availability.duration.type",
        "availability.duration.start",
        "availability.duration.end",
        "created",
        "modified",
    ),
)
COURSE = replace(COURSE, params=(("fields", ",".join(COURSE.fields)),))

# GET /v1/courses/{courseId}/users?expand=user → CourseMembership (+ User)
MEMBERSHIPS = _list(
    "memberships",
    "roster",
    "v1/courses/{course_id}/users",
    (
        "id",
        "userId",
        "courseId",
        "courseRoleId",
        "availability.available",
        "created",
        "modified",
        "lastAccessed",
        "user.id",
        "user.externalId",
        "user.studentId",
        "user.userName",
        "user.contact.email",
        "user.educationLevel",
        "user.lastLogin",
        "user.availability.available",
    ),
    "memberships",
    params=(("expand", "user"),),
)

# GET /v2/courses/{courseId}/gradebook/columns → GradeColumnV2
COLUMNS = _list(
    "columns",
    "gradebook",
    "v2/courses/{course_id}/gradebook/columns",
    (
        "id",
        "name",
        "displayName",
        "externalGrade",
        "score.possible",
        "availability.available",
        "grading.type",
        "grading.due",
        "grading.attemptsAllowed",
        "includeInCalculations",
        "created",
        "modified",
    ),
    "columns",
)

# GET /v2/courses/{courseId}/gradebook/columns/{columnId}/users → GradeV2 (one per user)
GRADES = _list(
    "grades",
    "gradebook",
    "v2/courses/{course_id}/gradebook/columns/{column_id}/users",
    (
        "userId",
        "columnId",
        "status",
        "displayGrade.scaleType",
        "displayGrade.score",
        "displayGrade.possible",
        "displayGrade.text",
        "text",
        "score",
        "overridden",
        "exempt",
        "corrupt",
        "changeIndex",
        "firstRelevantDate",
        "lastRelevantDate",
    ),
    "grades",
    key=("columnId", "userId"),
)

# GET /v2/courses/{courseId}/gradebook/columns/{columnId}/users/lastChanged → GradeV2: the grade
# with the column's largest ``changeIndex``. Incremental gradebook syncs compare it with the last
# load's; a full sync stages the same record from the column's grade pages (no extra call), so
# every gradebook partition holds each graded column's newest ``changeIndex``.
LAST_CHANGED = Endpoint(
    stream="last_changed",
    domain="gradebook",
    path="v2/courses/{course_id}/gradebook/columns/{column_id}/users/lastChanged",
    paging="object",
    fields=GRADES.fields,
    key=("columnId", "userId"),
    params=(("fields", ",".join(GRADES.fields)),),
)

# GET /v2/courses/{courseId}/gradebook/columns/{columnId}/attempts → AttemptV2. AttemptV2 has no
# column id: ``columnId`` is filled from the request path by the source. Nor has it a number:
# ``attemptNumber`` (staged, never requested) is the attempt's place among the user's attempts on
# the column in ``attemptDate`` order, numbered by the source over all of the column's pages.
ATTEMPTS = _list(
    "attempts",
    "gradebook",
    "v2/courses/{course_id}/gradebook/columns/{column_id}/attempts",
    (
        "id",
        "userId",
        "columnId",
        "status",
        "score",
        "text",
        "exempt",
        "readyToPost",
        "created",
        "attemptDate",
        "modified",
    ),
    "attempts",
)
ATTEMPTS = replace(ATTEMPTS, fields=(*ATTEMPTS.fields, "attemptNumber"))

# GET /v1/courses/{courseId}/meetings → CourseMeeting (id int64)
MEETINGS = _list(
    "meetings",
    "attendance",
    "v1/courses/{course_id}/meetings",
    ("id", "courseId", "title", "start", "end"),
    "meetings",
)

# GET /v1/courses/{courseId}/meetings/{meetingId}/users → AttendanceRecord (id int64; status
# Present | Late | Absent | Excused)
MEETING_USERS = _list(
    "attendance_records",
    "attendance",
    "v1/courses/{course_id}/meetings/{meeting_id}/users",
    ("id", "meetingId", "userId", "status", "createdTime", "modifiedTime"),
    "meeting_users",
)

ENDPOINTS: tuple[Endpoint, ...] = (
    COURSE,
    MEMBERSHIPS,
    COLUMNS,
    GRADES,
    LAST_CHANGED,
    ATTEMPTS,
    MEETINGS,
    MEETING_USERS,
)


def endpoints_for(domain: str) -> tuple[Endpoint, ...]:
    return tuple(e for e in ENDPOINTS if e.domain == domain)


def for_parent(endpoint: Endpoint, **ids: str) -> Endpoint:
    """The endpoint with a parent id (``column_id``, ``meeting_id``) filled into its path; the
    name in spans and errors then shows the column or meeting (never a person)."""
    path = endpoint.path
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return replace(endpoint, path=path)

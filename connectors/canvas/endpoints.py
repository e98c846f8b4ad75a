"""Canvas REST v1 endpoints the connector reads, declared as data.

Each endpoint is one staging *stream*: the fields listed are copied from every record into string
columns of the stream's Parquet file (JSON path ``grades.current_score`` becomes column
``grades__current_score``). Values stay as the vendor's text (numbers and booleans as their JSON
spelling, arrays and objects as JSON) so a drifted type is quarantined by the normalizer instead of
being coerced away here. Everything else in the response is kept in the raw archive.

Domains group the streams fetched together for one course; each (run window, course, domain) is one
immutable staging partition.
"""

from __future__ import annotations

from typing import Literal

from connectors.endpoint import Endpoint

Domain = Literal["roster", "gradebook", "engagement", "attendance"]
DOMAINS: tuple[Domain, ...] = ("roster", "gradebook", "engagement", "attendance")

# canvas-api.md §2.4: without state[] Canvas returns only active + invited enrollments, which would
# hide concluded, inactive and deleted ones (deletions must reach the serving tables).
ALL_ENROLLMENT_STATES = (
    "active",
    "invited",
    "creation_pending",
    "deleted",
    "rejected",
    "completed",
    "inactive",
)

ROLL_CALL_ASSIGNMENT_NAME = "Roll Call Attendance"  # canvas-api.md §2.11


_PER_PAGE = (("per_page", "100"),)
_STATES = tuple(("state[]", s) for s in ALL_ENROLLMENT_STATES)
_STUDENTS = (("type[]", "StudentEnrollment"),)
_USER_ENROLLMENT_STATES = ("active", "invited", "rejected", "completed", "inactive")

_SUBMISSION_FIELDS = (
    "id",
    "user_id",
    "assignment_id",
    "score",
    "grade",
    "entered_score",
    "entered_grade",
    "workflow_state",
    "submitted_at",
    "graded_at",
    "posted_at",
    "late",
    "missing",
    "excused",
    "attempt",
    "late_policy_status",
    "seconds_late",
    "grade_matches_current_submission",
    "submission_type",
    "grader_id",
)

COURSE = Endpoint(
    stream="course",
    domain="roster",
    path="courses/{course_id}",
    params=(("include[]", "term"),),
    paging="object",
    fields=(
        "id",
        "name",
        "course_code",
        "sis_course_id",
        "workflow_state",
        "account_id",
        "root_account_id",
        "enrollment_term_id",
        "start_at",
        "end_at",
        "created_at",
        "time_zone",
        "term.id",
        "term.name",
        "term.sis_term_id",
        "term.start_at",
        "term.end_at",
    ),
)

SECTIONS = Endpoint(
    stream="sections",
    domain="roster",
    path="courses/{course_id}/sections",
    params=_PER_PAGE,
    fields=(
        "id",
        "course_id",
        "name",
        "sis_section_id",
        "integration_id",
        "start_at",
        "end_at",
        "created_at",
    ),
)

ENROLLMENTS = Endpoint(
    stream="enrollments",
    domain="roster",
    path="courses/{course_id}/enrollments",
    params=_PER_PAGE + _STATES,
    fields=(
        "id",
        "user_id",
        "course_id",
        "course_section_id",
        "type",
        "role",
        "enrollment_state",
        "created_at",
        "updated_at",
        "start_at",
        "end_at",
        "last_activity_at",
        "last_attended_at",
        "total_activity_time",
        "sis_user_id",
        "associated_user_id",
        "user.sis_user_id",
        "user.login_id",
    ),
)

USERS = Endpoint(
    stream="users",
    domain="roster",
    path="courses/{course_id}/users",
    # canvas-api.md §2.3: default enrollment_state[] is active+invited only.
    params=_PER_PAGE + tuple(("enrollment_state[]", s) for s in _USER_ENROLLMENT_STATES),
    fields=(
        "id",
        "name",
        "sortable_name",
        "short_name",
        "sis_user_id",
        "integration_id",
        "login_id",
        "email",
    ),
)

ASSIGNMENTS = Endpoint(
    stream="assignments",
    domain="gradebook",
    path="courses/{course_id}/assignments",
    params=_PER_PAGE,
    fields=(
        "id",
        "course_id",
        "name",
        "points_possible",
        "due_at",
        "lock_at",
        "unlock_at",
        "grading_type",
        "published",
        "omit_from_final_grade",
        "submission_types",
        "assignment_group_id",
        "position",
        "created_at",
        "updated_at",
    ),
)

SUBMISSIONS = Endpoint(
    stream="submissions",
    domain="gradebook",
    path="courses/{course_id}/students/submissions",
    # canvas-api.md §2.7: student_ids[]=all returns every student's submissions, bookmark-paged.
    params=(("student_ids[]", "all"), *_PER_PAGE),
    fields=_SUBMISSION_FIELDS,
)

COURSE_GRADES = Endpoint(
    stream="course_grades",
    domain="gradebook",
    path="courses/{course_id}/enrollments",
    params=_PER_PAGE + _STUDENTS + _STATES,
    fields=(
        "id",
        "user_id",
        "course_section_id",
        "enrollment_state",
        "updated_at",
        "grades.current_score",
        "grades.final_score",
        "grades.current_grade",
        "grades.final_grade",
        "grades.unposted_current_score",
        "grades.unposted_final_score",
        "override_score",
        "override_grade",
    ),
)

STUDENT_SUMMARIES = Endpoint(
    stream="student_summaries",
    domain="engagement",
    path="courses/{course_id}/analytics/student_summaries",
    params=_PER_PAGE,
    fields=(
        "id",
        "page_views",
        "max_page_views",
        "page_views_level",
        "participations",
        "max_participations",
        "participations_level",
        "tardiness_breakdown.missing",
        "tardiness_breakdown.late",
        "tardiness_breakdown.on_time",
        "tardiness_breakdown.floating",
        "tardiness_breakdown.total",
    ),
)

ENROLLMENT_ACTIVITY = Endpoint(
    stream="enrollment_activity",
    domain="engagement",
    path="courses/{course_id}/enrollments",
    params=_PER_PAGE + _STUDENTS + _STATES,
    fields=(
        "id",
        "user_id",
        "course_section_id",
        "enrollment_state",
        "last_activity_at",
        "total_activity_time",
    ),
)

PAGE_VIEWS = Endpoint(
    stream="page_views",
    domain="engagement",
    path="users/{user_id}/page_views",
    params=_PER_PAGE,
    per="student",
    fields=(
        "id",
        "url",
        "context_type",
        "asset_type",
        "controller",
        "action",
        "http_method",
        "interaction_seconds",
        "created_at",
        "participated",
        "user_request",
        "links.user",
        "links.context",
    ),
)

ROLL_CALL_SUBMISSIONS = Endpoint(
    stream="rollcall_submissions",
    domain="attendance",
    path="courses/{course_id}/students/submissions",
    params=(("student_ids[]", "all"), *_PER_PAGE),
    fields=_SUBMISSION_FIELDS,
)

LAST_ATTENDED = Endpoint(
    stream="last_attended",
    domain="attendance",
    path="courses/{course_id}/enrollments",
    params=_PER_PAGE + _STUDENTS + _STATES,
    fields=("id", "user_id", "course_section_id", "enrollment_state", "last_attended_at"),
)

ENDPOINTS: tuple[Endpoint, ...] = (
    COURSE,
    SECTIONS,
    ENROLLMENTS,
    USERS,
    ASSIGNMENTS,
    SUBMISSIONS,
    COURSE_GRADES,
    STUDENT_SUMMARIES,
    ENROLLMENT_ACTIVITY,
    PAGE_VIEWS,
    ROLL_CALL_SUBMISSIONS,
    LAST_ATTENDED,
)


def endpoints_for(domain: str) -> tuple[Endpoint, ...]:
    return tuple(e for e in ENDPOINTS if e.domain == domain)


# Listing courses is account-level, not part of any course partition (canvas-api.md §2.1).
ACCOUNT_COURSES_PATH = "accounts/{account_id}/courses"

"""Moodle web-service functions the connector reads, declared as data.

Every Moodle call goes to the same URL (``webservice/rest/server.php``, moodle-api.md §1); what
differs is ``wsfunction`` and its bracketed parameters. Each :class:`Function` is one staging
stream: an :class:`~connectors.endpoint.Endpoint` (stream, domain, declared fields, key, paging)
plus where the records sit in the response, because Moodle nests them: grades under
``assignments[].grades[]`` (§3.7), grade items under ``usergrades[].gradeitems[]`` (§3.5). ``carry``
copies a field of the outer object onto each record (``assignmentid``, ``userid``) so the staged
row is complete. Values are staged as the vendor's text, as for Canvas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from connectors.endpoint import Endpoint

Domain = Literal["roster", "gradebook", "engagement", "attendance"]
DOMAINS: tuple[Domain, ...] = ("roster", "gradebook", "engagement", "attendance")

SERVER_PATH = "server.php"  # relative to <wwwroot>/webservice/rest/ (moodle-api.md §1)
SITE_COURSE_ID = "1"  # moodle-api.md §3.2, §6: core_course_get_courses lists the site course


@dataclass(frozen=True)
class Function:
    """One web-service function read as one staged stream."""

    endpoint: Endpoint
    rows: tuple[str, ...] = ()  # keys of nested lists from the top to the records
    carry: tuple[str, ...] = ()  # fields of the outer object copied onto each record

    @property
    def name(self) -> str:
        """The ``wsfunction``: what spans and errors name (never a URL or a token)."""
        return dict(self.endpoint.params)["wsfunction"]

    @property
    def stream(self) -> str:
        return self.endpoint.stream


def _fn(
    name: str,
    *,
    stream: str,
    domain: Domain,
    fields: tuple[str, ...],
    key: tuple[str, ...] = ("id",),
    params: tuple[tuple[str, str], ...] = (),
    paging: Literal["offset", "single"] = "single",
    per: Literal["course", "student"] = "course",
    rows: tuple[str, ...] = (),
    carry: tuple[str, ...] = (),
) -> Function:
    endpoint = Endpoint(
        stream=stream,
        domain=domain,
        path=SERVER_PATH,
        fields=fields,
        key=key,
        params=(("wsfunction", name), ("moodlewsrestformat", "json"), *params),
        paging=paging,
        per=per,
    )
    return Function(endpoint=endpoint, rows=rows, carry=carry)


# Offset paging for core_enrol_get_enrolled_users: options[0] = limitfrom, options[1] =
# limitnumber (blackboard-moodle-attendance.md §2b); further options start at index 2.
LIMIT_OPTIONS = (("options[0][name]", "limitfrom"), ("options[1][name]", "limitnumber"))
OFFSET_PARAM = "options[0][value]"
LIMIT_PARAM = "options[1][value]"

_USER_FIELDS = (
    "id",
    "username",
    "email",
    "idnumber",  # the SIS id, only present when non-empty (moodle-api.md §3.3, §6)
    "roles",  # array of {roleid, name, shortname, sortorder}; staged as JSON text
    "firstaccess",
    "lastaccess",
    "lastcourseaccess",
)

COURSE = _fn(
    "core_course_get_courses",
    stream="course",
    domain="roster",
    fields=(
        "id",
        "shortname",
        "fullname",
        "idnumber",
        "categoryid",
        "format",
        "visible",
        "startdate",
        "enddate",
        "timecreated",
        "timemodified",
    ),
)

ENROLLED_USERS = _fn(
    "core_enrol_get_enrolled_users",
    stream="enrolled_users",
    domain="roster",
    fields=_USER_FIELDS,
    params=LIMIT_OPTIONS,
    paging="offset",
)

# The same list with onlyactive=1: who is *not* in it has a suspended (or expired) enrolment.
# Moodle has no enrolment status field in the response, so state comes from this comparison.
ACTIVE_USERS = _fn(
    "core_enrol_get_enrolled_users",
    stream="active_users",
    domain="roster",
    fields=("id",),
    params=(
        *LIMIT_OPTIONS,
        ("options[2][name]", "onlyactive"),
        ("options[2][value]", "1"),
        ("options[3][name]", "userfields"),
        ("options[3][value]", "id"),
    ),
    paging="offset",
)

ASSIGNMENTS = _fn(
    "mod_assign_get_assignments",
    stream="assignments",
    domain="gradebook",
    rows=("courses", "assignments"),  # moodle-api.md §3.6
    fields=(
        "id",
        "cmid",
        "course",
        "name",
        "grade",  # int; negative = scale id (§3.6)
        "duedate",  # 0 = none
        "allowsubmissionsfromdate",
        "cutoffdate",
        "nosubmissions",
        "completionsubmit",
        "timemodified",
    ),
)

GRADES = _fn(
    "mod_assign_get_grades",
    stream="grades",
    domain="gradebook",
    rows=("assignments", "grades"),  # moodle-api.md §3.7
    carry=("assignmentid",),
    fields=(
        "id",
        "assignmentid",
        "userid",
        "attemptnumber",
        "timecreated",
        "timemodified",
        "grader",
        "grade",  # "67.00000": a 5-decimal string; a scale grade is the item index
    ),
)

SUBMISSIONS = _fn(
    "mod_assign_get_submissions",
    stream="submissions",
    domain="gradebook",
    rows=("assignments", "submissions"),  # moodle-api.md §3.8
    carry=("assignmentid",),
    fields=(
        "id",
        "assignmentid",
        "userid",
        "attemptnumber",
        "timecreated",
        "timemodified",
        "status",
        "gradingstatus",
        "groupid",
    ),
)

GRADE_ITEMS = _fn(
    "gradereport_user_get_grade_items",
    stream="grade_items",
    domain="gradebook",
    rows=("usergrades", "gradeitems"),  # moodle-api.md §3.5
    carry=("userid",),
    key=("id", "userid"),
    fields=(
        "id",
        "userid",
        "itemname",
        "itemtype",
        "itemmodule",
        "iteminstance",
        "cmid",
        "graderaw",
        "gradeformatted",  # may carry HTML (pass/fail icon) or a scale label (§3.5, §6)
        "grademin",
        "grademax",
        "gradedatesubmitted",
        "gradedategraded",
        "percentageformatted",
        "status",
    ),
)

ENROLMENT_ACTIVITY = _fn(
    "core_enrol_get_enrolled_users",
    stream="enrolment_activity",
    domain="engagement",
    fields=("id", "roles", "lastcourseaccess"),
    params=(
        *LIMIT_OPTIONS,
        ("options[2][name]", "userfields"),
        ("options[2][value]", "id,roles,lastcourseaccess"),
    ),
    paging="offset",
)

COMPLETION = _fn(
    "core_completion_get_activities_completion_status",
    stream="completion",
    domain="engagement",
    per="student",
    rows=("statuses",),  # moodle-api.md §3.9
    carry=("userid",),  # not in the response: the source adds the requested user
    key=("cmid", "userid"),
    fields=(
        "cmid",
        "userid",
        "modname",
        "instance",
        "state",  # 0 incomplete, 1 complete, 2 complete-pass, 3 complete-fail
        "timecompleted",
        "tracking",
        "isoverallcomplete",
    ),
)

CONTENTS = _fn(
    "core_course_get_contents",
    stream="contents",
    domain="attendance",
    rows=("modules",),
    fields=("id", "modname", "instance", "name"),
)

# blackboard-moodle-attendance.md §2a: get_sessions is unpaged and embeds statuses, log and users;
# the source flattens each log row with its session and status (acronym, description).
ATTENDANCE_LOG = _fn(
    "mod_attendance_get_sessions",
    stream="attendance_log",
    domain="attendance",
    fields=(
        "id",  # log id, declared as text by the plugin
        "sessionid",
        "attendanceid",
        "sessdate",
        "duration",
        "studentid",
        "statusid",  # text too
        "acronym",
        "description",
        "grade",
        "remarks",
    ),
)

FUNCTIONS: tuple[Function, ...] = (
    COURSE,
    ENROLLED_USERS,
    ACTIVE_USERS,
    ASSIGNMENTS,
    GRADES,
    SUBMISSIONS,
    GRADE_ITEMS,
    ENROLMENT_ACTIVITY,
    COMPLETION,
    ATTENDANCE_LOG,
)


def functions_for(domain: str) -> tuple[Function, ...]:
    return tuple(f for f in FUNCTIONS if f.endpoint.domain == domain)

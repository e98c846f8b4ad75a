"""The web-service functions the emulated site implements, over an Institution.

Each handler takes the institution and the nested parameters (``wire.nest``) and returns the
JSON payload of moodle-api.md §3 (or blackboard-moodle-attendance.md §2a for mod_attendance), or
raises ``MoodleError``. ``OFFSET_PAGED`` names the functions whose list honours ``limitfrom`` /
``limitnumber``; ``RECORDS`` says how to count a payload's records for simulated latency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulators.moodle import errors
from emulators.moodle.institution import Institution

Handler = Callable[[Institution, dict[str, Any]], Any]


def _int(args: dict[str, Any], name: str, *, default: int | None = None) -> int:
    raw = args.get(name)
    if raw is None:
        if default is not None:
            return default
        raise errors.invalid_parameter(f"Missing required key in single structure: {name}")
    if not isinstance(raw, str) or not raw.lstrip("-").isdigit():
        raise errors.invalid_parameter(
            f"{name} => Invalid parameter value detected: Invalid external api parameter: the "
            f'value is "{raw}", the server was expecting "int" type'
        )
    return int(raw)


def _int_list(args: dict[str, Any], name: str) -> list[int]:
    raw = args.get(name, [])
    if isinstance(raw, str) or not isinstance(raw, list):
        raise errors.invalid_parameter(f"{name} => Only arrays accepted.")
    return [_int({"v": v}, "v") for v in raw]


def _options(args: dict[str, Any]) -> dict[str, str]:
    """``options[i][name]`` / ``options[i][value]`` pairs (blackboard-moodle-attendance.md §2b)."""
    out = {}
    for pair in args.get("options", []) or []:
        if not isinstance(pair, dict) or "name" not in pair:
            raise errors.invalid_parameter("options => Missing required key: name")
        out[str(pair["name"])] = str(pair.get("value", ""))
    return out


def _course(inst: Institution, course_id: int) -> None:
    if course_id != 1 and not inst.has_course(course_id):
        raise errors.missing_record("course")


def site_info(inst: Institution, args: dict[str, Any]) -> dict:
    return inst.site_info()


def get_courses(inst: Institution, args: dict[str, Any]) -> list[dict]:
    """§3.2: ``options[ids][i]``; without ids every course, the site course included."""
    opts = args.get("options") or {}
    if not isinstance(opts, dict):
        raise errors.invalid_parameter("options => Only arrays accepted.")
    ids = _int_list(opts, "ids") if "ids" in opts else None
    if ids is None:
        return inst.courses()
    for cid in ids:
        _course(inst, cid)
    return [inst.course(cid) for cid in ids]


def get_courses_by_field(inst: Institution, args: dict[str, Any]) -> dict:
    field = args.get("field", "")
    value = str(args.get("value", ""))
    if field not in ("", "id", "ids", "shortname", "idnumber", "category"):
        raise errors.invalid_parameter(f"field => Invalid field {field}")
    courses = [c for c in inst.courses() if c["id"] != 1]
    if field == "id":
        courses = [c for c in courses if str(c["id"]) == value]
    elif field == "ids":
        wanted = set(value.split(","))
        courses = [c for c in courses if str(c["id"]) in wanted]
    elif field == "category":
        courses = [c for c in courses if str(c["categoryid"]) == value]
    elif field:
        courses = [c for c in courses if str(c[field]) == value]
    return {"courses": courses, "warnings": []}


def enrolled_users(inst: Institution, args: dict[str, Any]) -> list[dict]:
    """§3.3 with the options of blackboard-moodle-attendance.md §2b (limitfrom, limitnumber,
    onlyactive, userfields). The app applies limitfrom/limitnumber."""
    course_id = _int(args, "courseid")
    _course(inst, course_id)
    opts = _options(args)
    users = inst.enrolled_users(course_id, onlyactive=opts.get("onlyactive") == "1")
    fields = opts.get("userfields")
    if fields:
        keep = {f.strip() for f in fields.split(",")} | {"id", "roles"}
        users = [{k: v for k, v in u.items() if k in keep} for u in users]
    return users


def users_by_field(inst: Institution, args: dict[str, Any]) -> list[dict]:
    field = args.get("field")
    if field not in ("id", "username", "email", "idnumber"):
        raise errors.invalid_parameter(f"field => Invalid parameter value detected: {field}")
    values = args.get("values", [])
    if not isinstance(values, list):
        raise errors.invalid_parameter("values => Only arrays accepted.")
    return inst.users_by_field(field, [str(v) for v in values])


def grade_items(inst: Institution, args: dict[str, Any]) -> dict:
    course_id = _int(args, "courseid")
    _course(inst, course_id)
    userid = _int(args, "userid", default=0) or None
    return {"usergrades": inst.grade_report(course_id, userid=userid), "warnings": []}


def assignments(inst: Institution, args: dict[str, Any]) -> dict:
    """§3.6. A course id the token cannot see is a warning, not an exception (the warning text
    follows mod_assign's external API; not recorded in moodle-api.md)."""
    ids = _int_list(args, "courseids") or inst.course_ids()
    courses, warnings = [], []
    for cid in ids:
        if not inst.has_course(cid):
            warnings.append(
                {
                    "item": "course",
                    "itemid": cid,
                    "warningcode": "1",
                    "message": "No access rights in course context",
                }
            )
            continue
        c = inst.course(cid)
        courses.append(
            {
                "id": cid,
                "fullname": c["fullname"],
                "shortname": c["shortname"],
                "timemodified": c["timemodified"],
                "assignments": inst.assignments(cid),
            }
        )
    return {"courses": courses, "warnings": warnings}


def _assignment_ids(inst: Institution, args: dict[str, Any]) -> list[tuple[int, int | None]]:
    return [(aid, inst.assignment_course(aid)) for aid in _int_list(args, "assignmentids")]


def grades(inst: Institution, args: dict[str, Any]) -> dict:
    """§3.7 with ``since``; an unknown assignment, or one without grades, is warning "3"."""
    since = _int(args, "since", default=0)
    out, warnings = [], []
    for aid, cid in _assignment_ids(inst, args):
        rows = inst.grades(cid, aid, since=since) if cid is not None else []
        if rows:
            out.append({"assignmentid": aid, "grades": rows})
        else:
            warnings.append(
                {
                    "item": "assignment",
                    "itemid": aid,
                    "warningcode": "3",
                    "message": "No grades found",
                }
            )
    return {"assignments": out, "warnings": warnings}


def submissions(inst: Institution, args: dict[str, Any]) -> dict:
    """§3.8 with ``status``, ``since``, ``before``. An unknown assignment is a "module" warning
    (mod_assign's text; unverified)."""
    status = str(args.get("status", "") or "")
    since = _int(args, "since", default=0)
    before = _int(args, "before", default=0)
    out, warnings = [], []
    for aid, cid in _assignment_ids(inst, args):
        if cid is None:
            warnings.append(
                {
                    "item": "module",
                    "itemid": aid,
                    "warningcode": "1",
                    "message": "No access rights in module context",
                }
            )
            continue
        rows = inst.submissions(cid, aid, status=status, since=since, before=before)
        out.append({"assignmentid": aid, "submissions": rows})
    return {"assignments": out, "warnings": warnings}


def completion(inst: Institution, args: dict[str, Any]) -> dict:
    course_id = _int(args, "courseid")
    userid = _int(args, "userid")
    _course(inst, course_id)
    if userid not in {u["id"] for u in inst.enrolled_users(course_id)}:
        raise errors.missing_record("user")
    return {"statuses": inst.completion_statuses(course_id, userid), "warnings": []}


def contents(inst: Institution, args: dict[str, Any]) -> list[dict]:
    course_id = _int(args, "courseid")
    _course(inst, course_id)
    return inst.contents(course_id) if course_id != 1 else []


def attendance_sessions(inst: Institution, args: dict[str, Any]) -> list[dict]:
    attendance_id = _int(args, "attendanceid")
    if inst.attendance_course(attendance_id) is None:
        raise errors.missing_record("attendance")
    return inst.sessions(attendance_id)


def attendance_session(inst: Institution, args: dict[str, Any]) -> dict:
    session_id = _int(args, "sessionid")
    attendance_id = (session_id - 1) // 100
    if inst.attendance_course(attendance_id) is None:
        raise errors.invalid_parameter("Invalid session id or no permissions.")
    found = [s for s in inst.sessions(attendance_id) if s["id"] == session_id]
    if not found:
        raise errors.invalid_parameter("Invalid session id or no permissions.")
    return found[0]


FUNCTIONS: dict[str, Handler] = {
    "core_webservice_get_site_info": site_info,
    "core_course_get_courses": get_courses,
    "core_course_get_courses_by_field": get_courses_by_field,
    "core_enrol_get_enrolled_users": enrolled_users,
    "core_user_get_users_by_field": users_by_field,
    "gradereport_user_get_grade_items": grade_items,
    "mod_assign_get_assignments": assignments,
    "mod_assign_get_grades": grades,
    "mod_assign_get_submissions": submissions,
    "core_completion_get_activities_completion_status": completion,
    "core_course_get_contents": contents,
    "mod_attendance_get_sessions": attendance_sessions,
    "mod_attendance_get_session": attendance_session,
}

# Real functions the emulated service does not include: calling them is an access exception
# (moodle-api.md §4 uses core_user_get_users as the example).
KNOWN_OUTSIDE_SERVICE = frozenset(
    {
        "core_user_get_users",
        "core_course_get_categories",
        "core_enrol_get_users_courses",
        "gradereport_user_get_grades_table",
        "core_completion_get_course_completion_status",
        "core_grades_get_gradeitems",
        "core_user_create_users",
        "mod_attendance_update_user_status",
        "mod_attendance_add_session",
    }
)

OFFSET_PAGED = frozenset({"core_enrol_get_enrolled_users"})


def count_records(function: str, payload: Any) -> int:
    """Records in a payload, for latency: list length, or the nested rows of the wrappers."""
    if isinstance(payload, list):
        return len(payload)
    if not isinstance(payload, dict):
        return 1
    for outer in ("usergrades", "assignments", "courses", "statuses"):
        rows = payload.get(outer)
        if isinstance(rows, list):
            nested = [
                value
                for row in rows
                if isinstance(row, dict)
                for key, value in row.items()
                if key in ("grades", "submissions", "assignments") and isinstance(value, list)
            ]
            return sum(len(v) for v in nested) if nested else len(rows)
    return 1

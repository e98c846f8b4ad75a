"""The Canvas REST v1 routes over an Institution (canvas-api.md §1–4).

Handlers only select and page records; auth, throttling, latency and faults live in
``frontdoor.py``. Every response body is compact UTF-8 JSON, as Canvas sends it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.canvas import bulk, errors
from emulators.canvas.errors import CanvasError, bad_request, not_found
from emulators.canvas.frontdoor import CanvasFrontDoor
from emulators.canvas.institution import ROOT_ACCOUNT_ID, CourseSpec, Institution
from emulators.canvas.paging import (
    InvalidPage,
    Page,
    bookmark_page,
    link_header,
    ordinal_page,
    per_page_for,
    seek_sorted,
)
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.canvas.stats import EmulatorStats

__all__ = ["CanvasEmulatorSettings", "create_app"]

# canvas-api.md §2.7: YYYY-MM-DDTHH:MM:SSZ, optional fraction, Z or ±HH:MM.
_ISO8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")
# canvas-api.md §2.1: default state[] = created, claimed, available, completed (API names).
_COURSE_STATE_MAP = {
    "created": {"unpublished"},
    "claimed": {"unpublished"},
    "unpublished": {"unpublished"},
    "available": {"available"},
    "completed": {"completed"},
    "deleted": {"deleted"},
    "all": {"unpublished", "available", "completed", "deleted"},
}
_DEFAULT_COURSE_STATES = {"unpublished", "available", "completed"}
_DEFAULT_ENROLLMENT_STATES = ("active", "invited")  # canvas-api.md §2.3, §2.4
_ENROLLMENT_TYPES = {
    "student": "StudentEnrollment",
    "teacher": "TeacherEnrollment",
    "ta": "TaEnrollment",
    "observer": "ObserverEnrollment",
    "designer": "DesignerEnrollment",
}


def create_app(
    institution: Institution,
    *,
    settings: CanvasEmulatorSettings,
    stats: EmulatorStats | None = None,
) -> Starlette:
    """A Starlette app serving ``institution`` as Canvas would; ``app.state.stats`` counts."""
    routes = [
        Route("/api/v1/accounts/{account_id}", _account_show),
        Route("/api/v1/accounts/{account_id}/courses", _account_courses),
        Route("/api/v1/accounts/{account_id}/terms", _account_terms),
        Route("/api/v1/courses/{course_id}", _course),
        Route("/api/v1/courses/{course_id}/sections", _sections),
        Route("/api/v1/courses/{course_id}/enrollments", _enrollments),
        Route("/api/v1/courses/{course_id}/users", _users),
        Route("/api/v1/courses/{course_id}/search_users", _users),  # §2.3 alias (canvasapi)
        Route("/api/v1/courses/{course_id}/assignments", _assignments),
        Route("/api/v1/courses/{course_id}/students/submissions", _submissions),
        Route(
            "/api/v1/courses/{course_id}/assignments/{assignment_id}/submissions",
            _assignment_submissions,
        ),
        Route("/api/v1/courses/{course_id}/analytics/student_summaries", _student_summaries),
        Route("/api/v1/users/{user_id}/page_views", _page_views),
        Route("/{path:path}", _unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={CanvasError: _canvas_error, InvalidPage: _invalid_page},
    )
    app.state.institution = institution
    app.state.settings = settings
    # Chaos knobs a test flips while the server runs (see emulators/canvas/README.md):
    # courses whose every request answers 503 (a course that exhausts its retries), and a change
    # applied to the institution between two pages of a submissions list.
    app.state.unavailable_courses = set()
    app.state.change_mid_paging = None  # kwargs for Institution.apply_changes, used once
    app.state.stats = stats if stats is not None else EmulatorStats()
    app.add_middleware(CanvasFrontDoor, settings=settings, stats=app.state.stats)
    bulk.install(app, institution, settings)  # Canvas Data 2 (DAP) and account reports
    return app


# ---- responses --------------------------------------------------------------------------------


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _dumps(payload),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


async def _canvas_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CanvasError)
    return _json(exc.body, exc.status, exc.headers)


async def _invalid_page(request: Request, exc: Exception) -> Response:
    # canvas-api.md §1.2: a numeric page > 1 on a bookmarked collection → 404.
    return _json(errors.NOT_FOUND, 404)


async def _unknown(request: Request) -> Response:
    return _json(errors.NOT_FOUND, 404)


def _paged(request: Request, page: Page, per_page: int, wrap: str | None = None) -> Response:
    """The page as JSON with its Link header; tells the front door how many records it holds."""
    request.state.records = len(page.items)
    if page.duplicated:
        request.state.duplicate_applied = True
    url = request.url
    base = f"{url.scheme}://{url.netloc}{url.path}"
    link = link_header(base, request.query_params.multi_items(), page, per_page)
    payload = {wrap: page.items} if wrap else page.items
    return _json(payload, headers={"Link": link})


def _per_page(request: Request) -> int:
    s: CanvasEmulatorSettings = request.app.state.settings
    raw = request.query_params.get("per_page")
    return per_page_for(raw, default=s.default_per_page, maximum=s.max_per_page)


def _ordinal(
    request: Request, items: list, *, with_last: bool = True, wrap: str | None = None
) -> Response:
    per_page = _per_page(request)
    page = ordinal_page(
        items,
        request.query_params.get("page"),
        per_page,
        with_last=with_last,
        duplicate=_duplicate(request),
    )
    return _paged(request, page, per_page, wrap)


def _bookmarked(request: Request, seek: Callable, key: Callable) -> Response:
    per_page = _per_page(request)
    page = bookmark_page(
        seek, key, request.query_params.get("page"), per_page, duplicate=_duplicate(request)
    )
    return _paged(request, page, per_page)


def _duplicate(request: Request) -> bool:
    return bool(request.scope.get("state", {}).get("fault_duplicate"))


# ---- lookups ----------------------------------------------------------------------------------


def _institution(request: Request) -> Institution:
    return request.app.state.institution


def _list_param(request: Request, name: str) -> list[str]:
    """``name[]`` values (Canvas also accepts the bare name)."""
    return request.query_params.getlist(f"{name}[]") + request.query_params.getlist(name)


def _live_course(request: Request) -> CourseSpec:
    """The course in the path; unknown or deleted → 404 (canvas-api.md §2.2)."""
    inst = _institution(request)
    raw = request.path_params["course_id"]
    spec = None
    if raw.isdigit() and len(raw) <= 19:
        spec = inst.course_spec(int(raw))
    elif raw.startswith("sis_course_id:"):
        sis = raw.removeprefix("sis_course_id:")
        spec = next(
            (
                inst.course_spec(c)
                for c in inst.course_ids()
                if inst.course(c)["sis_course_id"] == sis
            ),
            None,
        )
    if spec is None or spec.workflow_state == "deleted":
        raise not_found()
    if spec.id in request.app.state.unavailable_courses:
        raise CanvasError(
            503,
            {"errors": [{"message": "An error occurred.", "error_code": "service_unavailable"}]},
        )
    return spec


def _account(request: Request) -> None:
    if request.path_params["account_id"] not in (str(ROOT_ACCOUNT_ID), "self"):
        raise not_found()


def _includes(request: Request) -> set[str]:
    return set(_list_param(request, "include"))


# ---- endpoints --------------------------------------------------------------------------------


async def _account_show(request: Request) -> Response:
    _account(request)
    return _json(_institution(request).account())


async def _account_courses(request: Request) -> Response:
    """canvas-api.md §2.1: ordered by id, ordinal pages without rel="last"."""
    _account(request)
    inst = _institution(request)
    requested = _list_param(request, "state")
    states: set[str] = set()
    for state in requested:
        states |= _COURSE_STATE_MAP.get(state, set())
    if not requested:
        states = set(_DEFAULT_COURSE_STATES)
    published = request.query_params.get("published")
    if published == "true":
        states &= {"available"}
    elif published == "false":
        states -= {"available"}
    term = request.query_params.get("enrollment_term_id")
    term_id = _term_id(inst, term) if term else None
    include_term = "term" in _includes(request)
    courses = [
        inst.course(cid, include_term=include_term)
        for cid in inst.course_ids()
        if inst.course_spec(cid).workflow_state in states
        and (term_id is None or inst.course_spec(cid).term_id == term_id)
    ]
    return _ordinal(request, courses, with_last=False)


def _term_id(inst: Institution, raw: str) -> int:
    if raw.startswith("sis_term_id:"):
        sis = raw.removeprefix("sis_term_id:")
        match = next((t["id"] for t in inst.terms() if t["sis_term_id"] == sis), None)
        if match is None:
            raise not_found()
        return match
    if not raw.isdigit():
        raise not_found()
    return int(raw)


async def _account_terms(request: Request) -> Response:
    _account(request)
    return _ordinal(request, _institution(request).terms(), wrap="enrollment_terms")


async def _course(request: Request) -> Response:
    spec = _live_course(request)
    include_term = "term" in _includes(request)
    return _json(_institution(request).course(spec.id, include_term=include_term))


async def _sections(request: Request) -> Response:
    spec = _live_course(request)
    inst = _institution(request)
    sections = inst.sections(spec.id)
    if "students" in _includes(request):
        students: dict[int, list[dict]] = {}
        users = {u["id"]: u for u in inst.users(spec.id)}
        for e in inst.enrollments(spec.id):
            if e["type"] == "StudentEnrollment" and e["enrollment_state"] == "active":
                u = users[e["user_id"]]
                students.setdefault(e["course_section_id"], []).append(
                    {
                        k: u[k]
                        for k in (
                            "id",
                            "name",
                            "sortable_name",
                            "short_name",
                            "sis_user_id",
                            "sis_login_id",
                            "login_id",
                        )
                    }
                )
        sections = [{**s, "students": students.get(s["id"], [])} for s in sections]
    return _ordinal(request, sections)


async def _enrollments(request: Request) -> Response:
    """canvas-api.md §2.4: default active + invited; bookmarked on (sortable_name, id)."""
    spec = _live_course(request)
    types = set(_list_param(request, "type"))
    states = set(_list_param(request, "state")) or set(_DEFAULT_ENROLLMENT_STATES)
    roles = set(_list_param(request, "role"))
    user_id = request.query_params.get("user_id")
    items = [
        e
        for e in _institution(request).enrollments(spec.id)
        if e["enrollment_state"] in states
        and (not types or e["type"] in types)
        and (not roles or e["role"] in roles)
        and (user_id is None or str(e["user_id"]) == user_id)
    ]
    key = _enrollment_key
    return _bookmarked(request, seek_sorted(items, key), key)


def _enrollment_key(e: dict) -> list:
    return [e["user"]["sortable_name"], e["id"]]


async def _users(request: Request) -> Response:
    """canvas-api.md §2.3: enrollment_type[], enrollment_state[] (default active + invited)."""
    spec = _live_course(request)
    inst = _institution(request)
    types = {_ENROLLMENT_TYPES.get(t, t) for t in _list_param(request, "enrollment_type")}
    states = set(_list_param(request, "enrollment_state")) or set(_DEFAULT_ENROLLMENT_STATES)
    user_ids = set(_list_param(request, "user_ids"))
    by_user: dict[int, list[dict]] = {}
    for e in inst.enrollments(spec.id):
        if e["enrollment_state"] in states and (not types or e["type"] in types):
            by_user.setdefault(e["user_id"], []).append(e)
    with_enrollments = "enrollments" in _includes(request)
    items = []
    for user in inst.users(spec.id, enrollment_states=tuple(states)):
        if user["id"] not in by_user or (user_ids and str(user["id"]) not in user_ids):
            continue
        if with_enrollments:
            embedded = [{k: v for k, v in e.items() if k != "user"} for e in by_user[user["id"]]]
            user = {**user, "enrollments": embedded}
        items.append(user)
    return _ordinal(request, items)


async def _assignments(request: Request) -> Response:
    spec = _live_course(request)
    wanted = set(_list_param(request, "assignment_ids"))
    items = [
        a
        for a in _institution(request).assignments(spec.id)
        if not wanted or str(a["id"]) in wanted
    ]
    return _ordinal(request, items)


async def _submissions(request: Request) -> Response:
    """canvas-api.md §2.7: List submissions for multiple assignments (non-grouped)."""
    spec = _live_course(request)
    inst = _institution(request)
    course_id = spec.id
    student_ids = _student_filter(request, inst, course_id)
    assignment_ids = _assignment_filter(request, inst, course_id)
    since = {name: _since(request, name) for name in ("submitted_since", "graded_since")}
    workflow_state = request.query_params.get("workflow_state")
    enrollment_state = request.query_params.get("enrollment_state")
    if enrollment_state not in (None, "active", "concluded"):
        raise bad_request({"error": "invalid enrollment_state"})
    if enrollment_state is not None:
        wanted = "active" if enrollment_state == "active" else "completed"
        allowed = {
            e["user_id"]
            for e in inst.enrollments(course_id)
            if e["type"] == "StudentEnrollment" and e["enrollment_state"] == wanted
        }
        student_ids = allowed if student_ids is None else student_ids & allowed
    if student_ids is not None and not student_ids:
        return _bookmarked(request, lambda start, inclusive: iter(()), _submission_key)
    _maybe_change_mid_paging(request, inst)

    def keep(sub: dict) -> bool:
        if workflow_state and sub["workflow_state"] != workflow_state:
            return False
        for name, column in (("submitted_since", "submitted_at"), ("graded_since", "graded_at")):
            # Strict ">" and rows with a null timestamp excluded; both are UTC ISO strings.
            if since[name] is not None and (sub[column] is None or sub[column] <= since[name]):
                return False
        return True

    def seek(start: int | None, inclusive: bool) -> Iterable[dict]:
        first = None if start is None else (start if inclusive else start + 1)
        filters = {
            "start_id": first,
            "assignment_ids": assignment_ids,
            "student_ids": frozenset(student_ids) if student_ids is not None else None,
        }
        newest = max((v for v in since.values() if v is not None), default=None)
        indexed = (
            None if newest is None else inst.iter_submissions_after(course_id, newest, **filters)
        )
        subs = indexed if indexed is not None else inst.iter_submissions(course_id, **filters)
        return (s for s in subs if keep(s))

    return _bookmarked(request, seek, _submission_key)


async def _assignment_submissions(request: Request) -> Response:
    """canvas-api.md §2.7 per-assignment list: ordered by user id, which for one assignment is
    also submission id order, so it bookmarks on id like the multi-assignment list."""
    spec = _live_course(request)
    inst = _institution(request)
    raw = request.path_params["assignment_id"]
    assignment = next((a for a in inst.assignments(spec.id) if str(a["id"]) == raw), None)
    if assignment is None:
        raise not_found()
    only = frozenset({assignment["id"]})

    def seek(start: int | None, inclusive: bool) -> Iterable[dict]:
        first = None if start is None else (start if inclusive else start + 1)
        return inst.iter_submissions(spec.id, start_id=first, assignment_ids=only)

    return _bookmarked(request, seek, _submission_key)


def _maybe_change_mid_paging(request: Request, inst: Institution) -> None:
    """Chaos: on the first later page of a submissions list, change the institution (once)."""
    page = request.query_params.get("page")
    change = request.app.state.change_mid_paging
    if change is None or page in (None, "first", "bookmark:first"):
        return
    request.app.state.change_mid_paging = None
    moment = datetime.now(UTC) - timedelta(seconds=5)  # before the run's load: not "future"
    inst.apply_changes(at=moment, **change)


def _submission_key(sub: dict) -> int:
    return sub["id"]


def _student_filter(request: Request, inst: Institution, course_id: int) -> set[int] | None:
    """None = every student; an explicit list is checked against the course's students."""
    raw = _list_param(request, "student_ids")
    if not raw:
        return set()  # the caller's own submissions: an admin token has none
    if "all" in raw:
        return None
    if len(raw) > 100:
        raise bad_request({"error": "too many students"})
    students = {
        e["user_id"] for e in inst.enrollments(course_id) if e["type"] == "StudentEnrollment"
    }
    try:
        wanted = {int(r) for r in raw}
    except ValueError as exc:
        raise CanvasError(401, errors.UNAUTHORIZED) from exc
    if not wanted <= students:
        raise CanvasError(401, errors.UNAUTHORIZED)
    return wanted


def _assignment_filter(request: Request, inst: Institution, course_id: int) -> frozenset | None:
    raw = _list_param(request, "assignment_ids")
    if not raw:
        return None
    published = {str(a["id"]) for a in inst.assignments(course_id) if a["published"]}
    if not set(raw) <= published:
        raise CanvasError(403, {"error": "invalid assignment ids requested"})
    return frozenset(int(r) for r in raw)


def _since(request: Request, name: str) -> str | None:
    """Validate a ``*_since`` value and return it as a comparable UTC ``...Z`` string."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not _ISO8601.match(raw):
        raise bad_request({"errors": {name: f"Invalid datetime for {name}"}})
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request({"errors": {name: f"Invalid datetime for {name}"}}) from exc
    # Canvas timestamps are whole seconds, so "> 12:00:00.5" is "> 12:00:00": drop the fraction.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _student_summaries(request: Request) -> Response:
    """canvas-api.md §2.8: ordered by name (default sort_column); ordinal pages."""
    spec = _live_course(request)
    inst = _institution(request)
    ids = inst.summary_student_ids(spec.id)
    student_id = request.query_params.get("student_id")
    if student_id is not None:
        ids = [i for i in ids if str(i) == student_id]
    per_page = _per_page(request)
    page = ordinal_page(
        ids,
        request.query_params.get("page"),
        per_page,
        with_last=True,
        duplicate=_duplicate(request),
    )
    page.items = inst.student_summaries_for(spec.id, page.items)
    return _paged(request, page, per_page)


async def _page_views(request: Request) -> Response:
    """canvas-api.md §2.9: newest first, start_time/end_time, bookmarked on (created_at, id)."""
    inst = _institution(request)
    raw = request.path_params["user_id"]
    if not raw.isdigit() or not inst.has_user(int(raw)):
        raise not_found()
    views = inst.page_views(int(raw))
    start = _time_param(request, "start_time")
    end = _time_param(request, "end_time")
    views = [
        v
        for v in views
        if (start is None or v["created_at"] >= start) and (end is None or v["created_at"] < end)
    ]
    key = _page_view_key
    return _bookmarked(request, seek_sorted(views, key, descending=True), key)


def _page_view_key(view: dict) -> list:
    return [view["created_at"], view["id"]]


def _time_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request({"errors": [{"message": f"{name} is not a valid datetime"}]}) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

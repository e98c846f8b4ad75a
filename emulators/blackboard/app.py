"""The Learn REST routes over an Institution (prefix ``/learn/api/public``).

Lists answer ``{"results": [...], "paging": {"nextPage": "<path>?...&offset=N&limit=L"}}`` with
``paging`` absent on the last page (reference §1b); ``limit`` defaults to and is clamped at the
endpoint's cap; ``fields=`` projects each record (nested paths allowed, ``user.uuid``). Errors are
the spec's ``RestException``. Auth, quota, latency and faults live in ``frontdoor.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.blackboard import errors
from emulators.blackboard.errors import BlackboardError, bad_request, not_found
from emulators.blackboard.frontdoor import TOKEN_PATH, BlackboardFrontDoor, TokenStore
from emulators.blackboard.institution import Institution
from emulators.blackboard.quota import DailyQuota
from emulators.blackboard.settings import BlackboardEmulatorSettings
from emulators.canvas.stats import EmulatorStats

__all__ = ["create_app"]

P = "/learn/api/public"
_PAGING_PARAMS = frozenset({"offset", "limit"})


def create_app(
    institution: Institution,
    *,
    settings: BlackboardEmulatorSettings,
    stats: EmulatorStats | None = None,
    quota: DailyQuota | None = None,
    tokens: TokenStore | None = None,
) -> Starlette:
    """A Starlette app serving ``institution`` as Learn would."""
    course = P + "/v1/courses/{courseId}"
    gradebook = P + "/v2/courses/{courseId}/gradebook"
    routes = [
        Route(TOKEN_PATH, _token, methods=["POST"]),
        Route(P + "/v3/courses", _courses),
        Route(P + "/v3/courses/{courseId}", _course),
        Route(course + "/users", _memberships),
        Route(course + "/users/{userId}", _membership),
        Route(P + "/v1/users", _users),
        Route(P + "/v1/users/{userId}", _user),
        Route(gradebook + "/columns", _columns),
        Route(gradebook + "/columns/{columnId}", _column),
        Route(gradebook + "/columns/{columnId}/users", _grades),
        Route(gradebook + "/columns/{columnId}/users/lastChanged", _last_changed),
        Route(gradebook + "/columns/{columnId}/users/{userId}", _grade),
        Route(gradebook + "/columns/{columnId}/attempts", _attempts),
        Route(gradebook + "/columns/{columnId}/attempts/{attemptId}", _attempt),
        Route(gradebook + "/users/{userId}", _user_grades),
        Route(course + "/gradebook/users/{userId}", _user_grades_v1),
        Route(course + "/meetings", _meetings),
        Route(course + "/meetings/users/{userId}", _user_attendance),
        Route(course + "/meetings/{meetingId}", _meeting),
        Route(course + "/meetings/{meetingId}/users", _meeting_users),
        Route(course + "/meetings/{meetingId}/users/{userId}", _meeting_user),
        Route("/{path:path}", _unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    app = Starlette(routes=routes, exception_handlers={BlackboardError: _error})
    app.state.institution = institution
    app.state.settings = settings
    app.state.stats = stats if stats is not None else EmulatorStats()
    app.state.quota = quota or DailyQuota(settings.daily_quota, settings.quota_window_seconds)
    app.state.tokens = tokens or TokenStore(settings.token_ttl_seconds)
    app.add_middleware(
        BlackboardFrontDoor,
        settings=settings,
        stats=app.state.stats,
        quota=app.state.quota,
        tokens=app.state.tokens,
    )
    return app


# ---- responses ----------------------------------------------------------------------------------


def _json(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json;charset=UTF-8")


async def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BlackboardError)
    return _json(errors.rest_exception(exc.status, exc.message, code=exc.code), exc.status)


async def _unknown(request: Request) -> Response:
    raise not_found("API endpoint")


def _project(record: dict, fields: list[list[str]]) -> dict:
    """``fields=id,user.uuid``: keep only those paths (reference §1b)."""
    out: dict = {}
    for path in fields:
        value: Any = record
        for part in path:
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            target = out
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value
    return out


def _fields(request: Request) -> list[list[str]] | None:
    raw = request.query_params.get("fields")
    if not raw:
        return None
    return [f.strip().split(".") for f in raw.split(",") if f.strip()]


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value for parameter '{name}'") from None
    if value < 0:
        raise bad_request(f"Parameter '{name}' must not be negative")
    return value


def _page(request: Request, items: list, cap_key: str) -> Response:
    """One page of a list, with ``paging.nextPage`` when more remain."""
    cap = request.app.state.settings.page_caps[cap_key]
    offset = _int_param(request, "offset", 0)
    limit = min(_int_param(request, "limit", cap), cap) or cap
    chunk = list(items[offset : offset + limit])
    if request.scope.get("state", {}).get("fault_duplicate") and offset > 0 and chunk:
        chunk.insert(0, items[offset - 1])  # an injected `duplicate`: the boundary record again
        request.scope["state"]["duplicate_applied"] = True
    fields = _fields(request)
    if fields:
        chunk = [_project(r, fields) for r in chunk]
    payload: dict[str, Any] = {"results": chunk}
    if offset + limit < len(items):
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAGING_PARAMS]
        query = urlencode([*kept, ("offset", str(offset + limit)), ("limit", str(limit))])
        payload["paging"] = {"nextPage": f"{request.url.path}?{query}"}
    return _json(payload)


def _one(request: Request, record: dict | None, what: str) -> Response:
    if record is None:
        raise not_found(what)
    fields = _fields(request)
    return _json(_project(record, fields) if fields else record)


# ---- lookups ------------------------------------------------------------------------------------


def _inst(request: Request) -> Institution:
    return request.app.state.institution


def _course_id(request: Request) -> str:
    cid = _inst(request).resolve_course(request.path_params["courseId"])
    if cid is None:
        raise not_found("course")
    return cid


def _column_id(request: Request, course_id: str) -> str:
    column_id = request.path_params["columnId"]
    if _inst(request).column(course_id, column_id) is None:
        raise not_found("grade column")
    return column_id


def _meeting_id(request: Request, course_id: str) -> int:
    raw = request.path_params["meetingId"]
    if not raw.isdigit() or _inst(request).meeting(course_id, int(raw)) is None:
        raise not_found("course meeting")
    return int(raw)


def _user_ref(request: Request) -> str:
    """A path's user reference (primary, ``externalId:``, ``userName:``, ``uuid:``) → id."""
    ref = request.path_params["userId"]
    if ref.startswith(("externalId:", "userName:", "uuid:")):
        field, _, value = ref.partition(":")
        match = next((u for u in _inst(request).users() if u.get(field) == value), None)
        if match is None:
            raise not_found("user")
        return match["id"]
    return ref


def _match(record: dict, dotted: str, wanted: str | None) -> bool:
    if wanted is None:
        return True
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value == wanted


def _compare(request: Request, name: str, value: str | None) -> bool:
    """Date filters ``name`` + ``nameCompare`` (lessThan | greaterOrEqual, the default)."""
    bound = request.query_params.get(name)
    if bound is None:
        return True
    if value is None:
        return False
    op = request.query_params.get(f"{name}Compare", "greaterOrEqual")
    if op not in ("lessThan", "greaterOrEqual"):
        raise bad_request(f"Invalid value for parameter '{name}Compare'")
    # Learn's timestamps are ISO UTC; the first 19 characters compare as text.
    return value[:19] < bound[:19] if op == "lessThan" else value[:19] >= bound[:19]


# ---- OAuth2 -------------------------------------------------------------------------------------


async def _token(request: Request) -> Response:
    """``POST /v1/oauth2/token``: Basic key:secret; ``grant_type`` as query or form body."""
    settings: BlackboardEmulatorSettings = request.app.state.settings
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body))
    grant = request.query_params.get("grant_type") or form.get("grant_type")
    key, secret = _basic(request)
    if key != settings.client_id or secret != settings.client_secret:
        raise BlackboardError(*errors.INVALID_CLIENT)
    if grant != "client_credentials":
        raise bad_request("Unsupported grant_type; use client_credentials")
    token, expires_in = request.app.state.tokens.issue(key)
    return _json({"access_token": token, "token_type": "bearer", "expires_in": expires_in})


def _basic(request: Request) -> tuple[str | None, str | None]:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        key, _, secret = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return key, secret


# ---- courses and people -------------------------------------------------------------------------


async def _courses(request: Request) -> Response:
    q = request.query_params
    items = [
        c
        for c in _inst(request).courses()
        if _match(c, "termId", q.get("termId"))
        and _match(c, "availability.available", q.get("availability.available"))
        and _match(c, "externalId", q.get("externalId"))
        and _match(c, "courseId", q.get("courseId"))
        and _compare(request, "modified", c.get("modified"))
        and _compare(request, "created", c.get("created"))
    ]
    return _page(request, items, "courses")


async def _course(request: Request) -> Response:
    return _one(request, _inst(request).course(_course_id(request)), "course")


async def _memberships(request: Request) -> Response:
    q = request.query_params
    expand = "user" in (q.get("expand") or "").split(",")
    items = [
        m
        for m in _inst(request).memberships(_course_id(request), expand_user=expand)
        if _match(m, "courseRoleId", q.get("role"))
        and _match(m, "availability.available", q.get("availability.available"))
        and _compare(request, "lastAccessed", m.get("lastAccessed"))
        and _compare(request, "modified", m.get("modified"))
    ]
    return _page(request, items, "memberships")


async def _membership(request: Request) -> Response:
    user_id = _user_ref(request)
    expand = "user" in (request.query_params.get("expand") or "").split(",")
    found = next(
        (
            m
            for m in _inst(request).memberships(_course_id(request), expand_user=expand)
            if m["userId"] == user_id
        ),
        None,
    )
    return _one(request, found, "course membership")


async def _users(request: Request) -> Response:
    q = request.query_params
    items = [
        u
        for u in _inst(request).users()
        if _match(u, "externalId", q.get("externalId"))
        and _match(u, "userName", q.get("userName"))
        and _match(u, "studentId", q.get("studentId"))
        and _compare(request, "lastLogin", u.get("lastLogin"))
    ]
    return _page(request, items, "users")


async def _user(request: Request) -> Response:
    return _one(request, _inst(request).user(_user_ref(request)), "user")


# ---- gradebook ----------------------------------------------------------------------------------


async def _columns(request: Request) -> Response:
    return _page(request, _inst(request).columns(_course_id(request)), "columns")


async def _column(request: Request) -> Response:
    cid = _course_id(request)
    return _one(request, _inst(request).column(cid, request.path_params["columnId"]), "column")


def _column_grades(request: Request) -> list[dict]:
    cid = _course_id(request)
    column_id = _column_id(request, cid)
    include = request.query_params.get("includeDisabledMemberships") == "true"
    grades = _inst(request).grades(cid, column_id, include_disabled=include)
    since = request.query_params.get("changeIndex")
    if since is not None:
        if not since.isdigit():
            raise bad_request("Invalid value for parameter 'changeIndex'")
        # Grades changed after the given index (unverified whether Learn's bound is inclusive).
        grades = [g for g in grades if g["changeIndex"] > int(since)]
    return grades


async def _grades(request: Request) -> Response:
    return _page(request, _column_grades(request), "grades")


async def _last_changed(request: Request) -> Response:
    """The grade with the largest ``changeIndex`` (spec: Get Last Changed Grade)."""
    grades = _column_grades(request)
    return _one(request, max(grades, key=lambda g: g["changeIndex"], default=None), "grade")


async def _grade(request: Request) -> Response:
    user_id = _user_ref(request)
    found = next((g for g in _column_grades(request) if g["userId"] == user_id), None)
    return _one(request, found, "grade")


async def _attempts(request: Request) -> Response:
    cid = _course_id(request)
    column_id = _column_id(request, cid)
    user = request.query_params.get("userId")
    items = [
        a
        for a in _inst(request).attempts(cid, column_id)
        if (user is None or a["userId"] == user)
        and _compare(request, "attemptDate", a.get("attemptDate"))
        and _compare(request, "modified", a.get("modified"))
    ]
    return _page(request, items, "attempts")


async def _attempt(request: Request) -> Response:
    cid = _course_id(request)
    column_id = _column_id(request, cid)
    wanted = request.path_params["attemptId"]
    found = next((a for a in _inst(request).attempts(cid, column_id) if a["id"] == wanted), None)
    return _one(request, found, "attempt")


async def _user_grades(request: Request) -> Response:
    cid = _course_id(request)
    return _page(request, _inst(request).user_grades(cid, _user_ref(request)), "user_grades")


async def _user_grades_v1(request: Request) -> Response:
    cid = _course_id(request)
    grades = _inst(request).user_grades(cid, _user_ref(request), v1=True)
    return _page(request, grades, "user_grades")


# ---- attendance ---------------------------------------------------------------------------------


async def _meetings(request: Request) -> Response:
    return _page(request, _inst(request).meetings(_course_id(request)), "meetings")


async def _meeting(request: Request) -> Response:
    cid = _course_id(request)
    return _one(request, _inst(request).meeting(cid, _meeting_id(request, cid)), "meeting")


async def _meeting_users(request: Request) -> Response:
    cid = _course_id(request)
    records = _inst(request).meeting_users(cid, _meeting_id(request, cid))
    return _page(request, records, "meeting_users")


async def _meeting_user(request: Request) -> Response:
    cid = _course_id(request)
    records = _inst(request).meeting_users(cid, _meeting_id(request, cid))
    user_id = _user_ref(request)
    return _one(request, next((r for r in records if r["userId"] == user_id), None), "record")


async def _user_attendance(request: Request) -> Response:
    _course_id(request)  # permission check only: the list is not filtered by course (spec)
    return _page(request, _inst(request).user_attendance(_user_ref(request)), "meeting_users")

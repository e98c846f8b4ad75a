"""The OneRoster 1.2 REST services over an Institution: rostering and gradebook, read-only.

Paths (1EdTech OneRoster 1.2 REST binding, https://www.imsglobal.org/spec/oneroster/v1p2/bind/rest):

    POST /oauth/token                                   client credentials (HTTP Basic), form body
    GET  /ims/oneroster/rostering/v1p2/{orgs|schools|academicSessions|terms|courses|classes|
                                        users|students|teachers|enrollments|demographics}
    GET  /ims/oneroster/rostering/v1p2/classes/{id}     → {"class": {...}}
    GET  /ims/oneroster/rostering/v1p2/schools/{school}/classes/{class}/enrollments
    GET  /ims/oneroster/gradebook/v1p2/{categories|lineItems|results|scoreScales}
    GET  /ims/oneroster/gradebook/v1p2/classes/{id}/{lineItems|results}

A collection answers ``{"<name>": [...]}`` with ``X-Total-Count`` and a ``Link`` header (``next``,
``last``) and pages with ``limit`` (default 100, at most ``max_limit``) and ``offset``. ``filter``
supports the spec's grammar for ``field<op>'value'`` joined by ``AND`` over top-level fields
(``dateLastModified>'2026-09-01T00:00:00Z'``, ``status='active'``, ``role='student'``). Errors are
the spec's ``imsx_StatusInfo`` payload: ``imsx_codeMajor`` (``failure``), ``imsx_severity``
(``error``), ``imsx_description`` and ``imsx_CodeMinor`` (``unauthorisedrequest``,
``unknownobject``, ``invalid_filter_field``, ``invalid_selection_field``, ``server_busy``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.canvas.faults import FaultPlan
from emulators.canvas.stats import EmulatorStats
from emulators.oneroster.institution import Institution, Record
from emulators.oneroster.settings import OneRosterEmulatorSettings

__all__ = ["TOKEN_PATH", "TokenStore", "create_app", "to_json"]

TOKEN_PATH = "/oauth/token"
ROSTER = "/ims/oneroster/rostering/v1p2"
GRADEBOOK = "/ims/oneroster/gradebook/v1p2"

_REF_TYPE = {
    "parentSourcedId": ("parent", "org"),
    "schoolYearSourcedId": ("schoolYear", "academicSession"),
    "orgSourcedId": ("org", "org"),
    "courseSourcedId": ("course", "course"),
    "schoolSourcedId": ("school", "org"),
    "classSourcedId": ("class", "class"),
    "userSourcedId": ("user", "user"),
    "lineItemSourcedId": ("lineItem", "lineItem"),
    "studentSourcedId": ("student", "user"),
    "categorySourcedId": ("category", "category"),
    "gradingPeriodSourcedId": ("gradingPeriod", "academicSession"),
    "primaryOrgSourcedId": ("primaryOrg", "org"),
}
_LISTS = {"grades", "subjects", "subjectCodes", "periods"}
_BOOLS = {"enabledUser", "primary"}
_FLOATS = {"resultValueMin", "resultValueMax", "score", "weight"}
_SINGULAR = {
    "orgs": "org", "academicSessions": "academicSession", "courses": "course",
    "classes": "class", "users": "user", "enrollments": "enrollment",
    "demographics": "demographics", "categories": "category", "lineItems": "lineItem",
    "results": "result",
}  # fmt: skip


def to_json(file: str, row: Record, institution: Institution, base_url: str = "") -> dict:
    """A CSV-shaped row in its REST JSON shape (refs as GUIDRef objects, lists as arrays)."""
    out: dict[str, Any] = {}
    for column, value in row.items():
        if column in ("givenName", "familyName") or (value is None and column not in _LISTS):
            if value is not None:
                out[column] = value
            continue
        if column in _REF_TYPE and not (file == "academicSessions" and column == "parentSourcedId"):
            name, kind = _REF_TYPE[column]
            out[name] = _ref(kind, value, base_url)
        elif file == "academicSessions" and column == "parentSourcedId":
            out["parent"] = _ref("academicSession", value, base_url)
        elif column == "termSourcedIds":
            out["terms"] = [_ref("academicSession", t, base_url) for t in value.split(",")]
        elif column == "userIds":
            out["userIds"] = [
                {"type": t, "identifier": i}
                for t, i in re.findall(r"\{([^:}]*):([^}]*)\}", value or "")
            ]
        elif column in _LISTS:
            out[column] = [v for v in (value or "").split(",") if v]
        elif column in _BOOLS:
            out[column] = value == "true"
        elif column in _FLOATS:
            out[column] = float(value)
        else:
            out[column] = value
    if file == "users":
        out["roles"] = [
            {
                "roleType": r["roleType"],
                "role": r["role"],
                "org": _ref("org", r["orgSourcedId"], base_url),
            }
            for r in institution.records["roles"]
            if r["userSourcedId"] == row["sourcedId"]
        ]
    if file == "results":
        li = institution.get("lineItems", row["lineItemSourcedId"] or "")
        if li is not None:  # 1.2 results carry their class (GUIDRef)
            out["class"] = _ref("class", li["classSourcedId"], base_url)
    return out


def _ref(kind: str, sourced_id: str | None, base_url: str) -> dict | None:
    if sourced_id is None:
        return None
    plural = {"academicSession": "academicSessions", "class": "classes"}.get(kind, kind + "s")
    service = GRADEBOOK if kind in ("lineItem", "category") else ROSTER
    return {"href": f"{base_url}{service}/{plural}/{sourced_id}", "sourcedId": sourced_id,
            "type": kind}  # fmt: skip


class TokenStore:
    """Issued bearer tokens and when they expire; ``expire_all`` revokes every live one."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self.issued = 0

    def issue(self) -> tuple[str, int]:
        with self._lock:
            token = secrets.token_urlsafe(24)
            self._expiry[token] = time.monotonic() + self.ttl
            self.issued += 1
            return token, int(self.ttl)

    def valid(self, token: str) -> bool:
        with self._lock:
            return self._expiry.get(token, 0) > time.monotonic()

    def expire_all(self) -> None:
        with self._lock:
            self._expiry.clear()


class _Failure(Exception):
    def __init__(self, status: int, minor: str, description: str) -> None:
        self.status, self.minor, self.description = status, minor, description


def imsx_error(status: int, minor: str, description: str) -> Response:
    """The spec's status-info payload for a failed request."""
    body = {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [
                {"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": minor}
            ]
        },
    }
    return JSONResponse(body, status_code=status)


class _State:
    def __init__(
        self, institution: Institution, settings: OneRosterEmulatorSettings, stats: EmulatorStats
    ) -> None:
        self.institution = institution
        self.settings = settings
        self.stats = stats
        self.tokens = TokenStore(settings.token_ttl_seconds)
        self.faults = FaultPlan(settings.faults)


def create_app(
    institution: Institution,
    *,
    settings: OneRosterEmulatorSettings | None = None,
    stats: EmulatorStats | None = None,
) -> Starlette:
    """A Starlette app serving ``institution``; ``app.state.or_state.institution`` may be
    replaced while running (a district that changed overnight)."""
    state = _State(institution, settings or OneRosterEmulatorSettings(), stats or EmulatorStats())

    def collection(file: str, **preset: str):
        async def handler(request: Request) -> Response:
            return await _guard(request, state, lambda: _list(request, state, file, preset))

        return handler

    async def one_class(request: Request) -> Response:
        def run() -> Response:
            row = state.institution.get("classes", request.path_params["id"])
            if row is None:
                raise _Failure(404, "unknownobject", "class not found")
            return JSONResponse(
                {"class": to_json("classes", row, state.institution, _base(request))}
            )

        return await _guard(request, state, run)

    def scoped(file: str, field: str):
        async def handler(request: Request) -> Response:
            def run() -> Response:
                class_id = request.path_params["cls"]
                if state.institution.get("classes", class_id) is None:
                    raise _Failure(404, "unknownobject", "class not found")
                return _list(request, state, file, {field: class_id})

            return await _guard(request, state, run)

        return handler

    async def class_results(request: Request) -> Response:
        def run() -> Response:
            class_id = request.path_params["cls"]
            if state.institution.get("classes", class_id) is None:
                raise _Failure(404, "unknownobject", "class not found")
            items = {
                li["sourcedId"]
                for li in state.institution.records["lineItems"]
                if li["classSourcedId"] == class_id
            }
            return _list(
                request, state, "results", {}, keep=lambda r: r["lineItemSourcedId"] in items
            )

        return await _guard(request, state, run)

    async def token(request: Request) -> Response:
        state.stats.record_request(TOKEN_PATH)
        client_id, secret = _basic(request)
        form = (await request.body()).decode()
        if "grant_type=client_credentials" not in form:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if (client_id, secret) != (state.settings.client_id, state.settings.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        value, ttl = state.tokens.issue()
        return JSONResponse(
            {"access_token": value, "token_type": "bearer", "expires_in": ttl,
             "scope": "https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly"}
        )  # fmt: skip

    async def unknown(request: Request) -> Response:
        return imsx_error(404, "unknownobject", "no such endpoint")

    routes = [
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(f"{ROSTER}/orgs", collection("orgs")),
        Route(f"{ROSTER}/schools", collection("orgs", type="school")),
        Route(f"{ROSTER}/academicSessions", collection("academicSessions")),
        Route(f"{ROSTER}/terms", collection("academicSessions", type="term")),
        Route(f"{ROSTER}/courses", collection("courses")),
        Route(f"{ROSTER}/classes", collection("classes")),
        Route(f"{ROSTER}/classes/{{id}}", one_class),
        Route(f"{ROSTER}/users", collection("users")),
        Route(f"{ROSTER}/enrollments", collection("enrollments")),
        Route(f"{ROSTER}/demographics", collection("demographics")),
        Route(f"{ROSTER}/schools/{{school}}/classes/{{cls}}/enrollments",
              scoped("enrollments", "classSourcedId")),
        Route(f"{GRADEBOOK}/categories", collection("categories")),
        Route(f"{GRADEBOOK}/lineItems", collection("lineItems")),
        Route(f"{GRADEBOOK}/results", collection("results")),
        Route(f"{GRADEBOOK}/classes/{{cls}}/lineItems", scoped("lineItems", "classSourcedId")),
        Route(f"{GRADEBOOK}/classes/{{cls}}/results", class_results),
        Route("/{path:path}", unknown, methods=["GET", "POST", "PUT", "DELETE"]),
    ]  # fmt: skip
    app = Starlette(routes=routes)
    app.state.or_state = state
    return app


async def _guard(request: Request, state: _State, run) -> Response:
    """Stats, bearer token, latency and faults around one GET; failures as imsx payloads."""
    path = request.url.path
    state.stats.record_request(path)
    if state.settings.latency_ms:
        await asyncio.sleep(state.settings.latency_ms / 1000)
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer ") or not state.tokens.valid(header[7:]):
        return imsx_error(401, "unauthorisedrequest", "missing, expired or unknown access token")
    target = path + ("?" + request.url.query if request.url.query else "")
    fault = state.faults.decide("GET", target)
    if fault in ("500", "502", "503", "504"):
        state.stats.record_fault(fault)
        return imsx_error(int(fault), "server_busy", "the service is temporarily unavailable")
    try:
        return run()
    except _Failure as failure:
        return imsx_error(failure.status, failure.minor, failure.description)


_CLAUSE = re.compile(r"^\s*([A-Za-z.]+)\s*(>=|<=|!=|=|>|<|~)\s*'([^']*)'\s*$")


def _filters(text: str | None, file: str) -> list[tuple[str, str, str]]:
    if not text:
        return []
    clauses = []
    for part in re.split(r"\s+AND\s+", text):
        m = _CLAUSE.match(part)
        if m is None:
            raise _Failure(400, "invalid_filter_field", "filter is not field<op>'value'")
        name, op, value = m.groups()
        if name not in ("sourcedId", "status", "dateLastModified", "role", "type", "title"):
            raise _Failure(400, "invalid_filter_field", f"cannot filter on {name}")
        clauses.append((name, op, value))
    return clauses


def _keep(row: Record, clauses: list[tuple[str, str, str]]) -> bool:
    for name, op, value in clauses:
        have = row.get(name) or ""
        if name == "dateLastModified":  # compare instants, not text spellings
            have, value = _instant(have), _instant(value)
        ok = {
            "=": have == value, "!=": have != value, ">": have > value, ">=": have >= value,
            "<": have < value, "<=": have <= value, "~": value.lower() in have.lower(),
        }[op]  # fmt: skip
        if not ok:
            return False
    return True


def _instant(text: str) -> str:
    t = text.replace("Z", "").replace("z", "")
    if "." not in t and "T" in t:
        t += ".000"
    return t.ljust(23, "0") if "T" in t else t


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise _Failure(400, "invalid_selection_field", f"{name} must be a non-negative integer")
    return int(raw)


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _list(
    request: Request, state: _State, file: str, preset: dict[str, str], keep=None
) -> Response:
    inst = state.institution
    clauses = _filters(request.query_params.get("filter"), file)
    limit = min(_int(request, "limit", 100), state.settings.max_limit) or 100
    offset = _int(request, "offset", 0)
    rows = [
        r
        for r in inst.records[file]
        if all(r.get(k) == v for k, v in preset.items())
        and (keep is None or keep(r))
        and _keep(r, clauses)
    ]
    page = rows[offset : offset + limit]
    base = _base(request)
    name = {"orgs": "schools" if preset.get("type") == "school" else "orgs"}.get(file, file)
    if file == "academicSessions" and preset.get("type") == "term":
        name = "terms"
    body = {name: [to_json(file, r, inst, base) for r in page]}
    headers = {"X-Total-Count": str(len(rows))}
    links = []
    params = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
    url = f"{base}{request.url.path}?"
    if offset + limit < len(rows):
        links.append(
            f'<{url}{urlencode({**params, "limit": limit, "offset": offset + limit})}>; rel="next"'
        )
    last = max(0, (len(rows) - 1) // limit * limit)
    links.append(f'<{url}{urlencode({**params, "limit": limit, "offset": last})}>; rel="last"')
    headers["Link"] = ", ".join(links)
    return JSONResponse(body, headers=headers)


def _basic(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password

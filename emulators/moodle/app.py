"""The Moodle REST server (``/webservice/rest/server.php``) over an Institution.

One route, as on a real site (moodle-api.md §1): ``wstoken``, ``wsfunction`` and
``moodlewsrestformat`` plus the function's bracketed parameters, by GET query or POST form.
Without ``moodlewsrestformat=json`` the answer is XML. Errors are HTTP 200 bodies (§4); only
"web services disabled" is HTTP 403 with an empty body. Faults, stats and the worker limit live
in ``frontdoor.py``; latency is simulated here, where the record count is known.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.canvas.stats import EmulatorStats
from emulators.moodle import errors, wire
from emulators.moodle.errors import MoodleError
from emulators.moodle.frontdoor import MoodleFrontDoor
from emulators.moodle.functions import (
    FUNCTIONS,
    KNOWN_OUTSIDE_SERVICE,
    OFFSET_PAGED,
    count_records,
)
from emulators.moodle.institution import Institution
from emulators.moodle.settings import MoodleEmulatorSettings

__all__ = ["SERVER_PATH", "create_app"]

SERVER_PATH = "/webservice/rest/server.php"
_JSON = "application/json"
_XML = "application/xml; charset=utf-8"


def create_app(
    institution: Institution,
    *,
    settings: MoodleEmulatorSettings,
    stats: EmulatorStats | None = None,
) -> Starlette:
    """A Starlette app serving ``institution`` as a Moodle 4.5 site; ``app.state.stats`` counts."""
    app = Starlette(
        routes=[
            Route(SERVER_PATH, _server, methods=["GET", "POST"]),
            Route("/{path:path}", _not_found, methods=["GET", "POST"]),
        ]
    )
    app.state.institution = institution
    app.state.settings = settings
    app.state.stats = stats if stats is not None else EmulatorStats()
    app.add_middleware(MoodleFrontDoor, settings=settings, stats=app.state.stats)
    return app


async def _not_found(request: Request) -> Response:
    return Response(b"", status_code=404)


async def _server(request: Request) -> Response:
    settings: MoodleEmulatorSettings = request.app.state.settings
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        # Form-encoded bodies (moodle-api.md §1), parsed without python-multipart.
        pairs += parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    flat = dict(pairs)
    as_json = flat.get("moodlewsrestformat") == "json"
    try:
        if flat.get("wstoken") != settings.token:
            raise errors.invalid_token()
        function = flat.get("wsfunction", "")
        service = settings.service_functions
        if function not in FUNCTIONS and function not in KNOWN_OUTSIDE_SERVICE:
            raise errors.unknown_function()
        if function in KNOWN_OUTSIDE_SERVICE or (service is not None and function not in service):
            raise errors.access_exception()
        args = wire.nest(
            [(k, v) for k, v in pairs if k not in ("wstoken", "wsfunction", "moodlewsrestformat")]
        )
        payload = FUNCTIONS[function](request.app.state.institution, args)
        if function == "core_webservice_get_site_info":
            names = sorted(service if service is not None else FUNCTIONS)
            payload["functions"] = [{"name": n, "version": _version(n)} for n in names]
        if function in OFFSET_PAGED:
            payload = _offset_page(request, args, payload)
    except MoodleError as exc:
        body = exc.body(debug=settings.debug)
        if as_json:
            return Response(wire.dumps_json(body), media_type=_JSON)
        return Response(wire.xml_exception(body), media_type=_XML)
    records = count_records(function, payload)
    request.scope.setdefault("state", {})["records"] = records
    delay = settings.latency.seconds(function, records)
    if delay:
        await asyncio.sleep(delay)
    if as_json:
        return Response(wire.dumps_json(payload), media_type=_JSON)
    return Response(wire.dumps_xml(payload), media_type=_XML)


def _version(function: str) -> str:
    # moodle-api.md §3.1: "2024100706" for core functions, "2024100700" for plugin functions.
    return (
        "2024100706"
        if function.startswith(("core_", "gradereport_", "mod_assign"))
        else ("2024100700")
    )


def _offset_page(request: Request, args: dict[str, Any], records: list) -> list:
    """``limitfrom``/``limitnumber`` (blackboard-moodle-attendance.md §2b). No "next" marker and
    no total: a short page is the last one. ``limitnumber`` 0 means no limit."""
    opts = {}
    for pair in args.get("options", []) or []:
        opts[str(pair.get("name"))] = str(pair.get("value", ""))
    try:
        start = max(0, int(opts.get("limitfrom", "0") or 0))
        limit = max(0, int(opts.get("limitnumber", "0") or 0))
    except ValueError as exc:
        raise errors.invalid_parameter("options => limitfrom/limitnumber must be int") from exc
    page = records[start : start + limit] if limit else records[start:]
    duplicate = request.scope.get("state", {}).get("fault_duplicate")
    if duplicate and start > 0 and limit and len(page) < limit and start <= len(records):
        # faults.py: the previous page's last record again, at the top of the final page.
        page = [records[start - 1], *page]
        request.scope["state"]["duplicate_applied"] = True
    return page

"""Canvas account reports (canvas-api.md §7): start a run, poll its status, download its CSV.

::

    POST /api/v1/accounts/1/reports/grade_export_csv     → Report {id, status: "created", ...}
    GET  /api/v1/accounts/1/reports/grade_export_csv/7   → created → running (progress) → complete
    GET  /api/v1/accounts/1/files/{id}/download          the CSV (file_url of a complete run)
    PUT  .../reports/grade_export_csv/7/abort            → status "aborted"
    DELETE .../reports/grade_export_csv/7                → status "deleted"

These are REST routes: they sit behind the same front door (token, throttle, faults) as the rest
of Canvas. ``grade_export_csv`` follows §7.4 (StudentEnrollments of published courses, active and
completed enrollments unless ``include_deleted``); the run's progress is a function of its age.
"""

from __future__ import annotations

import csv
import io
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from emulators.canvas.errors import NOT_FOUND
from emulators.canvas.institution import Institution

GRADE_EXPORT_HEADER = (
    "student name", "student id", "student sis", "course", "course id", "course sis", "section",
    "section id", "section sis", "term", "term id", "term sis", "current score", "final score",
    "enrollment state", "unposted current score", "unposted final score", "current grade",
    "final grade", "unposted current grade", "unposted final grade",
)  # fmt: skip
AVAILABLE = {"grade_export_csv": "Grade Export"}


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass
class _Run:
    id: int
    report: str
    parameters: dict[str, str]
    created: float
    status_override: str | None = None
    attachment_id: int | None = None
    rows: int = 0


@dataclass
class ReportService:
    """Report runs of one emulated account; a run takes ``processing_seconds`` to complete."""

    institution: Institution
    processing_seconds: float = 1.0
    fail_next: int = 0  # tests: the next N runs end in status "error"
    created: int = 0
    _runs: dict[int, _Run] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, report: str, parameters: dict[str, str]) -> _Run:
        with self._lock:
            self.created += 1
            run = _Run(next(self._ids), report, parameters, time.time())
            if self.fail_next > 0:
                self.fail_next -= 1
                run.status_override = "error"
            self._runs[run.id] = run
            return run

    def get(self, report: str, run_id: str) -> _Run | None:
        run = self._runs.get(int(run_id)) if run_id.isdigit() else None
        return run if run is not None and run.report == report else None

    def status(self, run: _Run) -> tuple[str, int]:
        age = time.time() - run.created
        fraction = min(1.0, age / self.processing_seconds) if self.processing_seconds else 1.0
        if run.status_override in ("aborted", "deleted"):
            return run.status_override, int(fraction * 100)
        if fraction < 0.1:
            return "created", 0
        if fraction < 1.0:
            return "running", int(fraction * 100)
        if run.status_override == "error":
            return "error", 100
        return "complete", 100

    def doc(self, run: _Run, base_url: str) -> dict[str, Any]:
        status, progress = self.status(run)
        done = status == "complete"
        started = run.created + 0.1 * self.processing_seconds
        ended = run.created + self.processing_seconds
        out: dict[str, Any] = {
            "id": run.id,
            "report": run.report,
            "status": status,
            "progress": progress,
            "current_line": None,
            "parameters": {**run.parameters, "extra_text": "Term: All Terms;"},
            "created_at": _iso(run.created),
            "started_at": _iso(started) if status != "created" else None,
            "ended_at": _iso(ended) if status in ("complete", "error") else None,
            "run_time": round(min(time.time(), ended) - run.created, 3),
            "file_url": None,
        }
        if done:
            file_id = 70_000 + run.id
            url = f"{base_url}/api/v1/accounts/1/files/{file_id}/download"
            out["file_url"] = url
            out["attachment"] = {
                "id": file_id,
                "display_name": f"{run.report}_{run.id}.csv",
                "filename": f"{run.report}_{run.id}.csv",
                "content-type": "text/csv",
                "url": url,
                "workflow_state": "processed",
                "upload_status": "success",
            }
        return out

    def csv_rows(self, run: _Run) -> Iterator[list[Any]]:
        """grade_export_csv rows (canvas-api.md §7.4)."""
        inst = self.institution
        include_deleted = run.parameters.get("include_deleted") in ("true", "1")
        terms = {t["id"]: t for t in inst.terms()}
        yield list(GRADE_EXPORT_HEADER)
        for cid in inst.course_ids():
            course = inst.course(cid)
            if course["workflow_state"] != "available" and not include_deleted:
                continue
            term = terms[course["enrollment_term_id"]]
            sections = {s["id"]: s for s in inst.sections(cid)}
            for e in sorted(inst.enrollments(cid), key=lambda e: e["id"]):
                if e["type"] != "StudentEnrollment":
                    continue
                state = {"completed": "concluded"}.get(e["enrollment_state"], e["enrollment_state"])
                if state not in ("active", "concluded") and not include_deleted:
                    continue
                g, s = e["grades"], sections[e["course_section_id"]]
                yield [
                    e["user"]["name"], e["user_id"], e["sis_user_id"], course["name"], cid,
                    course["sis_course_id"], s["name"], s["id"], s["sis_section_id"],
                    term["name"], term["id"], term["sis_term_id"], g["current_score"],
                    g["final_score"], state, g["unposted_current_score"],
                    g["unposted_final_score"], g["current_grade"], g["final_grade"],
                    g["unposted_current_grade"], g["unposted_final_grade"],
                ]  # fmt: skip


def _service(request: Request) -> ReportService:
    return request.app.state.reports


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _not_found() -> JSONResponse:
    return JSONResponse(NOT_FOUND, status_code=404)


async def _available(request: Request) -> Response:
    return JSONResponse(
        [
            {"report": k, "title": v, "parameters": None, "last_run": None}
            for k, v in AVAILABLE.items()
        ]
    )


async def _start(request: Request) -> Response:
    report = request.path_params["report"]
    if report not in AVAILABLE:
        return _not_found()
    form = parse_qsl((await request.body()).decode("utf-8", "replace"))
    params = {
        k[len("parameters[") : -1]: str(v)
        for k, v in form
        if k.startswith("parameters[") and k.endswith("]")
    }
    if not params and request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        params = {k: str(v) for k, v in (body.get("parameters") or {}).items()}
    service = _service(request)
    return JSONResponse(service.doc(service.start(report, params), _base(request)))


async def _show(request: Request) -> Response:
    service = _service(request)
    run = service.get(request.path_params["report"], request.path_params["run_id"])
    if run is None or run.status_override == "deleted":
        return _not_found()
    if request.method == "DELETE":
        run.status_override = "deleted"
    return JSONResponse(service.doc(run, _base(request)))


async def _abort(request: Request) -> Response:
    service = _service(request)
    run = service.get(request.path_params["report"], request.path_params["run_id"])
    if run is None or run.status_override == "deleted":
        return _not_found()
    if service.status(run)[0] in ("created", "running"):
        run.status_override = "aborted"
    return JSONResponse(service.doc(run, _base(request)))


async def _download(request: Request) -> Response:
    service = _service(request)
    raw = request.path_params["file_id"]
    run = service._runs.get(int(raw) - 70_000) if raw.isdigit() else None
    if run is None or service.status(run)[0] != "complete":
        return _not_found()

    def body() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for n, row in enumerate(service.csv_rows(run)):
            writer.writerow(["" if v is None else v for v in row])
            if n % 1000 == 999:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8")


def report_routes() -> list[Route]:
    """The account-report routes, to sit before the REST app's catch-all route."""
    return [
        Route("/api/v1/accounts/{account_id}/reports", _available),
        Route("/api/v1/accounts/{account_id}/reports/{report}", _start, methods=["POST"]),
        Route(
            "/api/v1/accounts/{account_id}/reports/{report}/{run_id}",
            _show,
            methods=["GET", "DELETE"],
        ),
        Route(
            "/api/v1/accounts/{account_id}/reports/{report}/{run_id}/abort",
            _abort,
            methods=["PUT"],
        ),
        Route("/api/v1/accounts/{account_id}/files/{file_id}/download", _download),
    ]

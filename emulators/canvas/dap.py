"""Canvas Data 2 (the DAP query API, canvas-api.md §5) over the same Institution the REST routes
serve, at the same base URL.

::

    POST /ids/auth/login            Basic client_id:secret, grant_type=client_credentials → JWT
    GET  /dap/query/canvas/table                         → {"tables": [...]}
    GET  /dap/query/canvas/table/{table}/schema          → {"schema": {...}, "version": 1}
    POST /dap/query/canvas/table/{table}/data            → Job (snapshot, or incremental with since)
    GET  /dap/job/{id}                                   → Job: waiting → running → complete|failed
    POST /dap/object/url   [{"id": ...}]                 → {"urls": {id: {"url": pre-signed}}}
    GET  /dap/_objects/{job}/{part}?expires=..&sig=..     the pre-signed object (gzip JSONL/CSV)

Records are ``{"key": {...}, "value": {...}, "meta": {"ts", "action"}}``; null values are
omitted; ``D`` records carry only the key. Every row is built from the Institution's public
methods, so a snapshot holds exactly what the REST routes serve. Column names follow the Canvas
database (``title``, ``context_id``, ``workflow_state``; ``submission_types`` as a comma list);
canvas-api.md §5.7 leaves per-table columns unverified, so ``submissions`` also carries the REST
computed fields (``late``, ``missing``, ``seconds_late``, ``entered_score``/``_grade``) and
``scores`` carries the letter grades the REST ``grades`` object shows — both marked in the schema.

Time: a record's ``meta.ts`` is its last change (``updated_at``, or for submissions the latest of
submitted/graded/posted). The rows of a student ``Institution.apply_changes`` added (enrollment,
score, submissions; this dataset has no users table) carry the time of the addition
(``Changes.students_added_at``) when that is later, since their seeded timestamps predate it. The
dataset has a clock (``DapService.clock``, default: after every change): a snapshot holds the
records with ``ts < at``; an incremental holds those with ``since <= ts < until`` (since
inclusive, until exclusive). What ``Institution.apply_changes`` removed (an assignment, its
submissions, a deleted enrollment's submissions) comes as a ``D`` record in the incremental whose
window holds the removal. ``DapService.change`` layers extra updates and deletions over the ground
truth for tests.
"""

from __future__ import annotations

import base64
import calendar
import csv
import gzip
import hashlib
import hmac
import io
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from emulators.canvas.institution import ANCHOR, Institution
from emulators.canvas.settings import DEFAULT_DAP_CLIENT_ID, DEFAULT_DAP_CLIENT_SECRET

NAMESPACE = "canvas"

# canvas-api.md §5.5: calls per minute, per endpoint.
RATE_LIMITS = {"create_job": 5, "get_job": 500, "list_tables": 5, "schema": 500, "object_url": 200}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def _parse_iso(text: str) -> float:
    """ISO 8601 with Z or an offset (seconds precision is enough here) → epoch seconds."""
    text = text.strip().replace("z", "Z")
    base, offset = text[:19], text[19:]
    if "." in offset:  # fractional seconds
        frac_end = next((i for i, c in enumerate(offset[1:], 1) if not c.isdigit()), len(offset))
        offset = offset[frac_end:]
    epoch = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    if offset in ("", "Z", "+00:00", "+0000"):
        return float(epoch)
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = int(offset[1:3]), int(offset[-2:])
    return float(epoch - sign * (hours * 3600 + minutes * 60))


# ---- tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DapTable:
    """One table: its value columns (name → JSON Schema type) and how rows are built."""

    name: str
    columns: dict[str, str]
    rows: Callable[[Institution, int], Iterator[tuple[int, str, dict[str, Any]]]]
    notes: str = ""
    # (key, when) of rows the ground truth no longer has (``Institution.apply_changes``): an
    # incremental covering ``when`` carries their ``D`` record (§5.4).
    removed: Callable[[Institution, int], Iterable[tuple[int, str]]] | None = None


def _clean(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}  # §5.4: nulls are omitted


def _submission_rows(inst: Institution, course_id: int) -> Iterator[tuple[int, str, dict]]:
    fallback = inst.course(course_id)["created_at"]
    added = inst.changes.students_added_at
    for s in inst.iter_submissions(course_id):
        ts = max(t for t in (s["submitted_at"], s["graded_at"], s["posted_at"], fallback) if t)
        value = {k: s[k] for k in _SUBMISSION_VALUES if k != "course_id" and k != "updated_at"}
        value["course_id"] = course_id
        value["updated_at"] = ts
        yield s["id"], _added_ts(added, s["user_id"], ts), value


def _added_ts(added: dict[int, str], user_id: int, ts: str) -> str:
    """A row of a student ``Institution.apply_changes`` added (its seeded timestamps are older)
    entered the dataset when the student was added: ``meta.ts`` is the later of the two."""
    at = added.get(user_id)
    return ts if at is None or at <= ts else at


_SUBMISSION_VALUES = {
    "user_id": "integer",
    "assignment_id": "integer",
    "course_id": "integer",
    "score": "number",
    "grade": "string",
    "entered_score": "number",
    "entered_grade": "string",
    "workflow_state": "string",
    "submitted_at": "string",
    "graded_at": "string",
    "posted_at": "string",
    "late": "boolean",
    "missing": "boolean",
    "excused": "boolean",
    "attempt": "integer",
    "late_policy_status": "string",
    "seconds_late": "integer",
    "grade_matches_current_submission": "boolean",
    "submission_type": "string",
    "grader_id": "integer",
    "updated_at": "string",
}


def _assignment_rows(inst: Institution, course_id: int) -> Iterator[tuple[int, str, dict]]:
    for a in inst.assignments(course_id):
        value = {
            "context_id": a["course_id"],
            "context_type": "Course",
            "title": a["name"],
            "points_possible": a["points_possible"],
            "due_at": a["due_at"],
            "lock_at": a["lock_at"],
            "unlock_at": a["unlock_at"],
            "grading_type": a["grading_type"],
            "workflow_state": a["workflow_state"],
            "omit_from_final_grade": a["omit_from_final_grade"],
            "submission_types": ",".join(a["submission_types"]),
            "assignment_group_id": a["assignment_group_id"],
            "position": a["position"],
            "created_at": a["created_at"],
            "updated_at": a["updated_at"],
        }
        yield a["id"], a["updated_at"], value


def _enrollment_rows(inst: Institution, course_id: int) -> Iterator[tuple[int, str, dict]]:
    added = inst.changes.students_added_at
    for e in inst.enrollments(course_id):
        value = {
            "user_id": e["user_id"],
            "course_id": e["course_id"],
            "course_section_id": e["course_section_id"],
            "type": e["type"],
            "role_id": e["role_id"],
            "workflow_state": e["enrollment_state"],
            "associated_user_id": e["associated_user_id"],
            "start_at": e["start_at"],
            "end_at": e["end_at"],
            "last_activity_at": e["last_activity_at"],
            "last_attended_at": e["last_attended_at"],
            "total_activity_time": e["total_activity_time"],
            "created_at": e["created_at"],
            "updated_at": e["updated_at"],
        }
        yield e["id"], _added_ts(added, e["user_id"], e["updated_at"]), value


def _score_rows(inst: Institution, course_id: int) -> Iterator[tuple[int, str, dict]]:
    added = inst.changes.students_added_at
    for e in inst.enrollments(course_id):
        grades = e.get("grades")
        if grades is None:
            continue
        value = {
            "enrollment_id": e["id"],
            "course_score": True,
            "workflow_state": "active",
            "current_score": grades["current_score"],
            "final_score": grades["final_score"],
            "unposted_current_score": grades["unposted_current_score"],
            "unposted_final_score": grades["unposted_final_score"],
            "override_score": e.get("override_score"),
            "current_grade": grades["current_grade"],
            "final_grade": grades["final_grade"],
            "override_grade": e.get("override_grade"),
            "created_at": e["created_at"],
            "updated_at": e["updated_at"],
        }
        yield 900_000_000 + e["id"], _added_ts(added, e["user_id"], e["updated_at"]), value


TABLES: dict[str, DapTable] = {
    t.name: t
    for t in (
        DapTable(
            "submissions",
            _SUBMISSION_VALUES,
            _submission_rows,
            "late, missing, seconds_late, entered_score, entered_grade: emulator extension "
            "(REST computed fields; CD2 columns unverified)",
            Institution.removed_submissions,
        ),
        DapTable(
            "assignments",
            {
                "context_id": "integer",
                "context_type": "string",
                "title": "string",
                "points_possible": "number",
                "due_at": "string",
                "lock_at": "string",
                "unlock_at": "string",
                "grading_type": "string",
                "workflow_state": "string",
                "omit_from_final_grade": "boolean",
                "submission_types": "string",
                "assignment_group_id": "integer",
                "position": "integer",
                "created_at": "string",
                "updated_at": "string",
            },
            _assignment_rows,
            removed=Institution.removed_assignments,
        ),
        DapTable(
            "enrollments",
            {
                "user_id": "integer",
                "course_id": "integer",
                "course_section_id": "integer",
                "type": "string",
                "role_id": "integer",
                "workflow_state": "string",
                "associated_user_id": "integer",
                "start_at": "string",
                "end_at": "string",
                "last_activity_at": "string",
                "last_attended_at": "string",
                "total_activity_time": "integer",
                "created_at": "string",
                "updated_at": "string",
            },
            _enrollment_rows,
        ),
        DapTable(
            "scores",
            {
                "enrollment_id": "integer",
                "course_score": "boolean",
                "workflow_state": "string",
                "current_score": "number",
                "final_score": "number",
                "unposted_current_score": "number",
                "unposted_final_score": "number",
                "override_score": "number",
                "current_grade": "string",
                "final_grade": "string",
                "override_grade": "string",
                "created_at": "string",
                "updated_at": "string",
            },
            _score_rows,
            "current_grade, final_grade, override_grade: emulator extension (unverified in CD2)",
        ),
    )
}


def table_schema(table: DapTable) -> dict[str, Any]:
    """The JSON Schema ``GET .../schema`` serves: key/value/meta properties (§5.2)."""
    return {
        "type": "object",
        "description": table.notes or f"Canvas {table.name}",
        "properties": {
            "key": {
                "type": "object",
                "properties": {"id": {"type": "integer", "format": "int64"}},
                "required": ["id"],
            },
            "value": {
                "type": "object",
                "properties": {c: {"type": t} for c, t in table.columns.items()},
            },
            "meta": {
                "type": "object",
                "properties": {
                    "ts": {"type": "string", "format": "date-time"},
                    "action": {"type": "string", "enum": ["U", "D"]},
                },
            },
        },
    }


# ---- settings, jobs and the service ----------------------------------------------------------


@dataclass(frozen=True)
class DapSettings:
    """How the emulated DAP behaves. Defaults: quick jobs, the documented limits."""

    client_id: str = DEFAULT_DAP_CLIENT_ID
    client_secret: str = DEFAULT_DAP_CLIENT_SECRET
    processing_seconds: float = 1.0  # waiting for the first third, then running
    token_ttl_seconds: int = 3600
    url_ttl_seconds: float = 900.0  # pre-signed URLs (§5.2: ~15 min)
    job_ttl_seconds: float = 86_400.0  # jobs and objects (§5.2: ~24 h)
    rate_limits: dict[str, int] = field(default_factory=lambda: dict(RATE_LIMITS))
    courses_per_object: int = 50
    # An incremental whose since is older than this many seconds before `until` → SnapshotRequired.
    max_incremental_seconds: float = 400 * 86_400.0
    gzip_level: int = 1


@dataclass
class _Job:
    id: str
    table: str
    format: str
    mode: str | None
    since: float | None
    until: float
    created: float  # monotonic
    expires_at: float  # wall clock
    fail: dict | None = None
    objects: list[tuple[str, list[int]]] = field(default_factory=list)

    def doc(self, settings: DapSettings, now: float) -> dict[str, Any]:
        age = now - self.created
        status = (
            "waiting"
            if age < settings.processing_seconds / 3
            else "running"
            if age < settings.processing_seconds
            else "failed"
            if self.fail
            else "complete"
        )
        out: dict[str, Any] = {"id": self.id, "status": status, "expires_at": _iso(self.expires_at)}
        if status == "failed":
            out["error"] = self.fail
        elif status == "complete":
            out["objects"] = [{"id": oid} for oid, _ in self.objects]
            out["schema_version"] = 1
            if self.since is None:
                out["at"] = _iso(self.until)
            else:
                out["since"], out["until"] = _iso(self.since), _iso(self.until)
        return out


class DapError(Exception):
    def __init__(self, status: int, type_: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {"type": type_, "uuid": str(uuid.uuid4()), "message": message, **extra}
        }


class DapService:
    """The DAP side of one emulated Canvas: tokens, jobs, objects, limits and counters."""

    def __init__(self, institution: Institution, settings: DapSettings) -> None:
        self.institution = institution
        self.settings = settings
        self.clock: float = ANCHOR + 3600  # the data's "now": every ground-truth change is before
        self.wall: Callable[[], float] = time.time  # what pre-signed URL and job expiry read
        self.monotonic: Callable[[], float] = time.monotonic  # what the rate limits read
        self.fail_next_jobs = 0  # tests: the next N jobs end failed (ProcessingError)
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.jobs_created = 0
        self._jobs: dict[str, _Job] = {}
        self._tokens: dict[str, float] = {}
        self._changes: dict[tuple[str, int], list[tuple[float, dict | None]]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._sign_key = uuid.uuid4().bytes

    # -- test hooks --

    def change(self, table: str, key_id: int, *, at: float, values: dict | None) -> None:
        """Layer a change over the ground truth: ``values`` updates the row at ``at``; None
        deletes it (an incremental covering ``at`` then carries a ``D`` record)."""
        self._changes.setdefault((table, key_id), []).append((at, values))
        self._changes[(table, key_id)].sort(key=lambda e: e[0])

    def expire_job(self, job_id: str) -> None:
        self._jobs[job_id].expires_at = 0.0

    def current_rows(self, table: str, *, at: float | None = None) -> dict[int, dict]:
        """key id → value of every live row as of ``at`` (default: the clock): ground truth."""
        return {
            k: v
            for k, action, _, v in self._records(
                table, None, self.clock if at is None else at, None
            )
            if action == "U"
        }

    # -- records --

    def _records(
        self, table: str, since: float | None, until: float, courses: list[int] | None
    ) -> Iterator[tuple[int, str, str, dict]]:
        """(key, action, ts, value) of the table in [since, until) — a snapshot when since is
        None (live rows only)."""
        spec = TABLES[table]
        since_s = _iso(since) if since is not None else None
        until_s = _iso(until)
        for cid in courses if courses is not None else self.institution.course_ids():
            for key, ts, value in spec.rows(self.institution, cid):
                events = self._changes.get((table, key))
                if events:
                    live = [e for e in events if e[0] < until]
                    if live:
                        at, values = live[-1]
                        ts = _iso(at)
                        if values is None:
                            if since_s is not None and ts >= since_s:
                                yield key, "D", ts, {}
                            continue
                        value = {**value, **values, "updated_at": ts}
                if ts >= until_s or (since_s is not None and ts < since_s):
                    continue
                yield key, "U", ts, value
            if since_s is not None and spec.removed is not None:
                for key, ts in spec.removed(self.institution, cid):
                    if since_s <= ts < until_s:
                        yield key, "D", ts, {}

    # -- HTTP --

    def limit(self, endpoint: str) -> None:
        """Sliding one-minute window per endpoint (§5.5); 429 with Retry-After when full."""
        per_minute = self.settings.rate_limits.get(endpoint)
        self.calls[endpoint] += 1
        if not per_minute:
            return
        with self._lock:
            now = self.monotonic()
            window = self._windows.setdefault(endpoint, deque())
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) >= per_minute:
                self.throttled[endpoint] += 1
                retry = max(1, int(60.0 - (now - window[0]) + 0.999))
                raise DapError(
                    429,
                    "TooManyRequests",
                    f"Rate limit of {per_minute} calls per minute exceeded for {endpoint}",
                    retry_after=retry,
                )
            window.append(now)

    def authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        expires = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None or expires < time.time():
            raise DapError(401, "AuthenticationError", "Missing or invalid access token")

    def login(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            client_id = secret = ""
        if scheme.lower() != "basic" or not client_id:
            raise DapError(403, "AuthenticationError", "Missing or malformed Basic credentials")
        if form.get("grant_type") != "client_credentials":
            raise DapError(400, "ValidationError", "grant_type must be client_credentials")
        if not (
            hmac.compare_digest(client_id, self.settings.client_id)
            and hmac.compare_digest(secret, self.settings.client_secret)
        ):
            raise DapError(403, "AuthenticationError", "Invalid client credentials")
        token = _fake_jwt(client_id, self.settings.token_ttl_seconds)
        self._tokens[token] = time.time() + self.settings.token_ttl_seconds
        return {
            "access_token": token,
            "expires_in": self.settings.token_ttl_seconds,
            "scope": "urn:canvas:dap",
            "token_type": "Bearer",
        }

    def create_job(self, table: str, body: dict[str, Any]) -> dict[str, Any]:
        if table not in TABLES:
            raise DapError(
                404, "ObjectNotFound", f"The table '{table}' is not valid.", kind="table", id=table
            )
        fmt = body.get("format", "jsonl")
        if fmt not in ("jsonl", "csv", "tsv", "parquet"):
            raise DapError(400, "ValidationError", f"Unsupported format {fmt!r}", location="format")
        if fmt in ("tsv", "parquet"):
            raise DapError(
                400, "ValidationError", f"format {fmt!r} is not emulated", location="format"
            )
        until = _parse_iso(body["until"]) if body.get("until") else self.clock
        since = None
        if body.get("since"):
            since = _parse_iso(body["since"])
            if since >= until:
                raise DapError(
                    400, "ValidationError", "since must be before until", location="since"
                )
            if until - since > self.settings.max_incremental_seconds:
                raise DapError(
                    400,
                    "SnapshotRequired",
                    "The since timestamp is too old; take a new snapshot.",
                    since=_iso(since),
                    until=_iso(until),
                )
        with self._lock:
            self.jobs_created += 1
            job = _Job(
                id=str(uuid.uuid4()),
                table=table,
                format=fmt,
                mode=body.get("mode"),
                since=since,
                until=until,
                created=time.monotonic(),
                expires_at=self.wall() + self.settings.job_ttl_seconds,
            )
            if self.fail_next_jobs > 0:
                self.fail_next_jobs -= 1
                job.fail = {
                    "type": "ProcessingError",
                    "uuid": str(uuid.uuid4()),
                    "message": "The query could not be processed.",
                }
            courses = self.institution.course_ids()
            step = max(1, self.settings.courses_per_object)
            ext = "jsonl" if fmt == "jsonl" else "csv"
            job.objects = [
                (f"{job.id}/part-{i // step:05d}.{ext}.gz", courses[i : i + step])
                for i in range(0, len(courses), step)
            ]
            self._jobs[job.id] = job
        return job.doc(self.settings, time.monotonic())

    def job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None or job.expires_at <= self.wall():
            raise DapError(
                404, "ObjectNotFound", f"The job '{job_id}' does not exist.", kind="job", id=job_id
            )
        return job

    def object_urls(self, base_url: str, ids: list[str]) -> dict[str, Any]:
        urls = {}
        for oid in ids:
            job_id = oid.split("/", 1)[0]
            job = self._jobs.get(job_id)
            if job is None or job.expires_at <= self.wall() or oid not in dict(job.objects):
                raise DapError(
                    404,
                    "ObjectNotFound",
                    f"The object '{oid}' does not exist.",
                    kind="object",
                    id=oid,
                )
            expires = int(self.wall() + self.settings.url_ttl_seconds)
            sig = self._sign(oid, expires)
            urls[oid] = {"url": f"{base_url}/dap/_objects/{oid}?expires={expires}&sig={sig}"}
        return {"urls": urls}

    def _sign(self, oid: str, expires: int) -> str:
        return hmac.new(self._sign_key, f"{oid}|{expires}".encode(), hashlib.sha256).hexdigest()

    def object_body(self, oid: str, expires: str, sig: str) -> Iterator[bytes]:
        try:
            valid = hmac.compare_digest(sig, self._sign(oid, int(expires)))
        except ValueError:
            valid = False
        if not valid:
            raise _S3Error("SignatureDoesNotMatch", "The request signature does not match.")
        if int(expires) < self.wall():
            raise _S3Error("AccessDenied", "Request has expired")
        job = self._jobs.get(oid.split("/", 1)[0])
        if job is None or job.expires_at <= self.wall():
            raise _S3Error("NoSuchKey", "The specified key does not exist.", status=404)
        courses = dict(job.objects)[oid]
        return self._encode(job, courses)

    def _encode(self, job: _Job, courses: list[int]) -> Iterator[bytes]:
        buffer = io.BytesIO()
        gz = gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=self.settings.gzip_level)
        columns = list(TABLES[job.table].columns)
        writer = None
        if job.format == "csv":
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="", write_through=True)
            writer = csv.writer(text, lineterminator="\n")
            action = ["meta.action"] if job.since is not None else []
            writer.writerow(["meta.ts", *action, "key.id", *(f"value.{c}" for c in columns)])
        records = self._records(job.table, job.since, job.until, courses)
        for n, (key, action, ts, value) in enumerate(records, 1):
            if writer is not None:
                row = [ts, *([action] if job.since is not None else []), key]
                row += [_csv_value(value.get(c)) for c in columns]
                writer.writerow(row)
            else:
                rec: dict[str, Any] = {"key": {"id": key}}
                if action == "U":
                    rec["value"] = _clean(value)
                rec["meta"] = {"ts": ts, "action": action}
                gz.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode())
                gz.write(b"\n")
            if n % 2000 == 0 and buffer.tell():
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        gz.close()
        yield buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return "NULL"  # §5.4: unquoted NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _S3Error(Exception):
    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status
        self.body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        ).encode()


def _fake_jwt(subject: str, ttl: int) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{uuid.uuid4().hex}"


# ---- routes ----------------------------------------------------------------------------------


def _error(exc: DapError) -> JSONResponse:
    headers = {}
    retry = exc.body["error"].get("retry_after")
    if exc.status == 429 and retry:
        headers["Retry-After"] = str(retry)
    return JSONResponse(exc.body, status_code=exc.status, headers=headers)


def _service(request: Request) -> DapService:
    return request.app.state.dap


def _handler(endpoint: str | None, *, auth: bool = True):
    def wrap(fn):
        async def run(request: Request) -> Response:
            service = _service(request)
            try:
                if auth:
                    service.authorize(request)
                if endpoint:
                    service.limit(endpoint)
                return await fn(request, service)
            except DapError as exc:
                return _error(exc)

        return run

    return wrap


@_handler(None, auth=False)
async def _login(request: Request, service: DapService) -> Response:
    # application/x-www-form-urlencoded, parsed by hand (no multipart dependency needed).
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    return JSONResponse(service.login(request, form))


def _namespace(request: Request) -> None:
    ns = request.path_params["namespace"]
    if ns != NAMESPACE:
        raise DapError(
            404,
            "ObjectNotFound",
            f"The namespace '{ns}' specified in the request is not valid.",
            kind="namespace",
            id=ns,
        )


@_handler("list_tables")
async def _tables(request: Request, service: DapService) -> Response:
    _namespace(request)
    return JSONResponse({"tables": sorted(TABLES)})


@_handler("schema")
async def _schema(request: Request, service: DapService) -> Response:
    _namespace(request)
    name = request.path_params["table"]
    if name not in TABLES:
        raise DapError(404, "ObjectNotFound", f"The table '{name}' is not valid.", kind="table")
    return JSONResponse({"schema": table_schema(TABLES[name]), "version": 1})


@_handler("create_job")
async def _create(request: Request, service: DapService) -> Response:
    _namespace(request)
    try:
        body = await request.json()
    except ValueError:
        raise DapError(400, "ValidationError", "Body is not valid JSON", location="body") from None
    if not isinstance(body, dict):
        raise DapError(400, "ValidationError", "Body must be an object", location="body")
    try:
        return JSONResponse(service.create_job(request.path_params["table"], body))
    except (ValueError, KeyError) as exc:
        raise DapError(400, "ValidationError", f"Invalid query: {exc}", location="body") from None


@_handler("get_job")
async def _get_job(request: Request, service: DapService) -> Response:
    job = service.job(request.path_params["job_id"])
    return JSONResponse(job.doc(service.settings, time.monotonic()))


@_handler("object_url")
async def _object_url(request: Request, service: DapService) -> Response:
    body = await request.json()
    if not isinstance(body, list) or not all(isinstance(o, dict) and "id" in o for o in body):
        raise DapError(400, "ValidationError", 'Expected [{"id": ...}]', location="body")
    base = str(request.base_url).rstrip("/")
    return JSONResponse(service.object_urls(base, [str(o["id"]) for o in body]))


async def _object(request: Request) -> Response:
    service = _service(request)
    service.calls["object_download"] += 1
    try:
        body = service.object_body(
            request.path_params["object_id"],
            request.query_params.get("expires", "0"),
            request.query_params.get("sig", ""),
        )
    except _S3Error as exc:
        return Response(exc.body, status_code=exc.status, media_type="application/xml")
    return StreamingResponse(body, media_type="application/gzip")


def dap_app(service: DapService) -> Starlette:
    """The DAP endpoints as their own small app (own auth and limits, not Canvas REST's)."""
    app = Starlette(
        routes=[
            Route("/ids/auth/login", _login, methods=["POST"]),
            Route("/dap/query/{namespace}/table", _tables),
            Route("/dap/query/{namespace}/table/{table}/schema", _schema),
            Route("/dap/query/{namespace}/table/{table}/data", _create, methods=["POST"]),
            Route("/dap/job/{job_id}", _get_job),
            Route("/dap/object/url", _object_url, methods=["POST"]),
            Route("/dap/_objects/{object_id:path}", _object),
        ]
    )
    app.state.dap = service
    return app


DAP_PREFIXES = ("/ids/", "/dap/")

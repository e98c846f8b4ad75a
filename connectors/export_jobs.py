"""The export-job state machine every bulk path runs: initiate → monitor → resolve → normalize.

A vendor that answers a bulk request with a job token (Canvas Data 2 queries, Canvas account
reports) plugs in an :class:`ExportAdapter` (four small calls); :func:`run_export` does the rest:

::

    initiate ──► monitor ──(complete)──► resolve ──► normalize ──► done
       ▲            │ │                    │ (object URL expired: resolve again)
       │            │ └─(failed)──► failed (raised as ExportFailed)
       └─(expired)──┘               cancelled (cancel_export)
       └─(FallbackRequired: e.g. SnapshotRequired to an incremental → initiate the fallback)

Every transition is saved through a :class:`JobStore` *before* the next vendor call, so a run that
is killed while the vendor is still working resumes polling the *same* job when restarted (vendors
limit job creation: DAP allows 5 new queries a minute); a run killed mid-download resumes with the
objects not yet downloaded. Polling starts every ``initial`` seconds and widens with the job's age,
jittered, capped at ``cap``, and never faster than the vendor's per-endpoint limit. Polls and URL
requests go through the adapter's :class:`~connectors.client.VendorClient`, so 429/5xx use the
shared retry policy. Downloads stream to files with bounded memory: gzip objects are decompressed
on the fly, anything else (Parquet) is kept byte for byte.

Typical use::

    store = StagingJobStore(staging, institution="demo-u")
    record = run_export(adapter, store, "canvas/dap/submissions",
                        {"table": "submissions", "since": None}, workdir=staging.root / "...")
    ... normalize record.files into staging ...
    finish_export(store, record)       # only after the staged partition is committed
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import httpx

from connectors.backoff import RetryPolicy
from connectors.classify import Action, classify
from transforms.staging import StagingStore

__all__ = [
    "Download",
    "ExportAdapter",
    "ExportFailed",
    "FallbackRequired",
    "JobExpired",
    "JobPhase",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "MemoryJobStore",
    "PollSchedule",
    "StagingJobStore",
    "UrlExpired",
    "cancel_export",
    "download_object",
    "finish_export",
    "run_export",
]

log = logging.getLogger("lms_sync.connectors.export_jobs")


class JobPhase(StrEnum):
    INITIATE = "initiate"
    MONITOR = "monitor"
    RESOLVE = "resolve"
    NORMALIZE = "normalize"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


_TERMINAL = frozenset({JobPhase.DONE, JobPhase.FAILED, JobPhase.CANCELLED})


# ---- what adapters raise and return ------------------------------------------------------------


class ExportFailed(Exception):
    """The vendor says the job failed (or it kept expiring). Names the job, never data."""

    def __init__(self, name: str, job_id: str | None, detail: str) -> None:
        super().__init__(f"export {name} (job {job_id}) failed: {detail}")
        self.name, self.job_id, self.detail = name, job_id, detail


class FallbackRequired(Exception):
    """The vendor cannot serve this request; ``request`` is the one to make instead (e.g. a
    snapshot when an incremental's ``since`` is too old: DAP SnapshotRequired/OutOfRange)."""

    def __init__(self, request: Mapping[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.request, self.reason = dict(request), reason


class JobExpired(Exception):
    """The job (or its objects) no longer exists at the vendor: request it again."""


class UrlExpired(Exception):
    """A pre-signed object URL was refused (expired): resolve the job again for fresh URLs."""


@dataclass(frozen=True)
class JobStatus:
    """One poll: ``state`` is pending | complete | failed | cancelled; ``doc`` the vendor's job."""

    state: str
    doc: Mapping[str, Any]
    progress: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Download:
    """One object to fetch: ``object_id`` names it in the job, ``url`` is where it is now."""

    object_id: str
    url: str
    gzip: bool = True
    suffix: str = ".jsonl"


class ExportAdapter(Protocol):
    """The vendor side of an export: four calls on top of a VendorClient."""

    #: Seconds between two polls of one job that the vendor's per-endpoint limit allows.
    min_poll_interval: float

    def initiate(self, request: Mapping[str, Any]) -> str:
        """Start a job; return its id. May raise FallbackRequired."""
        ...

    def poll(self, job_id: str) -> JobStatus:
        """The job's state now. May raise JobExpired or FallbackRequired."""
        ...

    def resolve(self, job_id: str, doc: Mapping[str, Any]) -> list[Download]:
        """Fresh download URLs of a complete job's objects. May raise JobExpired."""
        ...

    def cancel(self, job_id: str) -> None: ...


# ---- the persisted record ---------------------------------------------------------------------


@dataclass
class JobRecord:
    """Everything needed to resume an export: saved after every transition."""

    name: str
    request: dict[str, Any]
    phase: JobPhase = JobPhase.INITIATE
    job_id: str | None = None
    started_at: float | None = None  # wall clock when the job was created (its age drives polls)
    polls: int = 0
    result: dict[str, Any] | None = None  # the complete job document
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # object id → file info
    error: str = ""
    created_jobs: int = 0
    history: list[str] = field(default_factory=list)
    original_request: dict[str, Any] | None = None  # before a fallback replaced it

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["phase"] = self.phase.value
        return out

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> JobRecord:
        data = dict(body)
        data["phase"] = JobPhase(data["phase"])
        return cls(**data)

    def move(self, phase: JobPhase, note: str = "") -> None:
        self.phase = phase
        self.history.append(f"{phase.value}{': ' + note if note else ''}")


class JobStore(Protocol):
    def load(self, name: str) -> dict[str, Any] | None: ...

    def save(self, name: str, body: Mapping[str, Any]) -> None: ...


class MemoryJobStore:
    """A JobStore in a dict (tests; a restart is simulated by keeping the dict)."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}

    def load(self, name: str) -> dict[str, Any] | None:
        body = self.saved.get(name)
        return json.loads(json.dumps(body)) if body is not None else None

    def save(self, name: str, body: Mapping[str, Any]) -> None:
        self.saved[name] = json.loads(json.dumps(body, default=str))


class StagingJobStore:
    """Export records as staging notes (``StagingStore.write_note``): one small JSON per export,
    atomic, where every pod of the institution sees it."""

    RUN = "_export_jobs"

    def __init__(self, store: StagingStore, *, institution: str) -> None:
        self._store = store
        self._institution = institution

    @staticmethod
    def _note_name(name: str) -> str:
        return name.replace("/", "__")

    def load(self, name: str) -> dict[str, Any] | None:
        notes = self._store.notes(institution=self._institution, run_id=self.RUN)
        return notes.get(self._note_name(name))

    def save(self, name: str, body: Mapping[str, Any]) -> None:
        self._store.write_note(
            institution=self._institution, run_id=self.RUN, name=self._note_name(name), body=body
        )


# ---- polling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollSchedule:
    """Seconds to the next poll: ``initial`` at first, then ``growth`` × the job's age, jittered
    by ±``jitter``, capped at ``cap``, never below ``floor`` (the vendor's per-endpoint limit).

    >>> PollSchedule(jitter=0).interval(age=0.0, floor=0.12)
    1.0
    >>> PollSchedule(jitter=0).interval(age=600.0, floor=0.12)
    30.0
    """

    initial: float = 1.0
    growth: float = 0.1
    cap: float = 30.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def interval(self, *, age: float, floor: float) -> float:
        base = min(self.cap, max(self.initial, self.growth * max(0.0, age)))
        jittered = base * self.rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return max(floor, min(self.cap, jittered))


# ---- the machine ------------------------------------------------------------------------------


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def run_export(
    adapter: ExportAdapter,
    store: JobStore,
    name: str,
    request: Mapping[str, Any],
    *,
    workdir: Path,
    fetch: Callable[[Download, Path], dict[str, Any]],
    schedule: PollSchedule | None = None,
    max_restarts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    timeout_seconds: float = 6 * 3600.0,
) -> JobRecord:
    """Drive the export ``name`` to the normalize phase and return its record (files fetched).

    A saved record for ``name`` with the same request that is not finished is resumed; otherwise
    a new job is initiated. ``fetch(download, path)`` writes one object to ``path`` and returns a
    small dict about it (see :func:`download_object`). Raises :class:`ExportFailed` when the
    vendor fails the job, or it expires more than ``max_restarts`` times.
    """
    schedule = schedule or PollSchedule()
    saved = store.load(name)
    record = JobRecord.from_json(saved) if saved else None
    if record is not None and (
        record.phase in _TERMINAL or not _same(record.original_request or record.request, request)
    ):
        record = None
    if record is None:
        record = JobRecord(name=name, request=dict(request))
        record.move(JobPhase.INITIATE)
        store.save(name, record.to_json())
    else:
        log.info("export %s: resuming %s job %s", name, record.phase.value, record.job_id)
    restarts = 0
    deadline = clock() + timeout_seconds

    def save() -> None:
        store.save(name, record.to_json())

    while True:
        if record.phase in (JobPhase.INITIATE, JobPhase.EXPIRED):
            if record.phase is JobPhase.EXPIRED:
                restarts += 1
                if restarts > max_restarts:
                    record.error = "job expired repeatedly"
                    record.move(JobPhase.FAILED, record.error)
                    save()
                    raise ExportFailed(name, record.job_id, record.error)
            try:
                job_id = adapter.initiate(record.request)
            except FallbackRequired as fallback:
                record.original_request = record.original_request or dict(record.request)
                record.request = fallback.request
                record.move(JobPhase.INITIATE, f"fallback: {fallback.reason}")
                save()
                continue
            record.job_id, record.started_at, record.polls = job_id, clock(), 0
            record.created_jobs += 1
            record.result, record.files = None, {}
            record.move(JobPhase.MONITOR, job_id)
            save()
        elif record.phase is JobPhase.MONITOR:
            assert record.job_id is not None
            try:
                status = adapter.poll(record.job_id)
            except JobExpired:
                record.move(JobPhase.EXPIRED, "job gone while monitoring")
                save()
                continue
            except FallbackRequired as fallback:
                record.original_request = record.original_request or dict(record.request)
                record.request = fallback.request
                record.move(JobPhase.INITIATE, f"fallback: {fallback.reason}")
                save()
                continue
            record.polls += 1
            if status.state == "complete":
                record.result = dict(status.doc)
                record.move(JobPhase.RESOLVE)
                save()
            elif status.state == "failed":
                record.error = status.error or "failed"
                record.move(JobPhase.FAILED, record.error)
                save()
                raise ExportFailed(name, record.job_id, record.error)
            elif status.state == "cancelled":
                record.move(JobPhase.CANCELLED)
                save()
                raise ExportFailed(name, record.job_id, "cancelled at the vendor")
            else:
                if clock() > deadline:
                    record.error = f"still {status.state} after {timeout_seconds:.0f}s"
                    adapter.cancel(record.job_id)
                    record.move(JobPhase.CANCELLED, record.error)
                    save()
                    raise ExportFailed(name, record.job_id, record.error)
                age = clock() - (record.started_at or clock())
                save()  # polls counted, so a restart keeps widening from the job's real age
                sleep(schedule.interval(age=age, floor=adapter.min_poll_interval))
        elif record.phase is JobPhase.RESOLVE:
            assert record.job_id is not None and record.result is not None
            try:
                downloads = adapter.resolve(record.job_id, record.result)
            except JobExpired:
                record.move(JobPhase.EXPIRED, "objects gone before download")
                save()
                continue
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                for n, item in enumerate(downloads):
                    if item.object_id in record.files:
                        continue  # fetched before a restart
                    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in record.job_id)
                    path = workdir / f"{safe}-part-{n:05d}{item.suffix}"
                    info = fetch(item, path)
                    record.files[item.object_id] = {"path": str(path), "index": n, **info}
                    save()
            except UrlExpired:
                record.history.append("resolve: object URL expired, resolving again")
                save()
                continue
            record.move(JobPhase.NORMALIZE)
            save()
        elif record.phase is JobPhase.NORMALIZE:
            return record
        else:  # pragma: no cover - terminal phases were replaced above
            raise ExportFailed(name, record.job_id, f"unexpected phase {record.phase}")


def finish_export(store: JobStore, record: JobRecord, *, cleanup: bool = True) -> None:
    """Mark the export done (after its staged partition committed) and drop its object files."""
    record.move(JobPhase.DONE)
    store.save(record.name, record.to_json())
    if cleanup:
        for info in record.files.values():
            Path(info["path"]).unlink(missing_ok=True)


def cancel_export(adapter: ExportAdapter, store: JobStore, name: str) -> JobRecord | None:
    """Cancel a saved, unfinished export at the vendor and mark it cancelled."""
    saved = store.load(name)
    if not saved:
        return None
    record = JobRecord.from_json(saved)
    if record.phase not in _TERMINAL and record.job_id:
        adapter.cancel(record.job_id)
        record.move(JobPhase.CANCELLED, "cancelled by us")
        store.save(name, record.to_json())
    return record


# ---- downloads --------------------------------------------------------------------------------

_CHUNK = 1 << 20


def download_object(
    http: httpx.Client,
    item: Download,
    path: Path,
    *,
    retry: RetryPolicy | None = None,
) -> dict[str, Any]:
    """Stream one object to ``path`` (via a temp file and rename): gzip decompressed on the fly
    (every member of a multi-member file), anything else byte for byte. Memory holds one chunk.

    403/404 from the object store mean the pre-signed URL expired (or its job did):
    :class:`UrlExpired`. 408/429/5xx and broken connections are retried with ``retry``.
    """
    retry = retry or RetryPolicy()
    started = retry.clock()
    attempt = 0
    temp = path.with_name(f".{path.name}.part")
    while True:
        attempt += 1
        try:
            with http.stream("GET", item.url) as response:
                if response.status_code in (401, 403, 404):
                    raise UrlExpired(f"object {item.object_id}: HTTP {response.status_code}")
                if response.status_code >= 300:
                    response.read()
                    raise _Transient(response)
                digest = hashlib.sha256()
                written = compressed = 0
                inflate = zlib.decompressobj(wbits=31) if item.gzip else None
                with open(temp, "wb") as out:
                    for chunk in response.iter_raw(_CHUNK):
                        compressed += len(chunk)
                        data = chunk
                        if inflate is not None:
                            data = inflate.decompress(chunk)
                            while inflate.eof and inflate.unused_data:
                                rest = inflate.unused_data
                                inflate = zlib.decompressobj(wbits=31)
                                data += inflate.decompress(rest)
                        digest.update(data)
                        out.write(data)
                        written += len(data)
                    if inflate is not None:
                        tail = inflate.flush()
                        if not inflate.eof:
                            raise httpx.ReadError("gzip object ended early (truncated)")
                        digest.update(tail)
                        out.write(tail)
                        written += len(tail)
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(temp, path)
            return {"bytes": written, "compressed_bytes": compressed, "sha256": digest.hexdigest()}
        except (httpx.TransportError, _Transient, zlib.error) as exc:
            temp.unlink(missing_ok=True)
            response = exc.response if isinstance(exc, _Transient) else None
            verdict = classify(response if response is not None else _as_outcome(exc))
            if verdict.action is Action.FAIL and response is not None:
                raise ExportFailed(
                    item.object_id, None, f"download HTTP {response.status_code}"
                ) from None
            wait = retry.next_wait(attempt=attempt, response=response)
            if not retry.allows(
                attempt=attempt, elapsed_seconds=retry.clock() - started, wait_seconds=wait
            ):
                raise ExportFailed(item.object_id, None, f"download failed: {exc}") from None
            retry.sleep(wait)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise


class _Transient(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _as_outcome(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, httpx.TransportError) else httpx.ReadError(str(exc))

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
on the fly, anything else (Parquet) is kept byte for byte. :func:`run_exports` drives several
exports at once (all initiated first, then polled together within the vendor's per-endpoint and
job-creation limits), so a batch takes as long as its slowest job.

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
import math
import os
import random
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    "ExportRequest",
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
    "run_exports",
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

    #: Seconds between two polls (of any job) that the vendor's per-endpoint limit allows.
    min_poll_interval: float
    #: Jobs the vendor lets a client initiate per minute (None: no limit to pace).
    initiations_per_minute: int | None

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


@dataclass(frozen=True)
class ExportRequest:
    """One export of the batch :func:`run_exports` drives: its record's ``name``, the vendor
    ``request`` and the folder its objects are downloaded to."""

    name: str
    request: Mapping[str, Any]
    workdir: Path


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
    (record,) = run_exports(
        adapter,
        store,
        [ExportRequest(name, request, workdir)],
        fetch=fetch,
        schedule=schedule,
        max_restarts=max_restarts,
        sleep=sleep,
        clock=clock,
        timeout_seconds=timeout_seconds,
    )
    return record


def run_exports(
    adapter: ExportAdapter,
    store: JobStore,
    exports: Sequence[ExportRequest],
    *,
    fetch: Callable[[Download, Path], dict[str, Any]],
    schedule: PollSchedule | None = None,
    max_restarts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    timeout_seconds: float = 6 * 3600.0,
) -> Iterator[JobRecord]:
    """Drive several exports of one vendor at once; yield each record as it reaches normalize.

    Every job is initiated first (in order), then they are polled together, so the batch takes as
    long as its slowest job, not the sum of them. One thread does it all: the next step is always
    the one due first, where a job's polls follow its own :class:`PollSchedule` and, across the
    batch, polls are at least ``adapter.min_poll_interval`` apart (the vendor's limit is per
    endpoint, not per job) and no more than ``adapter.initiations_per_minute`` jobs are initiated
    in any minute (DAP: 5). A job that completes is resolved and downloaded while the others keep
    running at the vendor; the caller may normalize a yielded record before asking for the next.
    Each export resumes, fails and restarts exactly as :func:`run_export` describes; the first
    failure is raised (the others' records stay saved, so a rerun resumes their jobs).
    """
    schedule = schedule or PollSchedule()
    drivers = [
        _Export(adapter, store, e, max_restarts=max_restarts, clock=clock,
                timeout_seconds=timeout_seconds, fetch=fetch, schedule=schedule)
        for e in exports
    ]  # fmt: skip
    pace = _Pace(adapter, clock)
    while drivers:
        # Jobs to start go first (in the given order), then the step due first; among steps the
        # vendor's limits hold to the same moment, the one that has waited longest.
        driver = min(drivers, key=lambda d: (pace.due(d), not d.initiating, d.due))
        wait = pace.due(driver) - clock()
        if wait > 0:
            sleep(wait)
        pace.calling(driver)
        if driver.step():
            drivers.remove(driver)
            yield driver.record


class _Pace:
    """The vendor's limits across a batch: polls ``min_poll_interval`` apart, at most
    ``initiations_per_minute`` initiate calls in any minute (a sliding window)."""

    def __init__(self, adapter: ExportAdapter, clock: Callable[[], float]) -> None:
        self.poll_interval = adapter.min_poll_interval
        self.per_minute = adapter.initiations_per_minute
        self.clock = clock
        self.initiated: deque[float] = deque()
        self.last_poll = -math.inf

    def due(self, driver: _Export) -> float:
        if driver.initiating and self.per_minute:
            while self.initiated and self.clock() - self.initiated[0] >= 60.0:
                self.initiated.popleft()
            if len(self.initiated) >= self.per_minute:
                return max(driver.due, self.initiated[0] + 60.0)
        if driver.phase is JobPhase.MONITOR:
            return max(driver.due, self.last_poll + self.poll_interval)
        return driver.due

    def calling(self, driver: _Export) -> None:
        if driver.initiating:
            self.initiated.append(self.clock())
        elif driver.phase is JobPhase.MONITOR:
            self.last_poll = self.clock()


class _Export:
    """One export's state machine, advanced one step (one vendor call, or the downloads) at a
    time; ``due`` is when its next step may run."""

    def __init__(
        self,
        adapter: ExportAdapter,
        store: JobStore,
        export: ExportRequest,
        *,
        max_restarts: int,
        clock: Callable[[], float],
        timeout_seconds: float,
        fetch: Callable[[Download, Path], dict[str, Any]],
        schedule: PollSchedule,
    ) -> None:
        self.adapter, self.store, self.name = adapter, store, export.name
        self.workdir, self.fetch, self.schedule = export.workdir, fetch, schedule
        self.max_restarts, self.clock, self.timeout = max_restarts, clock, timeout_seconds
        self.deadline = clock() + timeout_seconds
        self.restarts = 0
        self.due = clock()
        saved = store.load(export.name)
        record = JobRecord.from_json(saved) if saved else None
        if record is not None and (
            record.phase in _TERMINAL
            or not _same(record.original_request or record.request, export.request)
        ):
            record = None
        if record is None:
            record = JobRecord(name=export.name, request=dict(export.request))
            record.move(JobPhase.INITIATE)
            store.save(export.name, record.to_json())
        else:
            log.info(
                "export %s: resuming %s job %s", export.name, record.phase.value, record.job_id
            )
        self.record = record

    @property
    def phase(self) -> JobPhase:
        return self.record.phase

    @property
    def initiating(self) -> bool:
        return self.record.phase in (JobPhase.INITIATE, JobPhase.EXPIRED)

    def _save(self) -> None:
        self.store.save(self.name, self.record.to_json())

    def _fallback(self, fallback: FallbackRequired) -> None:
        record = self.record
        record.original_request = record.original_request or dict(record.request)
        record.request = fallback.request
        record.move(JobPhase.INITIATE, f"fallback: {fallback.reason}")
        self._save()

    def step(self) -> bool:
        """Run the next step; True once the record has reached normalize (files fetched)."""
        record, adapter, name = self.record, self.adapter, self.name
        self.due = self.clock()
        if record.phase in (JobPhase.INITIATE, JobPhase.EXPIRED):
            if record.phase is JobPhase.EXPIRED:
                self.restarts += 1
                if self.restarts > self.max_restarts:
                    record.error = "job expired repeatedly"
                    record.move(JobPhase.FAILED, record.error)
                    self._save()
                    raise ExportFailed(name, record.job_id, record.error)
            try:
                job_id = adapter.initiate(record.request)
            except FallbackRequired as fallback:
                self._fallback(fallback)
                return False
            record.job_id, record.started_at, record.polls = job_id, self.clock(), 0
            record.created_jobs += 1
            record.result, record.files = None, {}
            record.move(JobPhase.MONITOR, job_id)
            self._save()
        elif record.phase is JobPhase.MONITOR:
            self._poll()
        elif record.phase is JobPhase.RESOLVE:
            self._resolve()
        elif record.phase is not JobPhase.NORMALIZE:  # pragma: no cover - terminal: replaced
            raise ExportFailed(name, record.job_id, f"unexpected phase {record.phase}")
        return record.phase is JobPhase.NORMALIZE

    def _poll(self) -> None:
        record, adapter, name = self.record, self.adapter, self.name
        assert record.job_id is not None
        try:
            status = adapter.poll(record.job_id)
        except JobExpired:
            record.move(JobPhase.EXPIRED, "job gone while monitoring")
            self._save()
            return
        except FallbackRequired as fallback:
            self._fallback(fallback)
            return
        record.polls += 1
        if status.state == "complete":
            record.result = dict(status.doc)
            record.move(JobPhase.RESOLVE)
            self._save()
        elif status.state == "failed":
            record.error = status.error or "failed"
            record.move(JobPhase.FAILED, record.error)
            self._save()
            raise ExportFailed(name, record.job_id, record.error)
        elif status.state == "cancelled":
            record.move(JobPhase.CANCELLED)
            self._save()
            raise ExportFailed(name, record.job_id, "cancelled at the vendor")
        else:
            now = self.clock()
            if now > self.deadline:
                record.error = f"still {status.state} after {self.timeout:.0f}s"
                adapter.cancel(record.job_id)
                record.move(JobPhase.CANCELLED, record.error)
                self._save()
                raise ExportFailed(name, record.job_id, record.error)
            age = now - (record.started_at or now)
            self._save()  # polls counted, so a restart keeps widening from the job's real age
            self.due = now + self.schedule.interval(age=age, floor=adapter.min_poll_interval)

    def _resolve(self) -> None:
        record = self.record
        assert record.job_id is not None and record.result is not None
        try:
            downloads = self.adapter.resolve(record.job_id, record.result)
        except JobExpired:
            record.move(JobPhase.EXPIRED, "objects gone before download")
            self._save()
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            for n, item in enumerate(downloads):
                if item.object_id in record.files:
                    continue  # fetched before a restart
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in record.job_id)
                path = self.workdir / f"{safe}-part-{n:05d}{item.suffix}"
                info = self.fetch(item, path)
                record.files[item.object_id] = {"path": str(path), "index": n, **info}
                self._save()
        except UrlExpired:
            record.history.append("resolve: object URL expired, resolving again")
            self._save()
            return
        record.move(JobPhase.NORMALIZE)
        self._save()


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

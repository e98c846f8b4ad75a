"""Canvas Data 2 tables → the staged streams the REST path stages, and the bulk staging of a domain.

The bulk path lands the *same* streams and columns as ``connectors/canvas/endpoints.py`` (so the
existing Canvas mapping lands the same canonical tables). DAP column → staged column:

=================  ========================================================================
stream             from
=================  ========================================================================
``assignments``    ``assignments``: ``title`` → name, ``context_id`` → course_id,
                   ``workflow_state == 'published'`` → published, ``submission_types`` comma
                   list → JSON array; other columns by name
``submissions``    ``submissions``: columns by name (``key.id`` → id)
``course_grades``  ``enrollments`` (type StudentEnrollment; ``workflow_state`` →
                   enrollment_state) left-joined to ``scores`` on ``enrollment_id``
                   (``current_score`` → grades__current_score, …)
=================  ========================================================================

How a domain is staged (:func:`stage_bulk_domain`), per DAP table:

1. the export-job state machine runs a snapshot (no watermark yet, or the vendor answers
   ``SnapshotRequired``) or an incremental since the table's committed watermark — the jobs of
   all the domain's tables at once (``run_exports``: started together, polled together within
   DAP's limits), so the domain waits for its slowest job, not for the sum of them;
2. its objects stream to files (gzip decompressed on the fly) and are parsed in batches into a
   *changes* Parquet: key, action, ts, every value as the vendor's text (numbers and booleans in
   their JSON spelling, as ``connectors/extract.py`` stages REST values), and lineage — the object
   URL without its signature, the object's index as the page number, the line as record index;
3. the changes are merged onto the table's state as of the previous watermark (the latest
   version of each key wins; ``D`` records remove the key), giving the table's complete state as
   of the new watermark, written next to staging as ``_bulk_state/{table}/{watermark}.parquet``.

The streams are then projected from those states into **one complete partition** (course
``all``) whose rows carry their own ``_course_id``. Because the partition is complete, a key that
DAP deleted (``D``) is absent from it, and the loader's delete-by-absence soft-deletes its row
(``deleted_at``), exactly as when a record vanishes from the REST API. Only rows of ``course_ids``
(the courses the flow syncs, e.g. not deleted ones) are staged.

Memory stays bounded by a batch, not by the table: parsing holds ``_BATCH`` lines; the merge and
the projection are DuckDB queries over the Parquet files with a capped buffer pool (spilling to
disk), and the projection streams into the partition ``_ROWS`` rows at a time.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.canvas import endpoints as ep
from connectors.canvas.dap import DapClient, DapExport
from connectors.export_jobs import (
    Download,
    ExportRequest,
    JobRecord,
    JobStore,
    PollSchedule,
    StagingJobStore,
    download_object,
    finish_export,
    run_exports,
)
from connectors.redaction import redact_url
from transforms.staging import LINEAGE_SCHEMA, PageMeta, PartitionKey, StagingStore, stream_schema

__all__ = [
    "BULK_COURSE",
    "DOMAIN_TABLES",
    "TABLES",
    "BulkOutcome",
    "DapTable",
    "committed_bulk",
    "stage_bulk_domain",
]

BULK_COURSE = "all"
_BATCH = 10_000  # JSONL lines parsed into one changes row group


@dataclass(frozen=True)
class DapTable:
    """The DAP columns the bulk path reads from a table, and which one names the course."""

    name: str
    columns: tuple[str, ...]
    course_column: str | None


TABLES: dict[str, DapTable] = {
    t.name: t
    for t in (
        DapTable(
            "submissions",
            (*(c for c in ep.SUBMISSIONS.columns if c != "id"), "course_id"),
            "course_id",
        ),
        DapTable(
            "assignments",
            (
                "context_id",
                "context_type",
                "title",
                "points_possible",
                "due_at",
                "lock_at",
                "unlock_at",
                "grading_type",
                "workflow_state",
                "omit_from_final_grade",
                "submission_types",
                "assignment_group_id",
                "position",
                "created_at",
                "updated_at",
            ),
            "context_id",
        ),
        DapTable(
            "enrollments",
            ("user_id", "course_id", "course_section_id", "type", "workflow_state", "updated_at"),
            "course_id",
        ),
        DapTable(
            "scores",
            (
                "enrollment_id",
                "course_score",
                "current_score",
                "final_score",
                "unposted_current_score",
                "unposted_final_score",
                "override_score",
                "current_grade",
                "final_grade",
                "override_grade",
            ),
            None,
        ),
    )
}

# Which DAP tables feed a domain's streams. Only gradebook has a bulk plan so far.
DOMAIN_TABLES: dict[str, tuple[str, ...]] = {
    "gradebook": ("assignments", "submissions", "enrollments", "scores"),
}
DOMAIN_STREAMS: dict[str, tuple[str, ...]] = {
    "gradebook": (ep.ASSIGNMENTS.stream, ep.SUBMISSIONS.stream, ep.COURSE_GRADES.stream),
}
_ENDPOINTS = {e.stream: e for e in (ep.ASSIGNMENTS, ep.SUBMISSIONS, ep.COURSE_GRADES)}


# ---- parsing objects into changes -------------------------------------------------------------


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _text(value: Any) -> str | None:
    """Same spelling as ``connectors.extract`` stages REST values (JSON for non-strings).

    ``json.dumps`` builds an encoder per call; at millions of values (a submissions snapshot)
    that was most of the parse time, so scalars take the spelling JSON gives them directly."""
    if value is None or isinstance(value, str):
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return repr(value)
    return _JSON(value)


def _changes_schema(table: DapTable) -> pa.Schema:
    fields = [pa.field("_key", pa.string()), pa.field("_action", pa.string())]
    fields += [pa.field("_ts", pa.string())]
    fields += [pa.field(f"v__{c}", pa.string()) for c in table.columns]
    return pa.schema(fields + list(LINEAGE_SCHEMA))


def _parse_objects(
    record: JobRecord, table: DapTable, dest: Path, *, run_id: str, trace: tuple[str, str]
) -> int:
    """Every downloaded JSONL object → one changes Parquet, ``_BATCH`` lines at a time."""
    schema = _changes_schema(table)
    rows = 0
    temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
    with pq.ParquetWriter(temp, schema, compression="zstd") as writer:
        for info in sorted(record.files.values(), key=lambda i: i["index"]):
            url = info.get("url", "")
            fetched = datetime.fromtimestamp(info.get("fetched_at", 0.0), UTC)
            for batch in _batches(Path(info["path"])):
                n = len(batch)
                cols: dict[str, list] = {name: [] for name in schema.names}
                values = [(c, cols[f"v__{c}"].append) for c in table.columns]
                keys, actions, stamps = (
                    cols["_key"].append,
                    cols["_action"].append,
                    cols["_ts"].append,
                )
                courses, indexes = cols["_course_id"].append, cols["_record_index"].append
                for index, line in batch:
                    rec = json.loads(line)
                    value = rec.get("value") or {}
                    meta = rec.get("meta") or {}
                    keys(_text(rec["key"]["id"]))
                    actions(meta.get("action", "U"))
                    stamps(meta.get("ts"))
                    for c, append in values:
                        append(_text(value.get(c)))
                    course = value.get(table.course_column) if table.course_column else None
                    courses(_text(course))
                    indexes(index)
                cols["_run_id"] = [run_id] * n
                cols["_source_url"] = [url] * n
                cols["_page_number"] = [int(info["index"])] * n
                cols["_fetched_at"] = [fetched] * n
                cols["_trace_id"] = [trace[0]] * n
                cols["_span_id"] = [trace[1]] * n
                writer.write_table(pa.table(cols, schema=schema))
                rows += n
    os.replace(temp, dest)
    return rows


def _batches(path: Path) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    with open(path, "rb") as f:
        for index, line in enumerate(f):
            if line.strip():
                batch.append((index, line))
            if len(batch) >= _BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


# ---- DuckDB over the Parquet files -------------------------------------------------------------

# DuckDB works on the table states with a bounded buffer pool and spills what does not fit to its
# temp directory, so memory does not grow with the institution (DESIGN.md, bounded memory): at
# 5 M submissions the Polars version of the merge and projection peaked at ~1 GB.
_MEMORY_LIMIT = "128MB"
_THREADS = 1
_ROWS = 65_536  # rows per Parquet row group and per batch handed to staging


@contextmanager
def _duckdb(spill: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{_MEMORY_LIMIT}'")
        con.execute(f"SET threads = {_THREADS}")
        con.execute(f"SET temp_directory = {_q(str(spill / '.duckdb-spill'))}")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        yield con
    finally:
        con.close()


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pq(path: Path) -> str:
    return f"read_parquet({_q(str(path))})"


# ---- table state ------------------------------------------------------------------------------


def _safe(watermark: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", watermark)


def _state_dir(staging: StagingStore, institution: str, table: str) -> Path:
    return staging.root / institution / "canvas" / "_bulk_state" / table


def _merge(base: Path | None, changes: Path, dest: Path, *, spill: Path) -> None:
    """The table as of the new watermark: base rows without a newer version, plus the changes'
    ``U`` rows (``D`` keys dropped). DAP collapses a key's changes within one query to its latest
    version (canvas-api.md §5.2), so a key appears at most once among the changes."""
    latest = f"SELECT * EXCLUDE (_action) FROM {_pq(changes)} WHERE _action = 'U'"
    if base is not None:
        kept = (
            f"SELECT * FROM {_pq(base)} b WHERE NOT EXISTS"
            f" (SELECT 1 FROM {_pq(changes)} c WHERE c._key = b._key)"
        )
        latest = f"{kept} UNION ALL BY NAME {latest}"
    temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
    with _duckdb(spill) as con:
        con.execute(
            f"COPY ({latest}) TO {_q(str(temp))}"
            f" (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {_ROWS})"
        )
    os.replace(temp, dest)


# ---- projection to the REST streams ------------------------------------------------------------

_LINEAGE = ", ".join(f"t.{n}" for n in LINEAGE_SCHEMA.names)
_GRADES = (
    "current_score",
    "final_score",
    "current_grade",
    "final_grade",
    "unposted_current_score",
    "unposted_final_score",
)


def _project(stream: str, states: Mapping[str, Path]) -> str:
    """SQL for ``stream``'s rows (every column text, then lineage) of the courses in
    ``$courses``, from the tables' states: the column mapping in the module docstring."""
    columns = _ENDPOINTS[stream].columns
    if stream == "submissions":
        source = f"{_pq(states['submissions'])} t"
        exprs = {c: ("t._key" if c == "id" else f"t.v__{c}") for c in columns}
    elif stream == "assignments":
        source = f"{_pq(states['assignments'])} t"
        exprs = {c: f"t.v__{c}" for c in columns}
        exprs.update(
            id="t._key",
            course_id="t.v__context_id",
            name="t.v__title",
            # an unknown state stays visible to the normalizer's boolean rule
            published="CASE WHEN t.v__workflow_state IS NULL THEN NULL"
            " WHEN t.v__workflow_state = 'published' THEN 'true' ELSE 'false' END",
            submission_types="'[\"' || replace(t.v__submission_types, ',', '\",\"') || '\"]'",
        )
    elif stream == "course_grades":
        scores = f"(SELECT * FROM {_pq(states['scores'])} WHERE v__course_score <> 'false')"
        source = (
            f"(SELECT * FROM {_pq(states['enrollments'])} WHERE v__type = 'StudentEnrollment') t"
            f" LEFT JOIN {scores} s ON s.v__enrollment_id = t._key"
        )
        exprs = {c: "NULL" for c in columns}
        exprs.update(
            id="t._key",
            user_id="t.v__user_id",
            course_section_id="t.v__course_section_id",
            enrollment_state="t.v__workflow_state",
            updated_at="t.v__updated_at",
            override_score="s.v__override_score",
            override_grade="s.v__override_grade",
            **{f"grades__{c}": f"s.v__{c}" for c in _GRADES},
        )
    else:
        raise ValueError(f"no bulk projection for stream {stream!r}")
    select = ", ".join(f"CAST({exprs[c]} AS VARCHAR) AS {c}" for c in columns)
    return f"SELECT {select}, {_LINEAGE} FROM {source} WHERE list_contains($courses, t._course_id)"


# ---- staging a domain -------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkOutcome:
    """What one bulk staging did. ``watermarks`` (table → ``until``/``at``) is the cursor to store
    in ``_sync_state`` once the load that reads this partition commits."""

    domain: str
    status: str  # staged | reused
    rows: int
    courses: list[str]
    watermarks: dict[str, str]
    snapshots: list[str] = field(default_factory=list)  # tables fetched as snapshots
    jobs_created: int = 0
    partition: str = ""


def stage_bulk_domain(
    dap: DapClient,
    staging: StagingStore,
    key: PartitionKey,
    *,
    run_id: str,
    course_ids: Iterable[str],
    watermarks: Mapping[str, str] | None = None,
    jobs: JobStore | None = None,
    schedule: PollSchedule | None = None,
) -> BulkOutcome:
    """Stage one domain institution-wide from Canvas Data 2 as a complete partition.

    ``key.course_id`` must be :data:`BULK_COURSE`. ``watermarks`` are the per-table cursors of
    the last committed load (from ``_sync_state``); a table without one, or whose state file is
    gone, is fetched as a snapshot. Export jobs are saved in ``jobs`` (default: staging notes),
    so a killed run resumes the same vendor jobs. Committed partitions are reused.
    """
    if key.course_id != BULK_COURSE:
        raise ValueError(f"a bulk partition's course_id is {BULK_COURSE!r}, got {key.course_id!r}")
    tables = DOMAIN_TABLES.get(key.domain)
    if tables is None:
        raise ValueError(f"no Canvas Data 2 plan for domain {key.domain!r}")
    jobs = jobs or StagingJobStore(staging, institution=key.institution)
    if staging.is_committed(key):
        return committed_bulk(staging, key)
    courses = sorted({str(c) for c in course_ids}, key=lambda c: (len(c), c))
    work = staging.root / key.institution / "canvas" / "_exports"
    bases: dict[str, Path | None] = {}
    exports: list[ExportRequest] = []
    for table in tables:
        folder = _state_dir(staging, key.institution, table)
        folder.mkdir(parents=True, exist_ok=True)
        mark = (watermarks or {}).get(table)
        base = folder / f"{_safe(mark)}.parquet" if mark else None
        if base is not None and not base.is_file():
            base = None  # state gone (expired staging): start over from a snapshot
        bases[table] = base
        request = {"table": table, "format": "jsonl", "since": mark if base else None}
        exports.append(ExportRequest(f"canvas/dap/{key.domain}/{table}", request, work / table))
    states: dict[str, Path] = {}
    new_marks: dict[str, str] = {}
    snapshots: list[str] = []
    records: list[JobRecord] = []
    # Every table's job starts at once; each is normalized as soon as its objects are down.
    for record in run_exports(
        DapExport(dap),
        jobs,
        exports,
        fetch=lambda item, path: _fetch(dap, item, path),
        schedule=schedule,
    ):
        table = record.request["table"]
        records.append(record)
        doc = record.result or {}
        base = bases[table]
        if record.request.get("since") is None:
            base = None
            snapshots.append(table)
        until = doc.get("until") or doc.get("at")
        if not until:
            raise ValueError(f"DAP job {record.job_id} for {table} has no until/at")
        changes = work / table / f"{record.job_id}.changes.parquet"
        if not changes.is_file():
            _parse_objects(record, TABLES[table], changes, run_id=run_id, trace=_trace(record))
        folder = _state_dir(staging, key.institution, table)
        dest = folder / f"{_safe(until)}.parquet"
        if not dest.is_file():
            _merge(base, changes, dest, spill=work)
        states[table], new_marks[table] = dest, until
    created = sum(r.created_jobs for r in records)
    snapshots.sort(key=tables.index)
    new_marks = {t: new_marks[t] for t in tables}
    rows = _write_partition(staging, key, run_id=run_id, states=states, courses=courses)
    staging.write_note(
        institution=key.institution,
        run_id=StagingJobStore.RUN,
        name=_note_name(key),
        body={"courses": courses, "watermarks": new_marks, "run_id": run_id},
    )
    for record in records:
        finish_export(jobs, record)
        (work / record.request["table"] / f"{record.job_id}.changes.parquet").unlink(
            missing_ok=True
        )
    for table in tables:
        _prune_states(_state_dir(staging, key.institution, table), keep=3)
    return BulkOutcome(
        key.domain,
        "staged",
        rows,
        courses,
        new_marks,
        snapshots,
        created,
        str(staging.manifest(key).path),
    )


def _note_name(key: PartitionKey) -> str:
    return f"bulk__{key.domain}__{key.window}"


def committed_bulk(staging: StagingStore, key: PartitionKey) -> BulkOutcome:
    """What a committed bulk partition holds, as the run that staged it reported it (status
    ``reused``): its courses and the watermarks it reaches, from the staging note written beside
    it. Without the note (pruned), the courses are those its rows carry and there are no
    watermarks (the next run of the domain then takes snapshots)."""
    manifest = staging.manifest(key)
    notes = staging.notes(institution=key.institution, run_id=StagingJobStore.RUN)
    saved = notes.get(_note_name(key))
    if saved is not None:
        courses, marks = list(saved.get("courses", [])), dict(saved.get("watermarks", {}))
    else:
        found: set[str] = set()
        for stream in manifest.streams:
            frame = staging.scan(stream, [manifest]).select("_course_id").unique().collect()
            found.update(str(c) for c in frame["_course_id"].drop_nulls())
        courses, marks = sorted(found, key=lambda c: (len(c), c)), {}
    return BulkOutcome(
        key.domain, "reused", manifest.row_count, courses, marks, partition=str(manifest.path)
    )


def _fetch(dap: DapClient, item: Download, path: Path) -> dict[str, Any]:
    info = download_object(dap.downloads, item, path)
    return {
        **info,
        "url": redact_url(httpx.URL(item.url)).split("?", 1)[0],
        "fetched_at": datetime.now(UTC).timestamp(),
    }


def _trace(record: JobRecord) -> tuple[str, str]:
    """Bulk rows carry the job as their trace: a stable id per export job."""
    raw = str(record.job_id)
    job = uuid.UUID(raw) if _is_uuid(raw) else uuid.uuid5(uuid.NAMESPACE_URL, raw)
    return job.hex, job.hex[:16]


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _write_partition(
    staging: StagingStore,
    key: PartitionKey,
    *,
    run_id: str,
    states: Mapping[str, Path],
    courses: list[str],
) -> int:
    """Stream each projected stream from DuckDB into the partition, ``_ROWS`` rows a page."""
    streams = {s: stream_schema(_ENDPOINTS[s].columns) for s in DOMAIN_STREAMS[key.domain]}
    work = staging.root / key.institution / "canvas" / "_exports"
    with (
        _duckdb(work) as con,
        staging.writer(key, run_id=run_id, streams=streams) as writer,
    ):
        for stream, schema in streams.items():
            query = con.sql(_project(stream, states), params={"courses": courses})
            reader = query.to_arrow_reader(_ROWS)
            fetched = datetime.now(UTC)
            for number, batch in enumerate(reader, 1):
                table = pa.Table.from_batches([batch]).cast(schema)
                raw = json.dumps(
                    {"bulk": "canvas-data-2", "stream": stream, "rows": table.num_rows}
                ).encode()
                writer.write(
                    stream,
                    table,
                    page=PageMeta(
                        stream=stream,
                        number=number,
                        url=f"dap:canvas/{stream}",
                        status=200,
                        fetched_at=fetched,
                        raw=raw,
                        trace_id="",
                        span_id="",
                    ),
                )
    return writer.manifest.row_count


def _prune_states(folder: Path, *, keep: int) -> None:
    files = sorted(folder.glob("*.parquet"))
    for old in files[:-keep]:
        old.unlink(missing_ok=True)

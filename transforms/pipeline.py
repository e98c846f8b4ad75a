"""The single entry point the Prefect flow calls: staged frames → DuckDB serving tables.

::

    report = load_staged(
        frames={"course": store.scan("course", manifests), ...},   # stream → LazyFrame
        courses_loaded={"roster": ["101", "102"], "gradebook": ["101"]},
        mapping=CANVAS, serving_dsn="serving.duckdb", hmac_key=load_hmac_key("env:KEY", "v1"),
        run_id=run_id, institution="demo-u", vendor="canvas", now=run_started_at,
    )

Per domain (in the mapping's order: roster before gradebook, so references resolve), every table
is normalized (the mapping's Polars expressions, streamed per group of course partitions to
private temp Parquet files; Parse columns stay text), then typed, tokenized, validated,
quarantined and upserted by DuckDB SQL over those files in **one DuckDB transaction**. Only
rows of courses listed in ``courses_loaded`` for the domain are read, and only those courses can
have rows soft-deleted. After the domain commits, ``_sync_runs`` gets a row and ``_sync_state`` its
cursor (``cursors[domain]``, default ``now``, the run's start), the staging ``window`` read and,
for a domain staged from a bulk export, its ``watermarks`` (table → watermark, ``load.py``).

``partial`` names, per staged stream, the courses whose partition holds only changes (an
incremental window): their rows are upserted, never soft-deleted by absence (``load.py``).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from opentelemetry import trace

from transforms.canonical import table as canonical_table
from transforms.chaos import chaos_kill
from transforms.load import TableCounts, connect, ensure_schema, load_table, write_bookkeeping
from transforms.mapping import TableMap, VendorMapping
from transforms.normalize import normalize
from transforms.tokenize import TOKENS_TABLE, HmacKey

__all__ = ["LoadReport", "TableReport", "TransformError", "load_staged"]

log = logging.getLogger("lms_sync.transforms")


class TransformError(RuntimeError):
    """A domain failed to load; nothing of that domain was committed. The message names domain,
    table and error class; literals from the engine's message are redacted (they may hold PII)."""


@dataclass
class TableReport:
    table: str
    domain: str
    extracted: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    loaded: int = 0


@dataclass
class LoadReport:
    run_id: str
    tables: dict[str, TableReport] = field(default_factory=dict)

    @property
    def quarantined(self) -> int:
        return sum(sum(t.quarantined.values()) for t in self.tables.values())

    def to_rows(self) -> list[dict[str, object]]:
        """One row per table, for a Prefect table artifact."""
        return [
            {
                "table": t.table,
                "domain": t.domain,
                "extracted": t.extracted,
                "quarantined": sum(t.quarantined.values()),
                "quarantined_by_rule": ", ".join(
                    f"{r}={n}" for r, n in sorted(t.quarantined.items())
                ),
                "inserted": t.inserted,
                "updated": t.updated,
                "deleted": t.deleted,
                "loaded": t.loaded,
            }
            for t in self.tables.values()
        ]


_LITERALS = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d{4,}\b")


def _redact(message: str) -> str:
    return _LITERALS.sub("<redacted>", message)[:300]


def load_staged(
    *,
    frames: Mapping[str, pl.LazyFrame],
    courses_loaded: Mapping[str, list[str]],
    mapping: VendorMapping,
    serving_dsn: str,
    hmac_key: HmacKey,
    run_id: str,
    institution: str,
    vendor: str,
    now: datetime,
    tracer: trace.Tracer | None = None,
    partial: Mapping[str, Collection[str]] | None = None,
    cursors: Mapping[str, datetime] | None = None,
    windows: Mapping[str, str] | None = None,
    watermarks: Mapping[str, Mapping[str, str]] | None = None,
) -> LoadReport:
    """Normalize, tokenize, validate and load every domain of ``courses_loaded``; see the module
    docstring. ``tracer`` defaults to ``get_tracer("lms_sync.transforms")`` (tests pass their own).
    Raises :class:`TransformError` for a domain that could not be loaded (earlier domains stay
    committed; that domain's cursor does not move)."""
    if vendor != mapping.vendor:
        raise ValueError(
            f"vendor {vendor!r} does not match the mapping's vendor {mapping.vendor!r}"
        )
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    tracer = tracer or trace.get_tracer("lms_sync.transforms")
    report = LoadReport(run_id=run_id)
    with tempfile.TemporaryDirectory(prefix="lms-sync-transform-") as work:
        con = connect(serving_dsn)
        try:
            ensure_schema(con)
            for domain in mapping.domains:
                courses = [str(c) for c in courses_loaded.get(domain, [])]
                if not courses:
                    log.info("domain %s: no complete course partitions, skipped", domain)
                    continue
                _load_domain(
                    con, tracer, report, Path(work), frames, courses, mapping, domain,
                    hmac_key, run_id, institution, vendor, now,
                    partial=partial or {}, cursor=(cursors or {}).get(domain, now),
                    window=(windows or {}).get(domain),
                    watermarks=(watermarks or {}).get(domain),
                )  # fmt: skip
        finally:
            con.execute(f"DROP TABLE IF EXISTS {TOKENS_TABLE}")
            con.close()
    return report


def _normalize_to_parquet(
    tmap: TableMap,
    frames: Mapping[str, pl.LazyFrame],
    courses: list[str],
    work: Path,
) -> tuple[list[Path], list[str]]:
    """Stream the normalized table to Parquet: for row-wise maps one file per group of courses of
    at most ``_ROWS_PER_FILE`` staged rows (memory bounded by a group, not the institution — a
    join's right side is deduplicated in memory once per group, so a file per course made the
    work grow with courses × rows); one file for maps that aggregate across courses (people,
    engagement — small). Only rows of ``courses`` are read."""
    if tmap.stream not in frames:
        return [], []
    source = frames[tmap.stream]
    groups = [courses] if tmap.aggregate is not None else _course_groups(source, courses)
    paths: list[Path] = []
    columns: list[str] = []
    for i, group in enumerate(groups):
        scoped = dict(frames)
        scoped[tmap.stream] = source.filter(pl.col("_course_id").cast(pl.String).is_in(group))
        lf = normalize(tmap, scoped)
        if lf is None:
            return [], []
        path = work / f"{tmap.table}-{i:05d}.parquet"
        lf.sink_parquet(path, compression="lz4", maintain_order=False)
        columns = lf.collect_schema().names()
        paths.append(path)
    return paths, columns


_ROWS_PER_FILE = 500_000


def _course_groups(source: pl.LazyFrame, courses: list[str]) -> list[list[str]]:
    """Consecutive courses, cut where a group's staged rows would pass ``_ROWS_PER_FILE``."""
    course = pl.col("_course_id").cast(pl.String)
    counts = dict(source.filter(course.is_in(courses)).group_by(course).len().collect().iter_rows())
    groups: list[list[str]] = [[]]
    size = 0
    for c in courses:
        rows = counts.get(c, 0)
        if groups[-1] and size + rows > _ROWS_PER_FILE:
            groups.append([])
            size = 0
        groups[-1].append(c)
        size += rows
    return groups


def _load_domain(
    con,
    tracer,
    report,
    work,
    frames,
    courses,
    mapping,
    domain,
    key,
    run_id,
    institution,
    vendor,
    now,
    *,
    partial,
    cursor,
    window,
    watermarks,
) -> None:
    started = datetime.now(UTC)
    totals = TableCounts()
    current = "?"
    con.execute("BEGIN")
    try:
        for tmap in mapping.for_domain(domain):
            current = tmap.table
            spec = canonical_table(tmap.table)
            with tracer.start_as_current_span(f"transform {tmap.table}") as span:
                span.set_attributes({"table": tmap.table, "domain": domain, "vendor": vendor})
                paths, columns = _normalize_to_parquet(tmap, frames, courses, work)
                if not paths:
                    span.set_attribute("skipped", True)
                    continue
            with tracer.start_as_current_span(f"load {tmap.table}") as span:
                counts = load_table(
                    con, table=spec, tmap=tmap, parquet=paths, columns=columns, vendor=vendor,
                    key=key,
                    now=now, courses_loaded=courses,
                    partial_courses=[c for c in courses if c in set(partial.get(tmap.stream, ()))],
                )  # fmt: skip
                for path in paths:
                    path.unlink(missing_ok=True)
                span.set_attributes(
                    {
                        "table": tmap.table, "domain": domain, "rows.extracted": counts.extracted,
                        "rows.loaded": counts.loaded, "rows.inserted": counts.inserted,
                        "rows.updated": counts.updated, "rows.deleted": counts.deleted,
                        "rows.quarantined": sum(counts.quarantined.values()),
                    }
                )  # fmt: skip
            report.tables[tmap.table] = TableReport(
                table=tmap.table, domain=domain, extracted=counts.extracted,
                quarantined=counts.quarantined, inserted=counts.inserted,
                updated=counts.updated, deleted=counts.deleted, loaded=counts.loaded,
            )  # fmt: skip
            for attr in ("extracted", "inserted", "updated", "deleted", "loaded"):
                setattr(totals, attr, getattr(totals, attr) + getattr(counts, attr))
            for rule, n in counts.quarantined.items():
                totals.quarantined[rule] = totals.quarantined.get(rule, 0) + n
            log.info(
                "loaded %s: extracted=%d loaded=%d inserted=%d updated=%d deleted=%d "
                "quarantined=%d",
                tmap.table, counts.extracted, counts.loaded, counts.inserted, counts.updated,
                counts.deleted, sum(counts.quarantined.values()),
            )  # fmt: skip
        chaos_kill(f"load:{domain}")
        con.execute("COMMIT")
    except Exception as exc:
        con.execute("ROLLBACK")
        write_bookkeeping(
            con, run_id=run_id, institution=institution, vendor=vendor, domain=domain,
            started_at=started, finished_at=datetime.now(UTC), courses_loaded=len(courses),
            totals=totals, status="failed", cursor=None, window=window,
        )  # fmt: skip
        raise TransformError(
            f"domain {domain}: loading table {current} failed: {type(exc).__name__}: "
            f"{_redact(str(exc))}"
        ) from None
    chaos_kill(f"cursor:{domain}")
    write_bookkeeping(
        con, run_id=run_id, institution=institution, vendor=vendor, domain=domain,
        started_at=started, finished_at=datetime.now(UTC), courses_loaded=len(courses),
        totals=totals, status="completed", cursor=cursor, window=window, watermarks=watermarks,
    )  # fmt: skip

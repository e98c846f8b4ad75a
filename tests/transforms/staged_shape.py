"""Helpers that build frames shaped exactly like staged Parquet (string columns + lineage)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from connectors.canvas.endpoints import ENDPOINTS

RECORDED = Path("/work/shared/reference/canvas-recorded")
ENDPOINT_BY_STREAM = {e.stream: e for e in ENDPOINTS}
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FETCHED = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)  # numbers and booleans in their JSON spelling, objects as JSON


def _get(record: dict, path: str) -> object:
    value: object = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def staged(
    stream: str,
    records: Iterable[dict],
    *,
    course_id: str,
    run_id: str = "run-1",
    fetched_at: datetime = FETCHED,
) -> pl.LazyFrame:
    """Flatten vendor records to the staged shape of ``stream`` (one partition)."""
    endpoint = ENDPOINT_BY_STREAM[stream]
    recs = list(records)
    data: dict[str, list] = {
        col: [_text(_get(r, f)) for r in recs]
        for f, col in zip(endpoint.fields, endpoint.columns, strict=True)
    }
    n = len(recs)
    path = f"staging/canvas/{stream}/window=w1/course={course_id}/part-0.parquet"
    schema = {c: pl.String for c in data}
    df = pl.DataFrame(data, schema=schema).with_columns(
        pl.lit(run_id).alias("_run_id"),
        pl.lit(course_id).alias("_course_id"),
        pl.lit(f"https://canvas.test/api/v1/{stream}").alias("_source_url"),
        pl.lit(1, pl.Int32).alias("_page_number"),
        pl.Series("_record_index", list(range(n)), dtype=pl.Int32),
        pl.lit(fetched_at).cast(pl.Datetime("us", "UTC")).alias("_fetched_at"),
        pl.lit("0af7651916cd43dd8448eb211c80319c").alias("_trace_id"),
        pl.lit("b7ad6b7169203331").alias("_span_id"),
        pl.lit(path).alias("_staging_path"),
    )
    return df.lazy()


def concat(*frames: pl.LazyFrame) -> pl.LazyFrame:
    return pl.concat(list(frames), how="vertical")


def recorded(name: str) -> list | dict:
    return json.loads((RECORDED / name).read_text())


def table_digest(path: Path, table: str) -> tuple[int, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        key = cols[0]
        row = con.execute(
            f"SELECT count(*), md5(string_agg(md5(CAST(t AS VARCHAR)), '' ORDER BY {key}::VARCHAR,"
            f" md5(CAST(t AS VARCHAR)))) FROM {table} t"
        ).fetchone()
        return int(row[0]), str(row[1])
    finally:
        con.close()

"""Staging write throughput and peak memory.

* ``staging_write_rows_per_s``: 200k submission-shaped rows written through ``StagingStore`` in
  100-row pages (Parquet + raw gzip archive + hashes + fsync + atomic rename), against a bare
  ``pyarrow.parquet.write_table`` of the same rows as one table (same compression). Only the
  writing is timed on both sides; generating the pages is not.
* ``staging_peak_rss_{50,100,200}k``: peak RSS of a fresh process that generates and stages that
  many rows, against a fresh process that builds the same rows as one table and writes it.
* ``staging_rss_growth_200k_vs_50k``: how much staging's peak grows for 4× the rows, against how
  much the write-it-all-at-once baseline grows.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.results import Figure
from bench.rss import measure, peak_rss_mb
from connectors.canvas.endpoints import SUBMISSIONS
from transforms.staging import (
    PARQUET_COMPRESSION,
    PageMeta,
    PartitionKey,
    StagingStore,
    stream_schema,
)

ROWS = 200_000
PAGE_ROWS = 100
RSS_SIZES = (50_000, 100_000, 200_000)
REPEATS = 3
SCHEMA = stream_schema(SUBMISSIONS.columns)
_T0 = datetime(2025, 9, 1, tzinfo=UTC)
_STATES = ("graded", "submitted", "unsubmitted", "pending_review")


def submission_pages(
    rows: int, *, page_rows: int = PAGE_ROWS
) -> Iterator[tuple[pa.Table, PageMeta]]:
    """Yield ``rows`` submission-shaped records as (table, page) pairs, one page at a time."""
    for number, start in enumerate(range(0, rows, page_rows), start=1):
        n = min(page_rows, rows - start)
        url = f"https://canvas.test/api/v1/courses/101/students/submissions?page={number}"
        fetched_at = _T0 + timedelta(seconds=number)
        records = [_submission(start + i) for i in range(n)]
        page = PageMeta(
            stream="submissions",
            number=number,
            url=url,
            status=200,
            fetched_at=fetched_at,
            raw=json.dumps(records).encode(),
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id=f"{number:016x}",
        )
        columns = {c: [_text(r.get(c)) for r in records] for c in SUBMISSIONS.columns}
        columns |= {
            "_run_id": ["bench-run"] * n,
            "_course_id": ["101"] * n,
            "_source_url": [url] * n,
            "_page_number": [number] * n,
            "_record_index": list(range(n)),
            "_fetched_at": [fetched_at] * n,
            "_trace_id": [page.trace_id] * n,
            "_span_id": [page.span_id] * n,
        }
        yield pa.table(columns, schema=SCHEMA), page


def _submission(i: int) -> dict[str, object]:
    graded = i % 5 != 0
    return {
        "id": 9_000_000 + i,
        "user_id": 50_000 + i % 700,
        "assignment_id": 7_000 + i // 700,
        "score": round((i * 37) % 1000 / 10, 1) if graded else None,
        "grade": str(round((i * 37) % 1000 / 10, 1)) if graded else None,
        "entered_score": round((i * 37) % 1000 / 10, 1) if graded else None,
        "entered_grade": str(round((i * 37) % 1000 / 10, 1)) if graded else None,
        "workflow_state": _STATES[i % len(_STATES)],
        "submitted_at": (_T0 + timedelta(minutes=i)).isoformat(),
        "graded_at": (_T0 + timedelta(minutes=i, hours=30)).isoformat() if graded else None,
        "posted_at": (_T0 + timedelta(minutes=i, hours=31)).isoformat() if graded else None,
        "late": i % 11 == 0,
        "missing": i % 13 == 0,
        "excused": False,
        "attempt": 1 + i % 3,
        "late_policy_status": None,
        "seconds_late": (i % 11 == 0) * 3600,
        "grade_matches_current_submission": True,
        "submission_type": "online_upload",
        "grader_id": 300 + i % 4,
    }


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def stage_rows(rows: int, root: str) -> float:
    """Stage ``rows`` through StagingStore; return seconds spent in the store, not generating."""
    store = StagingStore(root)
    key = PartitionKey(
        "bench-isd", "canvas", "gradebook", "2025-09-01", f"c{rows}-{time.time_ns()}"
    )
    spent = 0.0
    t = time.perf_counter()
    writer = store.writer(key, run_id="bench-run", streams={"submissions": SCHEMA})
    spent += time.perf_counter() - t
    for table, page in submission_pages(rows):
        t = time.perf_counter()
        writer.write("submissions", table, page=page)
        spent += time.perf_counter() - t
    t = time.perf_counter()
    manifest = writer.commit()
    spent += time.perf_counter() - t
    assert manifest.row_count == rows, manifest.row_count
    return spent


def write_table_rows(rows: int, root: str) -> float:
    """Baseline: all rows as one table, one bare ``write_table``; return the write's seconds."""
    table = pa.concat_tables(t for t, _ in submission_pages(rows))
    t = time.perf_counter()
    pq.write_table(
        table,
        Path(root) / f"baseline-{rows}-{time.time_ns()}.parquet",
        compression=PARQUET_COMPRESSION,
    )
    return time.perf_counter() - t


def _staged_peak(rows: int, root: str) -> float:
    stage_rows(rows, root)
    return peak_rss_mb()


def run() -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-staging-") as root:
        staging_s = min(stage_rows(ROWS, root) for _ in range(REPEATS))
        baseline_s = min(write_table_rows(ROWS, root) for _ in range(REPEATS))
        figures.append(
            Figure.compare(
                "staging_write_rows_per_s",
                ROWS / staging_s,
                "rows/s",
                baseline_name="pyarrow_write_table_rows_per_s",
                baseline_value=ROWS / baseline_s,
            )
        )
        staged, baseline = {}, {}
        for rows in RSS_SIZES:
            _, staged[rows] = measure(stage_rows, rows, root)
            _, baseline[rows] = measure(write_table_rows, rows, root)
            figures.append(
                Figure.compare(
                    f"staging_peak_rss_{rows // 1000}k",
                    staged[rows],
                    "MB",
                    baseline_name=f"pyarrow_write_table_peak_rss_{rows // 1000}k",
                    baseline_value=baseline[rows],
                    peak_rss_mb=staged[rows],
                )
            )
        small, large = RSS_SIZES[0], RSS_SIZES[-1]
        growth = f"{large // 1000}k_vs_{small // 1000}k"
        figures.append(
            Figure.compare(
                f"staging_rss_growth_{growth}",
                staged[large] / staged[small],
                "x",
                baseline_name=f"pyarrow_write_table_rss_growth_{growth}",
                baseline_value=baseline[large] / baseline[small],
                peak_rss_mb=staged[large],
            )
        )
    return figures

"""Transform + load throughput: ``load_staged`` over 5,000,000 staged submissions.

Generated staged Parquet (the exact staged shape: declared fields as strings + lineage), 10 course
partitions × 500 students × 1,000 assignments, plus the matching course, users, enrollments and
assignments streams. Three measurements, each in a fresh process of its own (``bench/rss.py``):

* ``transform_load_rows_per_s`` — ``load_staged`` (normalize, tokenize, validate, quarantine, load
  into a fresh DuckDB file) over the roster + gradebook domains; rate = submission rows / seconds.
* ``bare_duckdb_insert`` — ``INSERT INTO t SELECT * FROM read_parquet(...)`` of the same submission
  files into a fresh DuckDB file: the engine's floor.
* the common script, on a sample, as a rate: a per-record Python loop over the staged rows that
  parses every value (``float``, ``int``, ``datetime.fromisoformat``, booleans), hashes the user id
  of each record with ``hmac.new`` and inserts with DuckDB ``executemany``
  (``python_hmac_executemany``; ~2k rows/s, so a 20k-row sample); and the same loop keeping the
  rows and bulk-inserting them at the end in one Arrow table (``python_hmac_loop``; 200k rows) —
  the best such a script can do, shown so the gap to the common one is visible.

Targets: within 3× of the bare load, > 20× faster than the loop, peak RSS < 2 GB.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from bench.results import Figure
from bench.rss import measure

COURSES = int(os.environ.get("BENCH_TRANSFORM_COURSES", "10"))
STUDENTS = 500  # per course
ASSIGNMENTS = 1_000  # per course
LOOP_SAMPLE = 200_000
EXECUTEMANY_SAMPLE = 20_000  # ~2k rows/s: 200k would take ~100 s
KEY = b"bench-key-0123456789abcdef012345"
NOW = datetime(2026, 11, 26, tzinfo=UTC)
_FETCHED = datetime(2026, 11, 25, tzinfo=UTC)


def _lineage(n: int, course: int, stream: str, root: Path) -> list[pl.Expr]:
    part = root / f"window=w1/course={course}/domain"
    return [
        pl.lit("run-bench").alias("_run_id"),
        pl.lit(str(course)).alias("_course_id"),
        pl.lit(f"https://canvas.test/api/v1/courses/{course}/{stream}").alias("_source_url"),
        (pl.int_range(n) // 100 + 1).cast(pl.Int32).alias("_page_number"),
        (pl.int_range(n) % 100).cast(pl.Int32).alias("_record_index"),
        pl.lit(_FETCHED).cast(pl.Datetime("us", "UTC")).alias("_fetched_at"),
        pl.lit("0af7651916cd43dd8448eb211c80319c").alias("_trace_id"),
        pl.lit("b7ad6b7169203331").alias("_span_id"),
        pl.lit(str(part)).alias("_staging_path"),
    ]


def _write(root: Path, stream: str, course: int, df: pl.DataFrame) -> None:
    out = root / stream
    out.mkdir(parents=True, exist_ok=True)
    df = df.with_columns(_lineage(df.height, course, stream, root))
    # Staging writes zstd row groups of ROW_GROUP_ROWS (transforms/staging.py); so does this.
    df.drop("_staging_path").write_parquet(
        out / f"course={course}.parquet", compression="zstd", row_group_size=65_536
    )


def _s(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String)


def generate(root: Path) -> dict[str, list[str]]:
    """Write the staged streams (one course at a time: bounded memory)."""
    for c in range(1, COURSES + 1):
        course = 1000 + c
        users = pl.DataFrame({"i": range(STUDENTS)}).select(
            uid=pl.col("i") + c * 100_000 + 1_000_000
        )
        _write(
            root,
            "course",
            course,
            pl.DataFrame(
                {
                    "id": [str(course)],
                    "name": [f"Course {c}"],
                    "course_code": [f"C{c}"],
                    "workflow_state": ["available"],
                    "enrollment_term_id": ["7"],
                    "term__id": ["7"],
                    "term__name": ["Fall"],
                    "term__start_at": ["2026-09-01T00:00:00Z"],
                }
            ),
        )
        _write(
            root,
            "users",
            course,
            users.select(
                id=_s(pl.col("uid")),
                name=pl.lit("Student ") + _s(pl.col("uid")),
                sis_user_id=pl.lit("SIS") + _s(pl.col("uid")),
                login_id=pl.lit("l") + _s(pl.col("uid")),
                email=pl.lit("s") + _s(pl.col("uid")) + "@example.edu",
            ),
        )
        _write(
            root,
            "enrollments",
            course,
            users.select(
                id=_s(pl.col("uid") * 10 + c),
                user_id=_s(pl.col("uid")),
                course_id=pl.lit(str(course)),
                course_section_id=pl.lit(str(course * 10)),
                type=pl.lit("StudentEnrollment"),
                enrollment_state=pl.lit("active"),
                updated_at=pl.lit("2026-10-01T00:00:00Z"),
                last_activity_at=pl.lit("2026-11-20T08:00:00-05:00"),
                total_activity_time=pl.lit("3600"),
            ),
        )
        _write(
            root,
            "sections",
            course,
            pl.DataFrame({"id": [str(course * 10)], "course_id": [str(course)], "name": ["A"]}),
        )
        aids = pl.DataFrame({"a": range(ASSIGNMENTS)}).select(aid=pl.col("a") + course * 10_000)
        _write(
            root,
            "assignments",
            course,
            aids.select(
                id=_s(pl.col("aid")),
                course_id=pl.lit(str(course)),
                name=pl.lit("A") + _s(pl.col("aid")),
                points_possible=pl.lit("100.0"),
                due_at=pl.lit("2026-11-15T23:59:00Z"),
                grading_type=pl.lit("points"),
                published=pl.lit("true"),
            ),
        )
        subs = aids.join(users, how="cross").with_row_index("k")
        _write(
            root,
            "submissions",
            course,
            subs.select(
                id=_s(pl.col("k") + course * 10_000_000),
                user_id=_s(pl.col("uid")),
                assignment_id=_s(pl.col("aid")),
                score=_s((pl.col("k") % 1000) / 10.0),
                grade=_s((pl.col("k") % 1000) / 10.0),
                entered_score=_s((pl.col("k") % 1000) / 10.0),
                entered_grade=_s((pl.col("k") % 1000) / 10.0),
                workflow_state=pl.lit("graded"),
                submitted_at=pl.lit("2026-11-10T10:00:00Z"),
                graded_at=pl.lit("2026-11-11T10:00:00-06:00"),
                posted_at=pl.lit(None, pl.String),
                late=pl.lit("false"),
                missing=pl.lit("false"),
                excused=pl.lit(None, pl.String),
                attempt=pl.lit("1"),
                late_policy_status=pl.lit(None, pl.String),
                seconds_late=pl.lit("0"),
                grade_matches_current_submission=pl.lit("true"),
                submission_type=pl.lit("online_upload"),
                grader_id=pl.lit("42"),
            ),
        )
    return {
        s: sorted(str(p) for p in (root / s).glob("*.parquet"))
        for s in ("course", "users", "enrollments", "sections", "assignments", "submissions")
    }


def _scan(files: list[str]) -> pl.LazyFrame:
    return (
        pl.scan_parquet(files, include_file_paths="__f")
        .with_columns(pl.col("__f").str.replace(r"[/\\][^/\\]*$", "").alias("_staging_path"))
        .drop("__f")
    )


def run_load_staged(files: dict[str, list[str]], db: str) -> tuple[float, int]:
    from connectors.canvas.mapping import CANVAS
    from transforms.pipeline import load_staged
    from transforms.tokenize import HmacKey

    courses = [str(1000 + c) for c in range(1, COURSES + 1)]
    started = time.perf_counter()
    report = load_staged(
        frames={s: _scan(f) for s, f in files.items()},
        courses_loaded={"roster": courses, "gradebook": courses},
        mapping=CANVAS,
        serving_dsn=db,
        hmac_key=HmacKey(KEY, "v1"),
        run_id="run-bench",
        institution="bench-u",
        vendor="canvas",
        now=NOW,
    )
    elapsed = time.perf_counter() - started
    return elapsed, report.tables["submissions"].loaded


def run_bare(files: list[str], db: str) -> tuple[float, int]:
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(db)
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE TABLE t AS SELECT * FROM read_parquet($f) LIMIT 0", {"f": files})
    n = con.execute("INSERT INTO t SELECT * FROM read_parquet($f)", {"f": files}).fetchone()[0]
    con.close()
    return time.perf_counter() - started, int(n)


_LOOP_COLUMNS = (
    ("id", "VARCHAR"), ("assignment_id", "VARCHAR"), ("person_token", "VARCHAR"),
    ("score", "DOUBLE"), ("grade", "VARCHAR"), ("status", "VARCHAR"),
    ("submitted_at", "TIMESTAMPTZ"), ("graded_at", "TIMESTAMPTZ"), ("late", "BOOLEAN"),
    ("missing", "BOOLEAN"), ("excused", "BOOLEAN"), ("attempt", "INTEGER"),
)  # fmt: skip


def _loop_record(r: dict[str, str | None]) -> tuple[object, ...]:
    """What the common script does to one staged record: parse every value, hash the user id."""

    def number(v: str | None) -> float | None:
        return float(v) if v else None

    def at(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v).astimezone(UTC) if v else None

    def flag(v: str | None) -> bool | None:
        return None if v is None else v.lower() == "true"

    token = hmac.new(KEY, f"canvas:{r['user_id']}".encode(), hashlib.sha256).hexdigest()
    return (
        r["id"], r["assignment_id"], token, number(r["score"]),
        r["entered_grade"] or r["grade"], r["workflow_state"], at(r["submitted_at"]),
        at(r["graded_at"]), flag(r["late"]), flag(r["missing"]), flag(r["excused"]),
        int(r["attempt"]) if r["attempt"] else None,
    )  # fmt: skip


def run_loop(files: list[str], db: str, rows: int, bulk: bool) -> tuple[float, int]:
    """The per-record script over the first ``rows`` staged submissions. ``bulk=False``: insert
    with ``executemany`` every 1,000 records; ``bulk=True``: one Arrow insert at the end."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    con = duckdb.connect(db)
    con.execute(
        "CREATE TABLE submissions (" + ", ".join(f"{n} {t}" for n, t in _LOOP_COLUMNS) + ")"
    )
    insert = f"INSERT INTO submissions VALUES ({', '.join('?' for _ in _LOOP_COLUMNS)})"
    kept: list[tuple[object, ...]] = []
    done = 0
    for file in files:
        for record_batch in pq.ParquetFile(file).iter_batches(batch_size=10_000):
            for r in record_batch.to_pylist():
                kept.append(_loop_record(r))
                done += 1
                if not bulk and len(kept) == 1_000:
                    con.executemany(insert, kept)
                    kept = []
                if done >= rows:
                    break
            if done >= rows:
                break
        if done >= rows:
            break
    if bulk:
        names = [n for n, _ in _LOOP_COLUMNS]
        table = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in kept])
        con.register("kept_rows", table)
        con.execute("INSERT INTO submissions SELECT * FROM kept_rows")
    elif kept:
        con.executemany(insert, kept)
    con.close()
    return time.perf_counter() - started, done


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files = generate(root / "staging")
        print(
            f"   generated {COURSES * STUDENTS * ASSIGNMENTS:,} staged submissions "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        (t_load, n_load), rss_load = measure(run_load_staged, files, str(root / "serving.duckdb"))
        (t_bare, n_bare), rss_bare = measure(
            run_bare, files["submissions"], str(root / "bare.duckdb")
        )
        (t_loop, n_loop), rss_loop = measure(
            run_loop, files["submissions"], str(root / "loop.duckdb"), LOOP_SAMPLE, bulk=True
        )
        (t_many, n_many), rss_many = measure(
            run_loop,
            files["submissions"],
            str(root / "many.duckdb"),
            EXECUTEMANY_SAMPLE,
            bulk=False,
        )
    rate_load, rate_bare, rate_loop = n_load / t_load, n_bare / t_bare, n_loop / t_loop
    rate_many = n_many / t_many
    print(
        f"   load_staged {n_load:,} rows {t_load:.1f}s ({rss_load:.0f} MB); bare {n_bare:,} rows "
        f"{t_bare:.1f}s ({rss_bare:.0f} MB); loop+executemany {n_many:,} rows {t_many:.1f}s "
        f"({rss_many:.0f} MB); loop+bulk insert {n_loop:,} rows {t_loop:.1f}s ({rss_loop:.0f} MB)"
    )
    print(
        f"   targets: within 3x of bare: {rate_bare / rate_load:.2f}x slower"
        f" [{'met' if rate_load * 3 >= rate_bare else 'MISSED'}];"
        f" >20x the loop+executemany script: {rate_load / rate_many:.0f}x"
        f" [{'met' if rate_load > 20 * rate_many else 'MISSED'}];"
        f" peak RSS < 2 GB: {rss_load:.0f} MB [{'met' if rss_load < 2048 else 'MISSED'}]"
    )
    return [
        Figure.compare(
            "transform_load_rows_per_s", rate_load, "rows/s",
            baseline_name="bare_duckdb_insert_rows_per_s", baseline_value=rate_bare,
            peak_rss_mb=rss_load,
        ),
        Figure.compare(
            "transform_load_vs_python_loop", rate_load, "rows/s",
            baseline_name="python_hmac_loop_rows_per_s", baseline_value=rate_loop,
            peak_rss_mb=rss_load,
        ),
        Figure.compare(
            "transform_load_vs_python_executemany", rate_load, "rows/s",
            baseline_name="python_hmac_executemany_rows_per_s", baseline_value=rate_many,
            peak_rss_mb=rss_load,
        ),
        Figure.compare(
            "python_hmac_executemany_rows_per_s", rate_many, "rows/s",
            baseline_name="python_hmac_executemany_rows_per_s", baseline_value=rate_many,
            peak_rss_mb=rss_many,
        ),
        Figure.compare(
            "bare_duckdb_insert_rows_per_s", rate_bare, "rows/s",
            baseline_name="bare_duckdb_insert_rows_per_s", baseline_value=rate_bare,
            peak_rss_mb=rss_bare,
        ),
        Figure.compare(
            "python_hmac_loop_rows_per_s", rate_loop, "rows/s",
            baseline_name="python_hmac_loop_rows_per_s", baseline_value=rate_loop,
            peak_rss_mb=rss_loop,
        ),
    ]  # fmt: skip

"""Comparing serving databases for the incremental and chaos tests.

* :func:`live_tables` — ``ground_truth.actual_tables`` without rows soft-deleted because the
  source no longer has them (ground truth lists only what the source holds; enrollments and
  course grades keep their vendor-side deletions, which ground truth lists too).
* :func:`business_digest` — every canonical table's rows minus lineage columns, with
  ``deleted_at`` reduced to deleted-or-not: the run that noticed a deletion, and the lineage of
  the run that fetched a row, are the only things a full sync and a chain of incremental syncs
  may legitimately differ in.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.e2e.ground_truth import TABLES, actual_tables

_KEEP_DELETED = {"enrollments", "course_grades"}
_LINEAGE = {"_run_id", "_staging_path", "_trace_id", "_span_id", "_fetched_at"}


def live_tables(serving: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(serving), read_only=True) as con:
        tables = actual_tables(con)
    out = {}
    for name, rows in tables.items():
        if name in _KEEP_DELETED or name in ("attendance", "engagement_daily"):
            out[name] = rows
        else:
            out[name] = [r for r in rows if r[-1] is None]
    return out


def business_digest(serving: Path) -> dict[str, list[tuple]]:
    out = {}
    with duckdb.connect(str(serving), read_only=True) as con:
        for table in TABLES:
            cols = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
            keep = [
                "deleted_at IS NOT NULL" if c == "deleted_at" else f'"{c}"'
                for c in cols
                if c not in _LINEAGE
            ]
            rows = con.execute(f'SELECT {", ".join(keep)} FROM "{table}"').fetchall()
            out[table] = sorted(rows, key=repr)
    return out


def assert_live_equals(serving: Path, expected: dict[str, list[tuple]]) -> None:
    actual = live_tables(serving)
    for table in TABLES:
        want, got = expected[table], actual[table]
        missing = sorted(set(want) - set(got), key=repr)[:3]
        extra = sorted(set(got) - set(want), key=repr)[:3]
        assert got == want, (
            f"{table}: {len(got)} rows served, {len(want)} expected;\n"
            f"  expected but not served: {missing}\n  served but not expected: {extra}"
        )

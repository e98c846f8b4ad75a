"""A serving database made before columns were added (``Table.added``) still loads.

The "old" database here is built the way the previous release left it: every canonical table
without its added columns (and without the tables that did not exist yet), holding rows a load
wrote. ``ensure_schema`` must add the missing columns and tables; the next load must then run, and
leave the database with exactly the layout and rows a fresh database gets from the same staging.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from staged_shape import table_digest
from test_pipeline import institution, run

from transforms.canonical import TABLES
from transforms.load import connect, ensure_schema

NEW_TABLES = {"schools", "activity_completion"}


def _layout(db: Path) -> dict[str, list[tuple[str, str]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            t.name: [(r[0], r[1]) for r in con.execute(f"DESCRIBE {t.name}").fetchall()]
            for t in TABLES
        }


def _old_database(path: Path, rows_from: Path) -> None:
    """The previous release's layout, holding the rows ``rows_from`` has in those columns."""
    con = duckdb.connect(str(path))
    try:
        con.execute(f"ATTACH '{rows_from}' AS fresh (READ_ONLY)")
        for t in TABLES:
            if t.name in NEW_TABLES:
                continue
            added = {name for name, _ in t.added_columns()}
            old = [(n, ty) for n, ty in t.serving_columns() if n not in added]
            body = ", ".join(f"{n} {ty}" for n, ty in old)
            con.execute(f"CREATE TABLE {t.name} ({body})")
            names = ", ".join(n for n, _ in old)
            con.execute(f"INSERT INTO {t.name} SELECT {names} FROM fresh.{t.name}")
        con.execute("DETACH fresh")
    finally:
        con.close()


def test_every_added_column_sits_after_the_lineage():
    assert any(t.added_columns() for t in TABLES)
    for t in TABLES:
        names = [n for n, _ in t.serving_columns()]
        tail = [n for n, _ in t.added_columns()]
        assert names[len(names) - len(tail) :] == tail, t.name
        assert len(set(names)) == len(names), t.name


def test_ensure_schema_adds_the_new_columns_and_tables(tmp_path, key):
    fresh = tmp_path / "fresh.duckdb"
    run(fresh, institution(), key)
    old = tmp_path / "old.duckdb"
    _old_database(old, fresh)
    before = _layout_without_new(old)
    assert all("is_primary" not in dict(cols) for cols in [before["enrollments"]])

    con = connect(str(old))
    try:
        ensure_schema(con)
        ensure_schema(con)  # idempotent
    finally:
        con.close()
    assert _layout(old) == _layout(fresh)


def test_a_database_made_before_the_change_still_loads(tmp_path, key):
    frames = institution()
    fresh = tmp_path / "fresh.duckdb"
    run(fresh, frames, key)
    old = tmp_path / "old.duckdb"
    _old_database(old, fresh)

    report = run(old, frames, key)  # the first load after the upgrade
    assert all(t.inserted == t.updated == t.deleted == 0 for t in report.tables.values())
    assert _layout(old) == _layout(fresh)
    names = [t.name for t in TABLES]
    assert {n: table_digest(old, n) for n in names} == {n: table_digest(fresh, n) for n in names}
    with duckdb.connect(str(old), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM submissions WHERE passed IS NULL").fetchone()[0]


def _layout_without_new(db: Path) -> dict[str, list[tuple[str, str]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            t.name: [(r[0], r[1]) for r in con.execute(f"DESCRIBE {t.name}").fetchall()]
            for t in TABLES
            if t.name not in NEW_TABLES
        }

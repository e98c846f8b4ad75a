"""DuckDB load of one canonical table, inside the caller's transaction.

Input: stage 1 of the table's normalization (Polars, streamed to private Parquet by the pipeline);
stage 2 — typing the map's Parse columns — runs here, in the same SQL (``normalize.typed_sql``).
Steps for one table (all SQL, no per-row Python):

1. tokenize the DISTINCT person identifiers (``tokenize.py``);
2. prepare: de-duplicate on ``source_id`` (last fetched wins, ties broken by staging path, page,
   record index — deterministic; the window runs only when some id repeats, which one aggregate
   over that column tells), compute ``*_key``\\ s, join tokens and ``people`` for
   ``person_token``, evaluate the validation rules (``validate.py``);
3. quarantine rows with a rule (idempotent: keyed by table, rule, natural key and staged record);
4. into an **empty** table (a first load): count rows per rule in one pass that computes only the
   rules' inputs, set the quarantined rows aside, and stream the rest straight into the table —
   nothing is materialized twice and there is nothing to compare with or delete;
5. otherwise upsert by ``*_key`` from the prepared rows (a TEMP table): UPDATE rows whose values
   or lineage differ, INSERT new ones — an unchanged row is never rewritten, so re-loading the
   same staging changes nothing; then soft-delete rows missing from the source, only in the
   courses whose partition for this domain was loaded (``deleted_at`` = run time, set once).
   A course whose partition holds only the changes of an incremental window (its stream is
   *partial* in the manifest) is upserted and never soft-deleted by absence; instead the
   orphan rule below soft-deletes rows whose parent is gone (``_ORPHANED``).

Incremental deletions, the honest rule: a submission disappears from Canvas when its assignment
is deleted or its student's enrollment leaves the submitting states (deleted, rejected,
creation_pending). The roster and the assignment list are always read in full, so those parents'
deletions are known; a partial load then soft-deletes the child rows they orphan — exactly the
rows a full load would soft-delete by absence. A submission removed any other way (which Canvas
does not do) is only caught by a periodic ``lms-sync sync --full``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from transforms.canonical import BOOKKEEPING_DDL, LINEAGE, TABLES, Table, key_sql
from transforms.mapping import TableMap
from transforms.normalize import typed_sql
from transforms.tokenize import TOKENS_TABLE, HmacKey, tokenize_distinct
from transforms.validate import checks_for

__all__ = ["SyncState", "TableCounts", "connect", "ensure_schema", "load_table", "read_state"]

_PREPARED = "_prepared"

# Rows of a partially loaded course whose parent is gone (see the module docstring): the predicate
# is over the table as ``tgt``; it must select exactly what a full load would delete by absence.
_SUBMITTING = "('active', 'invited', 'completed', 'inactive')"
_NO_SUBMITTING_ENROLLMENT = f"""NOT EXISTS (
    SELECT 1 FROM enrollments e WHERE e.vendor = tgt.vendor AND e.course_key = tgt.course_key
      AND e.person_key = tgt.person_key AND e.deleted_at IS NULL AND e.role = 'student'
      AND e.state IN {_SUBMITTING})"""
_ORPHANED: dict[str, str] = {
    "submissions": f"""(EXISTS (
        SELECT 1 FROM assignments a WHERE a.assignment_key = tgt.assignment_key
          AND a.deleted_at IS NOT NULL) OR {_NO_SUBMITTING_ENROLLMENT})""",
    "attendance_rates": _NO_SUBMITTING_ENROLLMENT,
}


# A bulk domain's export watermarks (Canvas Data 2: DAP table → the ``until``/``at`` its next
# incremental starts from) sit in the domain's own ``_sync_state`` row, as one JSON object, not as
# rows of their own: they are written by the same statement as the domain's cursor, so the two
# can only move together, after the load that used them committed, and a domain that goes back to
# REST drops them (its next bulk sync starts from snapshots). Added to older databases here.
_STATE_COLUMNS = ("ALTER TABLE _sync_state ADD COLUMN IF NOT EXISTS watermarks JSON",)


@dataclass(frozen=True)
class SyncState:
    """A domain's cursor, the staging window of the load that set it and, for a bulk domain, its
    export watermarks (table → watermark)."""

    cursor: datetime
    window: str | None
    run_id: str | None
    watermarks: dict[str, str] = field(default_factory=dict)


def read_state(dsn: str, *, institution: str, vendor: str) -> dict[str, SyncState]:
    """Cursors per domain from ``_sync_state`` (empty for a database that does not exist yet)."""
    if not dsn.startswith("md:") and not Path(dsn).exists():
        return {}
    con = connect(dsn, memory_limit=None)
    try:
        ensure_schema(con)
        rows = con.execute(
            "SELECT domain, cursor, staging_window, run_id, watermarks FROM _sync_state"
            " WHERE institution = $inst AND vendor = $vendor",
            {"inst": institution, "vendor": vendor},
        ).fetchall()
    finally:
        con.close()
    return {
        d: SyncState(cursor=c, window=w, run_id=r, watermarks=json.loads(m) if m else {})
        for d, c, w, r, m in rows
        if c is not None
    }


@dataclass
class TableCounts:
    extracted: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    loaded: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)


def connect(dsn: str, *, memory_limit: str | None = "1536MB") -> duckdb.DuckDBPyConnection:
    """A DuckDB file path or an ``md:`` DSN (MotherDuck connects through duckdb the same way).

    ``memory_limit`` bounds DuckDB's buffer pool; larger intermediates spill to its temp
    directory, so peak memory does not grow with institution size (DESIGN.md, bounded memory)."""
    con = duckdb.connect(dsn)
    # Insertion order carries no meaning here (upserts are by key); dropping it lets DuckDB stream.
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    # Parsed vendor text without an offset is UTC, and a timestamp's date is its UTC date.
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing: tables, and on a database made by an older release the columns
    added since (``Table.added``; they are last in both layouts, so old and new agree)."""
    for t in TABLES:
        con.execute(t.ddl())
        for name, sql_type in t.added_columns():
            con.execute(f"ALTER TABLE {t.name} ADD COLUMN IF NOT EXISTS {name} {sql_type}")
    for ddl in (*BOOKKEEPING_DDL, *_STATE_COLUMNS):
        con.execute(ddl)


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pq(paths: Sequence[Path]) -> str:
    return "read_parquet([" + ", ".join(_q(str(p)) for p in paths) + "])"


def _tokenize(
    con: duckdb.DuckDBPyConnection, t: Table, src: str, names: set[str], vendor: str, key: HmacKey
) -> None:
    messages = []
    if "user_id" in names:
        messages.append(f"SELECT {_q(vendor + ':')} || user_id AS msg FROM {src}")
    if t.is_people:
        for col, prefix, expr in (
            ("sis_user_id", "sis:", "sis_user_id"),
            ("login_id", "login:", "login_id"),
            ("email", "email:", "lower(trim(email))"),
        ):
            if col in names:
                messages.append(f"SELECT {_q(prefix)} || {expr} AS msg FROM {src}")
    for sql in messages:
        tokenize_distinct(con, messages_sql=sql, key=key)


def _prepare_sql(
    t: Table,
    src: str,
    names: set[str],
    vendor: str,
    dedup_on: str | None,
    *,
    validate: bool = True,
) -> str:
    """The prepared rows: keys, tokens, typed values, lineage, working columns and ``_rule`` /
    ``_reason``. ``dedup_on``: the column to keep one row per (last fetched wins), or None when
    the source is known to hold no duplicates. ``validate=False`` leaves out the rules and their
    joins (for rows already known to break none)."""

    def col(name: str, sql_type: str) -> str:
        return f"CAST(n.{name} AS {sql_type})" if name in names else f"CAST(NULL AS {sql_type})"

    joins: list[str] = []
    sel: list[str] = []
    if "user_id" in names:
        joins.append(f"LEFT JOIN {TOKENS_TABLE} tu ON tu.msg = {_q(vendor + ':')} || n.user_id")
        user_token = "tu.token"
    else:
        user_token = "CAST(NULL AS VARCHAR)"

    source_id = user_token if t.is_people else "CAST(n.source_id AS VARCHAR)"
    sel.append(f"{key_sql(t.entity, source_id)} AS {t.key}")
    sel.append("$vendor AS vendor")
    sel.append(f"{source_id} AS source_id")
    for r in t.refs:
        src_col = f"CAST(n.{r.source} AS VARCHAR)" if r.source in names else "CAST(NULL AS VARCHAR)"
        sel.append(f"{key_sql(r.entity, src_col)} AS {r.column}")
    if t.person:
        joins.append(
            "LEFT JOIN (SELECT source_id, person_token FROM people WHERE vendor = $vendor) pp"
            f" ON pp.source_id = {user_token}"
        )
        sel.append(f"{key_sql('people', user_token)} AS person_key")
        sel.append("pp.person_token AS person_token")
    if t.is_people:
        for out, src_col, prefix, expr in (
            ("sis_id_token", "sis_user_id", "sis:", "n.sis_user_id"),
            ("login_id_token", "login_id", "login:", "n.login_id"),
            ("email_token", "email", "email:", "lower(trim(n.email))"),
        ):
            if src_col in names:
                alias = f"t_{out}"
                joins.append(
                    f"LEFT JOIN {TOKENS_TABLE} {alias} ON {alias}.msg = {_q(prefix)} || {expr}"
                )
                sel.append(f"{alias}.token AS {out}")
            else:
                sel.append(f"CAST(NULL AS VARCHAR) AS {out}")
        person = (
            "coalesce(t_sis_id_token.token, tu.token)" if "sis_user_id" in names else user_token
        )
        sel.append(f"{person} AS person_token")
        sel.append("$key_version AS token_key_version")
    for c in t.columns:
        sel.append(f"{col(c.name, c.type)} AS {c.name}")
    sel.append(f"{col('deleted_at', 'TIMESTAMPTZ')} AS deleted_at")
    for name, sql_type in LINEAGE:
        sel.append(f"{col(name, sql_type)} AS {name}")
    # Working columns (never loaded): rule inputs and quarantine identity.
    sel.append(f"{user_token} AS _user_token")
    for r in t.refs:
        sel.append(f"{col(r.source, 'VARCHAR')} AS _src_{r.source}")
    sel += [
        f"{col('_type_errors', 'VARCHAR')} AS _type_errors",
        f"{col('_course_id', 'VARCHAR')} AS _course_id",
        f"{col('_page_number', 'INTEGER')} AS _page_number",
        f"{col('_record_index', 'INTEGER')} AS _record_index",
    ]
    order = (
        "_fetched_at DESC NULLS LAST, _staging_path DESC NULLS LAST,"
        " _page_number DESC NULLS LAST, _record_index DESC NULLS LAST"
    )
    dedup = (
        f"QUALIFY {dedup_on} IS NULL"
        f" OR row_number() OVER (PARTITION BY {dedup_on} ORDER BY {order}) = 1"
        if dedup_on
        else ""
    )
    checks = checks_for(t)
    rules = (
        f"SELECT p.*, {checks.rule_sql} AS _rule, {checks.reason_sql} AS _reason"
        f" FROM p {' '.join(checks.joins)}"
        if validate
        else "SELECT * FROM p"
    )
    return f"""
WITH n AS (
    SELECT * FROM {src} {dedup}
),
p AS (
    SELECT {", ".join(sel)}
    FROM n {" ".join(joins)}
)
{rules}
"""


def _exec(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object]):
    """Execute with only the named parameters the statement uses (DuckDB rejects extras)."""
    return con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})


def _serving_names(t: Table) -> list[str]:
    return [n for n, _ in t.serving_columns()]


def _dedup_column(con: duckdb.DuckDBPyConnection, t: Table, src: str) -> str | None:
    """The column to de-duplicate on, or None if no value of it repeats in ``src`` (one cheap
    aggregate over one column, instead of a window over every column of every row)."""
    on = "user_id" if t.is_people else "source_id"
    repeated = con.execute(
        f"SELECT count(*) FROM (SELECT {on} FROM {src} WHERE {on} IS NOT NULL"
        f" GROUP BY {on} HAVING count(*) > 1 LIMIT 1)"
    ).fetchone()
    return on if repeated and repeated[0] else None


def _count(counts: TableCounts, rows: list[tuple[str | None, int]]) -> None:
    for rule, n in rows:
        if rule is None:
            counts.loaded = int(n)
        else:
            counts.quarantined[rule] = int(n)


def load_table(
    con: duckdb.DuckDBPyConnection,
    *,
    table: Table,
    tmap: TableMap,
    parquet: Sequence[Path],
    columns: Sequence[str],
    vendor: str,
    key: HmacKey,
    now: datetime,
    courses_loaded: Sequence[str],
    partial_courses: Sequence[str] = (),
) -> TableCounts:
    """Load one table from stage 1 of its normalization (``parquet``, written by ``tmap``); the
    caller holds the domain's transaction. ``partial_courses`` (a subset of ``courses_loaded``)
    hold only changes: upserted, never soft-deleted by absence, orphans soft-deleted instead."""
    t = table
    names = set(columns)
    src = f"({typed_sql(tmap, _pq(parquet))})"
    counts = TableCounts()
    _tokenize(con, t, src, names, vendor, key)
    params = {"vendor": vendor, "now": now}
    prep_params = dict(params)
    if t.is_people:
        prep_params["key_version"] = key.version
    dedup_on = _dedup_column(con, t, src)
    prepared = _prepare_sql(t, src, names, vendor, dedup_on)
    cols = _serving_names(t)
    k = t.key
    empty = con.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {t.name})").fetchone()[0]

    if empty:
        # First load: nothing to update or soft-delete, so the prepared rows are never
        # materialized. One pass evaluates only the rules (DuckDB prunes every other column) for
        # the counts; quarantined rows (few) are then kept aside, and the rest stream straight
        # into the table — without the rules at all when every row passed them.
        _count(
            counts,
            _exec(
                con, f"SELECT _rule, count(*) FROM ({prepared}) GROUP BY ALL", prep_params
            ).fetchall(),
        )
        counts.extracted = counts.loaded + sum(counts.quarantined.values())
        if counts.quarantined:
            _exec(
                con,
                f"CREATE OR REPLACE TEMP TABLE {_PREPARED} AS"
                f" SELECT * FROM ({prepared}) WHERE _rule IS NOT NULL",
                prep_params,
            )
            _quarantine(con, t)
            con.execute(f"DROP TABLE IF EXISTS {_PREPARED}")
            rows = f"SELECT * FROM ({prepared}) WHERE _rule IS NULL"
        else:
            rows = _prepare_sql(t, src, names, vendor, dedup_on, validate=False)
        row = _exec(
            con,
            f"INSERT INTO {t.name} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM ({rows})",
            prep_params,
        ).fetchone()
        counts.inserted = int(row[0]) if row else 0
        return counts

    # ``_exists``: the row's key is in the table already (one hash join here, instead of an
    # anti-join of the prepared rows against the whole table for the INSERT).
    _exec(
        con,
        f"CREATE OR REPLACE TEMP TABLE {_PREPARED} AS"
        f" SELECT *, {k} IN (SELECT {k} FROM {t.name}) AS _exists FROM ({prepared})",
        prep_params,
    )
    _count(counts, con.execute(f"SELECT _rule, count(*) FROM {_PREPARED} GROUP BY ALL").fetchall())
    counts.extracted = counts.loaded + sum(counts.quarantined.values())

    if counts.quarantined:
        _quarantine(con, t)

    compare = [c for c in cols if c not in (k, "vendor", "source_id")]
    changed = " OR ".join(f"tgt.{c} IS DISTINCT FROM s.{c}" for c in compare)
    row = con.execute(
        f"""
        UPDATE {t.name} AS tgt SET {", ".join(f"{c} = s.{c}" for c in compare)}
        FROM (SELECT * FROM {_PREPARED} WHERE _rule IS NULL) s
        WHERE tgt.{k} = s.{k} AND ({changed})
        """
    ).fetchone()
    counts.updated = int(row[0]) if row else 0
    row = con.execute(
        f"""
        INSERT INTO {t.name} ({", ".join(cols)})
        SELECT {", ".join(cols)} FROM {_PREPARED} s WHERE s._rule IS NULL AND NOT s._exists
        """
    ).fetchone()
    counts.inserted = int(row[0]) if row else 0

    complete = [c for c in courses_loaded if c not in set(partial_courses)]
    if t.delete_absent and t.course_ref and complete:
        row = _exec(
            con,
            f"""
            UPDATE {t.name} AS tgt SET deleted_at = $now
            WHERE tgt.vendor = $vendor AND tgt.deleted_at IS NULL
              AND tgt.course_key IN (
                  SELECT {key_sql("courses", "c")} FROM (SELECT unnest($courses) AS c))
              AND NOT EXISTS (SELECT 1 FROM {_PREPARED} s WHERE s.{k} = tgt.{k})
            """,
            {**params, "courses": complete},
        ).fetchone()
        counts.deleted = int(row[0]) if row else 0
    if partial_courses and t.name in _ORPHANED:
        counts.deleted += _delete_orphans(con, t, params, list(partial_courses))

    con.execute(f"DROP TABLE IF EXISTS {_PREPARED}")
    return counts


def _delete_orphans(
    con: duckdb.DuckDBPyConnection, t: Table, params: dict[str, object], courses: list[str]
) -> int:
    row = _exec(
        con,
        f"""
        UPDATE {t.name} AS tgt SET deleted_at = $now
        WHERE tgt.vendor = $vendor AND tgt.deleted_at IS NULL
          AND tgt.course_key IN (
              SELECT {key_sql("courses", "c")} FROM (SELECT unnest($courses) AS c))
          AND {_ORPHANED[t.name]}
        """,
        {**params, "courses": courses},
    ).fetchone()
    return int(row[0]) if row else 0


def _quarantine(con: duckdb.DuckDBPyConnection, t: Table) -> None:
    record_cols = [*_serving_names(t), "_type_errors"]
    record = "to_json(struct_pack(" + ", ".join(f"{c} := p.{c}" for c in record_cols) + "))"
    qkey = (
        f"md5_number({_q(t.name)} || chr(31) || p._rule || chr(31) || coalesce(p.source_id, '')"
        " || chr(31) || coalesce(p._staging_path, '') || chr(31)"
        " || coalesce(p._page_number::VARCHAR, '') || chr(31)"
        " || coalesce(p._record_index::VARCHAR, ''))::UUID"
    )
    con.execute(
        f"""
        INSERT INTO _quarantine
        SELECT q.* FROM (
            SELECT {qkey} AS quarantine_key, {_q(t.name)} AS "table", p.vendor,
                   p.source_id AS natural_key, p._course_id AS course_id, p._rule AS rule,
                   p._reason AS reason, p._run_id AS run_id, {record} AS record,
                   p._staging_path, p._trace_id, p._span_id, p._fetched_at
            FROM {_PREPARED} p WHERE p._rule IS NOT NULL
        ) q
        WHERE NOT EXISTS (
            SELECT 1 FROM _quarantine e WHERE e.quarantine_key = q.quarantine_key)
        """
    )


def write_bookkeeping(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    institution: str,
    vendor: str,
    domain: str,
    started_at: datetime,
    finished_at: datetime,
    courses_loaded: int,
    totals: TableCounts,
    status: str,
    cursor: datetime | None,
    window: str | None = None,
    watermarks: Mapping[str, str] | None = None,
) -> None:
    """Record the run and advance the domain cursor and watermarks (call after the domain's data
    committed)."""
    con.execute("BEGIN")
    try:
        con.execute(
            "INSERT INTO _sync_runs VALUES ($run, $inst, $vendor, $domain, $start, $end,"
            " $courses, $extracted, $quarantined, $inserted, $updated, $deleted, $status)",
            {
                "run": run_id, "inst": institution, "vendor": vendor, "domain": domain,
                "start": started_at, "end": finished_at, "courses": courses_loaded,
                "extracted": totals.extracted, "quarantined": sum(totals.quarantined.values()),
                "inserted": totals.inserted, "updated": totals.updated,
                "deleted": totals.deleted, "status": status,
            },
        )  # fmt: skip
        if cursor is not None:
            con.execute(
                "DELETE FROM _sync_state WHERE institution = $inst AND vendor = $vendor"
                " AND domain = $domain",
                {"inst": institution, "vendor": vendor, "domain": domain},
            )
            con.execute(
                "INSERT INTO _sync_state (institution, vendor, domain, cursor, run_id,"
                " updated_at, staging_window, watermarks) VALUES ($inst, $vendor, $domain,"
                " $cursor, $run, $at, $window, $marks)",
                {
                    "inst": institution, "vendor": vendor, "domain": domain,
                    "cursor": cursor, "run": run_id, "at": finished_at, "window": window,
                    "marks": json.dumps(dict(watermarks), sort_keys=True) if watermarks else None,
                },
            )  # fmt: skip
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise

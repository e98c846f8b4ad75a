"""Run a vendor's TableMap over scanned staging: staged string columns → normalized rows.

Normalization has two stages:

1. :func:`normalize` (Polars, lazy): the map's filter, joins, aggregation and column expressions.
   A :class:`Parse` column of the map's ``columns`` leaves this stage as its source **text**;
   Parse inside an :class:`Aggregate` is typed here, since grouping needs the value.
2. :func:`typed_sql` (DuckDB SQL over stage 1's rows, inside the loader's single pass): types
   every Parse column of ``columns`` (``transforms.mapping.parse_sql``) and appends its failures
   to ``_type_errors``.

Output columns: the map's columns, ``_type_errors`` (null, or ``"field=<text>; ..."`` for values
that failed to parse — those fields never hold person identifiers), and the staged lineage
``_run_id, _staging_path, _trace_id, _span_id, _fetched_at, _course_id, _page_number,
_record_index``.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from transforms.mapping import Parse, TableMap, clean_sql, parse_sql, parsed

__all__ = ["LINEAGE_IN", "normalize", "typed_sql"]

LINEAGE_IN: dict[str, pl.DataType] = {
    "_run_id": pl.String(),
    "_staging_path": pl.String(),
    "_trace_id": pl.String(),
    "_span_id": pl.String(),
    "_fetched_at": pl.Datetime("us", "UTC"),
    "_course_id": pl.String(),
    "_page_number": pl.Int32(),
    "_record_index": pl.Int32(),
}
_ORDER = ["_fetched_at", "_staging_path", "_page_number", "_record_index"]


def _roots(exprs: list[pl.Expr]) -> set[str]:
    names: set[str] = set()
    for e in exprs:
        names.update(e.meta.root_names())
    return names


def _exprs(values: Mapping[str, pl.Expr | Parse]) -> list[pl.Expr]:
    return [v.source if isinstance(v, Parse) else v for v in values.values()]


def _conform(lf: pl.LazyFrame, needed: set[str]) -> pl.LazyFrame:
    """Add declared columns that drifted out of the staged file as null text; add lineage nulls;
    cast lineage to its declared type (staging written by older versions may differ)."""
    schema = lf.collect_schema()
    add = [pl.lit(None, pl.String).alias(c) for c in sorted(needed) if c not in schema]
    add += [pl.lit(None, t).alias(c) for c, t in LINEAGE_IN.items() if c not in schema]
    if add:
        lf = lf.with_columns(add)
    casts = [pl.col(c).cast(t) for c, t in LINEAGE_IN.items() if c in schema and schema[c] != t]
    return lf.with_columns(casts) if casts else lf


def _text(values: Mapping[str, pl.Expr | Parse]) -> list[pl.Expr]:
    """Expressions for the map's columns, Parse columns as their source text (typed in SQL)."""
    return [
        (v.source.cast(pl.String) if isinstance(v, Parse) else v).alias(name)
        for name, v in values.items()
    ]


def _typed(values: Mapping[str, pl.Expr | Parse]) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """Expressions for the values, and one error-fragment expression per Parse."""
    out: list[pl.Expr] = []
    errors: list[pl.Expr] = []
    for name, v in values.items():
        if isinstance(v, Parse):
            value, failed = parsed(v)
            out.append(value.alias(name))
            text = v.source.cast(pl.String).str.slice(0, 60)
            errors.append(pl.when(failed).then(pl.lit(f"{name}=") + text))
        else:
            out.append(v.alias(name))
    return out, errors


def _errors(frags: list[pl.Expr]) -> pl.Expr:
    if not frags:
        return pl.lit(None, pl.String).alias("_type_errors")
    joined = pl.concat_str(frags, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined).alias("_type_errors")


def normalize(tmap: TableMap, frames: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame | None:
    """The normalized frame of one canonical table, or None if its stream was not staged."""
    if tmap.stream not in frames:
        return None
    lf = frames[tmap.stream]
    needed = (
        _roots(
            ([tmap.filter] if tmap.filter is not None else [])
            + [pl.col(left) for j in tmap.joins for left, _ in j.on]
            + (
                _exprs(tmap.aggregate.by) + _exprs(tmap.aggregate.pre)
                if tmap.aggregate
                else _exprs(tmap.columns)
            )
        )
        - {name for j in tmap.joins for name in j.columns}
        - set(LINEAGE_IN)
    )
    lf = _conform(lf, needed)
    if tmap.filter is not None:
        lf = lf.filter(tmap.filter)

    for j in tmap.joins:
        right_keys = [r for _, r in j.on]
        if j.stream not in frames:
            if j.how == "left":
                lf = lf.with_columns(pl.lit(None, pl.String).alias(c) for c in j.columns)
            continue
        right = _conform(frames[j.stream], _roots([*j.columns.values(), pl.col(*right_keys)]))
        if j.filter is not None:
            right = right.filter(j.filter)
        right = (
            right.sort(_ORDER, descending=True, nulls_last=True)
            .unique(subset=right_keys, keep="first", maintain_order=False)
            .select(
                [pl.col(r).alias(f"__j{i}") for i, r in enumerate(right_keys)]
                + [e.alias(n) for n, e in j.columns.items()]
            )
        )
        lf = lf.join(
            right,
            left_on=[pl.col(left) for left, _ in j.on],
            right_on=[f"__j{i}" for i in range(len(j.on))],
            how=j.how,
            coalesce=True,
        )

    lineage = [pl.col(c) for c in LINEAGE_IN]
    if tmap.aggregate is not None:
        agg = tmap.aggregate
        by_vals, by_err = _typed(agg.by)
        pre_vals, pre_err = _typed(agg.pre)
        lf = lf.select([*by_vals, *pre_vals, *lineage, _errors(by_err + pre_err)])
        lf = lf.group_by(list(agg.by)).agg(
            *[e.alias(n) for n, e in agg.aggs.items()],
            *[pl.col(c).sort_by(_ORDER, nulls_last=False).last().alias(c) for c in LINEAGE_IN],
            pl.col("_type_errors").drop_nulls().first().alias("_type_errors"),
        )
        return lf.select([*_text(tmap.columns), *lineage, pl.col("_type_errors")])

    return lf.select([*_text(tmap.columns), *lineage, _errors([])])


def typed_sql(tmap: TableMap, source: str) -> str:
    """A DuckDB query over ``source`` (stage 1's rows: a table, view or ``read_parquet(...)``)
    that types the map's Parse columns and extends ``_type_errors`` with their failures, in the
    order of the map's columns."""
    parse = {name: v.kind for name, v in tmap.columns.items() if isinstance(v, Parse)}
    if not parse:
        return f"SELECT * FROM {source}"
    clean = ", ".join(f"{clean_sql(name)} AS {name}" for name in parse)
    values: list[str] = []
    frags: list[str] = []
    for name, kind in parse.items():
        value, failed = parse_sql(kind, name)
        values.append(f"{value} AS {name}")
        frags.append(f"CASE WHEN {failed} THEN '{name}=' || left({name}, 60) END")
    errors = f"nullif(concat_ws('; ', _type_errors, {', '.join(frags)}), '')"
    return (
        f"SELECT * REPLACE ({', '.join(values)}, {errors} AS _type_errors)"
        f" FROM (SELECT * REPLACE ({clean}) FROM {source})"
    )

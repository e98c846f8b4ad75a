"""Run a vendor's TableMap over scanned staging: staged string columns → normalized LazyFrame.

Output columns: the map's columns (typed), ``_type_errors`` (null, or ``"field=<text>; ..."`` for
values that failed to parse — those fields never hold person identifiers), and the staged lineage
``_run_id, _staging_path, _trace_id, _span_id, _fetched_at, _course_id, _page_number,
_record_index``. Everything stays lazy; the loader streams it to DuckDB.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from transforms.mapping import Parse, TableMap, parsed

__all__ = ["LINEAGE_IN", "normalize"]

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


def _errors(frags: list[pl.Expr], existing: str | None = None) -> pl.Expr:
    parts = ([pl.col(existing)] if existing else []) + frags
    if not parts:
        return pl.lit(None, pl.String).alias("_type_errors")
    joined = pl.concat_str(parts, separator="; ", ignore_nulls=True)
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
        vals, errs = _typed(tmap.columns)
        return lf.select([*vals, *lineage, _errors(errs, "_type_errors")])

    vals, errs = _typed(tmap.columns)
    return lf.select([*vals, *lineage, _errors(errs)])

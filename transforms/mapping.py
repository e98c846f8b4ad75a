"""Types of a vendor's declarative field map, and the few helpers a map may call.

A :class:`VendorMapping` lists one :class:`TableMap` per canonical table. A TableMap is data: the
staged stream it reads, an optional row filter, joins to other streams, an optional aggregation, and
for every output column a Polars expression over the staged string columns. A column whose value is
parsed from vendor text is wrapped in :class:`Parse`, so the normalizer can tell a null from a value
that failed to parse (rule ``type`` — flagged, never hidden).

Each parse kind has one grammar and two compilations: :func:`parse_sql` (DuckDB SQL — how a
TableMap's ``columns`` are typed, inside the loader's single pass over the normalized rows) and the
Polars ``parse_*`` helpers (for :class:`Aggregate` ``by``/``pre``, which must be typed before
grouping, and for the few map expressions that call them). Both accept exactly the same text
(``tests/transforms/test_mapping.py`` checks them against each other).

Normalized columns (what a TableMap produces, before keys and tokens are added by the loader):

* ``source_id`` — the vendor's id of the row (text);
* the ``source`` column of every :class:`transforms.canonical.Ref` (``course_id``, ...);
* ``user_id`` for person-linked tables (raw vendor user id: tokenized by the loader, never stored);
* for ``people``: ``user_id``, ``sis_user_id``, ``login_id``, ``email`` (all tokenized);
* the table's value columns, typed, and optionally ``deleted_at`` (the vendor says deleted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

__all__ = [
    "PERSON_IDENTIFIER_AGGS",
    "Aggregate",
    "Join",
    "Parse",
    "TableMap",
    "VendorMapping",
    "parse_bool",
    "parse_date",
    "parse_float",
    "parse_grade_level",
    "parse_int",
    "parse_sql",
    "parse_timestamp",
    "people_columns",
    "ranked_first",
]

Kind = Literal["float", "int", "bool", "timestamp", "date", "grade_level"]

# Person identifiers that may appear in normalized frames; the loader tokenizes them.
PII_COLUMNS = ("user_id", "sis_user_id", "login_id", "email")

# One person seen in many enrollments: any SIS id, login and email the vendor shows for them
# (they agree, or only one row carries them), so the non-null one wins.
PERSON_IDENTIFIER_AGGS: Mapping[str, pl.Expr] = {
    "sis": pl.col("sis").drop_nulls().max(),
    "login": pl.col("login").drop_nulls().max(),
    "mail": pl.col("mail").drop_nulls().max(),
}


def ranked_first(column: str, rank: Mapping[str, int]) -> pl.Expr:
    """The group's value of ``column`` that ranks first (e.g. a person's most senior role)."""
    return pl.col(column).sort_by(pl.col(column).replace_strict(rank, default=99)).first()


def people_columns(*, grade_level: pl.Expr, **extra: pl.Expr) -> dict[str, pl.Expr]:
    """The ``people`` table's columns over an aggregate with user_id, sis, login, mail, role and
    status: every vendor lands people the same way, and says only where grade level comes from."""
    return {
        "user_id": pl.col("user_id"),
        "sis_user_id": pl.col("sis"),
        "login_id": pl.col("login"),
        "email": pl.col("mail"),
        "role": pl.col("role"),
        "grade_level": grade_level,
        "status": pl.col("status"),
        **extra,
    }


@dataclass(frozen=True)
class Parse:
    """A column parsed from staged text. A non-null source that fails to parse becomes null and
    is reported (rule ``type``, reason names the field and the offending text)."""

    source: pl.Expr
    kind: Kind


def num(name: str) -> Parse:
    return Parse(pl.col(name), "float")


def integer(name: str) -> Parse:
    return Parse(pl.col(name), "int")


def boolean(name: str) -> Parse:
    return Parse(pl.col(name), "bool")


def ts(name: str) -> Parse:
    return Parse(pl.col(name), "timestamp")


@dataclass(frozen=True)
class Join:
    """Bring ``columns`` (expressions over ``stream``) onto the rows: ``on`` pairs a left column
    with a right column. ``how="semi"`` keeps only matching rows. The right side is de-duplicated
    on its join columns first, so a join never multiplies rows. If ``stream`` was not staged in this
    run, a left join yields nulls and a semi join keeps every row (documented per use)."""

    stream: str
    on: tuple[tuple[str, str], ...]
    columns: Mapping[str, pl.Expr] = field(default_factory=dict)
    how: Literal["left", "semi"] = "left"
    filter: pl.Expr | None = None


@dataclass(frozen=True)
class Aggregate:
    """Group rows: ``by`` and ``pre`` are computed per input row (``pre`` may use Parse), then
    rows are grouped by ``by`` and ``aggs`` evaluated; the TableMap's ``columns`` are then
    evaluated over the aggregated frame. Lineage of a group = that of its last fetched record."""

    by: Mapping[str, pl.Expr | Parse]
    aggs: Mapping[str, pl.Expr]
    pre: Mapping[str, pl.Expr | Parse] = field(default_factory=dict)


@dataclass(frozen=True)
class TableMap:
    table: str
    domain: str
    stream: str
    columns: Mapping[str, pl.Expr | Parse]
    filter: pl.Expr | None = None
    joins: tuple[Join, ...] = ()
    aggregate: Aggregate | None = None
    notes: str = ""


@dataclass(frozen=True)
class VendorMapping:
    vendor: str
    tables: tuple[TableMap, ...]
    params: Mapping[str, object] = field(default_factory=dict)

    def for_domain(self, domain: str) -> tuple[TableMap, ...]:
        return tuple(t for t in self.tables if t.domain == domain)

    @property
    def domains(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.tables:
            seen.setdefault(t.domain, None)
        return tuple(seen)


# --- parse helpers: all are Polars expressions (no per-row Python) ---------------------------


def _clean(expr: pl.Expr) -> pl.Expr:
    s = expr.cast(pl.String).str.strip_chars()
    return pl.when(s == "").then(None).otherwise(s)


def parse_float(expr: pl.Expr) -> pl.Expr:
    """JSON number text ("85.0", "56", "1e3", also "NaN"/"inf") → Float64; anything else → null."""
    return _clean(expr).cast(pl.Float64, strict=False)


def parse_int(expr: pl.Expr) -> pl.Expr:
    """Integer text ("3", "3.0") → Int64; fractional or non-numeric → null."""
    s = _clean(expr)
    as_int = s.cast(pl.Int64, strict=False)
    f = s.cast(pl.Float64, strict=False)
    from_float = pl.when((f == f.floor()) & (f.abs() < 2**53)).then(f).cast(pl.Int64, strict=False)
    return pl.coalesce(as_int, from_float)


_TRUE_FALSE = {"true": True, "false": False}

# The one timestamp grammar (ISO 8601 as vendors send it): date, optional time (00:00:00–23:59:59)
# with optional fraction, optional ``Z`` or ``±HH:MM`` offset. Both compilations reject the rest.
_TIMESTAMP_RE = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:[zZ]|[+-][0-9]{2}:[0-9]{2})?)?"
)


def parse_bool(expr: pl.Expr) -> pl.Expr:
    """JSON booleans ("true"/"false", any case) → Boolean; anything else → null."""
    return (
        _clean(expr)
        .str.to_lowercase()
        .replace_strict(_TRUE_FALSE, default=None, return_dtype=pl.Boolean)
    )


def parse_timestamp(expr: pl.Expr) -> pl.Expr:
    """ISO 8601 text → UTC ``Datetime[us, UTC]``.

    Accepts ``Z`` or ``±HH:MM`` offsets (converted to UTC), optional fractional seconds, ``T`` or
    a space between date and time. Text without an offset is taken as UTC; a bare date is its UTC
    midnight. Anything else → null (and flagged when used through :class:`Parse`)."""
    s = _clean(expr)
    s = (
        pl.when(s.str.contains(f"^{_TIMESTAMP_RE}$"))
        .then(s)
        .str.replace(r"[zZ]$", "+00:00")
        .str.replace(" ", "T", literal=True)
    )
    with_offset = s.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", time_zone="UTC", strict=False
    )
    naive = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    day = s.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
    return pl.coalesce(
        with_offset, naive.dt.replace_time_zone("UTC"), day.dt.replace_time_zone("UTC")
    )


def parse_date(expr: pl.Expr) -> pl.Expr:
    """ISO date or timestamp text → the UTC calendar date."""
    return parse_timestamp(expr).dt.date()


# Codes that legitimately mean "no K–12 grade": pre-kindergarten, transitional K, infant/toddler,
# ungraded, adult/post-secondary, other. They map to null without being flagged.
NO_GRADE_CODES = (
    "PK", "PREK", "PRE-K", "P", "PS", "PR", "TK", "IT", "UG", "UNGRADED", "UN", "AD",
    "ADULT", "PG", "PS1", "PS2", "OTHER", "NONE", "N/A", "NA",
)  # fmt: skip
_KINDERGARTEN = ("K", "KG", "KN", "KINDERGARTEN", "00", "0")
_GRADE_RE = r"^(?:GRADE|GRD|GR|G|YEAR|Y)?[\s\-_]*0*(\d{1,2})(?:ST|ND|RD|TH)?(?:[\s\-_]*GRADE)?$"


def parse_grade_level(expr: pl.Expr) -> pl.Expr:
    """Grade level text or number → Int32 K=0 … 12, else null.

    ``"K"``, ``"KG"``, ``"Kindergarten"``, ``"0"``/``"00"`` → 0; ``"Grade 5"``, ``"GR05"``,
    ``"05"``, ``5``, ``"5th"``, ``"5th grade"`` → 5. Pre-K (``"PK"``, ``"PreK"``, ``"TK"``) is
    **null, not -1**: the canonical scale is K…12 and a negative grade would break range filters
    and averages;
    the SIS code stays visible in the vendor's raw archive. ``"UG"`` (ungraded) and the other
    :data:`NO_GRADE_CODES` → null. Out-of-range numbers (13, 99) and unknown text → null and,
    through ``Parse(..., "grade_level")``, flagged.
    """
    s = _clean(expr).str.to_uppercase()
    digits = s.str.extract(_GRADE_RE, 1).cast(pl.Int32, strict=False)
    return (
        pl.when(s.is_in(_KINDERGARTEN))
        .then(pl.lit(0, pl.Int32))
        .when(digits.is_between(0, 12))
        .then(digits)
        .otherwise(pl.lit(None, pl.Int32))
    )


def _grade_level_is_known_null(expr: pl.Expr) -> pl.Expr:
    return _clean(expr).str.to_uppercase().is_in(NO_GRADE_CODES)


_PARSERS = {
    "float": parse_float,
    "int": parse_int,
    "bool": parse_bool,
    "timestamp": parse_timestamp,
    "date": parse_date,
    "grade_level": parse_grade_level,
}


def parsed(p: Parse) -> tuple[pl.Expr, pl.Expr]:
    """(value, failed) for a Parse: ``failed`` is true where a non-null source did not parse."""
    value = _PARSERS[p.kind](p.source)
    failed = _clean(p.source).is_not_null() & value.is_null()
    if p.kind == "grade_level":
        failed = failed & ~_grade_level_is_known_null(p.source)
    return value, failed


# --- the same parsers as DuckDB SQL ----------------------------------------------------------

# Whitespace that ``str.strip_chars()`` removes and DuckDB's one-argument ``trim`` keeps.
_SPACE_SQL = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
SQL_TYPES: dict[Kind, str] = {
    "float": "DOUBLE",
    "int": "BIGINT",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "grade_level": "INTEGER",
}


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def clean_sql(text: str) -> str:
    """SQL of the trimmed text of ``text``, empty → NULL (what every parser reads)."""
    return f"nullif(trim(CAST({text} AS VARCHAR), {_SPACE_SQL}), '')"


def parse_sql(kind: Kind, s: str) -> tuple[str, str]:
    """(value, failed) SQL for a Parse of ``kind`` over ``s``, the SQL of already cleaned text
    (:func:`clean_sql`). Timestamps rely on the session ``TimeZone`` being UTC (the loader's
    connection sets it): text without an offset is UTC, and a date is the UTC date."""
    if kind == "float":
        value = f"CASE WHEN NOT contains({s}, '_') THEN TRY_CAST({s} AS DOUBLE) END"
    elif kind == "int":
        f = parse_sql("float", s)[0]
        value = (
            f"CASE WHEN regexp_full_match({s}, '[+-]?[0-9]+') THEN TRY_CAST({s} AS BIGINT)"
            f" WHEN ({f}) = floor({f}) AND abs({f}) < {2**53} THEN CAST({f} AS BIGINT) END"
        )
    elif kind == "bool":
        value = f"CASE lower({s}) WHEN 'true' THEN true WHEN 'false' THEN false END"
    elif kind in ("timestamp", "date"):
        value = (
            f"TRY_CAST(CASE WHEN regexp_full_match({s}, '{_TIMESTAMP_RE}')"
            f" THEN replace({s}, 'z', 'Z') END AS TIMESTAMPTZ)"
        )
        if kind == "date":
            value = f"CAST({value} AS DATE)"
    elif kind == "grade_level":
        digits = f"TRY_CAST(nullif(regexp_extract(upper({s}), '{_GRADE_RE}', 1), '') AS INTEGER)"
        value = (
            f"CASE WHEN upper({s}) IN ({_sql_list(_KINDERGARTEN)}) THEN 0"
            f" WHEN {digits} BETWEEN 0 AND 12 THEN {digits} END"
        )
    else:
        raise ValueError(f"unknown parse kind {kind!r}")
    failed = f"({s} IS NOT NULL AND ({value}) IS NULL)"
    if kind == "grade_level":
        failed = f"({failed} AND upper({s}) NOT IN ({_sql_list(NO_GRADE_CODES)}))"
    return f"CAST({value} AS {SQL_TYPES[kind]})", failed

"""Validation rules per canonical table, as SQL over the prepared rows of one load.

Rules, checked in this order (a row is quarantined under the first it breaks):

``type``       a non-null vendor value failed to parse (``_type_errors`` from normalize)
``required``   a natural key, required reference or required column is null
``enum``       a value outside the column's allowed set
``range``      score outside 0…points_possible (unless the assignment allows extra credit);
               negative course scores; attendance rate outside 0…100
``future``     a timestamp later than the run's ``now`` plus :data:`CLOCK_SKEW`
``reference``  a reference that must resolve does not (submission→assignment, enrollment→section,
               and every person-linked row → a person in ``people``)

Reasons name the table, field, course and — only for non-PII fields — the value. Person references
never print an id. Failing rows go to ``_quarantine`` and are not loaded; the rest load.
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms.canonical import Table

__all__ = ["CLOCK_SKEW", "RULES", "Checks", "checks_for"]

CLOCK_SKEW = "INTERVAL 5 MINUTE"
RULES = ("type", "required", "enum", "range", "future", "reference")


@dataclass(frozen=True)
class Checks:
    joins: tuple[str, ...]  # LEFT JOIN clauses over alias p
    rule_sql: str  # CASE ... END → rule name or NULL
    reason_sql: str  # CASE ... END → reason text or NULL


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _course(t: Table) -> str:
    return f"' (' || {_lit(t.name)} || ', course ' || coalesce(p._course_id, '?') || ')'"


def checks_for(t: Table) -> Checks:
    conds: list[tuple[str, str, str]] = []  # (rule, condition, reason)
    where = _course(t)

    conds.append(
        ("type", "p._type_errors IS NOT NULL", f"'unparseable ' || p._type_errors || {where}")
    )

    required: list[tuple[str, str]] = [("source_id", "p.source_id IS NULL")]
    for r in t.refs:
        if r.required:
            required.append((r.source, f"p.{r.column} IS NULL"))
    if t.person:
        required.append(("user_id", "p._user_token IS NULL"))
    for c in t.columns:
        if c.required:
            required.append((c.name, f"p.{c.name} IS NULL"))
    for field, cond in required:
        conds.append(("required", cond, f"'missing {field}' || {where}"))

    for c in t.columns:
        if c.enum:
            allowed = ", ".join(_lit(v) for v in c.enum)
            conds.append(
                (
                    "enum",
                    f"p.{c.name} IS NOT NULL AND p.{c.name} NOT IN ({allowed})",
                    f"'{c.name} = ' || left(p.{c.name}, 40) || ' not in ({'|'.join(c.enum)})'"
                    f" || {where}",
                )
            )

    joins: list[str] = []
    if t.name == "submissions":
        joins.append("LEFT JOIN assignments ra ON ra.assignment_key = p.assignment_key")
        conds.append(
            (
                "range",
                "p.score < 0 OR (p.score > ra.points_possible"
                " AND NOT coalesce(ra.extra_credit_allowed, false))",
                "'score = ' || p.score::VARCHAR || ' outside 0…'"
                f" || coalesce(ra.points_possible::VARCHAR, '?')"
                f" || {where}",
            )
        )
    if t.name == "course_grades":
        for c in ("current_score", "final_score"):
            conds.append(
                ("range", f"p.{c} < 0", f"'{c} = ' || p.{c}::VARCHAR || ' < 0' || {where}")
            )
    if t.name == "attendance_rates":
        conds.append(
            (
                "range",
                "p.rate_percent NOT BETWEEN 0 AND 100",
                f"'rate_percent = ' || p.rate_percent::VARCHAR || ' outside 0…100' || {where}",
            )
        )
    if t.name == "engagement_daily":
        conds.append(("range", "p.active_seconds < 0", f"'active_seconds < 0' || {where}"))

    for c in t.columns:
        if c.not_future:
            limit = (
                "CAST($now AS DATE)"
                if c.type == "DATE"
                else f"CAST($now AS TIMESTAMPTZ) + {CLOCK_SKEW}"
            )
            conds.append(
                (
                    "future",
                    f"p.{c.name} > {limit}",
                    f"'{c.name} = ' || p.{c.name}::VARCHAR || ' is in the future' || {where}",
                )
            )

    for i, r in enumerate(t.refs):
        if r.must_resolve:
            alias = f"rr{i}"
            joins.append(f"LEFT JOIN {r.entity} {alias} ON {alias}.{r.column} = p.{r.column}")
            conds.append(
                (
                    "reference",
                    f"p.{r.column} IS NOT NULL AND {alias}.{r.column} IS NULL",
                    f"'{r.source} = ' || p._src_{r.source}::VARCHAR"
                    f" || ' not found in {r.entity}' || {where}",
                )
            )
    if t.person:
        conds.append(
            (
                "reference",
                "p._user_token IS NOT NULL AND p.person_token IS NULL",
                f"'user_id (tokenized) not found in people' || {where}",
            )
        )

    rule = "CASE " + " ".join(f"WHEN {c} THEN {_lit(r)}" for r, c, _ in conds) + " END"
    reason = "CASE " + " ".join(f"WHEN {c} THEN {why}" for _, c, why in conds) + " END"
    return Checks(joins=tuple(joins), rule_sql=rule, reason_sql=reason)

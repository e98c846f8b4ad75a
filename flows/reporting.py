"""What a run tells its operator: a summary table and a quarantine report as Prefect artifacts.

Both are built from counts, rules and course ids only — never from record values — so they can be
shown in the Prefect UI without exposing anyone's data.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

if TYPE_CHECKING:
    from flows.sync import RunSummary


def summary_rows(summary: RunSummary) -> list[dict[str, Any]]:
    """One row per domain: courses, rows extracted / quarantined / loaded, and the HTTP figures."""
    domains = sorted({d for doms in summary.staged.values() for d in doms})
    load_rows = summary.load.to_rows() if summary.load is not None else []
    http_by_domain = summary.http.get("by_scope", {})
    rows = []
    for domain in domains:
        statuses = Counter(
            doms[domain]["status"] for doms in summary.staged.values() if domain in doms
        )
        tables = [r for r in load_rows if r["domain"] == domain]
        http = http_by_domain.get(domain, {})
        rows.append(
            {
                "domain": domain,
                "courses staged": statuses["staged"],
                "courses reused": statuses["reused"],
                "courses failed": len(summary.failures),
                "extracted": sum(r["extracted"] for r in tables),
                "quarantined": sum(r["quarantined"] for r in tables),
                "loaded": sum(r["loaded"] for r in tables),
                "requests": http.get("requests", 0),
                "throttled": http.get("throttled", 0),
                "retried": http.get("retried", 0),
            }
        )
    rows.append(
        {
            "domain": "(all, HTTP)",
            "courses staged": len(summary.staged),
            "courses reused": "",
            "courses failed": len(summary.failures),
            "extracted": sum(r["extracted"] for r in load_rows),
            "quarantined": sum(r["quarantined"] for r in load_rows),
            "loaded": sum(r["loaded"] for r in load_rows),
            "requests": summary.http.get("requests", 0),
            "throttled": summary.http.get("throttled", 0),
            "retried": summary.http.get("retried", 0),
            "dead letters": len(summary.dead_letters),
            "mode": summary.mode,
        }
    )
    return rows


def quarantine_markdown(summary: RunSummary) -> str:
    lines = [f"# Quarantine report — run `{summary.run_id}`", ""]
    tables = summary.load.to_rows() if summary.load is not None else []
    held = [t for t in tables if t["quarantined"]]
    if not held:
        lines.append("No records were quarantined.")
    else:
        lines += [
            "| table | quarantined | by rule | loaded | the records |",
            "| --- | ---: | --- | ---: | --- |",
        ]
        lines += [
            f"| {t['table']} | {t['quarantined']} | {t['quarantined_by_rule']} | {t['loaded']} "
            f"| `select * from _quarantine where \"table\" = '{t['table']}'` |"
            for t in held
        ]
        lines += [
            "",
            "Each record keeps its rule, reason, course and lineage; person fields are tokens.",
        ]
    if summary.failures:
        lines += [
            "",
            "## Courses not synced",
            "",
            "| course | kind | error |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {f.course_id} | {f.kind} | {f.error} |" for f in summary.failures]
    if summary.dead_letters:
        lines += [
            "",
            "## Dead letters (re-drive with `lms-sync replay`)",
            "",
            "| course | endpoint | last status | attempts | error | body excerpt |",
            "| --- | --- | ---: | ---: | --- | --- |",
        ]
        lines += [
            f"| {d['course_id']} | {d['request']['endpoint']} | {d['last_status']} "
            f"| {d['attempts']} | {d['error']} | {d['body_excerpt']} |"
            for d in summary.dead_letters
        ]
    return "\n".join(lines)


def publish_artifacts(summary: RunSummary) -> None:
    key = f"lms-sync-{summary.institution}-{summary.vendor}"
    create_table_artifact(
        summary_rows(summary),
        key=f"{key}-summary",
        description=(
            f"Sync of {summary.institution} ({summary.vendor}), window {summary.window}, "
            f"run {summary.run_id}"
        ),
    )
    create_markdown_artifact(
        quarantine_markdown(summary),
        key=f"{key}-quarantine",
        description=f"Quarantined records and failed courses, run {summary.run_id}",
    )

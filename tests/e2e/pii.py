"""The PII scan every vendor's end-to-end test runs (DESIGN.md: no raw PII past staging).

:func:`pii_finder` builds a search for an institution's PII strings (names, user names, emails, SIS
ids); :func:`scan_for_pii` looks for them in everything a run leaves outside raw staging — every
text (VARCHAR or JSON) cell of every serving table, every line of the JSON log, every exported
span, the Prefect artifacts and Prefect logs of the runs, and the runs' final state messages — and
returns what leaked (empty when clean) with counts that show the scan actually read something.

Short values (a first name such as "Ava") would match inside ordinary words ("available"), so
values under six characters only match as whole words; values that *are* ordinary vocabulary of
the serving tables (a site administrator named "Admin User" has the user name "admin", which is
also a canonical role) are passed as ``ignore`` by the caller, who says why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["PiiScan", "pii_finder", "scan_for_pii", "span_texts", "text_cells"]

_WORD = 6  # values shorter than this match only as whole words


def pii_finder(
    values: Iterable[str], *, ignore: Iterable[str] = (), minimum: int = 30
) -> Callable[[str | None], str | None]:
    """A case-insensitive search for any of ``values`` (``ignore`` left out, case-insensitively)."""
    dropped = {v.lower() for v in ignore}
    kept = sorted({v for v in values if v and v.lower() not in dropped}, key=len, reverse=True)
    assert len(kept) >= minimum, f"only {len(kept)} PII values: the scan would prove little"
    alternatives = [
        re.escape(v) if len(v) >= _WORD or not v.isascii() else rf"(?<![\w]){re.escape(v)}(?![\w])"
        for v in kept
    ]
    pattern = re.compile("|".join(alternatives), re.IGNORECASE)

    def find(text: str | None) -> str | None:
        if not text:
            return None
        match = pattern.search(text)
        return match.group(0) if match else None

    return find


def text_cells(path: Path) -> Iterator[tuple[str, str, str]]:
    """(table, column, value) of every text (VARCHAR or JSON) cell of every table."""
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON') ORDER BY ALL"
        ).fetchall()
        assert len(columns) > 50
        for table, column in columns:
            for (value,) in con.execute(
                f'SELECT DISTINCT "{column}"::VARCHAR FROM "{table}" WHERE "{column}" IS NOT NULL'
            ).fetchall():
                yield table, column, value


def span_texts(spans) -> Iterator[tuple[str, str]]:
    for span in spans:
        as_json = json.dumps(json.loads(span.to_json()), ensure_ascii=False)
        yield span.name, as_json


@dataclass
class PiiScan:
    """What the scan read (so a test can insist it read enough) and what it found."""

    leaks: list[str] = field(default_factory=list)
    cells: int = 0
    log_lines: int = 0
    spans: int = 0
    artifacts: int = 0
    prefect_logs: int = 0


def scan_for_pii(
    find: Callable[[str | None], str | None], *, runs: list[Any], observed: Any
) -> PiiScan:
    """Scan the serving databases of ``runs`` (``conftest.SyncRun``), the session's JSON log and
    exported spans, and the runs' Prefect artifacts, Prefect logs and final state messages."""
    scan = PiiScan()
    for serving in sorted({r.serving for r in runs}):
        for table, column, value in text_cells(serving):
            scan.cells += 1
            if hit := find(value):
                scan.leaks.append(f"serving {table}.{column}: {hit!r}")

    lines = observed.log_file.read_text(encoding="utf-8").splitlines()
    for line in lines:
        entry = json.loads(line)  # every line is one JSON object
        scan.log_lines += 1
        if hit := find(line):
            scan.leaks.append(f"log line {entry.get('message')!r}: {hit!r}")
    logged_runs = {json.loads(line).get("run_id") for line in lines}
    missing = {r.flow_run_id for r in runs} - logged_runs
    assert not missing, f"runs that never logged: {missing}"

    for name, text in span_texts(observed.spans.get_finished_spans()):
        scan.spans += 1
        if hit := find(text):
            scan.leaks.append(f"span {name}: {hit!r}")

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    ids = [r.flow_run_id for r in runs]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        prefect_logs: list[Any] = []
        while True:
            page = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)),
                limit=200,
                offset=len(prefect_logs),
            )
            prefect_logs += page
            if len(page) < 200:
                break
    assert {str(a.flow_run_id) for a in artifacts} >= set(ids), "a run published no artifacts"
    for artifact in artifacts:
        scan.artifacts += 1
        text = f"{artifact.key} {artifact.description} {json.dumps(artifact.data)}"
        if hit := find(text):
            scan.leaks.append(f"artifact {artifact.key}: {hit!r}")
    for log in prefect_logs:
        scan.prefect_logs += 1
        if hit := find(log.message):
            scan.leaks.append(f"prefect log {log.name}: {hit!r}")
    for run in runs:
        if hit := find(run.state.message):
            scan.leaks.append(f"flow state message: {hit!r}")
    scan.leaks = sorted(set(scan.leaks))
    return scan

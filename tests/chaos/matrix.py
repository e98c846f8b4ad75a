"""The chaos matrix: one row per scenario, printed at the end of the session (and written to
``$LMS_SYNC_CHAOS_MATRIX``, default ``<tmp>/lms-sync-chaos-matrix.md``) for the closing note."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

COLUMNS = (
    "ground_truth",
    "retried",
    "throttled",
    "faults_injected",
    "quarantined",
    "dead_lettered",
    "refetched_after_kill",
    "reused_courses",
)

ROWS: dict[str, dict[str, Any]] = {}


def record(scenario: str, **outcome: Any) -> None:
    ROWS[scenario] = outcome


def markdown() -> str:
    lines = [
        "| scenario | " + " | ".join(COLUMNS) + " |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS) + " |",
    ]
    for scenario, outcome in ROWS.items():
        cells = []
        for column in COLUMNS:
            value = outcome.get(column, "")
            cells.append("✔" if value is True else "✘" if value is False else str(value))
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write() -> Path | None:
    if not ROWS:
        return None
    path = Path(
        os.environ.get("LMS_SYNC_CHAOS_MATRIX")
        or Path(tempfile.gettempdir()) / "lms-sync-chaos-matrix.md"
    )
    path.write_text(markdown() + "\n")
    return path

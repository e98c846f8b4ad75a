"""Benchmark figures: a printed table and a merged ``bench/results/latest.json``.

Each figure is a measured value beside a baseline measured in the same run, so the ratio is what
carries across machines. ``latest.json`` is a list of objects keyed by ``name``; recording replaces
figures of the same name and keeps every other benchmark's figures.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

RESULTS_FILE = Path(__file__).parent / "results" / "latest.json"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    ratio: float
    peak_rss_mb: float | None = None

    @classmethod
    def compare(
        cls,
        name: str,
        value: float,
        unit: str,
        *,
        baseline_name: str,
        baseline_value: float,
        peak_rss_mb: float | None = None,
    ) -> Figure:
        """A figure whose ratio is ``value / baseline_value``."""
        ratio = value / baseline_value if baseline_value else float("nan")
        return cls(name, value, unit, baseline_name, baseline_value, ratio, peak_rss_mb)

    def to_json(self, *, measured_at: str, machine: dict[str, object]) -> dict[str, object]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "baseline_value": self.baseline_value,
            "ratio": self.ratio,
            "peak_rss_mb": self.peak_rss_mb,
            "measured_at": measured_at,
            "machine": machine,
        }


def machine_info() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
    }


def record(figures: Iterable[Figure], *, path: Path = RESULTS_FILE) -> list[dict[str, object]]:
    """Print ``figures`` as a table and merge them into ``path``; return the merged list."""
    figures = list(figures)
    print(format_table(figures))
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = machine_info()
    fresh = {f.name: f.to_json(measured_at=measured_at, machine=machine) for f in figures}
    try:
        previous = json.loads(path.read_text())
    except FileNotFoundError:
        previous = []
    merged = [entry for entry in previous if entry.get("name") not in fresh]
    merged += fresh.values()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    os.replace(tmp, path)
    return merged


def format_table(figures: Iterable[Figure]) -> str:
    header = ("figure", "value", "unit", "baseline", "baseline value", "ratio", "peak RSS MB")
    rows = [
        (
            f.name,
            _number(f.value),
            f.unit,
            f.baseline_name,
            _number(f.baseline_value),
            f"{f.ratio:.2f}x",
            "" if f.peak_rss_mb is None else f"{f.peak_rss_mb:.0f}",
        )
        for f in figures
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    numeric = {1, 4, 5, 6}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def _number(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"

"""``make demo``: an emulated Canvas → the real flow on a local Prefect → ``data/lms-sync.duckdb``.

Everything it needs is made here: a demo HMAC key (kept in the data directory so tokens stay stable
between demo runs), a seeded Canvas emulator on loopback with Canvas's throttle and a sprinkle of
faults, and a local Prefect home. Then it runs ``sync_institution`` exactly as production does and
shows what landed and three queries an analyst would start with.
"""

from __future__ import annotations

import os
import secrets
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

DEMO_TOKEN = "demo-canvas-token"
INSTITUTION = "demo-university"

EXAMPLE_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "Missing-assignment rate per course (published assignments, live submissions)",
        """
        select c.name || ' (' || c.vendor || ')' as course,
               count(*) as submissions,
               round(avg(case when s.missing then 1 else 0 end) * 100, 1) as missing_pct
        from submissions s
        join assignments a on a.assignment_key = s.assignment_key
        join courses c on c.course_key = a.course_key
        where s.deleted_at is null and a.published
        group by 1
        order by missing_pct desc
        limit 8
        """,
    ),
    (
        "Students below 70% current score with their total activity (tokens, not names)",
        """
        select left(g.person_token, 12) as student, c.name || ' (' || c.vendor || ')' as course,
               g.current_score, round(e.total_activity_seconds / 3600.0, 1) as active_hours
        from course_grades g
        join enrollments e on e.enrollment_key = g.enrollment_key
        join courses c on c.course_key = g.course_key
        where g.current_score < 70 and g.deleted_at is null
        order by g.current_score
        limit 8
        """,
    ),
    (
        "Engagement per course over the last 30 days of activity",
        """
        select c.name || ' (' || c.vendor || ')' as course,
               count(distinct d.person_key) as active_students,
               sum(d.page_views) as page_views,
               round(sum(d.active_seconds) / 3600.0, 1) as active_hours
        from engagement_daily d
        join courses c on c.course_key = d.course_key
        where d.day > (select max(day) from engagement_daily) - interval 30 day
        group by 1
        order by page_views desc
        limit 8
        """,
    ),
)


def run_demo(
    *, courses: int, students_per_course: int, data_dir: Path, vendor: str = "canvas"
) -> int:
    """Run the demo for one emulated LMS, or for ``all`` three as one institution's sources."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _prefect_home(data_dir)
    key_file = data_dir / "demo-hmac.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows import sync
    from flows.telemetry import configure_logging

    console = Console()
    configure_logging(path=str(data_dir / "logs" / "lms-sync.jsonl"), stream=None)
    vendors = ["canvas", "moodle", "blackboard"] if vendor == "all" else [vendor]
    with ExitStack() as stack:
        sources = []
        for name in vendors:
            emulator, source, described = _emulator(name, courses, students_per_course)
            stack.enter_context(emulator)
            source["base_url"] = emulator.base_url
            sources.append(source)
            console.print(f"[bold]{name}[/] emulator on {emulator.base_url}: {described}")
        console.print("Starting a local Prefect server and the sync flow…")
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        bar = progress.add_task("courses staged", total=0)

        def on_progress(event: str, payload: dict) -> None:
            if event == "start":
                progress.update(bar, total=progress.tasks[0].total + payload["courses"])
            else:
                progress.advance(bar)

        common = {
            "institution_id": INSTITUTION,
            "staging_uri": str(data_dir / "staging"),
            "serving_dsn": str(data_dir / "lms-sync.duckdb"),
            "hmac_key_ref": f"file:{key_file}",
        }
        overrides = (
            {**common, **sources[0]} if len(sources) == 1 else {**common, "sources": sources}
        )
        sync.progress_hook = on_progress
        try:
            with progress:
                result = sync.sync_institution(overrides=overrides)
        finally:
            sync.progress_hook = None
    _report(console, result, data_dir / "lms-sync.duckdb")
    return 0


def _emulator(vendor: str, courses: int, students: int) -> tuple[Any, dict[str, Any], str]:
    """A seeded emulator for ``vendor`` with a sprinkle of faults, and its source settings."""
    if vendor == "canvas":
        from emulators.canvas.faults import FaultSettings
        from emulators.canvas.institution import build_institution
        from emulators.canvas.server import CanvasEmulator
        from emulators.canvas.settings import CanvasEmulatorSettings

        inst = build_institution(seed=2026, courses=courses, students_per_course=students)
        settings = CanvasEmulatorSettings(
            token=DEMO_TOKEN, latency_ms=15, faults=FaultSettings(rate=0.02, seed=7, slow_seconds=3)
        )
        source = {"vendor": "canvas", "token": DEMO_TOKEN}
        return CanvasEmulator(inst, settings=settings), source, _described(inst, "2% faults")
    if vendor == "moodle":
        from emulators.moodle.faults import FaultSettings as MoodleFaults
        from emulators.moodle.institution import build_institution as build_moodle
        from emulators.moodle.server import MoodleEmulator
        from emulators.moodle.settings import MoodleEmulatorSettings

        inst = build_moodle(seed=2026, courses=courses, students_per_course=students)
        settings = MoodleEmulatorSettings(
            token=DEMO_TOKEN, faults=MoodleFaults(rate=0.02, seed=7, slow_seconds=3)
        )
        source = {"vendor": "moodle", "token": DEMO_TOKEN}
        return MoodleEmulator(inst, settings=settings), source, _described(inst, "2% faults")
    if vendor == "blackboard":
        from emulators.blackboard.institution import build_institution as build_blackboard
        from emulators.blackboard.server import BlackboardEmulator
        from emulators.blackboard.settings import BlackboardEmulatorSettings
        from emulators.canvas.faults import FaultSettings

        inst = build_blackboard(seed=2026, courses=courses, students_per_course=students)
        settings = BlackboardEmulatorSettings(
            faults=FaultSettings(rate=0.02, seed=7, slow_seconds=3)
        )
        source = {
            "vendor": "blackboard",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
        }
        return BlackboardEmulator(inst, settings=settings), source, _described(inst, "2% faults")
    raise SystemExit(f"lms-sync demo: unknown vendor {vendor!r} (canvas, moodle, blackboard, all)")


def _described(inst: Any, extra: str) -> str:
    counts = inst.counts()
    shown = ", ".join(f"{n:,} {k}" for k, n in counts.items() if k in DESCRIBED)
    return f"{shown}; {extra}"


DESCRIBED = (
    "courses",
    "enrollments",
    "enrolments",
    "memberships",
    "submissions",
    "grades",
    "meetings",
)


def _prefect_home(data_dir: Path) -> None:
    """A project-local Prefect: its own home and SQLite database, quiet, no telemetry."""
    os.environ.setdefault("PREFECT_HOME", str(data_dir / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")


def _report(console, result: dict, database: Path) -> None:
    import duckdb
    from rich.table import Table

    http = result["http"]
    tables = Table(title=f"Serving tables in {database}")
    for column in ("table", "rows", "quarantined"):
        tables.add_column(column, justify="left" if column == "table" else "right")
    with duckdb.connect(str(database), read_only=True) as con:
        quarantined = dict(
            con.sql('select "table", count(*) from _quarantine group by 1').fetchall()
        )
        for (name,) in con.sql(
            "select table_name from information_schema.tables "
            "where table_schema = 'main' order by table_name"
        ).fetchall():
            ((count,),) = con.sql(f'select count(*) from "{name}"').fetchall()
            tables.add_row(name, f"{count:,}", f"{quarantined.get(name, 0):,}")
        console.print(tables)
        console.print(
            f"HTTP: {http.get('requests', 0):,} requests, {http.get('throttled', 0):,} throttled, "
            f"{http.get('retried', 0):,} retried, {http.get('failed', 0):,} failed "
            f"(run {result['run_id']}, window {result['window']})"
        )
        for title, sql in EXAMPLE_QUERIES:
            console.print(f"\n[bold]{title}[/]")
            console.print(" ".join(sql.split()), style="dim")
            console.print(_as_table(con.sql(sql)))
    console.print(
        f'\nTry your own: .venv/bin/lms-sync sql --db {database} "select * from _sync_runs"'
    )


def _as_table(relation):
    from rich.table import Table

    table = Table()
    for column in relation.columns:
        table.add_column(column)
    for row in relation.fetchall():
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


if __name__ == "__main__":
    sys.exit(run_demo(courses=24, students_per_course=30, data_dir=Path("data")))

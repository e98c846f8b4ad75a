"""``lms-sync``: the operator's entry point.

lms-sync sync --config FILE [--window W] [--domain D ...] [--full]
                                                             run the institution flow now
lms-sync replay --config FILE                                re-drive dead letters
lms-sync rebuild --from-staging --config FILE [--into PATH]  rebuild serving from staging
lms-sync sql [--config FILE | --db PATH] [QUERY]             query the serving database
lms-sync emulate canvas --port P ...                         serve an emulated vendor
lms-sync demo                                                the embedded end-to-end demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from flows.settings import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "emulate":
        from emulators.cli import main as emulate

        return emulate(args[1:])
    if args and args[0] == "bootstrap":
        from flows.bootstrap import main as bootstrap

        return bootstrap(args[1:])
    parser = _parser()
    ns = parser.parse_args(args)
    if ns.command is None:
        parser.print_help()
        return 2
    try:
        return ns.run(ns)
    except ConfigError as exc:
        print(f"lms-sync: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lms-sync", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")

    sync = sub.add_parser("sync", help="sync one institution now")
    sync.add_argument("--config", type=Path, help="institution config (TOML or YAML)")
    sync.add_argument("--window", help="extraction window name (default: full-<today>)")
    sync.add_argument(
        "--domain",
        action="append",
        dest="domains",
        choices=["roster", "gradebook", "engagement", "attendance"],
        help="limit to a domain (repeatable)",
    )
    sync.add_argument(
        "--full",
        action="store_true",
        help="fetch everything instead of the changes since the last sync, and soft-delete what"
        " is gone (the periodic backstop of incremental sync)",
    )
    sync.set_defaults(run=_sync)

    replay = sub.add_parser(
        "replay", help="re-drive dead letters: re-sync those courses for their window and load"
    )
    replay.add_argument("--config", type=Path, help="institution config (TOML or YAML)")
    replay.set_defaults(run=_replay)

    rebuild = sub.add_parser(
        "rebuild", help="rebuild the serving tables from immutable staging (no vendor calls)"
    )
    rebuild.add_argument("--config", type=Path, help="institution config (TOML or YAML)")
    rebuild.add_argument(
        "--from-staging",
        action="store_true",
        required=True,
        help="load every committed staging window, in fetch order",
    )
    rebuild.add_argument(
        "--into", help="a new DuckDB path (default: the config's, the old file kept beside it)"
    )
    rebuild.set_defaults(run=_rebuild)

    sql = sub.add_parser("sql", help="query the serving database")
    sql.add_argument("--config", type=Path, help="read serving_dsn from this config")
    sql.add_argument("--db", help="DuckDB path or md: DSN (default data/lms-sync.duckdb)")
    sql.add_argument("query", nargs="?", help="SQL to run; without it, read statements from stdin")
    sql.set_defaults(run=_sql)

    sub.add_parser("emulate", help="serve an emulated vendor (see `lms-sync emulate --help`)")
    sub.add_parser(
        "bootstrap",
        help="upsert an institution's limits, work pool and deployments (the Helm hook's job)",
    )

    demo = sub.add_parser("demo", help="emulated Canvas → local Prefect → data/lms-sync.duckdb")
    demo.add_argument("--courses", type=int, default=24)
    demo.add_argument("--students-per-course", type=int, default=30)
    demo.add_argument("--data-dir", type=Path, default=Path("data"))
    demo.add_argument(
        "--vendor",
        default="canvas",
        choices=["canvas", "moodle", "blackboard", "all"],
        help="which emulated LMS; 'all' runs the three as one institution's sources",
    )
    demo.set_defaults(run=_demo)
    return parser


def _sync(ns: argparse.Namespace) -> int:
    config = load_config(ns.config)  # fail before Prefect starts if the config is wrong
    from flows.sync import sync_institution

    try:
        result = sync_institution(
            config_file=str(ns.config) if ns.config else None,
            window=ns.window,
            domains=ns.domains,
            full=ns.full,
        )
    except ConfigError:
        raise
    except Exception as exc:  # the flow run already logged the details; end with one clear line
        print(f"lms-sync: sync of {config.institution_id} failed: {exc}", file=sys.stderr)
        return 1
    window = result["window"]
    print(
        f"synced {result['courses']} courses of {config.institution_id} "
        f"({result.get('mode', 'full')}, window {window})"
    )
    return 0


def _replay(ns: argparse.Namespace) -> int:
    load_config(ns.config)
    from flows.replay import replay

    try:
        results = replay(ns.config)
    except ConfigError:
        raise
    except Exception as exc:
        print(f"lms-sync: replay failed: {exc}", file=sys.stderr)
        return 1
    if not results:
        print("no dead letters to replay")
        return 0
    for r in results:
        state = "loaded" if r["completed"] else "still failing (see the run's artifacts)"
        print(f"window {r['window']}: {len(r['courses'])} courses {state}")
    return 0 if all(r["completed"] for r in results) else 1


def _rebuild(ns: argparse.Namespace) -> int:
    load_config(ns.config)
    from flows.replay import rebuild_from_staging

    result = rebuild_from_staging(ns.config, into=ns.into)
    kept = f" (previous database kept at {result['previous']})" if result["previous"] else ""
    print(f"rebuilt {result['serving']} from {len(result['windows'])} staging windows{kept}")
    return 0


def _sql(ns: argparse.Namespace) -> int:
    import duckdb

    dsn = ns.db or (load_config(ns.config).serving_dsn if ns.config else "data/lms-sync.duckdb")
    if not dsn.startswith("md:") and not Path(dsn).exists():
        print(f"lms-sync: no serving database at {dsn}; run `lms-sync sync` first", file=sys.stderr)
        return 2
    con = duckdb.connect(dsn, read_only=not dsn.startswith("md:"))
    statements = [ns.query] if ns.query else _read_statements(sys.stdin)
    for statement in statements:
        try:
            relation = con.sql(statement)
        except duckdb.Error as exc:
            print(f"error: {exc}", file=sys.stderr)
            if ns.query:
                return 1
            continue
        if relation is not None:
            relation.show(max_rows=200)
    return 0


def _read_statements(stream: TextIO) -> list[str]:
    if stream.isatty():
        print("lms-sync sql: enter SQL ending with ';' (Ctrl-D to run and quit)", file=sys.stderr)
    text = stream.read()
    return [s.strip() for s in text.split(";") if s.strip()]


def _demo(ns: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(
        courses=ns.courses,
        students_per_course=ns.students_per_course,
        data_dir=ns.data_dir,
        vendor=ns.vendor,
    )


if __name__ == "__main__":
    raise SystemExit(main())

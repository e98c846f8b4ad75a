"""``lms-sync emulate oneroster ...`` (REST service) and ``oneroster-bundle`` (write a CSV bundle):
arguments and runners, registered in ``emulators/cli.py``."""

from __future__ import annotations

import argparse
from pathlib import Path

from emulators.canvas.faults import FaultSettings
from emulators.oneroster.bundle import write_bundle
from emulators.oneroster.institution import BASE_MODIFIED, build_institution
from emulators.oneroster.server import serve
from emulators.oneroster.settings import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    OneRosterEmulatorSettings,
)


def _district(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--schools", type=int, default=2)
    parser.add_argument("--courses-per-school", type=int, default=2)
    parser.add_argument("--sections-per-course", type=int, default=2)
    parser.add_argument("--students-per-class", type=int, default=8)
    parser.add_argument("--line-items-per-class", type=int, default=3)
    parser.add_argument("--version", type=int, choices=(1, 2), default=1, dest="district_version")


def _build(args: argparse.Namespace):
    return build_institution(
        seed=args.seed,
        schools=args.schools,
        courses_per_school=args.courses_per_school,
        sections_per_course=args.sections_per_course,
        students_per_class=args.students_per_class,
        line_items_per_class=args.line_items_per_class,
        version=args.district_version,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8903, help="0 picks a free port")
    _district(parser)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--token-ttl", type=float, default=3600.0)
    parser.add_argument("--max-limit", type=int, default=1000, help="largest page size served")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="0..1 per request (5xx)")
    parser.add_argument("--fault-seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    settings = OneRosterEmulatorSettings(
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl_seconds=args.token_ttl,
        max_limit=args.max_limit,
        latency_ms=args.latency_ms,
        faults=FaultSettings(
            rate=args.fault_rate, kinds=frozenset({"500", "503"}), seed=args.fault_seed
        ),
    )
    serve(settings, _build(args), args.port)
    return 0


def add_bundle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="a folder, or a .zip file")
    _district(parser)
    parser.add_argument("--mode", choices=("bulk", "delta"), default="bulk")
    parser.add_argument("--since", default=BASE_MODIFIED, help="delta: rows changed after this")
    parser.add_argument("--clean", action="store_true", help="no BOM, CRLF or extension columns")
    parser.add_argument("--break-header", default=None, help="misspell a header of this file")


def run_bundle(args: argparse.Namespace) -> int:
    path = write_bundle(
        _build(args),
        args.out,
        mode=args.mode,
        since=args.since,
        messy=not args.clean,
        as_zip=args.out.suffix == ".zip",
        break_header=args.break_header,
    )
    print(f"OneRoster {args.mode} bundle written to {path}", flush=True)
    return 0

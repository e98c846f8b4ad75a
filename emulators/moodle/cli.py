"""``lms-sync emulate moodle ...``: the Moodle subcommand's arguments and runner (registered in
``emulators/cli.py``)."""

from __future__ import annotations

import argparse

from emulators.moodle.faults import FAULT_KINDS, FaultSettings
from emulators.moodle.institution import build_institution
from emulators.moodle.server import serve
from emulators.moodle.settings import DEFAULT_TOKEN, LatencySettings, MoodleEmulatorSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8901, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--courses", type=int, default=8)
    parser.add_argument("--students-per-course", type=int, default=30)
    parser.add_argument("--assignments-per-course", type=int, default=None)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=0.0,
        help="0 = instant; 1 = the timings measured on a real site (moodle-api.md §5)",
    )
    parser.add_argument("--workers", type=int, default=0, help="PHP workers; 0 = unlimited")
    parser.add_argument(
        "--webservices-disabled", action="store_true", help="answer every call 403 (empty body)"
    )
    parser.add_argument("--debug", action="store_true", help="add debuginfo to error bodies")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="0..1 per request")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(sorted(FAULT_KINDS)),
        help=f"comma list of {','.join(sorted(FAULT_KINDS))}",
    )
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=30.0)


def run(args: argparse.Namespace) -> int:
    settings = MoodleEmulatorSettings(
        token=args.token,
        webservices_enabled=not args.webservices_disabled,
        debug=args.debug,
        latency=LatencySettings(scale=args.latency_scale),
        workers=args.workers,
        faults=FaultSettings(
            rate=args.fault_rate,
            kinds=frozenset(k.strip() for k in args.fault_kinds.split(",") if k.strip()),
            seed=args.fault_seed,
            slow_seconds=args.slow_seconds,
        ),
    )
    institution = build_institution(
        seed=args.seed,
        courses=args.courses,
        students_per_course=args.students_per_course,
        assignments_per_course=args.assignments_per_course,
    )
    serve(settings, institution, args.port)
    return 0

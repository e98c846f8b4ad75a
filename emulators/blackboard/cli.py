"""``lms-sync emulate blackboard ...``: arguments and runner, registered in ``emulators/cli.py``."""

from __future__ import annotations

import argparse

from emulators.blackboard.institution import build_institution
from emulators.blackboard.server import serve
from emulators.blackboard.settings import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    BlackboardEmulatorSettings,
)
from emulators.canvas.faults import FAULT_KINDS, FaultSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8902, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--courses", type=int, default=8)
    parser.add_argument("--students-per-course", type=int, default=30)
    parser.add_argument("--columns-per-course", type=int, default=6)
    parser.add_argument("--meetings-per-course", type=int, default=5)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="the application key")
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="token lifetime, seconds")
    parser.add_argument("--daily-quota", type=int, default=10_000, help="calls per 24 h")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="0..1 per request")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(sorted(FAULT_KINDS)),
        help=f"comma list of {','.join(sorted(FAULT_KINDS))}",
    )
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=30.0)


def run(args: argparse.Namespace) -> int:
    settings = BlackboardEmulatorSettings(
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl_seconds=args.token_ttl,
        daily_quota=args.daily_quota,
        latency_ms=args.latency_ms,
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
        columns_per_course=args.columns_per_course,
        meetings_per_course=args.meetings_per_course,
    )
    serve(settings, institution, args.port)
    return 0

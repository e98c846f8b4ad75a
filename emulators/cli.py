"""``lms-sync emulate <vendor> ...`` / ``python -m emulators <vendor> ...``: run an emulator in
the foreground.

Each vendor registers a subcommand in ``_VENDORS`` (a parser builder and a runner); Moodle and
Blackboard add themselves there when their emulators exist.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from emulators.blackboard import cli as blackboard_cli
from emulators.canvas.faults import FAULT_KINDS, FaultSettings
from emulators.canvas.institution import build_institution
from emulators.canvas.server import serve
from emulators.canvas.settings import (
    DEFAULT_DAP_CLIENT_ID,
    DEFAULT_DAP_CLIENT_SECRET,
    DEFAULT_TOKEN,
    CanvasEmulatorSettings,
)
from emulators.canvas.throttle import ThrottleSettings
from emulators.moodle import cli as moodle_cli
from emulators.oneroster import cli as oneroster_cli


def _add_canvas(parser: argparse.ArgumentParser) -> None:
    defaults = ThrottleSettings()
    parser.add_argument("--port", type=int, default=8900, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--courses", type=int, default=8)
    parser.add_argument("--students-per-course", type=int, default=30)
    parser.add_argument("--assignments-per-course", type=int, default=None)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--throttle-dialect", choices=("403", "429"), default=defaults.dialect)
    parser.add_argument("--no-throttle", action="store_true", help="disable the leaky bucket")
    parser.add_argument("--bucket-hwm", type=float, default=defaults.hwm)
    parser.add_argument("--bucket-max", type=float, default=defaults.maximum)
    parser.add_argument("--bucket-outflow", type=float, default=defaults.outflow)
    parser.add_argument("--up-front-cost", type=float, default=defaults.up_front_cost)
    parser.add_argument("--request-cost", type=float, default=defaults.request_cost)
    parser.add_argument("--per-record-cost", type=float, default=defaults.per_record_cost)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="0..1 per request")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(sorted(FAULT_KINDS)),
        help=f"comma list of {','.join(sorted(FAULT_KINDS))}",
    )
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--dap-client-id", default=DEFAULT_DAP_CLIENT_ID)
    parser.add_argument("--dap-client-secret", default=DEFAULT_DAP_CLIENT_SECRET)
    parser.add_argument("--dap-processing-seconds", type=float, default=1.0)


def _run_canvas(args: argparse.Namespace) -> int:
    settings = CanvasEmulatorSettings(
        token=args.token,
        throttle=ThrottleSettings(
            enabled=not args.no_throttle,
            dialect=args.throttle_dialect,
            hwm=args.bucket_hwm,
            maximum=args.bucket_max,
            outflow=args.bucket_outflow,
            up_front_cost=args.up_front_cost,
            request_cost=args.request_cost,
            per_record_cost=args.per_record_cost,
        ),
        latency_ms=args.latency_ms,
        dap_client_id=args.dap_client_id,
        dap_client_secret=args.dap_client_secret,
        dap_processing_seconds=args.dap_processing_seconds,
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


# vendor name → (add its arguments, run it). Add "moodle" / "blackboard" here.
_VENDORS: dict[
    str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "canvas": (_add_canvas, _run_canvas),
    "blackboard": (blackboard_cli.add_arguments, blackboard_cli.run),
    "moodle": (moodle_cli.add_arguments, moodle_cli.run),
    "oneroster": (oneroster_cli.add_arguments, oneroster_cli.run),
    "oneroster-bundle": (oneroster_cli.add_bundle_arguments, oneroster_cli.run_bundle),
}


def build_parser(prog: str = "emulators") -> argparse.ArgumentParser:
    """The argument parser with one subcommand per emulated vendor."""
    parser = argparse.ArgumentParser(prog=prog, description="Run an offline LMS emulator.")
    sub = parser.add_subparsers(dest="vendor", required=True, metavar="VENDOR")
    for name, (add_arguments, _) in _VENDORS.items():
        add_arguments(sub.add_parser(name, help=f"emulate {name}"))
    return parser


def main(argv: list[str]) -> int:
    """Parse ``argv`` (without the program name) and serve until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _VENDORS[args.vendor][1](args)
    except ValueError as exc:  # bad settings: say what to fix
        parser.error(str(exc))
    except KeyboardInterrupt:
        return 0

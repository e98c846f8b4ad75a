"""The foreground CLI: `python -m emulators canvas ...` prints its URL and serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from emulators.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def test_python_dash_m_serves_until_terminated() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators",
            "canvas",
            "--port",
            "0",
            "--seed",
            "4",
            "--courses",
            "4",
            "--students-per-course",
            "6",
            "--token",
            "cli-token",
            "--throttle-dialect",
            "429",
            "--fault-rate",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        base_url = line.rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:")
        response = httpx.get(
            f"{base_url}/api/v1/accounts/1/courses",
            params={"state[]": "all"},
            headers={"Authorization": "Bearer cli-token"},
        )
        assert [c["workflow_state"] for c in response.json()] == [
            "available",
            "unpublished",
            "completed",
            "deleted",
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_parser_builds_every_option() -> None:
    args = build_parser().parse_args(
        [
            "canvas",
            "--no-throttle",
            "--bucket-hwm",
            "300",
            "--bucket-max",
            "400",
            "--bucket-outflow",
            "5",
            "--up-front-cost",
            "25",
            "--request-cost",
            "1",
            "--latency-ms",
            "20",
            "--fault-kinds",
            "500,reset",
            "--fault-seed",
            "9",
            "--slow-seconds",
            "2",
            "--assignments-per-course",
            "12",
        ]
    )
    assert args.vendor == "canvas" and args.no_throttle and args.bucket_hwm == 300.0
    assert args.fault_kinds == "500,reset" and args.assignments_per_course == 12


def test_bad_settings_exit_with_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["canvas", "--fault-rate", "0.5", "--fault-kinds", "teapot"])
    assert exc.value.code == 2

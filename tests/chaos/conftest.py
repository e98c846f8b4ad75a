"""The chaos suite shares the end-to-end harness: a real Prefect test server, emulators on
loopback, real DuckDB. Fixtures come from ``tests/e2e/conftest.py``; ``child_sync`` adds a flow run
in a subprocess (so it can be SIGKILLed) against the same Prefect server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (  # noqa: F401 - fixtures
    HMAC_ENV,
    TOKEN,
    hmac_key_hex,
    observed,
    prefect_server,
    run_sync,
)

ROOT = Path(__file__).resolve().parents[2]


def sync_config(base_url: str, workdir: Path, **overrides) -> dict:
    """The config ``run_sync`` uses, for a child process."""
    return {
        "institution_id": "e2e-university",
        "vendor": "canvas",
        "base_url": base_url,
        "token": TOKEN,
        "staging_uri": str(workdir / "staging"),
        "serving_dsn": str(workdir / "serving.duckdb"),
        "hmac_key_ref": f"env:{HMAC_ENV}",
        "engagement_lookback_days": 3650,
        "quota": {"max_concurrent_courses": 8},
        **overrides,
    }


@pytest.fixture(scope="session")
def child_sync(prefect_server, hmac_key_hex) -> Callable[..., subprocess.CompletedProcess]:  # noqa: F811
    """``child_sync(base_url, workdir, kill_at=None, kill_after=0, full=False)``: run the flow in
    a worker subprocess against the harness's Prefect API; returns the finished process (a
    SIGKILLed one has ``returncode == -9``)."""
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()

    def run(
        base_url: str,
        workdir: Path,
        *,
        kill_at: str | None = None,
        kill_after: int = 0,
        full: bool = False,
        **overrides,
    ) -> subprocess.CompletedProcess:
        env = {**os.environ, "PREFECT_API_URL": api, "PYTHONPATH": str(ROOT)}
        env.pop("LMS_SYNC_CHAOS_KILL_AT", None)
        if kill_at:
            env["LMS_SYNC_CHAOS_KILL_AT"] = kill_at
            env["LMS_SYNC_CHAOS_KILL_AFTER"] = str(kill_after)
        body = {"config": sync_config(base_url, workdir, **overrides), "full": full}
        return subprocess.run(
            [sys.executable, "-m", "tests.chaos.worker", json.dumps(body)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    return run


def pytest_terminal_summary(terminalreporter) -> None:
    from tests.chaos.matrix import ROWS, markdown, write

    if not ROWS:
        return
    path = write()
    terminalreporter.section("chaos matrix (scenario × outcome)")
    terminalreporter.write_line(markdown())
    terminalreporter.write_line(f"(also written to {path})")

"""End-to-end harness: a real Prefect test server, the Canvas emulator on loopback, real DuckDB.

Everything here is scoped to ``tests/e2e``: unit tests elsewhere never start a Prefect server.

* ``prefect_server`` — one ``prefect_test_harness`` for the session (a SQLite-backed subprocess
  server), with analytics off and flow-run heartbeats off (about 1 s saved per flow run,
  shared/reference/prefect-notes.md §8).
* ``observed`` — what the scans need: an in-memory span exporter on the flow's tracer provider and
  the ``lms_sync`` JSON log file.
* ``run_sync`` — calls ``sync_institution`` exactly as the demo does, with per-run staging and
  serving paths, the HMAC key from an environment variable and the emulator's base URL; returns
  the final Prefect state (never raises for a Failed run).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TOKEN = "e2e-canvas-token"
HMAC_ENV = "E2E_LMS_SYNC_HMAC_KEY"  # deliberately outside LMS_SYNC_* (settings forbid extras)


@dataclass(frozen=True)
class Observed:
    spans: InMemorySpanExporter
    log_file: Path


@dataclass
class SyncRun:
    """One flow run: its final state, result (or None) and where it wrote."""

    state: Any
    result: dict[str, Any] | None
    serving: Path
    staging: Path
    flow_run_id: str | None


@pytest.fixture(scope="session")
def hmac_key_hex() -> Iterator[str]:
    value = secrets.token_hex(32)
    previous = os.environ.get(HMAC_ENV)
    os.environ[HMAC_ENV] = value
    yield value
    if previous is None:
        os.environ.pop(HMAC_ENV, None)
    else:
        os.environ[HMAC_ENV] = previous


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("prefect-home")
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    try:
        with (
            prefect_test_harness(server_startup_timeout=90),
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        ):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    from flows.telemetry import LOGGER_NAME, add_exporter, configure_logging

    log_file = tmp_path_factory.mktemp("logs") / "lms-sync.jsonl"
    configure_logging(path=str(log_file), stream=None)
    exporter = InMemorySpanExporter()
    add_exporter(exporter)
    yield Observed(spans=exporter, log_file=log_file)
    import logging

    for handler in list(logging.getLogger(LOGGER_NAME).handlers):
        handler.close()


@pytest.fixture(scope="session")
def run_sync(prefect_server: None, observed: Observed, hmac_key_hex: str) -> Callable[..., SyncRun]:
    """``run_sync(base_url, workdir, window=..., full=False, **overrides)`` → :class:`SyncRun`.

    ``window=None`` lets the flow name the window from the cursors (incremental runs)."""
    from flows.sync import sync_institution

    def run(
        base_url: str,
        workdir: Path,
        *,
        window: str | None = "e2e-window",
        full: bool = False,
        **overrides,
    ) -> SyncRun:
        serving = workdir / "serving.duckdb"
        staging = workdir / "staging"
        config = {
            "institution_id": "e2e-university",
            "vendor": "canvas",
            "base_url": base_url,
            "token": TOKEN,
            "staging_uri": str(staging),
            "serving_dsn": str(serving),
            "hmac_key_ref": f"env:{HMAC_ENV}",
            # Every page view of the synthetic term is read, so ground truth needs no clock.
            "engagement_lookback_days": 3650,
            "quota": {"max_concurrent_courses": 8},
            **overrides,
        }
        state = sync_institution(window=window, overrides=config, full=full, return_state=True)
        result = state.result(raise_on_failure=False) if state.is_completed() else None
        flow_run_id = str(state.state_details.flow_run_id) if state.state_details else None
        return SyncRun(
            state=state,
            result=result,
            serving=serving,
            staging=staging,
            flow_run_id=flow_run_id,
        )

    return run

"""The chaos matrix (issue 5): faults at 5–20 % against the Canvas emulator; every scenario ends
with serving == ground truth and records what was retried, throttled, quarantined and
dead-lettered (``tests/chaos/matrix.py`` prints the table at the end of the session).

Scenarios: 5xx; connection resets and read timeouts; truncated and malformed bodies; throttling
in both Canvas dialects (403 "Rate Limit Exceeded" and 429); records repeated across pages; a page
that changes between two requests (caught by the next incremental sync — the cursor is capped at
the run's start); a course that exhausts its retries (dead letter → ``replay``); a vendor that is
down (breaker opens, run fails fast naming it); a revoked token (fails at once); and
``rebuild --from-staging`` (no vendor call) landing the same tables.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from emulators.canvas.faults import FaultSettings
from emulators.canvas.institution import Institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.canvas.throttle import ThrottleSettings
from flows.replay import rebuild_from_staging, replay
from tests.chaos.conftest import TOKEN, sync_config
from tests.chaos.matrix import record
from tests.e2e.ground_truth import expected_tables
from tests.e2e.serving import assert_live_equals, business_digest
from transforms.staging import StagingStore

pytestmark = pytest.mark.e2e

# Its own institution (Prefect limit names, staging paths): nothing here can hold up the e2e
# suite's runs, which use "e2e-university".
INSTITUTION = "chaos-u"

# Retries stay fast: the faults are what is being tested, not the patience of the backoff.
FAST_HTTP = {"http": {"max_attempts": 10, "max_retry_seconds": 60, "read_timeout_seconds": 1.0}}


def _inst() -> Institution:
    return Institution(seed=31, courses=5, students_per_course=10, assignments_per_course=8)


def _truth(inst: Institution, hmac_key_hex: str):
    return expected_tables(
        inst, inst.course_ids(include_deleted=False), bytes.fromhex(hmac_key_hex)
    )


def _outcome(run, emu: CanvasEmulator, **extra) -> dict:
    http = run.result["http"] if run.result else {}
    quarantined = sum(t["quarantined"] for t in run.result["tables"]) if run.result else ""
    return {
        "ground_truth": True,
        "retried": http.get("retried", ""),
        "throttled": http.get("throttled", ""),
        "faults_injected": sum(emu.stats.faults.values()),
        "quarantined": quarantined,
        "dead_lettered": 0,
        **extra,
    }


FAULTS = {
    "5xx at 15 %": (FaultSettings(rate=0.15, kinds={"500", "502", "503", "504"}, seed=1), None),
    "resets + timeouts at 10 %": (
        FaultSettings(rate=0.10, kinds={"reset", "timeout"}, seed=2, slow_seconds=2.0),
        None,
    ),
    "truncated + malformed at 10 %": (
        FaultSettings(rate=0.10, kinds={"truncated", "malformed"}, seed=3),
        None,
    ),
    "duplicates across pages at 20 %": (
        FaultSettings(rate=0.20, kinds={"duplicate"}, seed=4),
        None,
    ),
    "all faults at 5 %": (FaultSettings(rate=0.05, seed=5, slow_seconds=2.0), None),
    "throttling, 403 dialect": (
        FaultSettings(),
        ThrottleSettings(dialect="403", hwm=250.0, up_front_cost=150.0),
    ),
    "throttling, 429 dialect": (
        FaultSettings(),
        ThrottleSettings(dialect="429", hwm=250.0, up_front_cost=150.0),
    ),
}


@pytest.mark.parametrize("scenario", list(FAULTS))
def test_faults_land_ground_truth(scenario, run_sync, hmac_key_hex, tmp_path):
    faults, throttle = FAULTS[scenario]
    inst = _inst()
    settings = CanvasEmulatorSettings(
        token=TOKEN,
        faults=faults,
        throttle=throttle or ThrottleSettings(enabled=False),
        latency_ms=20 if throttle else 0,  # requests in flight hold the bucket's up-front cost
    )
    with CanvasEmulator(inst, settings=settings) as emu:
        # Small pages, so faults that need a second page (duplicates) have them.
        http = {"http": {**FAST_HTTP["http"], "per_page": 20}}
        run = run_sync(emu.base_url, tmp_path, window=None, institution_id=INSTITUTION, **http)
        assert run.state.is_completed(), run.state.message
        assert_live_equals(run.serving, _truth(inst, hmac_key_hex))
        if throttle is not None:
            assert emu.stats.throttled > 0 and run.result["http"]["throttled"] > 0
        else:
            assert sum(emu.stats.faults.values()) > 0
        record(scenario, **_outcome(run, emu))


def test_page_changing_between_requests_is_caught_next_sync(run_sync, hmac_key_hex, tmp_path):
    inst = _inst()
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        emu_app_state(emu).change_mid_paging = {"fraction": 0.05, "seed": 6, "add_students": 1}
        first = run_sync(
            emu.base_url, tmp_path, window=None, institution_id=INSTITUTION, http={"per_page": 20}
        )
        assert first.state.is_completed(), first.state.message
        assert emu_app_state(emu).change_mid_paging is None, "the change did not happen mid-run"
        second = run_sync(
            emu.base_url, tmp_path, window=None, institution_id=INSTITUTION, http={"per_page": 20}
        )
        assert second.state.is_completed() and second.result["mode"] == "incremental"
        assert_live_equals(second.serving, _truth(inst, hmac_key_hex))
        record("page changes between two requests", **_outcome(second, emu))


def test_course_exhausting_retries_is_dead_lettered_then_replayed(run_sync, hmac_key_hex, tmp_path):
    inst = _inst()
    http = {"http": {"max_attempts": 2, "max_retry_seconds": 5}}
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        emu_app_state(emu).unavailable_courses.add(105)
        run = run_sync(emu.base_url, tmp_path, window=None, institution_id=INSTITUTION, **http)
        assert run.state.is_failed()
        assert "dead letters" in str(run.state.message) and "105" in str(run.state.message)
        store = StagingStore(tmp_path / "staging")
        letters = store.dead_letters(institution=INSTITUTION, vendor="canvas")
        assert [d["course_id"] for d in letters] == ["105"]
        letter = letters[0]
        assert letter["last_status"] == 503 and letter["attempts"] == 2
        assert letter["request"]["endpoint"].startswith("courses/{course_id}")
        assert "service_unavailable" in letter["body_excerpt"]
        assert TOKEN not in str(letter)
        emu_app_state(emu).unavailable_courses.clear()
        results = replay(
            None, overrides=sync_config(emu.base_url, tmp_path, institution_id=INSTITUTION, **http)
        )
        assert results and all(r["completed"] for r in results)
        assert not store.dead_letters(institution=INSTITUTION, vendor="canvas")
        assert_live_equals(tmp_path / "serving.duckdb", _truth(inst, hmac_key_hex))
        record(
            "course exhausts retries → dead letter → replay",
            ground_truth=True,
            retried=f"{letter['attempts']} attempts per try",
            dead_lettered=len(letters),
            faults_injected="503 × course 105",
        )


def test_rebuild_from_staging_lands_the_same_tables(run_sync, hmac_key_hex, tmp_path):
    inst = _inst()
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        assert run_sync(
            emu.base_url, tmp_path, window=None, institution_id=INSTITUTION
        ).state.is_completed()
        inst.apply_changes(fraction=0.05, seed=8, at=datetime.now(UTC) - timedelta(seconds=1),
                           delete_enrollments=1, add_students=1, remove_assignments=1)  # fmt: skip
        run = run_sync(emu.base_url, tmp_path, window=None, institution_id=INSTITUTION)
        assert run.state.is_completed(), run.state.message
        before = emu.stats.requests
        rebuilt = tmp_path / "rebuilt.duckdb"
        result = rebuild_from_staging(
            None,
            into=str(rebuilt),
            overrides=sync_config(emu.base_url, tmp_path, institution_id=INSTITUTION),
        )
        assert emu.stats.requests == before  # no vendor call
    assert len(result["windows"]) == 2
    assert business_digest(rebuilt) == business_digest(run.serving)
    assert_live_equals(rebuilt, _truth(inst, hmac_key_hex))
    record("rebuild --from-staging (no vendor calls)", ground_truth=True)


def test_vendor_down_opens_the_breaker_and_fails_fast(run_sync, tmp_path):
    inst = _inst()
    down = CanvasEmulatorSettings(token=TOKEN, faults=FaultSettings(rate=1.0, kinds={"503"}))
    with CanvasEmulator(inst, settings=down) as emu:
        started = time.monotonic()
        run = run_sync(
            emu.base_url,
            tmp_path,
            window=None,
            institution_id=INSTITUTION,
            course_ids=["101", "102", "105"],
            http={"max_attempts": 4, "max_retry_seconds": 20},
        )
        elapsed = time.monotonic() - started
        requests = emu.stats.requests
    assert run.state.is_failed()
    message = str(run.state.message)
    assert "canvas is unavailable" in message and "circuit breaker open" in message, message
    # Bounded: the breaker (10 straight failures) stops the courses, instead of every course
    # spending its whole retry budget three times over.
    assert requests <= 3 * 4 * 3, requests
    record("vendor down (all 503)", ground_truth="n/a", faults_injected=requests,
           retried=f"breaker open, {elapsed:.0f}s")  # fmt: skip


def test_vendor_down_before_listing_courses_names_the_breaker(run_sync, tmp_path):
    down = CanvasEmulatorSettings(token=TOKEN, faults=FaultSettings(rate=1.0, kinds={"503"}))
    with CanvasEmulator(_inst(), settings=down) as emu:
        run = run_sync(emu.base_url, tmp_path, window=None, institution_id=INSTITUTION,
                       http={"max_attempts": 12, "max_retry_seconds": 30})  # fmt: skip
    message = str(run.state.message)
    assert run.state.is_failed() and "canvas is unavailable (circuit breaker" in message, message


def test_revoked_token_fails_at_once(run_sync, tmp_path):
    with CanvasEmulator(_inst(), settings=CanvasEmulatorSettings(token="another")) as emu:
        run = run_sync(emu.base_url, tmp_path, window=None, institution_id=INSTITUTION)
        requests = emu.stats.requests
    message = str(run.state.message)
    assert run.state.is_failed() and "refused the credentials" in message, message
    assert requests == 1
    assert TOKEN not in message
    record("revoked token", ground_truth="n/a", faults_injected="401", retried=0)


def emu_app_state(emu: CanvasEmulator):
    """The running app's state (chaos knobs); the server holds the app."""
    return emu.app.state

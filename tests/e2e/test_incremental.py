"""Incremental sync (issue 5) end to end against the Canvas emulator with changes applied.

* ``test_chain_of_incrementals_equals_ground_truth_and_a_full_sync`` — full sync, then three
  rounds of changes (regrades, resubmissions, a deleted enrollment, a new student, a deleted
  assignment) each followed by an incremental sync: serving equals ground truth after every round,
  and equals (business columns, ``tests/e2e/serving.py``) a second database that got a ``--full``
  sync after each of the same changes.
* ``test_no_change_sync_fetches_only_what_tells_nothing_changed`` — an incremental sync after no
  change: no page views, no full submission lists; only the per-course requests that say so.
* ``test_partial_manifest_and_cursor`` — the incremental window's gradebook partition says its
  ``submissions`` stream is partial; the cursor is the run's start (signpost) and the window
  name follows it.
* ``test_full_flag_forces_a_full_window`` — ``full=True`` after incrementals stages a complete
  (non-partial) window and soft-deletes what is gone.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from emulators.canvas.institution import Institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import CanvasEmulatorSettings
from tests.e2e.conftest import TOKEN
from tests.e2e.ground_truth import expected_tables
from tests.e2e.serving import assert_live_equals, business_digest
from transforms.staging import StagingStore

pytestmark = pytest.mark.e2e

SEED = 5151
COURSES = 5
STUDENTS = 10
ASSIGNMENTS = 8


def _inst() -> Institution:
    return Institution(
        seed=SEED, courses=COURSES, students_per_course=STUDENTS, assignments_per_course=ASSIGNMENTS
    )


def _live(inst: Institution) -> list[int]:
    return inst.course_ids(include_deleted=False)


@pytest.fixture(scope="module")
def chain(run_sync, hmac_key_hex, tmp_path_factory):
    inst = _inst()
    key = bytes.fromhex(hmac_key_hex)
    work = tmp_path_factory.mktemp("incremental")
    rounds = []
    twin = tmp_path_factory.mktemp("incremental-twin")  # the same changes, --full every time
    digests = []
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        first = run_sync(emu.base_url, work, window=None)
        assert first.state.is_completed(), first.state.message
        assert run_sync(emu.base_url, twin, window=None).state.is_completed()
        # The not_future rule needs changes stamped before the next sync starts.
        for n, change in enumerate(
            (
                {"fraction": 0.05, "delete_enrollments": 1, "add_students": 1},
                {"fraction": 0.02, "remove_assignments": 1},
                {"fraction": 0.0},
            )
        ):
            inst.apply_changes(seed=n + 1, at=datetime.now(UTC) - timedelta(seconds=1), **change)
            before = Counter(emu.stats.paths)
            run = run_sync(emu.base_url, work, window=None)
            assert run.state.is_completed(), run.state.message
            rounds.append((run, Counter(emu.stats.paths) - before))
            assert_live_equals(run.serving, expected_tables(inst, _live(inst), key))
            full_run = run_sync(emu.base_url, twin, window=None, full=True)
            assert full_run.state.is_completed(), full_run.state.message
            digests.append((business_digest(run.serving), business_digest(full_run.serving)))
        full_dir = tmp_path_factory.mktemp("incremental-full")
        before = emu.stats.requests
        full = run_sync(emu.base_url, full_dir, window=None)
        full_requests = emu.stats.requests - before
    return inst, first, rounds, full, full_requests, work, digests


def test_chain_of_incrementals_equals_ground_truth_and_a_full_sync(chain):
    *_, digests = chain
    assert all(r.result["mode"] == "incremental" for r, _ in chain[2])
    for n, (chained, full) in enumerate(digests):
        for table in chained:
            assert chained[table] == full[table], f"round {n}: {table}"


def test_no_change_sync_fetches_only_what_tells_nothing_changed(chain):
    inst, _, rounds, _, full_requests, *_ = chain
    _, paths = rounds[-1]
    live = len(_live(inst))
    # list courses, then per course: course, sections, enrollments, users, assignments,
    # submitted_since, graded_since, student summaries (every list fits one page here).
    assert sum(paths.values()) == 1 + 8 * live, paths
    assert not [p for p in paths if "page_views" in p], paths
    assert sum(paths.values()) < full_requests / 2


def test_partial_manifest_and_cursor(chain):
    _, _, rounds, *_ = chain
    run, _ = rounds[0]
    store = StagingStore(run.staging)
    window = run.result["window"]
    assert window.startswith("inc-")
    grade = store.committed(institution="e2e-university", vendor="canvas", window=window,
                            domain="gradebook")  # fmt: skip
    assert grade and all(set(m.partial) == {"submissions"} for m in grade)
    roster = store.committed(institution="e2e-university", vendor="canvas", window=window,
                             domain="roster")  # fmt: skip
    assert roster and all(not m.partial for m in roster)
    with duckdb.connect(str(run.serving), read_only=True) as con:
        rows = con.execute(
            "SELECT domain, cursor, staging_window FROM _sync_state ORDER BY domain"
        ).fetchall()
    last = rounds[-1][0].result["window"]
    assert rows and all(w == last for _, _, w in rows)
    cursors = {d: c for d, c, _ in rows}
    # The signpost: never later than the run's start (the run started before it finished).
    assert max(cursors.values()) <= datetime.now(UTC)


def test_full_flag_forces_a_full_window(chain, run_sync):
    inst, _, _, _, _, work, _ = chain
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        run = run_sync(emu.base_url, work, window=None, full=True)
    assert run.state.is_completed(), run.state.message
    assert run.result["mode"] == "full" and run.result["window"].startswith("full-")
    store = StagingStore(run.staging)
    staged = store.committed(
        institution="e2e-university", vendor="canvas", window=run.result["window"]
    )
    assert staged and not any(m.partial for m in staged)

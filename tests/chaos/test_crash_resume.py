"""Crash-resume (issue 5): SIGKILL the worker at named points, run again, lose nothing.

A sync runs in a subprocess with ``LMS_SYNC_CHAOS_KILL_AT`` (``transforms/chaos.py``) naming where
it dies: ``fetch:<domain>`` (before a course's domain is fetched), ``stage:<domain>`` (mid-write
of a partition, before its manifest), ``load:<domain>`` (inside the load transaction) and
``cursor:<domain>`` (data committed, cursor not yet written). Then the same sync runs again, in
process. Every case checks:

* serving == ground truth after the rerun;
* no partial partition is ever read: every committed partition verifies against its manifest;
  crashed writers left only ``.tmp-`` directories, which readers skip;
* courses already staged for the window are not fetched again (requests counted at the emulator);
* the cursor never moved past uncommitted data: after a kill before the domain's commit, its
  ``_sync_state`` row is unchanged.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from emulators.canvas.institution import Institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import CanvasEmulatorSettings
from tests.chaos.conftest import TOKEN
from tests.chaos.matrix import record
from tests.e2e.ground_truth import expected_tables
from tests.e2e.serving import assert_live_equals
from transforms.staging import StagingStore

pytestmark = pytest.mark.e2e

KILLED = -9
# Its own institution: a SIGKILLed worker leaves its Prefect concurrency slots leased (they are
# freed when the lease expires), which must not hold up other tests' runs.
INSTITUTION = "chaos-crash-u"
_COURSE = re.compile(r"/courses/(\d+)/")


def _inst() -> Institution:
    return Institution(seed=77, courses=5, students_per_course=10, assignments_per_course=8)


def _state(serving: Path) -> dict[str, datetime]:
    if not serving.exists():
        return {}
    with duckdb.connect(str(serving), read_only=True) as con:
        return dict(con.execute("SELECT domain, cursor FROM _sync_state").fetchall())


def _staged(staging: Path) -> dict[str, set[str]]:
    """Committed partitions per domain (course ids), each verified against its manifest."""
    store = StagingStore(staging)
    out: dict[str, set[str]] = {}
    for m in store.committed(institution=INSTITUTION, vendor="canvas"):
        store.verify(m)
        out.setdefault(m.key.domain, set()).add(m.key.course_id)
    return out


def _roster_requests(paths: Counter) -> Counter:
    """Roster-only requests (sections, users) per course id."""
    out: Counter = Counter()
    for path, n in paths.items():
        match = _COURSE.search(path + "/")
        if match and (path.endswith("/sections") or path.endswith("/users")):
            out[match.group(1)] += n
    return out


def _free_leaked_slots() -> None:
    """What lease expiry does in production, now: drop the course limit (the next run's
    bootstrap recreates it) so the killed worker's slots do not stall the rerun."""
    from prefect.client.orchestration import get_client

    from flows.limits import limit_names

    name = limit_names(vendor="canvas", institution=INSTITUTION).courses
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(name)


CASES = [
    ("fetch:gradebook", 2, False),
    ("stage:gradebook", 1, False),
    ("load:gradebook", 0, False),
    ("cursor:gradebook", 0, False),
    ("load:gradebook", 0, True),  # during an incremental sync's load
]


@pytest.mark.parametrize(("point", "after", "incremental"), CASES)
def test_sigkill_then_rerun_lands_ground_truth(
    point, after, incremental, child_sync, run_sync, hmac_key_hex, tmp_path
):
    inst = _inst()
    key = bytes.fromhex(hmac_key_hex)
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(token=TOKEN)) as emu:
        if incremental:
            first = run_sync(emu.base_url, tmp_path, window=None, institution_id=INSTITUTION)
            assert first.state.is_completed()
            inst.apply_changes(
                fraction=0.05, seed=9, at=datetime.now(UTC) - timedelta(seconds=1), add_students=1
            )
        before_state = _state(tmp_path / "serving.duckdb")
        crashed = child_sync(
            emu.base_url, tmp_path, kill_at=point, kill_after=after, institution_id=INSTITUTION
        )
        assert crashed.returncode == KILLED, crashed.stderr[-2000:]
        _free_leaked_slots()
        after_kill = _state(tmp_path / "serving.duckdb")
        domain = point.split(":")[1]
        # The cursor of the domain being loaded never moved before its data committed (for
        # "cursor:" the data did commit; the cursor still did not move).
        assert after_kill.get(domain) == before_state.get(domain)
        staged = _staged(tmp_path / "staging")
        paths_before = Counter(emu.stats.paths)
        rerun = run_sync(emu.base_url, tmp_path, window=None, institution_id=INSTITUTION)
        paths = Counter(emu.stats.paths) - paths_before
    assert rerun.state.is_completed(), rerun.state.message
    assert_live_equals(
        rerun.serving, expected_tables(inst, inst.course_ids(include_deleted=False), key)
    )
    refetched = _roster_requests(paths)
    reused = staged.get("roster", set())
    assert not (set(refetched) & reused), (refetched, reused)
    if point.startswith(("load:", "cursor:")):
        assert sum(paths.values()) <= 1, paths  # everything was staged: only the course list
    assert _state(rerun.serving)[domain] > before_state.get(
        domain, datetime.min.replace(tzinfo=UTC)
    )
    record(
        f"SIGKILL at {point}" + (" (incremental)" if incremental else ""),
        ground_truth=True,
        refetched_after_kill=sum(paths.values()),
        reused_courses=len(reused),
    )

"""``run_exports``: several export jobs at once on a fake vendor and a fake clock — every job
starts before the first poll, the batch takes as long as its slowest job, polls across jobs
respect the vendor's per-endpoint interval, job creation its per-minute limit, and a batch killed
while the vendor works resumes the same jobs."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from connectors.export_jobs import (
    Download,
    ExportRequest,
    JobPhase,
    JobStatus,
    MemoryJobStore,
    PollSchedule,
    run_exports,
)

SCHEDULE = PollSchedule(initial=1.0, growth=0.0, cap=1.0, jitter=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


class Vendor:
    """Jobs that take ``seconds[table]`` of (fake) time; records every call."""

    min_poll_interval = 0.5
    initiations_per_minute: int | None = None

    def __init__(self, clock: Clock, seconds: Mapping[str, float]) -> None:
        self.clock, self.seconds = clock, dict(seconds)
        self.calls: list[tuple[float, str, str]] = []
        self.jobs: dict[str, tuple[str, float]] = {}

    def initiate(self, request: Mapping[str, Any]) -> str:
        job = f"job-{len(self.jobs)}"
        self.jobs[job] = (request["table"], self.clock())
        self.calls.append((self.clock(), "initiate", job))
        return job

    def poll(self, job_id: str) -> JobStatus:
        self.calls.append((self.clock(), "poll", job_id))
        table, started = self.jobs[job_id]
        done = self.clock() - started >= self.seconds[table]
        return JobStatus("complete" if done else "pending", {"id": job_id})

    def resolve(self, job_id: str, doc: Mapping[str, Any]) -> list[Download]:
        return [Download(f"{job_id}/part-0", f"https://objects.example/{job_id}")]

    def cancel(self, job_id: str) -> None: ...


def _fetch(item: Download, path: Path) -> dict[str, Any]:
    path.write_text("{}\n")
    return {"bytes": 3}


def _exports(tmp_path: Path, tables: list[str]) -> list[ExportRequest]:
    return [ExportRequest(f"t/{t}", {"table": t}, tmp_path / t) for t in tables]


def test_jobs_start_together_and_the_batch_waits_for_the_slowest(tmp_path):
    clock = Clock()
    vendor = Vendor(clock, {"a": 5.0, "b": 20.0, "c": 2.0, "d": 8.0})
    started = clock()
    done = [
        r.request["table"]
        for r in run_exports(
            vendor, MemoryJobStore(), _exports(tmp_path, ["a", "b", "c", "d"]),
            fetch=_fetch, schedule=SCHEDULE, sleep=clock.sleep, clock=clock,
        )
    ]  # fmt: skip
    kinds = [kind for _, kind, _ in vendor.calls]
    assert kinds[:4] == ["initiate"] * 4  # every job started before the first poll
    assert done == ["c", "a", "d", "b"]  # yielded as they complete
    assert clock() - started < 20.0 + 2 * SCHEDULE.cap  # the slowest job, not the sum (35 s)
    polls = [at for at, kind, _ in vendor.calls if kind == "poll"]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert min(gaps) >= vendor.min_poll_interval - 1e-9  # the per-endpoint limit, across jobs


def test_job_creation_keeps_to_the_vendor_limit_per_minute(tmp_path):
    clock = Clock()
    vendor = Vendor(clock, dict.fromkeys("abc", 1.0))
    vendor.initiations_per_minute = 2
    list(
        run_exports(
            vendor, MemoryJobStore(), _exports(tmp_path, ["a", "b", "c"]),
            fetch=_fetch, schedule=SCHEDULE, sleep=clock.sleep, clock=clock,
        )
    )  # fmt: skip
    starts = [at for at, kind, _ in vendor.calls if kind == "initiate"]
    assert starts[1] - starts[0] < 1.0 and starts[2] - starts[0] >= 60.0


def test_a_batch_killed_while_the_vendor_works_resumes_every_job(tmp_path):
    clock = Clock()
    vendor = Vendor(clock, dict.fromkeys("abcd", 10.0))
    store = MemoryJobStore()

    class Killed(BaseException):
        pass

    def die(_seconds: float) -> None:
        raise Killed

    exports = _exports(tmp_path, ["a", "b", "c", "d"])
    with pytest.raises(Killed):
        list(run_exports(vendor, store, exports, fetch=_fetch, schedule=SCHEDULE, sleep=die))
    saved = {e.name: store.load(e.name) for e in exports}
    assert all(s is not None and s["phase"] == "monitor" for s in saved.values())
    assert len(vendor.jobs) == 4

    records = list(
        run_exports(
            vendor, store, exports, fetch=_fetch, schedule=SCHEDULE, sleep=clock.sleep,
            clock=clock,
        )
    )  # fmt: skip
    assert len(vendor.jobs) == 4  # no new job
    assert {r.name: r.job_id for r in records} == {n: s["job_id"] for n, s in saved.items()}
    assert all(r.phase is JobPhase.NORMALIZE and r.files for r in records)

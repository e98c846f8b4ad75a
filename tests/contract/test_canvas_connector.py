"""Contract: the Canvas connector against the Canvas emulator, a real HTTP server on loopback.

Every test compares what landed in staging with the emulator's ground truth, record for record.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from connectors.backoff import ExponentialFullJitter, RetryPolicy
from connectors.canvas import endpoints as ep
from connectors.canvas.source import CanvasSource
from connectors.errors import AuthenticationError, PermanentError
from connectors.extract import to_table
from emulators.canvas.faults import FaultSettings
from emulators.canvas.institution import Institution, build_institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.canvas.throttle import ThrottleSettings
from flows.stage import stage_domain
from transforms.staging import PartitionKey, StagingStore

TOKEN = "contract-token"
RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "canvas-recorded"


@pytest.fixture(scope="module")
def institution() -> Institution:
    return build_institution(seed=11, courses=5, students_per_course=9)


def _stage_courses(
    source: CanvasSource, store: StagingStore, course_ids: list[str], *, workers: int = 8
) -> dict[str, Exception | None]:
    def one(course_id: str) -> Exception | None:
        try:
            for domain in source.domains:
                key = PartitionKey(
                    institution="contract",
                    vendor="canvas",
                    domain=domain,
                    window="w1",
                    course_id=course_id,
                )
                stage_domain(source, store, key, run_id="run-1")
        except Exception as exc:  # the outcome under test
            return exc
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(course_ids, pool.map(one, course_ids), strict=True))


def _expected_ids(inst: Institution, course_id: int) -> dict[str, list[str]]:
    students = [e for e in inst.enrollments(course_id) if e["type"] == "StudentEnrollment"]
    student_ids = sorted({e["user_id"] for e in students})
    assignments = inst.assignments(course_id)
    roll_call = [a for a in assignments if a["name"] == ep.ROLL_CALL_ASSIGNMENT_NAME]
    views = [v for u in student_ids for v in inst.page_views(u)]
    ids = {
        "course": [course_id],
        "sections": [s["id"] for s in inst.sections(course_id)],
        "enrollments": [e["id"] for e in inst.enrollments(course_id)],
        "users": [u["id"] for u in inst.users(course_id)],
        "assignments": [a["id"] for a in inst.assignments(course_id)],
        "submissions": [s["id"] for s in inst.iter_submissions(course_id)],
        "course_grades": [e["id"] for e in students],
        "student_summaries": [s["id"] for s in inst.student_summaries(course_id)],
        "enrollment_activity": [e["id"] for e in students],
        "page_views": [v["id"] for v in views],
        "rollcall_submissions": [
            s["id"]
            for s in inst.iter_submissions(
                course_id, assignment_ids=frozenset(a["id"] for a in roll_call)
            )
        ]
        if roll_call
        else [],
        "last_attended": [e["id"] for e in students],
    }
    return {stream: sorted(str(i) for i in values) for stream, values in ids.items()}


def _staged_ids(store: StagingStore, course_id: str) -> dict[str, list[str]]:
    manifests = store.committed(institution="contract", vendor="canvas", course_ids=[course_id])
    assert {m.key.domain for m in manifests} == set(ep.DOMAINS)
    return {
        e.stream: sorted(store.scan(e.stream, manifests).collect()["id"].to_list())
        for e in ep.ENDPOINTS
    }


def _healthy() -> CanvasEmulatorSettings:
    return CanvasEmulatorSettings(token=TOKEN)


def _live_course_ids(inst: Institution) -> list[int]:
    return inst.course_ids(include_deleted=False)


@pytest.mark.parametrize("per_page", [7, 33, 100])
def test_every_record_staged_exactly_once(institution, tmp_path, per_page):
    settings = CanvasEmulatorSettings(token=TOKEN)
    with (
        CanvasEmulator(institution=institution, settings=settings) as emu,
        CanvasSource(base_url=emu.base_url, token=TOKEN, per_page=per_page) as source,
    ):
        listed = [c["id"] for c in source.list_courses()]
        assert listed == [str(c) for c in _live_course_ids(institution)]
        store = StagingStore(tmp_path)
        outcomes = _stage_courses(source, store, listed)
    assert outcomes == dict.fromkeys(listed)
    for course_id in listed:
        expected = _expected_ids(institution, int(course_id))
        assert _staged_ids(store, course_id) == expected, f"course {course_id}"
        assert expected["submissions"], "the institution should have submissions to compare"


def test_faults_and_throttling_still_stage_exactly_once(tmp_path):
    institution = build_institution(seed=12, courses=10, students_per_course=6)
    settings = CanvasEmulatorSettings(
        token=TOKEN,
        latency_ms=20,
        # An install whose up-front cost is three times Canvas's default: the pacer assumes 50
        # units per request in flight, so it must learn from throttles (and retry them).
        throttle=ThrottleSettings(hwm=600.0, maximum=800.0, outflow=10.0, up_front_cost=150.0),
        faults=FaultSettings(rate=0.10, seed=5, slow_seconds=2.0),
    )
    retry = RetryPolicy(max_attempts=12, strategies=(ExponentialFullJitter(base=0.05, cap=1.0),))
    with (
        CanvasEmulator(institution=institution, settings=settings) as emu,
        CanvasSource(
            base_url=emu.base_url,
            token=TOKEN,
            per_page=10,
            max_in_flight=8,
            retry=retry,
            timeout=httpx.Timeout(connect=2.0, read=1.0, write=2.0, pool=10.0),
        ) as source,
    ):
        course_ids = [str(c) for c in _live_course_ids(institution)]
        assert len(course_ids) >= 8
        store = StagingStore(tmp_path)
        outcomes = _stage_courses(source, store, course_ids, workers=8)
        stats = source.stats()
        injected = emu.stats.snapshot()
    assert outcomes == dict.fromkeys(course_ids)
    for course_id in course_ids:
        assert _staged_ids(store, course_id) == _expected_ids(institution, int(course_id))
    print(f"client {stats} emulator {injected['faults']} throttled {injected['throttled']}")
    assert sum(injected["faults"].values()) > 0
    assert injected["throttled"] > 0, "8 concurrent courses should meet throttling"
    assert stats["retried"] > 0
    assert stats["failed"] == 0
    assert stats["throttled"] == injected["throttled"]


def test_bad_token_fails_fast_without_retries(institution, tmp_path):
    with (
        CanvasEmulator(institution=institution, settings=_healthy()) as emu,
        CanvasSource(base_url=emu.base_url, token="revoked") as source,
    ):
        with pytest.raises(AuthenticationError) as caught:
            list(source.list_courses())
        assert source.stats()["requests"] == 1
        assert emu.stats.snapshot()["requests"] == 1
    message = str(caught.value)
    assert "401" in message and "accounts/{account_id}/courses" in message
    assert "revoked" not in message


def test_deleted_course_fails_alone(institution, tmp_path):
    deleted = [c for c in institution.courses() if c["workflow_state"] == "deleted"]
    assert deleted, "the seeded institution has a deleted course"
    wanted = [str(c) for c in _live_course_ids(institution)] + [str(deleted[0]["id"])]
    with (
        CanvasEmulator(institution=institution, settings=_healthy()) as emu,
        CanvasSource(base_url=emu.base_url, token=TOKEN) as source,
    ):
        store = StagingStore(tmp_path)
        outcomes = _stage_courses(source, store, wanted)
    failure = outcomes.pop(str(deleted[0]["id"]))
    assert isinstance(failure, PermanentError)
    assert failure.status == 404
    assert f"course {deleted[0]['id']}" in str(failure) and "404" in str(failure)
    assert outcomes == dict.fromkeys(outcomes)
    for course_id in outcomes:
        assert _staged_ids(store, course_id) == _expected_ids(institution, int(course_id))
    left = store.committed(institution="contract", vendor="canvas", course_ids=[failure.course_id])
    assert left == []


@pytest.mark.parametrize(
    ("recorded", "endpoint"),
    [
        ("courses__862539__enrollments", ep.ENROLLMENTS),
        ("courses__862539__students__submissions_student_ids_all", ep.SUBMISSIONS),
        ("courses__862539__assignments__index", ep.ASSIGNMENTS),
        ("courses__sis_course_id_2013-autumn-PHYS-248-A__assignments", ep.ASSIGNMENTS),
        ("courses__862539__users_include_enrollments_search_term_jav", ep.USERS),
        ("courses__sis_course_id_2013-spring-CSE-142-A__sections", ep.SECTIONS),
        ("courses__149650_include_term", ep.COURSE),
    ],
)
def test_recorded_canvas_payloads_parse_unchanged(recorded, endpoint):
    data = json.loads((RECORDED / recorded).read_text())
    records = data if isinstance(data, list) else [data]
    from datetime import UTC, datetime

    table = to_table(
        records,
        endpoint,
        run_id="r",
        course_id="c",
        url="https://canvas.example/api/v1/x",
        page_number=1,
        fetched_at=datetime.now(UTC),
        trace_id="0" * 32,
        span_id="0" * 16,
    )
    assert table.num_rows == len(records)
    # Ids arrive as numbers in most files and as strings in one old instance: both stage as text.
    assert table.column("id").to_pylist() == [str(r["id"]) for r in records]
    for field, column in zip(endpoint.fields, endpoint.columns, strict=True):
        head = field.split(".")[0]
        present = [r for r in records if head in r]
        if present and "." not in field:
            values = table.column(column).to_pylist()
            for record, value in zip(records, values, strict=True):
                raw = record.get(field)
                assert value == (
                    None
                    if raw is None
                    else raw
                    if isinstance(raw, str)
                    else json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
                )

"""Contract: the Moodle connector against the Moodle emulator, a real HTTP server on loopback.

Every test compares what landed in staging with the emulator's ground truth, record for record.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from connectors.backoff import ExponentialFullJitter, RetryPolicy
from connectors.errors import AuthenticationError, PermanentError
from connectors.extract import to_table
from connectors.moodle import endpoints as ep
from connectors.moodle.source import MoodleSource, _flatten, _log_rows
from emulators.moodle.faults import FaultSettings
from emulators.moodle.institution import Institution, build_institution
from emulators.moodle.server import MoodleEmulator
from emulators.moodle.settings import MoodleEmulatorSettings
from flows.stage import stage_domain
from transforms.staging import PartitionKey, StagingStore

TOKEN = "contract-moodle-token"


@pytest.fixture(scope="module")
def institution() -> Institution:
    return build_institution(seed=21, courses=4, students_per_course=9)


def _stage_courses(
    source: MoodleSource, store: StagingStore, course_ids: list[str], *, workers: int = 8
) -> dict[str, Exception | None]:
    def one(course_id: str) -> Exception | None:
        try:
            for domain in source.domains:
                key = PartitionKey(
                    institution="contract",
                    vendor="moodle",
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


def _expected(inst: Institution, cid: int) -> dict[str, list[str]]:
    students = inst.student_ids(cid)
    works = [(a, u, inst.work(cid, a, u)) for a in inst.assign_specs(cid) for u in students]
    logs = inst.sessions(inst.attendance_id(cid))
    ids = {
        "course": [cid],
        "enrolled_users": [u["id"] for u in inst.enrolled_users(cid)],
        "active_users": [u["id"] for u in inst.enrolled_users(cid, onlyactive=True)],
        "assignments": [a["id"] for a in inst.assignments(cid)],
        "grades": [w.grade["id"] for _, _, w in works if w.grade],
        "submissions": [w.submission["id"] for _, _, w in works if w.submission],
        "grade_items": [
            f"{i['id']}/{g['userid']}" for g in inst.grade_report(cid) for i in g["gradeitems"]
        ],
        "enrolment_activity": [u["id"] for u in inst.enrolled_users(cid)],
        "completion": [
            f"{s['cmid']}/{u}" for u in students for s in inst.completion_statuses(cid, u)
        ],
        "attendance_log": [log["id"] for s in logs for log in s["attendance_log"]],
    }
    return {stream: sorted(str(i) for i in values) for stream, values in ids.items()}


def _staged(store: StagingStore, course_id: str) -> dict[str, list[str]]:
    manifests = store.committed(institution="contract", vendor="moodle", course_ids=[course_id])
    assert {m.key.domain for m in manifests} == set(ep.DOMAINS)
    out = {}
    for f in ep.FUNCTIONS:
        frame = store.scan(f.stream, manifests).collect()
        cols = [c.replace(".", "__") for c in f.endpoint.key]
        out[f.stream] = sorted("/".join(row) for row in frame.select(cols).iter_rows())
    return out


@pytest.mark.parametrize("per_page", [2, 7, 100])
def test_every_record_staged_exactly_once(institution, tmp_path, per_page):
    settings = MoodleEmulatorSettings(token=TOKEN)
    with (
        MoodleEmulator(institution, settings=settings) as emu,
        MoodleSource(base_url=emu.base_url, token=TOKEN, per_page=per_page) as source,
    ):
        listed = [c["id"] for c in source.list_courses()]
        assert listed == [str(c) for c in institution.course_ids()]  # the site course is left out
        store = StagingStore(tmp_path)
        outcomes = _stage_courses(source, store, listed)
    assert outcomes == dict.fromkeys(listed)
    for course_id in listed:
        expected = _expected(institution, int(course_id))
        assert _staged(store, course_id) == expected, f"course {course_id}"
        assert expected["grades"] and expected["attendance_log"] and expected["completion"]


def test_faults_including_errors_inside_200_still_stage_exactly_once(tmp_path):
    institution = build_institution(seed=22, courses=6, students_per_course=7)
    settings = MoodleEmulatorSettings(
        token=TOKEN, faults=FaultSettings(rate=0.10, seed=9, slow_seconds=2.0), workers=4
    )
    retry = RetryPolicy(max_attempts=12, strategies=(ExponentialFullJitter(base=0.02, cap=0.5),))
    with (
        MoodleEmulator(institution, settings=settings) as emu,
        MoodleSource(
            base_url=emu.base_url,
            token=TOKEN,
            per_page=3,
            retry=retry,
            timeout=httpx.Timeout(connect=2.0, read=1.0, write=2.0, pool=10.0),
        ) as source,
    ):
        course_ids = [str(c) for c in institution.course_ids()]
        store = StagingStore(tmp_path)
        outcomes = _stage_courses(source, store, course_ids, workers=6)
        stats = source.stats()
        injected = emu.stats.snapshot()["faults"]
    assert outcomes == dict.fromkeys(course_ids)
    for course_id in course_ids:
        assert _staged(store, course_id) == _expected(institution, int(course_id))
    print(f"client {stats} emulator {injected}")
    assert injected.get("dberror", 0) > 0, "errors inside HTTP 200 must be among the faults"
    assert sum(injected.values()) >= 10
    assert stats["retried"] > 0
    assert stats["failed"] == 0


def test_repeated_record_at_a_page_boundary_is_staged_once(institution, tmp_path):
    # Offset pages shift when an enrolment is added between two requests (faults.py duplicate).
    faults = FaultSettings(rate=0.5, kinds=frozenset({"duplicate"}), seed=3)
    with (
        MoodleEmulator(
            institution, settings=MoodleEmulatorSettings(token=TOKEN, faults=faults)
        ) as emu,
        MoodleSource(base_url=emu.base_url, token=TOKEN, per_page=4) as source,
    ):
        course_ids = [str(c) for c in institution.course_ids()]
        store = StagingStore(tmp_path)
        assert _stage_courses(source, store, course_ids) == dict.fromkeys(course_ids)
        assert emu.stats.snapshot()["faults"].get("duplicate", 0) > 0
    for course_id in course_ids:
        assert _staged(store, course_id) == _expected(institution, int(course_id))


def test_invalid_token_fails_fast_without_retries(institution):
    with (
        MoodleEmulator(institution, settings=MoodleEmulatorSettings(token=TOKEN)) as emu,
        MoodleSource(base_url=emu.base_url, token="revoked-token") as source,
    ):
        with pytest.raises(AuthenticationError) as caught:
            list(source.list_courses())
        assert source.stats()["requests"] == 1
        assert emu.stats.snapshot()["requests"] == 1
    message = str(caught.value)
    # moodle-api.md §4: HTTP 200 with errorcode invalidtoken; the error names function and code.
    assert "core_course_get_courses" in message and "invalidtoken" in message
    assert "revoked-token" not in message and caught.value.kind == "configuration"


def test_web_services_disabled_is_a_configuration_error(institution):
    settings = MoodleEmulatorSettings(token=TOKEN, webservices_enabled=False)
    with (
        MoodleEmulator(institution, settings=settings) as emu,
        MoodleSource(base_url=emu.base_url, token=TOKEN) as source,
    ):
        with pytest.raises(AuthenticationError) as caught:
            list(source.list_courses())
        assert emu.stats.snapshot()["requests"] == 1
    assert caught.value.status == 403 and "disabled" in str(caught.value)


def test_invalid_record_fails_its_course_alone(institution, tmp_path):
    wanted = [str(c) for c in institution.course_ids()] + ["999"]
    with (
        MoodleEmulator(institution, settings=MoodleEmulatorSettings(token=TOKEN)) as emu,
        MoodleSource(base_url=emu.base_url, token=TOKEN) as source,
    ):
        store = StagingStore(tmp_path)
        outcomes = _stage_courses(source, store, wanted)
        requests = emu.stats.snapshot()["paths"]
    failure = outcomes.pop("999")
    assert isinstance(failure, PermanentError) and not isinstance(failure, AuthenticationError)
    assert failure.status == 200 and failure.course_id == "999"
    assert "invalidrecord" in str(failure) and "course 999" in str(failure)
    # Permanent: asked once, never retried.
    assert requests["/webservice/rest/server.php#core_course_get_courses"] == len(wanted)
    assert outcomes == dict.fromkeys(outcomes)
    for course_id in outcomes:
        assert _staged(store, course_id) == _expected(institution, int(course_id))
    assert store.committed(institution="contract", vendor="moodle", course_ids=["999"]) == []


# ---- shapes as moodle-api.md records them ------------------------------------------------------

_REFERENCE_GRADE_REPORT = {
    "usergrades": [
        {
            "courseid": 2,
            "courseidnumber": "CONN_S1-2025",
            "userid": 3,
            "userfullname": "x",
            "useridnumber": "",
            "maxdepth": 2,
            "gradeitems": [
                {
                    "id": 11,
                    "itemname": "Scale graded",
                    "itemtype": "mod",
                    "itemmodule": "assign",
                    "iteminstance": 21,
                    "itemnumber": 0,
                    "idnumber": None,
                    "categoryid": 1,
                    "outcomeid": None,
                    "scaleid": None,
                    "locked": False,
                    "cmid": 40,
                    "weightraw": 0.24814,
                    "weightformatted": "24.81 %",
                    "graderaw": 2,
                    "gradedatesubmitted": None,
                    "gradedategraded": 1760000000,
                    "gradeformatted": "Separate and connected",
                    "grademin": 1,
                    "grademax": 3,
                    "rangeformatted": "1&ndash;3",
                    "percentageformatted": "50.00 %",
                    "feedback": "",
                    "feedbackformat": 1,
                },
                {
                    "id": 12,
                    "itemname": "Pass grade",
                    "itemtype": "mod",
                    "itemmodule": "assign",
                    "iteminstance": 22,
                    "graderaw": 40.0,
                    "gradeformatted": '<i class="icon fa fa-xmark text-danger fa-fw " '
                    'title="Fail" role="img" aria-label="Fail"></i>40.00',
                    "grademin": 0,
                    "grademax": 100,
                },
                {
                    "id": 13,
                    "itemname": None,
                    "itemtype": "course",
                    "itemmodule": None,
                    "iteminstance": 1,
                    "graderaw": None,
                    "gradeformatted": "-",
                    "grademin": 0,
                    "grademax": 100,
                    "status": "novalue",
                },
            ],
        }
    ],
    "warnings": [],
}
_REFERENCE_GRADES = {
    "assignments": [
        {
            "assignmentid": 21,
            "grades": [
                {
                    "id": 1,
                    "userid": 3,
                    "attemptnumber": 0,
                    "timecreated": 1,
                    "timemodified": 2,
                    "grader": 2,
                    "grade": "67.00000",
                }
            ],
        }
    ],
    "warnings": [
        {"item": "assignment", "itemid": 9999, "warningcode": "3", "message": "No grades found"}
    ],
}


def _table(records, function):
    return to_table(
        records,
        function.endpoint,
        run_id="r",
        course_id="2",
        url="https://moodle.example/webservice/rest/server.php",
        page_number=1,
        fetched_at=datetime.now(UTC),
        trace_id="0" * 32,
        span_id="0" * 16,
    )


def test_reference_shapes_stage_as_text():
    items = _flatten(_REFERENCE_GRADE_REPORT, ep.GRADE_ITEMS.rows, ep.GRADE_ITEMS.carry, {})
    table = _table(items, ep.GRADE_ITEMS)
    assert table.column("userid").to_pylist() == ["3", "3", "3"]
    assert table.column("cmid").to_pylist() == ["40", None, None]  # missing on the course total
    assert table.column("gradeformatted").to_pylist()[1].startswith("<i class=")
    assert table.column("graderaw").to_pylist() == ["2", "40.0", None]
    grades = _flatten(_REFERENCE_GRADES, ep.GRADES.rows, ep.GRADES.carry, {})
    table = _table(grades, ep.GRADES)
    assert table.column("grade").to_pylist() == ["67.00000"]  # a string stays as sent
    assert table.column("assignmentid").to_pylist() == ["21"]  # carried from the wrapper


def test_attendance_sessions_flatten_by_status_acronym():
    sessions = [
        {
            "id": 7,
            "attendanceid": 3,
            "sessdate": 1760000000,
            "duration": 3600,
            "statuses": [
                {"id": 30, "acronym": "P", "description": "Present", "grade": 2.0},
                {"id": 31, "acronym": "L", "description": "Late", "grade": 1.0},
            ],
            "attendance_log": [
                {"studentid": 5, "statusid": "31", "remarks": "", "id": "900"},
            ],
            "users": [{"id": 5, "firstname": "a", "lastname": "b"}, {"id": 6, "firstname": "c"}],
        }
    ]
    rows = _log_rows(sessions)
    assert rows == [
        {
            "id": "900",
            "sessionid": 7,
            "attendanceid": 3,
            "sessdate": 1760000000,
            "duration": 3600,
            "studentid": 5,
            "statusid": "31",
            "acronym": "L",
            "description": "Late",
            "grade": 1.0,
            "remarks": "",
        }
    ]  # student 6 has no log row: unmarked, not absent
    assert json.loads(json.dumps(rows))  # plain JSON values only

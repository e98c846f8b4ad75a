"""The Moodle emulator against moodle-api.md: calling convention, shapes and types, errors."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from emulators.moodle import (
    FaultSettings,
    LatencySettings,
    MoodleEmulator,
    MoodleEmulatorSettings,
    build_institution,
)
from emulators.moodle.institution import SCALE_ITEMS, Institution

TOKEN = "emu-moodle-token"


@pytest.fixture(scope="module")
def inst() -> Institution:
    return build_institution(seed=5, courses=3, students_per_course=12)


@pytest.fixture(scope="module")
def moodle(inst: Institution) -> Iterator[MoodleEmulator]:
    with MoodleEmulator(inst, settings=MoodleEmulatorSettings(token=TOKEN)) as emu:
        yield emu


def call(emu: MoodleEmulator, function: str, *, fmt: str | None = "json", **params):
    query = {"wstoken": TOKEN, "wsfunction": function, **params}
    if fmt:
        query["moodlewsrestformat"] = fmt
    return httpx.get(emu.server_url, params=query, timeout=10)


def test_site_info_and_site_course(moodle):
    info = call(moodle, "core_webservice_get_site_info").json()
    assert info["siteid"] == 1 and info["release"].startswith("4.5.6")
    assert {f["name"] for f in info["functions"]} >= {"mod_assign_get_grades"}
    courses = call(moodle, "core_course_get_courses").json()
    site = courses[0]
    assert (site["id"], site["format"], site["categoryid"]) == (1, "site", 0)
    assert "hiddensections" not in site and "hiddensections" in courses[1]  # §6
    assert all(isinstance(c["visible"], int) and c["visible"] in (0, 1) for c in courses)
    assert isinstance(courses[1]["showactivitydates"], bool)


def test_post_form_and_bracketed_arrays(moodle, inst):
    body = {
        "wstoken": TOKEN,
        "wsfunction": "core_course_get_courses",
        "moodlewsrestformat": "json",
        "options[ids][0]": "3",
        "options[ids][1]": "2",
    }
    courses = httpx.post(moodle.server_url, data=body).json()
    assert [c["id"] for c in courses] == [3, 2]


def test_enrolled_users_paging_and_optional_keys(moodle, inst):
    everyone = call(moodle, "core_enrol_get_enrolled_users", courseid="2").json()
    assert [u["id"] for u in everyone] == [u["id"] for u in inst.enrolled_users(2)]
    pages, offset = [], 0
    while True:
        opts = {
            "options[0][name]": "limitfrom",
            "options[0][value]": str(offset),
            "options[1][name]": "limitnumber",
            "options[1][value]": "5",
        }
        page = call(moodle, "core_enrol_get_enrolled_users", courseid="2", **opts).json()
        pages.append(page)
        offset += len(page)
        if len(page) < 5:
            break
    assert [u["id"] for p in pages for u in p] == [u["id"] for u in everyone]
    assert any("idnumber" not in u for u in everyone) and any("idnumber" in u for u in everyone)
    assert all(isinstance(u["roles"], list) and u["roles"][0]["name"] == "" for u in everyone)
    only = {"options[0][name]": "userfields", "options[0][value]": "id,lastcourseaccess"}
    slim = call(moodle, "core_enrol_get_enrolled_users", courseid="2", **only).json()
    assert set(slim[0]) == {"id", "lastcourseaccess", "roles"}  # §3.3: roles still an array
    active = {"options[0][name]": "onlyactive", "options[0][value]": "1"}
    listed = call(moodle, "core_enrol_get_enrolled_users", courseid="2", **active).json()
    assert {u["id"] for u in listed} == {u["id"] for u in everyone} - inst.suspended_ids(2)


def test_gradebook_types(moodle, inst):
    assignments = call(moodle, "mod_assign_get_assignments", **{"courseids[0]": "2"}).json()
    a = assignments["courses"][0]["assignments"]
    assert any(x["grade"] == -1 for x in a)  # §3.6: negative = scale
    assert all(isinstance(c["value"], str) for x in a for c in x["configs"])
    ids = {f"assignmentids[{i}]": str(x["id"]) for i, x in enumerate(a)}
    grades = call(moodle, "mod_assign_get_grades", **ids).json()
    values = [g["grade"] for row in grades["assignments"] for g in row["grades"]]
    assert values and all(re.fullmatch(r"\d+\.\d{5}", v) for v in values)  # §3.7
    later = call(moodle, "mod_assign_get_grades", since="1790000000", **ids).json()
    kept = [g for row in later["assignments"] for g in row["grades"]]
    assert kept and all(g["timemodified"] >= 1790000000 for g in kept) and len(kept) < len(values)
    unknown = call(moodle, "mod_assign_get_grades", **{"assignmentids[0]": "9999"}).json()
    assert unknown == {
        "assignments": [],
        "warnings": [
            {"item": "assignment", "itemid": 9999, "warningcode": "3", "message": "No grades found"}
        ],
    }
    subs = call(moodle, "mod_assign_get_submissions", status="draft", **ids).json()
    assert {s["status"] for row in subs["assignments"] for s in row["submissions"]} == {"draft"}
    report = call(moodle, "gradereport_user_get_grade_items", courseid="2").json()
    items = report["usergrades"][0]["gradeitems"]
    assert items[-1]["itemtype"] == "course" and "cmid" not in items[-1]
    assert all(i["scaleid"] is None for i in items)
    formatted = [i["gradeformatted"] for g in report["usergrades"] for i in g["gradeitems"]]
    assert any(f in SCALE_ITEMS for f in formatted)
    assert any(f.startswith('<i class="icon fa') for f in formatted)  # pass grade HTML


def test_completion_and_attendance(moodle, inst):
    student = inst.student_ids(2)[0]
    statuses = call(
        moodle, "core_completion_get_activities_completion_status", courseid="2", userid=student
    ).json()["statuses"]
    assert {s["state"] for s in statuses} <= {0, 1, 2, 3}
    assert all(isinstance(s["isautomatic"], bool) for s in statuses)
    contents = call(moodle, "core_course_get_contents", courseid="2").json()
    att = [m for s in contents for m in s["modules"] if m["modname"] == "attendance"]
    sessions = call(moodle, "mod_attendance_get_sessions", attendanceid=att[0]["instance"]).json()
    assert [s["id"] for s in sessions] == sorted(s["id"] for s in sessions)
    assert [st["acronym"] for st in sessions[0]["statuses"]] == ["P", "A", "L", "E"]
    log = sessions[0]["attendance_log"][0]
    assert isinstance(log["statusid"], str) and isinstance(log["id"], str)
    assert len(sessions[0]["attendance_log"]) < len(sessions[0]["users"])  # unmarked: no row


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"wsfunction": "core_enrol_get_enrolled_users", "courseid": "999"}, "invalidrecord"),
        ({"wsfunction": "core_enrol_get_enrolled_users", "courseid": "abc"}, "invalidparameter"),
        ({"wsfunction": "core_enrol_get_enrolled_users"}, "invalidparameter"),
        ({"wsfunction": "core_user_get_users"}, "accessexception"),
        ({"wsfunction": "no_such_function"}, "invalidrecord"),
        ({"wsfunction": "core_course_get_courses", "wstoken": "bad"}, "invalidtoken"),
    ],
)
def test_errors_are_http_200_bodies(moodle, params, code):
    query = {"wstoken": TOKEN, "moodlewsrestformat": "json", **params}
    response = httpx.get(moodle.server_url, params=query)
    assert response.status_code == 200
    body = response.json()
    assert body["errorcode"] == code and set(body) == {"exception", "errorcode", "message"}


def test_xml_without_format_and_debuginfo(inst):
    settings = MoodleEmulatorSettings(token=TOKEN, debug=True)
    with MoodleEmulator(inst, settings=settings) as emu:
        xml = call(emu, "core_course_get_courses", fmt=None, **{"options[ids][0]": "2"})
        assert xml.headers["content-type"].startswith("application/xml")
        assert "<RESPONSE>" in xml.text and '<KEY name="shortname">' in xml.text
        bad = httpx.get(emu.server_url, params={"wstoken": "x", "wsfunction": "f"})
        assert "<ERRORCODE>invalidtoken</ERRORCODE>" in bad.text
        debug = call(emu, "core_enrol_get_enrolled_users", courseid="abc").json()
        assert 'the server was expecting "int" type' in debug["debuginfo"]


def test_web_services_off_is_403_empty(inst):
    settings = MoodleEmulatorSettings(token=TOKEN, webservices_enabled=False)
    with MoodleEmulator(inst, settings=settings) as emu:
        response = call(emu, "core_webservice_get_site_info")
    assert (response.status_code, response.content) == (403, b"")


def test_faults_are_deterministic_and_dberror_is_in_200(inst):
    faults = FaultSettings(rate=1.0, kinds=frozenset({"dberror"}), seed=1)
    with MoodleEmulator(inst, settings=MoodleEmulatorSettings(token=TOKEN, faults=faults)) as emu:
        response = call(emu, "core_webservice_get_site_info")
    assert response.status_code == 200 and response.json()["errorcode"] == "dmlreadexception"


def test_latency_models_the_grade_report():
    latency = LatencySettings(scale=1.0)
    assert latency.seconds("gradereport_user_get_grade_items", 100) == pytest.approx(1.4, 0.05)
    assert latency.seconds("core_enrol_get_enrolled_users", 102) == pytest.approx(0.3, 0.05)
    assert LatencySettings().seconds("gradereport_user_get_grade_items", 100) == 0


def test_same_seed_same_site_and_pii():
    a = build_institution(seed=9, courses=2, students_per_course=5)
    b = build_institution(seed=9, courses=2, students_per_course=5)
    assert a.enrolled_users(2) == b.enrolled_users(2) and a.counts() == b.counts()
    pii = a.pii_values()
    assert any("@" in v for v in pii) and "Zoë Ñúñez" in pii
    shared = build_institution(seed=9, courses=2, students_per_course=5, shared_sis_ids=("S1",))
    assert shared.enrolled_users(2)[3]["idnumber"] == "S1"  # first student (after 3 staff)


def test_cli_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", "moodle", "--port", "0", "--seed", "2", "--courses",
         "2", "--students-per-course", "3", "--token", "T"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        url = re.search(r"listening on (http://\S+)", line).group(1)
        body = httpx.get(
            f"{url}/webservice/rest/server.php",
            params={"wstoken": "T", "wsfunction": "core_course_get_courses",
                    "moodlewsrestformat": "json"},
        ).json()  # fmt: skip
        assert [c["id"] for c in body] == [1, 2, 3]
    finally:
        proc.terminate()
        proc.wait(timeout=10)

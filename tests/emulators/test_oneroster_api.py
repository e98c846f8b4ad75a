"""The OneRoster emulator: REST shapes, paging headers, filters, imsx errors; the bundle writer."""

from __future__ import annotations

import csv
import io
import zipfile

import httpx
import pytest

from emulators.cli import build_parser, main
from emulators.oneroster import OneRosterEmulator, build_institution, write_bundle
from emulators.oneroster.institution import BASE_MODIFIED, CHANGED_AT, COLUMNS
from emulators.oneroster.settings import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

R = "/ims/oneroster/rostering/v1p2"
G = "/ims/oneroster/gradebook/v1p2"
INST = build_institution(seed=2)


@pytest.fixture(scope="module")
def api():
    with OneRosterEmulator(INST) as emu:
        token = httpx.post(
            f"{emu.base_url}/oauth/token",
            auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        with httpx.Client(
            base_url=emu.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            yield client


def test_the_same_seed_builds_the_same_district():
    assert build_institution(seed=2).records == INST.records
    assert build_institution(seed=3).records != INST.records


def test_token_needs_the_right_secret():
    with OneRosterEmulator(INST) as emu:
        bad = httpx.post(
            f"{emu.base_url}/oauth/token",
            auth=(DEFAULT_CLIENT_ID, "nope"),
            data={"grant_type": "client_credentials"},
        )
        assert bad.status_code == 401
        anonymous = httpx.get(f"{emu.base_url}{R}/users")
    assert anonymous.status_code == 401
    assert anonymous.json()["imsx_codeMajor"] == "failure"
    minor = anonymous.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]
    assert minor["imsx_codeMinorFieldValue"] == "unauthorisedrequest"


def test_paging_headers(api):
    total = len(INST.records["users"])
    first = api.get(f"{R}/users", params={"limit": 5, "offset": 0})
    assert first.headers["X-Total-Count"] == str(total)
    assert len(first.json()["users"]) == 5
    assert "offset=5" in first.links["next"]["url"]
    last = api.get(f"{R}/users", params={"limit": 5, "offset": total - 1})
    assert "next" not in last.links and len(last.json()["users"]) == 1


def test_json_shapes(api):
    user = api.get(f"{R}/users", params={"limit": 1}).json()["users"][0]
    assert user["userIds"][0]["type"] == "SIS"
    assert user["roles"][0]["roleType"] == "primary"
    assert isinstance(user["grades"], list) and isinstance(user["enabledUser"], bool)
    cls = api.get(f"{R}/classes/{INST.class_ids()[0]}").json()["class"]
    assert cls["course"]["type"] == "course" and cls["terms"][0]["type"] == "academicSession"
    result = api.get(f"{G}/results", params={"limit": 1}).json()["results"][0]
    assert {"lineItem", "student", "class"} <= set(result)


def test_filter_on_date_last_modified(api):
    assert api.get(f"{R}/enrollments", params={"filter": f"dateLastModified>'{BASE_MODIFIED}'"}
                   ).headers["X-Total-Count"] == "0"  # fmt: skip
    some = api.get(f"{R}/users", params={"filter": "dateLastModified>'2026-01-01T00:00:00Z'"})
    assert some.headers["X-Total-Count"] == str(len(INST.records["users"]))
    bad = api.get(f"{R}/users", params={"filter": "password='x'"})
    assert bad.status_code == 400
    assert bad.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"] == (
        "invalid_filter_field"
    )


def test_unknown_class_is_unknownobject(api):
    missing = api.get(f"{R}/classes/nope")
    assert missing.status_code == 404 and missing.json()["imsx_severity"] == "error"


def test_version_two_changes_carry_their_date():
    v2 = build_institution(seed=2, version=2)
    changed = v2.changed(BASE_MODIFIED)
    assert {r["dateLastModified"] for rows in changed.values() for r in rows} == {CHANGED_AT}
    assert [r["status"] for r in changed["enrollments"]].count("tobedeleted") == 1


def test_bundle_is_messy_and_complete(tmp_path):
    path = write_bundle(INST, tmp_path / "b.zip", as_zip=True, break_header="enrollments")
    with zipfile.ZipFile(path) as z:
        users = z.read("users.csv")
        enrollments = z.read("enrollments.csv").decode()
        manifest = z.read("manifest.csv").decode()
    assert users.startswith(b"\xef\xbb\xbf")
    header = next(csv.reader(io.StringIO(users.decode("utf-8-sig"))))
    assert header[: len(COLUMNS["users"])] == list(COLUMNS["users"])
    assert header[-1] == "metadata.lakeside.homeroom"
    assert "\r\n" in enrollments and enrollments.split("\r\n")[0].split(",")[5] == "userSourceId"
    assert "file.users,bulk" in manifest and "oneroster.version,1.2" in manifest


def test_cli_writes_a_bundle(tmp_path, capsys):
    assert "oneroster" in build_parser().format_help()
    assert main(["oneroster-bundle", "--out", str(tmp_path / "b"), "--mode", "bulk"]) == 0
    assert (tmp_path / "b" / "manifest.csv").is_file()
    assert "bundle written" in capsys.readouterr().out

"""The emulated Canvas Data 2 API and account reports over HTTP (canvas-api.md §5, §7)."""

from __future__ import annotations

import base64
import gzip
import os
import shutil
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from emulators.canvas.bulk import services
from emulators.canvas.institution import ANCHOR, build_institution
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import (
    DEFAULT_DAP_CLIENT_ID,
    DEFAULT_DAP_CLIENT_SECRET,
    DEFAULT_TOKEN,
    CanvasEmulatorSettings,
)

BASIC = base64.b64encode(f"{DEFAULT_DAP_CLIENT_ID}:{DEFAULT_DAP_CLIENT_SECRET}".encode()).decode()
FORM = {"grant_type": "client_credentials"}


@pytest.fixture(scope="module")
def canvas():
    inst = build_institution(seed=2, courses=4, students_per_course=10, assignments_per_course=8)
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(dap_processing_seconds=0.3)) as emu:
        yield emu


@pytest.fixture
def http(canvas):
    dap, _ = services(canvas)
    dap.settings = replace(dap.settings, rate_limits={})  # limits are tested on their own
    with httpx.Client(base_url=canvas.base_url) as client:
        token = client.post(
            "/ids/auth/login", data=FORM, headers={"Authorization": f"Basic {BASIC}"}
        )
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


def _complete(http: httpx.Client, body: dict, table: str = "submissions") -> dict:
    job = http.post(f"/dap/query/canvas/table/{table}/data", json=body).json()
    for _ in range(100):
        job = http.get(f"/dap/job/{job['id']}").json()
        if job["status"] in ("complete", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("job never finished")


def _records(http: httpx.Client, job: dict) -> list[dict]:
    import json

    urls = http.post("/dap/object/url", json=job["objects"]).json()["urls"]
    out = []
    for entry in urls.values():
        body = httpx.get(entry["url"]).content  # pre-signed: no credentials
        out += [json.loads(line) for line in gzip.decompress(body).splitlines()]
    return out


def test_login_is_oauth_client_credentials(canvas):
    with httpx.Client(base_url=canvas.base_url) as c:
        ok = c.post("/ids/auth/login", data=FORM, headers={"Authorization": f"Basic {BASIC}"})
        assert ok.status_code == 200
        assert ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] == 3600
        wrong = base64.b64encode(b"us-east-1#x:nope").decode()
        bad = c.post("/ids/auth/login", data=FORM, headers={"Authorization": f"Basic {wrong}"})
        assert bad.status_code == 403 and bad.json()["error"]["type"] == "AuthenticationError"
        unauth = c.get("/dap/query/canvas/table")
        assert unauth.status_code == 401 and unauth.json()["error"]["type"] == "AuthenticationError"


def test_tables_schema_and_error_bodies(http):
    assert "submissions" in http.get("/dap/query/canvas/table").json()["tables"]
    schema = http.get("/dap/query/canvas/table/submissions/schema").json()
    assert schema["version"] == 1
    assert set(schema["schema"]["properties"]) == {"key", "value", "meta"}
    wrong = http.get("/dap/query/someting/table")
    error = wrong.json()["error"]
    assert wrong.status_code == 404
    assert error["type"] == "ObjectNotFound" and error["kind"] == "namespace" and error["uuid"]


def test_snapshot_equals_ground_truth_with_key_value_meta(canvas, http):
    job = _complete(http, {"format": "jsonl"})
    assert job["status"] == "complete" and job["at"] and job["schema_version"] == 1
    records = _records(http, job)
    inst = canvas.institution
    truth = {s["id"]: s for c in inst.course_ids() for s in inst.iter_submissions(c)}
    assert {r["key"]["id"] for r in records} == set(truth)
    one = next(r for r in records if truth[r["key"]["id"]]["score"] is not None)
    assert one["value"]["score"] == truth[one["key"]["id"]]["score"]
    assert one["meta"]["action"] == "U"
    # §5.4: null values are omitted.
    blank = next(r for r in records if truth[r["key"]["id"]]["graded_at"] is None)
    assert "graded_at" not in blank["value"]


def test_incremental_since_inclusive_until_exclusive(canvas, http):
    dap, _ = services(canvas)
    records = _records(http, _complete(http, {"format": "jsonl"}))
    stamps = sorted({r["meta"]["ts"] for r in records})
    since, until = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    inc = _complete(http, {"format": "jsonl", "since": since, "until": until})
    assert inc["since"] == since and inc["until"] == until
    got = _records(http, inc)
    assert {r["meta"]["ts"] for r in got} <= {t for t in stamps if since <= t < until}
    assert any(r["meta"]["ts"] == since for r in got)
    assert not any(r["meta"]["ts"] == until for r in got)
    # A deletion after `until` shows up as a key-only D record in the next window.
    victim = got[0]["key"]["id"]
    dap.change("submissions", victim, at=ANCHOR + 10, values=None)
    later = _records(http, _complete(http, {"format": "jsonl", "since": "2026-11-20T00:00:00Z"}))
    deleted = [r for r in later if r["key"]["id"] == victim]
    assert deleted == [
        {"key": {"id": victim}, "meta": {"ts": "2026-11-20T00:00:10Z", "action": "D"}}
    ]


def test_removals_by_apply_changes_are_d_records_in_the_incremental():
    """A deleted assignment, its submissions and a deleted enrollment's submissions leave the
    REST lists; DAP's incremental covering the moment carries a D record for each (§5.4)."""
    inst = build_institution(seed=3, courses=2, students_per_course=6, assignments_per_course=4)
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(dap_processing_seconds=0.1)) as emu:
        dap, _ = services(emu)
        with httpx.Client(base_url=emu.base_url) as client:
            token = client.post(
                "/ids/auth/login", data=FORM, headers={"Authorization": f"Basic {BASIC}"}
            )
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            before = {
                t: {s["id"] for c in inst.course_ids() for s in _rows(inst, t, c)}
                for t in ("assignments", "submissions")
            }
            at = ANCHOR + 7200
            inst.apply_changes(
                seed=1, at=datetime.fromtimestamp(at, UTC), fraction=0.0,
                delete_enrollments=1, remove_assignments=1,
            )  # fmt: skip
            dap.clock = at + 60
            since = "2026-11-20T01:00:00Z"
            for table in ("assignments", "submissions"):
                after = {s["id"] for c in inst.course_ids() for s in _rows(inst, table, c)}
                gone = before[table] - after
                assert gone, table
                records = _records(client, _complete(client, {"since": since}, table))
                deletes = {r["key"]["id"] for r in records if r["meta"]["action"] == "D"}
                assert deletes == gone, table
                assert all("value" not in r for r in records if r["meta"]["action"] == "D")


def test_added_students_are_u_records_in_the_incremental_covering_their_addition():
    """Students ``apply_changes`` adds keep their seeded timestamps (older than any snapshot);
    DAP stamps their enrollment, score and submissions with the moment they were added."""
    inst = build_institution(seed=4, courses=2, students_per_course=6, assignments_per_course=4)
    with CanvasEmulator(inst, settings=CanvasEmulatorSettings(dap_processing_seconds=0.1)) as emu:
        dap, _ = services(emu)
        dap.settings = replace(dap.settings, rate_limits={})  # six queries in a few seconds
        with httpx.Client(base_url=emu.base_url) as client:
            token = client.post(
                "/ids/auth/login", data=FORM, headers={"Authorization": f"Basic {BASIC}"}
            )
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            at = ANCHOR + 7200
            inst.apply_changes(
                seed=2, at=datetime.fromtimestamp(at, UTC), fraction=0.0, add_students=2
            )
            joined = inst.changes.students_added_at
            assert len(joined) == 2 and set(joined.values()) == {"2026-11-20T02:00:00Z"}
            enrollments = {
                e["id"] for c in inst.course_ids() for e in inst.enrollments(c)
                if e["user_id"] in joined
            }  # fmt: skip
            expected = {
                "enrollments": enrollments,
                "scores": {900_000_000 + e for e in enrollments},
                "submissions": {
                    s["id"] for c in inst.course_ids() for s in inst.iter_submissions(c)
                    if s["user_id"] in joined
                },
            }  # fmt: skip
            assert all(expected.values())
            dap.clock = at + 60
            since = "2026-11-20T01:00:00Z"
            for table, ids in expected.items():
                records = _records(client, _complete(client, {"since": since}, table))
                got = {r["key"]["id"]: r for r in records}
                assert ids <= set(got), table
                assert {got[i]["meta"]["ts"] for i in ids} == {"2026-11-20T02:00:00Z"}, table
                assert {got[i]["meta"]["action"] for i in ids} == {"U"}, table
                before = _records(client, _complete(client, {"until": since}, table))
                assert not ids & {r["key"]["id"] for r in before}, table


def _rows(inst, table: str, course: int) -> list[dict]:
    return inst.assignments(course) if table == "assignments" else inst.iter_submissions(course)


def test_job_progresses_waiting_running_complete(http):
    job = http.post("/dap/query/canvas/table/assignments/data", json={"format": "jsonl"}).json()
    seen = [job["status"]]
    while seen[-1] != "complete":
        time.sleep(0.03)
        seen.append(http.get(f"/dap/job/{job['id']}").json()["status"])
    assert seen[0] == "waiting" and "running" in seen


def test_snapshot_required_for_a_too_old_since(canvas, http):
    dap, _ = services(canvas)
    old = dap.settings
    dap.settings = replace(old, max_incremental_seconds=86_400)
    try:
        r = http.post(
            "/dap/query/canvas/table/submissions/data",
            json={"format": "jsonl", "since": "2026-01-01T00:00:00Z"},
        )
    finally:
        dap.settings = old
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "SnapshotRequired" and r.json()["error"]["since"]


def test_presigned_urls_expire(canvas, http):
    dap, _ = services(canvas)
    job = _complete(http, {"format": "jsonl"}, "scores")
    urls = http.post("/dap/object/url", json=job["objects"]).json()["urls"]
    url = next(iter(urls.values()))["url"]
    assert httpx.get(url).status_code == 200
    real = dap.wall
    dap.wall = lambda: real() + 3600
    try:
        expired = httpx.get(url)
    finally:
        dap.wall = real
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    assert httpx.get(url.replace("sig=", "sig=0")).status_code == 403


def test_per_endpoint_rate_limit_answers_429_with_retry_after(canvas, http):
    dap, _ = services(canvas)
    dap.settings = replace(dap.settings, rate_limits={"list_tables": 5})
    answers = [http.get("/dap/query/canvas/table") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert int(answers[-1].headers["Retry-After"]) > 0


def test_csv_format_has_meta_key_value_columns(http):
    job = _complete(http, {"format": "csv"}, "assignments")
    urls = http.post("/dap/object/url", json=job["objects"]).json()["urls"]
    text = gzip.decompress(httpx.get(next(iter(urls.values()))["url"]).content).decode()
    header = text.splitlines()[0].split(",")
    assert header[:2] == ["meta.ts", "key.id"] and "value.title" in header


def test_account_report_start_poll_download_and_abort(canvas):
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    with httpx.Client(base_url=canvas.base_url, headers=headers) as c:
        run = c.post("/api/v1/accounts/1/reports/grade_export_csv", data={"parameters[x]": "1"})
        assert run.json()["status"] == "created" and run.json()["file_url"] is None
        rid = run.json()["id"]
        for _ in range(100):
            doc = c.get(f"/api/v1/accounts/1/reports/grade_export_csv/{rid}").json()
            if doc["status"] == "complete":
                break
            time.sleep(0.05)
        assert doc["progress"] == 100 and doc["attachment"]["content-type"] == "text/csv"
        csv = c.get(doc["file_url"]).text.splitlines()
        assert csv[0].startswith("student name,student id,student sis,course")
        assert len(csv) > 1
        other = c.post("/api/v1/accounts/1/reports/grade_export_csv").json()
        aborted = c.put(f"/api/v1/accounts/1/reports/grade_export_csv/{other['id']}/abort")
        assert aborted.json()["status"] == "aborted"
        assert c.post("/api/v1/accounts/1/reports/nope").status_code == 404


# instructure-dap-client 2.3.1 pins aiohttp==3.13.4, prefect-kubernetes 0.8.0 needs kopf -> aiohttp
# >=3.14: they cannot share this project's environment. Point LMS_SYNC_DAP_CLI at a `dap` installed
# elsewhere (e.g. `uv venv /tmp/dap && uv pip install --python /tmp/dap/bin/python
# instructure-dap-client==2.3.1 "certifi<=2026.10.18"`) to run the real client against the emulator.
_DAP_CLI = os.environ.get("LMS_SYNC_DAP_CLI") or shutil.which("dap")


@pytest.mark.skipif(
    _DAP_CLI is None, reason="no instructure-dap-client `dap` CLI (LMS_SYNC_DAP_CLI)"
)
@pytest.mark.parametrize(
    "command",
    [
        ["snapshot", "--table", "assignments"],
        ["incremental", "--table", "submissions", "--since", "2026-10-01T00:00:00Z"],
    ],
)
def test_real_dap_client_against_the_emulator(canvas, tmp_path, command):
    env = {
        **os.environ,
        "DAP_API_URL": canvas.base_url,
        "DAP_CLIENT_ID": DEFAULT_DAP_CLIENT_ID,
        "DAP_CLIENT_SECRET": DEFAULT_DAP_CLIENT_SECRET,
    }
    result = subprocess.run(
        [
            str(_DAP_CLI),
            command[0],
            "--namespace",
            "canvas",
            *command[1:],
            "--output-directory",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    files = list(tmp_path.rglob("*.gz"))
    assert files and gzip.decompress(files[0].read_bytes()).startswith(b'{"key":')

"""OneRoster end to end (issue 10): CSV bundles and the REST emulator → ``sync_institution`` on the
real Prefect test server (``tests/e2e/conftest.py``) → DuckDB, checked against ground truth.

The expected rows are computed here from the emulator's Institution records alone, following the
rules ``connectors/oneroster/mapping.py`` documents, with tokens by ``hmac.new``.
"""

from __future__ import annotations

import re
from datetime import datetime

import duckdb
import pytest

from emulators.canvas.institution import build_institution as build_canvas
from emulators.canvas.server import CanvasEmulator
from emulators.canvas.settings import CanvasEmulatorSettings
from emulators.oneroster import OneRosterEmulator, build_institution, write_bundle
from emulators.oneroster.bundle import BAD_ROLE_ENROLLMENT
from emulators.oneroster.institution import BASE_MODIFIED, Institution
from emulators.oneroster.settings import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.e2e.conftest import TOKEN as CANVAS_TOKEN
from tests.e2e.conftest import SyncRun
from tests.e2e.ground_truth import actual_tables, table_dump_digest, token
from tests.e2e.pii import pii_finder, scan_for_pii
from transforms.staging import StagingStore

pytestmark = pytest.mark.e2e

TABLES = (
    "schools", "terms", "courses", "sections", "people", "enrollments", "assignments",
    "submissions",
)  # fmt: skip
FAST = {"max_concurrent_courses": 8, "requests_per_second": 1000, "burst": 200}
REST = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET, "quota": FAST}
_ROLE = {"student": "student", "teacher": "teacher", "aide": "ta"}
_STATUS = {
    "fully graded": "graded",
    "partially graded": "pending_review",
    "submitted": "submitted",
    "not submitted": "unsubmitted",
    "exempt": "graded",
}


def _inst(**kw) -> Institution:
    return build_institution(seed=10, schools=2, courses_per_school=2, sections_per_course=2, **kw)


def _z(text: str | None) -> str | None:
    """OneRoster date or date-time text → the UTC ``...Z`` text the actual rows are read as."""
    if not text:
        return None
    if len(text) == 10:
        return f"{text}T00:00:00Z"
    return re.sub(r"\.\d+Z$", "Z", text)


def _grade(code: str | None) -> int | None:
    first = (code or "").split(",")[0]
    if first in ("KG", "K"):
        return 0
    return int(first) if first.isdigit() and int(first) <= 12 else None


def expected(inst: Institution, key: bytes, *, skip: frozenset[str] = frozenset()) -> dict:
    """Canonical rows for a district whose every record was loaded (tobedeleted → deleted)."""
    r = inst.records
    out: dict[str, list[tuple]] = {t: [] for t in TABLES}

    def gone(row) -> str | None:
        return _z(row["dateLastModified"]) if row["status"] == "tobedeleted" else None

    people: dict[str, str] = {}
    for u in r["users"]:
        sis = re.search(r"\{SIS:([^}]*)\}", u["userIds"] or "")
        sis = sis.group(1) if sis else u["identifier"]
        vendor = token(key, f"oneroster:{u['sourcedId']}")
        person = token(key, f"sis:{sis}") if sis else vendor
        people[u["sourcedId"]] = person
        role = next(x["role"] for x in r["roles"] if x["userSourcedId"] == u["sourcedId"])
        status = "inactive" if u["enabledUser"] == "false" else "active"
        out["people"].append(
            (vendor, person, token(key, f"sis:{sis}"), token(key, f"login:{u['username']}"),
             token(key, f"email:{u['email'].lower()}"), "v1", _ROLE[role], _grade(u["grades"]),
             status, None)
        )  # fmt: skip
    for o in r["orgs"]:
        if o["type"] in ("school", "district"):
            out["schools"].append(
                (o["sourcedId"], o["name"], o["type"], o["identifier"] or None,
                 o["parentSourcedId"] or None, gone(o))
            )  # fmt: skip
    for s in r["academicSessions"]:
        out["terms"].append(
            (s["sourcedId"], s["title"], s["sourcedId"], _z(s["startDate"]), _z(s["endDate"]), None)
        )
    for c in r["classes"]:
        cid = c["sourcedId"]
        first_term = c["termSourcedIds"].split(",")[0]
        out["courses"].append(
            (
                cid,
                first_term,
                c["title"],
                c["classCode"],
                cid,
                "available",
                None,
                None,
                None,
                c["schoolSourcedId"],
                None,
            )
        )
        out["sections"].append((cid, cid, c["title"], cid, None, None, None))
    for e in r["enrollments"]:
        if e["sourcedId"] in skip:
            continue
        p = people[e["userSourcedId"]]
        out["enrollments"].append(
            (e["sourcedId"], e["classSourcedId"], e["classSourcedId"], p, p, _ROLE[e["role"]],
             "deleted" if gone(e) else "active", _z(e["beginDate"]), _z(e["endDate"]), None,
             None, {"true": True, "false": False}.get((e["primary"] or "").lower()), gone(e))
        )  # fmt: skip
    for li in r["lineItems"]:
        out["assignments"].append(
            (li["sourcedId"], li["classSourcedId"], li["title"], float(li["resultValueMax"]),
             _z(li["dueDate"]), "points", None, None, None)
        )  # fmt: skip
    classes = {li["sourcedId"]: li["classSourcedId"] for li in r["lineItems"]}
    for x in r["results"]:
        p = people[x["studentSourcedId"]]
        graded = x["scoreStatus"] in ("fully graded", "partially graded")
        out["submissions"].append(
            (x["sourcedId"], classes[x["lineItemSourcedId"]], x["lineItemSourcedId"], p, p,
             float(x["score"]) if x["score"] else None, None, _STATUS[x["scoreStatus"]], None,
             _z(x["scoreDate"]) if graded else None, None, None, x["scoreStatus"] == "exempt",
             None, None, None)
        )  # fmt: skip
    return {t: sorted(rows, key=repr) for t, rows in out.items()}


def _assert_tables(run: SyncRun, inst: Institution, key: bytes, **kw) -> None:
    assert run.state.is_completed(), run.state.message
    want = expected(inst, key, **kw)
    with duckdb.connect(str(run.serving), read_only=True) as con:
        got = actual_tables(con)
    for t in TABLES:
        assert want[t], f"ground truth for {t} is empty"
        missing = sorted(set(want[t]) - set(got[t]), key=repr)[:2]
        extra = sorted(set(got[t]) - set(want[t]), key=repr)[:2]
        assert got[t] == want[t], f"{t}: missing {missing}; extra {extra}"


def _digests(run: SyncRun) -> dict:
    with duckdb.connect(str(run.serving), read_only=True) as con:
        return {t: table_dump_digest(con, t) for t in (*TABLES, "_quarantine")}


def _quarantine(run: SyncRun) -> list[tuple]:
    with duckdb.connect(str(run.serving), read_only=True) as con:
        return con.execute('SELECT "table", rule, natural_key FROM _quarantine').fetchall()


def test_csv_bulk_then_delta_land_ground_truth(run_sync, tmp_path, hmac_key_hex):
    key = bytes.fromhex(hmac_key_hex)
    v1, v2 = _inst(), _inst(version=2)
    bulk = write_bundle(v1, tmp_path / "bulk.zip", as_zip=True)
    first = run_sync(None, tmp_path, window="bulk", vendor="oneroster", bundle_uri=str(bulk))
    _assert_tables(first, v1, key)
    assert _quarantine(first) == []
    assert first.result["courses"] == len(v1.class_ids()) + 1  # the classes and @district

    delta = write_bundle(v2, tmp_path / "delta", mode="delta", since=BASE_MODIFIED)
    second = run_sync(None, tmp_path, window="delta", vendor="oneroster", bundle_uri=str(delta))
    _assert_tables(second, v2, key)
    assert second.result["courses"] == 1  # one @delta partition
    with duckdb.connect(str(second.serving), read_only=True) as con:
        deleted = con.execute(
            "SELECT source_id, state FROM enrollments WHERE deleted_at IS NOT NULL"
        ).fetchall()
    gone = next(c.sourced_id for c in v2.changes() if c.what == "tobedeleted")
    assert deleted == [(gone, "deleted")]


def test_rest_full_then_incremental_land_ground_truth(run_sync, tmp_path, hmac_key_hex):
    key = bytes.fromhex(hmac_key_hex)
    v1, v2 = _inst(), _inst(version=2)
    with OneRosterEmulator(v1) as emu:
        full = run_sync(emu.base_url, tmp_path, window="full", vendor="oneroster", **REST)
        _assert_tables(full, v1, key)
        requests_full = emu.stats.requests
        emu.institution = v2
        since = datetime.fromisoformat(BASE_MODIFIED.replace("Z", "+00:00"))
        incremental = run_sync(
            emu.base_url, tmp_path, window="incr", vendor="oneroster", modified_since=since,
            **REST,
        )  # fmt: skip
        _assert_tables(incremental, v2, key)
        assert emu.stats.requests - requests_full < requests_full / 2


def test_district_with_oneroster_and_canvas_joins_students(run_sync, tmp_path, hmac_key_hex):
    canvas = build_canvas(seed=77, courses=2, students_per_course=9, assignments_per_course=8)
    sis = next(
        e["user"]["sis_user_id"]
        for e in canvas.enrollments(101)
        if e["type"] == "StudentEnrollment" and e["user"]["sis_user_id"]
    )
    district = _inst(shared_sis_ids=(sis,))
    bundle = write_bundle(district, tmp_path / "bundle")
    key = bytes.fromhex(hmac_key_hex)
    with CanvasEmulator(canvas, settings=CanvasEmulatorSettings(token=CANVAS_TOKEN)) as c_emu:
        run = run_sync(
            c_emu.base_url,
            tmp_path,
            window="district",
            sources=[
                {"vendor": "oneroster", "bundle_uri": str(bundle)},
                {"vendor": "canvas", "base_url": c_emu.base_url, "token": CANVAS_TOKEN},
            ],
        )
    assert run.state.is_completed(), run.state.message
    shared = token(key, f"sis:{sis}")
    with duckdb.connect(str(run.serving), read_only=True) as con:
        vendors = con.execute(
            "SELECT DISTINCT vendor FROM enrollments WHERE person_token = ? ORDER BY 1", [shared]
        ).fetchall()
        people = con.execute(
            "SELECT vendor, count(*) FROM people WHERE person_token = ? GROUP BY 1 ORDER BY 1",
            [shared],
        ).fetchall()
    assert vendors == [("canvas",), ("oneroster",)]
    assert people == [("canvas", 1), ("oneroster", 1)]


def test_wrong_header_is_rejected_and_nothing_loaded_is_lost(run_sync, tmp_path, hmac_key_hex):
    v1 = _inst()
    good = write_bundle(v1, tmp_path / "good")
    first = run_sync(None, tmp_path, window="good", vendor="oneroster", bundle_uri=str(good))
    assert first.state.is_completed(), first.state.message
    before = _digests(first)
    broken = write_bundle(v1, tmp_path / "broken", break_header="enrollments")
    second = run_sync(None, tmp_path, window="broken", vendor="oneroster", bundle_uri=str(broken))
    assert not second.state.is_completed()
    message = str(second.state.result(raise_on_failure=False))
    assert "enrollments.csv, line 1, column 6" in message, message
    assert "'userSourcedId'" in message and "'userSourceId'" in message
    assert _digests(second) == before
    _assert_tables(first, v1, bytes.fromhex(hmac_key_hex))


def test_enrollment_with_an_unknown_role_is_quarantined_and_the_rest_loads(
    run_sync, tmp_path, hmac_key_hex
):
    v1 = _inst()
    bundle = write_bundle(v1, tmp_path / "bundle", bad_role=True)
    run = run_sync(None, tmp_path, window="bad-role", vendor="oneroster", bundle_uri=str(bundle))
    _assert_tables(run, v1, bytes.fromhex(hmac_key_hex), skip=frozenset({BAD_ROLE_ENROLLMENT}))
    assert _quarantine(run) == [("enrollments", "enum", BAD_ROLE_ENROLLMENT)]


def test_no_pii_in_serving_logs_spans_or_artifacts(run_sync, tmp_path, observed):
    v1 = _inst()
    bundle = write_bundle(v1, tmp_path / "bundle.zip", as_zip=True)
    csv = run_sync(None, tmp_path / "csv", window="pii", vendor="oneroster", bundle_uri=str(bundle))
    with OneRosterEmulator(v1) as emu:
        rest = run_sync(emu.base_url, tmp_path / "rest", window="pii", vendor="oneroster", **REST)
    assert csv.state.is_completed() and rest.state.is_completed()
    find = pii_finder(v1.pii_values(), minimum=50)
    scan = scan_for_pii(find, runs=[csv, rest], observed=observed)
    assert scan.leaks == [], "\n".join(scan.leaks[:20])
    assert scan.cells > 1_000 and scan.log_lines > 10 and scan.spans > 20
    assert scan.artifacts >= 4 and scan.prefect_logs > 0
    # Control: the finder does see PII where it legitimately lives (raw staging, restricted).
    store = StagingStore(str(csv.staging))
    users = store.scan("users", store.committed(institution="e2e-university", vendor="oneroster"))
    hits = {find(str(v)) for row in users.collect().iter_rows() for v in row} - {None}
    assert len(hits) > 20, hits


def test_schools_and_primary_teachers(run_sync, tmp_path):
    v1 = _inst()
    bundle = write_bundle(v1, tmp_path / "bundle")
    run = run_sync(None, tmp_path, window="schools", vendor="oneroster", bundle_uri=str(bundle))
    assert run.state.is_completed(), run.state.message
    with duckdb.connect(str(run.serving), read_only=True) as con:
        # Every class joins its school, and every school its district.
        per_school = con.execute(
            "SELECT s.source_id, d.source_id, count(*) FROM courses c"
            " JOIN schools s ON s.school_key = c.school_key"
            " JOIN schools d ON d.school_key = s.parent_school_key GROUP BY ALL ORDER BY 1"
        ).fetchall()
        primary = con.execute(
            "SELECT role, is_primary, count(*) FROM enrollments GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    classes = v1.records["classes"]
    assert per_school == [
        (f"school-{s}", "district-1", sum(c["schoolSourcedId"] == f"school-{s}" for c in classes))
        for s in range(2)
    ]
    assert ("teacher", True, len(classes)) in primary and ("teacher", False) in {
        (r, p) for r, p, _ in primary
    }

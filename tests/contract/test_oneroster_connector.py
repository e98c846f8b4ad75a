"""Contract: the OneRoster source against the emulator's REST service and its CSV bundles.

Both transports must stage the same rows for the same district (one mapping serves both); a
bundle that breaks the CSV binding is refused, before anything is staged, with a message naming
file, line and column; REST failures arrive as classified imsx payloads.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from connectors.backoff import RetryPolicy
from connectors.errors import ConnectorError
from connectors.oneroster.bundle import BundleError
from connectors.oneroster.source import DELTA, DISTRICT, OneRosterSource
from emulators.canvas.faults import FaultSettings
from emulators.oneroster import OneRosterEmulator, OneRosterEmulatorSettings, write_bundle
from emulators.oneroster.institution import BASE_MODIFIED, build_institution
from emulators.oneroster.settings import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

CREDS = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
INST = build_institution(seed=4, schools=2, courses_per_school=2, sections_per_course=1)


def _staged(source: OneRosterSource) -> dict[str, dict[str, dict]]:
    """stream → sourcedId → staged row (lineage dropped), over every listed partition."""
    out: dict[str, dict[str, dict]] = {}
    for course in source.list_courses():
        for domain in source.domains:
            for page in source.domain_pages(course_id=course["id"], domain=domain, run_id="r"):
                for row in page.table.to_pylist():
                    record = {k: v for k, v in row.items() if not k.startswith("_")}
                    assert row["_course_id"] == course["id"]
                    out.setdefault(page.stream, {})[record["sourcedId"]] = record
    return out


def _numbers(rows: dict[str, dict[str, dict]]) -> dict:
    """Numbers spelled as CSV or JSON (``0`` / ``0.0``) compared as numbers."""
    for stream in rows.values():
        for r in stream.values():
            for k in ("resultValueMin", "resultValueMax", "score"):
                if r.get(k) is not None:
                    r[k] = float(r[k])
    return rows


@pytest.fixture(scope="module")
def emulator():
    with OneRosterEmulator(INST) as emu:
        yield emu


def test_rest_and_csv_stage_the_same_rows(emulator, tmp_path):
    with OneRosterSource(base_url=emulator.base_url, per_page=5, **CREDS) as rest:
        over_rest = _numbers(_staged(rest))
    bundle = write_bundle(INST, tmp_path / "b.zip", as_zip=True, messy=False)
    with OneRosterSource(bundle_uri=str(bundle)) as csv:
        from_csv = _numbers(_staged(csv))
    assert set(over_rest) == set(from_csv)
    for stream in over_rest:
        assert over_rest[stream] == from_csv[stream], stream
    assert len(from_csv["enrollments"]) == len(INST.records["enrollments"])
    assert len(from_csv["results"]) == len(INST.records["results"])


def test_rest_pages_to_x_total_count_and_lists_district_first(emulator):
    with OneRosterSource(base_url=emulator.base_url, per_page=4, **CREDS) as rest:
        courses = [c["id"] for c in rest.list_courses()]
        assert courses == [DISTRICT, *INST.class_ids()]
        pages = list(rest.domain_pages(course_id=DISTRICT, domain="roster", run_id="r"))
    users = [p for p in pages if p.stream == "users"]
    assert sum(p.rows for p in users) == len(INST.records["users"])
    assert len(users) == -(-len(INST.records["users"]) // 4)  # no extra empty page


def test_messy_bundle_reads_like_a_clean_one(tmp_path):
    clean = write_bundle(INST, tmp_path / "clean", messy=False)
    messy = write_bundle(INST, tmp_path / "messy", messy=True)
    assert (messy / "users.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in (messy / "enrollments.csv").read_bytes()
    with OneRosterSource(bundle_uri=str(clean)) as a, OneRosterSource(bundle_uri=str(messy)) as b:
        left, right = _staged(a), _staged(b)
    for r in right["users"].values():  # messy bulk users.csv leaves status/date empty
        assert r["status"] is None and r["dateLastModified"] is None
    for r in left["users"].values():
        r["status"] = r["dateLastModified"] = None
    assert left == right
    grades = {r["grades"] for r in right["users"].values()}
    assert {"KG", "05", "PK", "UG"} <= grades
    titles = {r["title"] for r in right["classes"].values()}
    assert any("," in t for t in titles)


def test_delta_bundle_is_one_partition_of_changes(tmp_path):
    v2 = build_institution(
        seed=4, schools=2, courses_per_school=2, sections_per_course=1, version=2
    )
    delta = write_bundle(v2, tmp_path / "delta", mode="delta", since=BASE_MODIFIED)
    with OneRosterSource(bundle_uri=str(delta)) as src:
        assert src.mode == "delta"
        assert [c["id"] for c in src.list_courses()] == [DELTA]
        staged = _staged(src)
    changed = {(c.file, c.sourced_id) for c in v2.changes()}
    names = {"enrollments": "enrollments", "users": "users", "line_items": "lineItems",
             "results": "results"}  # fmt: skip
    got = {(names[s], sid) for s, rows in staged.items() if s in names for sid in rows}
    assert got == changed
    deleted = [r for r in staged["enrollments"].values() if r["status"] == "tobedeleted"]
    assert len(deleted) == 1


def test_rest_incremental_sends_the_date_filter(emulator):
    since = datetime.fromisoformat("2026-09-10T00:00:00+00:00")
    with OneRosterSource(base_url=emulator.base_url, modified_since=since, **CREDS) as rest:
        assert [c["id"] for c in rest.list_courses()] == [DELTA]
        staged = _staged(rest)
    assert all(not rows for rows in staged.values())  # version 1: nothing changed since


def test_wrong_header_names_file_line_and_column(tmp_path):
    broken = write_bundle(INST, tmp_path / "broken", break_header="enrollments")
    with pytest.raises(BundleError, match=r"enrollments\.csv, line 1, column 6: expected header "
                       r"'userSourcedId', found 'userSourceId'"):  # fmt: skip
        OneRosterSource(bundle_uri=str(broken))


def test_row_that_does_not_fit_the_header_names_its_line(tmp_path):
    bundle = write_bundle(INST, tmp_path / "ragged", messy=False)
    path = bundle / "orgs.csv"
    lines = path.read_text().splitlines()
    lines[2] += ",extra,Ava Smith"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BundleError, match=r"orgs\.csv, line 3, column \d+") as err:
        OneRosterSource(bundle_uri=str(bundle))
    assert "Ava" not in str(err.value)  # the row's text (PII) never appears


def test_manifest_must_list_present_files(tmp_path):
    bundle = write_bundle(INST, tmp_path / "b")
    (bundle / "users.csv").unlink()
    with pytest.raises(
        BundleError, match=r"file\.users is bulk but users\.csv is not in the bundle"
    ):
        OneRosterSource(bundle_uri=str(bundle))
    (bundle / "manifest.csv").unlink()
    with pytest.raises(BundleError, match=r"manifest\.csv: missing"):
        OneRosterSource(bundle_uri=str(bundle))


def test_bundle_without_gradebook_files_syncs_only_the_roster(tmp_path):
    files = ("orgs", "academicSessions", "courses", "classes", "users", "roles", "enrollments")
    bundle = write_bundle(INST, tmp_path / "b", files=files)
    with OneRosterSource(bundle_uri=str(bundle)) as src:
        assert src.domains == ("roster",)


def test_bad_secret_is_a_configuration_error(emulator):
    rest = OneRosterSource(
        base_url=emulator.base_url, client_id=DEFAULT_CLIENT_ID, client_secret="wrong"
    )
    with rest, pytest.raises(ConnectorError) as err:
        list(rest.list_courses())
    assert err.value.kind == "configuration"


def test_imsx_error_is_classified_and_named(emulator):
    rest = OneRosterSource(base_url=emulator.base_url, **CREDS)
    with rest, pytest.raises(ConnectorError) as err:
        list(rest.domain_pages(course_id="class-9-9-9", domain="roster", run_id="r"))
    assert err.value.kind == "permanent"
    assert "class not found" in str(err.value)


def test_server_busy_is_retried():
    settings = OneRosterEmulatorSettings(faults=FaultSettings(rate=0.1, kinds={"503"}, seed=3))
    with OneRosterEmulator(INST, settings=settings) as emu:
        fast = RetryPolicy(scale=0.001)
        with OneRosterSource(base_url=emu.base_url, per_page=5, retry=fast, **CREDS) as rest:
            staged = _staged(rest)
            assert rest.stats()["retried"] > 0
    assert len(staged["enrollments"]) == len(INST.records["enrollments"])

"""OneRoster: a 1-million-enrollment CSV bundle, staged + normalized + loaded, beside DuckDB.

The bundle (generated here with DuckDB, roster files only: orgs, academicSessions, courses,
classes, users, roles, enrollments, in the 1.2 CSV header order) is read exactly as the flow reads
it — ``OneRosterSource(bundle_uri=...)`` → ``flows.stage.stage_domain`` for ``@district`` and every
class → ``transforms.pipeline.load_staged`` into a fresh DuckDB file — in a fresh process whose
peak RSS is measured. The baseline is a bare DuckDB ``read_csv`` of the same files into tables
(no checks, no staging, no tokens), also in a fresh process. Figures: rows/s of each and their
ratio, peak RSS beside it.

Shape: 1,000,000 enrollments in ``CLASSES`` classes of a 40,000-student district (each student
in 25 classes, as in a high school with a long timetable). Fewer, larger classes than a real
district keep the run inside two minutes: the per-partition overhead of staging (a manifest, a
Parquet file per stream, an atomic rename) and of the loader's per-course normalization is paid
per class, so the class count, not the row count, dominates a district of small classes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bench.results import Figure
from bench.rss import measure

ENROLLMENTS = 1_000_000
CLASSES = 400
STUDENTS = 40_000
SCHOOLS = 10

_HEADERS = {
    "orgs": "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
    "academicSessions": "sourcedId,status,dateLastModified,title,type,startDate,endDate,"
    "parentSourcedId,schoolYear",
    "courses": "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,"
    "orgSourcedId,subjects,subjectCodes",
    "classes": "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,"
    "classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
    "users": "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,"
    "familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,"
    "userMasterIdentifier,resourceSourcedIds,preferredGivenName,preferredMiddleName,"
    "preferredFamilyName,primaryOrgSourcedId,pronouns",
    "roles": "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,"
    "orgSourcedId,userProfileSourcedId",
    "enrollments": "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,"
    "userSourcedId,role,primary,beginDate,endDate",
}
_M = "'2026-09-01T08:00:00.000Z'"
_QUERIES = {
    "orgs": f"SELECT 'school-' || i, 'active', {_M}, 'School ' || i, 'school', 'S' || i, NULL,"
    f" FROM range({SCHOOLS}) t(i)",
    "academicSessions": f"SELECT 'term-1', 'active', {_M}, 'Fall', 'term', '2026-08-24',"
    " '2027-01-15', NULL, '2027'",
    "courses": f"SELECT 'course-' || i, 'active', {_M}, NULL, 'Course ' || i, 'C' || i, '09',"
    f" 'school-' || (i % {SCHOOLS}), NULL, NULL FROM range({CLASSES}) t(i)",
    "classes": f"SELECT 'class-' || i, 'active', {_M}, 'Class ' || i || ', Period 1', '09',"
    f" 'course-' || i, 'K' || i, 'scheduled', NULL, 'school-' || (i % {SCHOOLS}), 'term-1',"
    f" NULL, NULL, '1' FROM range({CLASSES}) t(i)",
    "users": f"SELECT 'stu-' || i, 'active', {_M}, 'true', 'user' || i, '{{SIS:S' || i || '}}',"
    " 'Given' || i, 'Family' || i, NULL, 'S' || i, 'user' || i || '@example.edu', NULL, NULL,"
    " NULL, ['KG','01','05','09','12','PK','UG'][1 + i % 7], NULL, NULL, NULL, NULL, NULL, NULL,"
    f" 'school-' || (i % {SCHOOLS}), NULL FROM range({STUDENTS}) t(i)",
    "roles": f"SELECT 'role-' || i, 'active', {_M}, 'stu-' || i, 'primary', 'student', NULL,"
    f" NULL, 'school-' || (i % {SCHOOLS}), NULL FROM range({STUDENTS}) t(i)",
    "enrollments": f"SELECT 'enr-' || i, 'active', {_M}, 'class-' || (i % {CLASSES}),"
    f" 'school-' || (i % {CLASSES} % {SCHOOLS}), 'stu-' || (i // {ENROLLMENTS // STUDENTS}),"
    f" 'student', 'false', '2026-08-24', '2027-01-15' FROM range({ENROLLMENTS}) t(i)",
}


def write_bundle(out: Path) -> int:
    """The bundle's files; returns the number of data rows."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    rows = 0
    for name, query in _QUERIES.items():
        path = out / f"{name}.csv"
        con.execute(f"COPY ({query}) TO '{path}' (HEADER false, QUOTE '\"')")
        body = path.read_bytes()
        path.write_bytes(_HEADERS[name].encode() + b"\n" + body)
        rows += con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]
    manifest = ["propertyName,value", "manifest.version,1.0", "oneroster.version,1.2"]
    manifest += [f"file.{name},bulk" for name in _QUERIES]
    (out / "manifest.csv").write_text("\n".join(manifest) + "\n")
    con.close()
    return rows


def sync_bundle(bundle: str, work: str) -> dict[str, float]:
    """Stage every partition and load: the flow's code path without the Prefect run around it."""
    from connectors.oneroster.mapping import oneroster_mapping
    from connectors.oneroster.source import OneRosterSource
    from flows.stage import stage_domain
    from transforms.pipeline import load_staged
    from transforms.staging import PartitionKey, StagingStore
    from transforms.tokenize import load_hmac_key

    os.environ["BENCH_ONEROSTER_KEY"] = "ab" * 32
    started = time.perf_counter()
    run = str(uuid.uuid4())
    store = StagingStore(str(Path(work) / "staging"))
    with OneRosterSource(bundle_uri=bundle) as source:
        opened = time.perf_counter() - started
        courses = [c["id"] for c in source.list_courses()]
        for course in courses:
            key = PartitionKey("bench", "oneroster", "roster", "w", course)
            stage_domain(source, store, key, run_id=run)
    staged = time.perf_counter() - started
    manifests = store.committed(institution="bench", vendor="oneroster", window="w")
    frames = {s: store.scan(s, manifests) for s in OneRosterSource.streams("roster")}
    report = load_staged(
        frames=frames,
        courses_loaded={"roster": courses},
        mapping=oneroster_mapping(),
        serving_dsn=str(Path(work) / "serving.duckdb"),
        hmac_key=load_hmac_key("env:BENCH_ONEROSTER_KEY", "v1"),
        run_id=run,
        institution="bench",
        vendor="oneroster",
        now=datetime.now(UTC),
    )
    loaded = sum(t.loaded for t in report.tables.values())
    return {
        "seconds": time.perf_counter() - started,
        "open_seconds": opened,
        "stage_seconds": staged,
        "enrollments_loaded": report.tables["enrollments"].loaded,
        "rows_loaded": loaded,
    }


def duckdb_read_csv(bundle: str) -> float:
    """Bare DuckDB: every file into a table of an in-memory database; seconds."""
    started = time.perf_counter()
    con = duckdb.connect()
    for name in _QUERIES:
        path = Path(bundle) / f"{name}.csv"
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', header = true)")
    con.close()
    return time.perf_counter() - started


def run() -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="bench-oneroster-"))
    try:
        rows = write_bundle(work / "bundle")
        base_seconds, base_rss = measure(duckdb_read_csv, str(work / "bundle"))
        ours, rss = measure(sync_bundle, str(work / "bundle"), str(work))
        assert ours["enrollments_loaded"] == ENROLLMENTS, ours
        print(
            f"  bundle: {rows:,} rows ({ENROLLMENTS:,} enrollments, {CLASSES} classes);"
            f" open+check {ours['open_seconds']:.1f}s, staged at {ours['stage_seconds']:.1f}s,"
            f" loaded at {ours['seconds']:.1f}s; DuckDB read_csv {base_seconds:.1f}s",
            flush=True,
        )
        return [
            Figure.compare(
                "oneroster_bundle_rows_per_second",
                rows / ours["seconds"],
                "rows/s",
                baseline_name="duckdb_read_csv_rows_per_second",
                baseline_value=rows / base_seconds,
                peak_rss_mb=rss,
            ),
            Figure.compare(
                "oneroster_bundle_peak_rss_mb",
                rss,
                "MB",
                baseline_name="duckdb_read_csv_peak_rss_mb",
                baseline_value=base_rss,
                peak_rss_mb=rss,
            ),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)

"""Staging partitions: written once, atomically, readable lazily, verifiable, expirable."""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms import _atomic
from transforms.staging import (
    LINEAGE_SCHEMA,
    Manifest,
    PageMeta,
    PartitionKey,
    PartitionNotFoundError,
    StagingCorruptError,
    StagingSchemaError,
    StagingStore,
    stream_schema,
)

FETCHED_AT = datetime(2025, 9, 3, 12, 0, tzinfo=UTC)
SUBMISSION_COLUMNS = ("id", "user_id", "assignment_id", "score", "workflow_state")
STREAMS = {
    "submissions": stream_schema(SUBMISSION_COLUMNS),
    "assignments": stream_schema(("id", "name", "points_possible")),
}


def key(course_id: str = "101", *, window: str = "2025-09-01", domain: str = "gradebook"):
    return PartitionKey("demo-isd", "canvas", domain, window, course_id)


def page_meta(stream: str, number: int, *, records: list[dict] | None = None) -> PageMeta:
    return PageMeta(
        stream=stream,
        number=number,
        url=f"https://lms.test/api/v1/courses/101/{stream}?page={number}",
        status=200,
        fetched_at=FETCHED_AT,
        raw=json.dumps(records or []).encode(),
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id=f"{number:016x}",
    )


def page_table(
    schema: pa.Schema, page: PageMeta, n: int, *, run_id: str = "run-1", course_id: str = "101"
) -> pa.Table:
    """``n`` records of ``page`` with every declared column set to a distinct string."""
    declared = [name for name in schema.names if name not in LINEAGE_SCHEMA.names]
    columns: dict[str, pa.Array] = {
        name: pa.array([f"{name}-{page.number}-{i}" for i in range(n)], pa.string())
        for name in declared
    }
    columns |= {
        "_run_id": pa.array([run_id] * n, pa.string()),
        "_course_id": pa.array([course_id] * n, pa.string()),
        "_source_url": pa.array([page.url] * n, pa.string()),
        "_page_number": pa.array([page.number] * n, pa.int32()),
        "_record_index": pa.array(range(n), pa.int32()),
        "_fetched_at": pa.array([page.fetched_at] * n, pa.timestamp("us", tz="UTC")),
        "_trace_id": pa.array([page.trace_id] * n, pa.string()),
        "_span_id": pa.array([page.span_id] * n, pa.string()),
    }
    return pa.table(columns, schema=schema)


def write_pages(writer, stream: str, pages: int, rows_per_page: int, **table_kw) -> None:
    for number in range(1, pages + 1):
        meta = page_meta(stream, number, records=[{"id": i} for i in range(rows_per_page)])
        writer.write(
            stream, page_table(STREAMS[stream], meta, rows_per_page, **table_kw), page=meta
        )


@pytest.fixture
def store(tmp_path: Path) -> StagingStore:
    return StagingStore(tmp_path / "staging")


def visible_entries(store: StagingStore) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*"))


def test_round_trip(store: StagingStore) -> None:
    with store.writer(key(), run_id="run-1", streams=STREAMS) as w:
        write_pages(w, "submissions", pages=3, rows_per_page=4)
        write_pages(w, "assignments", pages=1, rows_per_page=2)
    manifest = w.manifest

    assert store.is_committed(key())
    assert manifest == store.manifest(key())
    assert manifest.run_id == "run-1"
    assert manifest.row_count == 14
    assert manifest.streams["submissions"]["rows"] == 12
    assert manifest.streams["submissions"]["columns"] == STREAMS["submissions"].names
    assert manifest.source_urls["submissions"] == [
        page_meta("submissions", n).url for n in (1, 2, 3)
    ]
    assert manifest.raw_archive["pages"] == 4
    partition = store.root / "demo-isd/canvas/gradebook/window=2025-09-01/course=101"
    assert manifest.path == str(partition)
    assert sorted(p.name for p in partition.iterdir()) == [
        "assignments.parquet",
        "manifest.json",
        "raw.jsonl.gz",
        "submissions.parquet",
    ]
    assert Manifest.from_json(manifest.to_json(), path=manifest.path) == manifest

    frame = store.scan("submissions", [manifest]).collect()
    assert frame.height == 12
    assert frame.columns == [*STREAMS["submissions"].names, "_staging_path"]
    assert frame["_staging_path"].unique().to_list() == [str(partition)]
    assert frame.schema["_fetched_at"] == pl.Datetime("us", "UTC")
    assert frame.filter(pl.col("_page_number") == 2)["score"].to_list()[:2] == [
        "score-2-0",
        "score-2-1",
    ]
    store.verify(manifest)


def test_empty_stream_is_committed_as_a_typed_empty_file(store: StagingStore) -> None:
    with store.writer(key(), run_id="run-1", streams=STREAMS) as w:
        write_pages(w, "assignments", pages=1, rows_per_page=3)
    manifest = w.manifest

    assert manifest.streams["submissions"]["rows"] == 0
    assert manifest.source_urls["submissions"] == []
    empty = pq.read_table(manifest.file("submissions"))
    assert empty.num_rows == 0
    assert empty.schema.equals(STREAMS["submissions"], check_metadata=False)
    frame = store.scan("submissions", [manifest]).collect()
    assert frame.height == 0
    assert "score" in frame.columns


def test_scan_without_partitions_is_empty_but_typed(store: StagingStore) -> None:
    frame = store.scan("submissions", [], columns=SUBMISSION_COLUMNS).collect()
    assert frame.height == 0
    assert frame.columns == [*STREAMS["submissions"].names, "_staging_path"]
    assert frame.schema["_page_number"] == pl.Int32
    assert store.scan("submissions", []).collect().columns == [
        *LINEAGE_SCHEMA.names,
        "_staging_path",
    ]


def test_scan_unions_many_partitions_and_skips_other_domains(store: StagingStore) -> None:
    for course in ("101", "102", "103"):
        with store.writer(key(course), run_id="run-1", streams=STREAMS) as w:
            write_pages(w, "submissions", pages=2, rows_per_page=5, course_id=course)
    roster = {"users": stream_schema(("id", "name"))}
    with store.writer(key("101", domain="roster"), run_id="run-1", streams=roster):
        pass

    manifests = store.committed(institution="demo-isd", vendor="canvas")
    assert [(m.key.domain, m.key.course_id) for m in manifests] == [
        ("gradebook", "101"),
        ("gradebook", "102"),
        ("gradebook", "103"),
        ("roster", "101"),
    ]
    frame = store.scan("submissions", manifests).collect()
    assert frame.height == 30
    counts = frame.group_by("_course_id", "_staging_path").len().sort("_course_id")
    assert counts["len"].to_list() == [10, 10, 10]
    assert all(
        p.endswith(f"course={c}") for c, p in counts.select("_course_id", "_staging_path").rows()
    )

    picked = store.committed(
        institution="demo-isd", vendor="canvas", domain="gradebook", course_ids=["103", "101"]
    )
    assert [m.key.course_id for m in picked] == ["101", "103"]
    assert store.committed(institution="demo-isd", vendor="canvas", window="2024-01-01") == []


def test_scan_unions_partitions_staged_with_different_columns(store: StagingStore) -> None:
    with store.writer(key("101"), run_id="run-1", streams=STREAMS) as w:
        write_pages(w, "submissions", pages=1, rows_per_page=2)
    drifted = {"submissions": stream_schema((*SUBMISSION_COLUMNS, "late"))}
    with store.writer(key("102"), run_id="run-2", streams=drifted) as w:
        meta = page_meta("submissions", 1)
        w.write("submissions", page_table(drifted["submissions"], meta, 3), page=meta)

    frame = store.scan("submissions", store.committed(institution="demo-isd", vendor="canvas"))
    result = frame.collect().sort("_course_id", "_run_id")
    assert result.height == 5
    assert result.filter(pl.col("_run_id") == "run-1")["late"].null_count() == 2


def test_exception_inside_with_leaves_nothing(store: StagingStore) -> None:
    writer = store.writer(key(), run_id="run-1", streams=STREAMS)
    with pytest.raises(RuntimeError, match="connector died"), writer as w:
        write_pages(w, "submissions", pages=2, rows_per_page=3)
        raise RuntimeError("connector died")
    assert not store.is_committed(key())
    assert not w.temp_path.exists()
    assert [p for p in visible_entries(store) if "course=" in p] == []
    with pytest.raises(PartitionNotFoundError):
        store.manifest(key())


def test_crash_before_rename_is_invisible_and_swept(store: StagingStore) -> None:
    # A writer that wrote every file, even its manifest, but died before the rename.
    w = store.writer(key(), run_id="run-1", streams=STREAMS)
    write_pages(w, "submissions", pages=1, rows_per_page=3)
    (w.temp_path / "manifest.json").write_text("{}")
    del w  # the process is gone; nothing cleans up

    assert not store.is_committed(key())
    assert store.committed(institution="demo-isd", vendor="canvas") == []
    assert store.expire(datetime.now(UTC) + timedelta(days=1)) == []
    (temp,) = [p for p in store.root.rglob(".tmp-*")]

    assert store.sweep_temp(older_than=timedelta(hours=1)) == []  # too young: maybe still writing
    old = time.time() - 7200
    for p in [temp, *temp.iterdir()]:
        os.utime(p, (old, old))
    assert store.sweep_temp(older_than=timedelta(hours=1)) == [temp]
    assert not temp.exists()

    with store.writer(key(), run_id="run-2", streams=STREAMS) as w2:  # a restart stages it anew
        write_pages(w2, "submissions", pages=1, rows_per_page=3)
    assert store.manifest(key()).run_id == "run-2"


def test_commit_race_first_wins_and_nothing_is_overwritten(store: StagingStore) -> None:
    first = store.writer(key(), run_id="run-A", streams=STREAMS)
    second = store.writer(key(), run_id="run-B", streams=STREAMS)
    write_pages(first, "submissions", pages=1, rows_per_page=2, run_id="run-A")
    write_pages(second, "submissions", pages=2, rows_per_page=7, run_id="run-B")

    winner = first.commit()
    sha_before = winner.streams["submissions"]["sha256"]
    loser = second.commit()

    assert loser == winner
    assert loser.run_id == "run-A"
    assert not second.temp_path.exists()
    manifest = store.manifest(key())
    assert manifest.run_id == "run-A"
    assert manifest.streams["submissions"]["sha256"] == sha_before
    store.verify(manifest)
    assert store.scan("submissions", [manifest]).collect()["_run_id"].unique().to_list() == [
        "run-A"
    ]
    assert list(store.root.rglob(".tmp-*")) == []


def test_rename_lost_between_check_and_rename(tmp_path: Path, monkeypatch) -> None:
    src, dst = tmp_path / ".tmp-x", tmp_path / "course=1"
    src.mkdir()
    (src / "mine").write_text("ours")
    dst.mkdir()
    (dst / "theirs").write_text("winner")
    monkeypatch.setattr(Path, "exists", lambda self: False)  # the winner appears after the check
    assert _atomic.rename_if_absent(src, dst) is False
    monkeypatch.undo()
    assert sorted(p.name for p in dst.iterdir()) == ["theirs"]


def test_verify_names_the_corrupt_file(store: StagingStore) -> None:
    with store.writer(key(), run_id="run-1", streams=STREAMS) as w:
        write_pages(w, "submissions", pages=1, rows_per_page=3)
    manifest = w.manifest
    target = Path(manifest.file("submissions"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))

    with pytest.raises(StagingCorruptError, match=r"submissions\.parquet: sha256") as info:
        store.verify(manifest)
    assert info.value.path == str(target)

    (Path(manifest.path) / "raw.jsonl.gz").unlink()
    target.write_bytes(b"")
    with pytest.raises(StagingCorruptError, match=r"submissions\.parquet"):
        store.verify(manifest)


def test_raw_archive_has_one_line_per_page(store: StagingStore) -> None:
    pages = [page_meta("submissions", n, records=[{"id": n, "name": "Zoë"}]) for n in (1, 2)]
    binary = PageMeta(
        "assignments", 1, "https://lms.test/a", 200, FETCHED_AT, b"\xff\xfe", "t", "s"
    )
    with store.writer(key(), run_id="run-1", streams=STREAMS) as w:
        for meta in pages:
            w.write("submissions", page_table(STREAMS["submissions"], meta, 1), page=meta)
        w.write("assignments", page_table(STREAMS["assignments"], binary, 0), page=binary)

    with gzip.open(Path(w.manifest.path) / "raw.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == w.manifest.raw_archive["pages"] == 3
    for line, meta in zip(lines, pages, strict=False):
        assert line == {
            "stream": "submissions",
            "page": meta.number,
            "url": meta.url,
            "status": 200,
            "fetched_at": "2025-09-03T12:00:00+00:00",
            "trace_id": meta.trace_id,
            "span_id": meta.span_id,
            "body": meta.raw.decode(),
        }
    assert lines[2]["body_base64"] == "//4="


def test_bounded_memory_row_groups_are_flushed(store: StagingStore) -> None:
    schema = STREAMS["submissions"]
    streams = {"submissions": schema}
    start = pa.total_allocated_bytes()
    peak_held = 0
    peak_buffered = 0
    with store.writer(key(), run_id="run-1", streams=streams, row_group_rows=20_000) as w:
        for number in range(1, 2001):  # 200k rows in 100-row pages
            meta = page_meta("submissions", number)
            w.write("submissions", page_table(schema, meta, 100), page=meta)
            peak_buffered = max(peak_buffered, w.buffered_rows("submissions"))
            peak_held = max(peak_held, pa.total_allocated_bytes() - start)
        assert w.row_groups("submissions") == 10

    assert peak_buffered < 20_000
    metadata = pq.read_metadata(w.manifest.file("submissions"))
    assert metadata.num_rows == 200_000
    assert metadata.num_row_groups == 10
    one_group = 20_000 * page_table(schema, page_meta("submissions", 1), 1).nbytes
    whole = 200_000 * page_table(schema, page_meta("submissions", 1), 1).nbytes
    assert peak_held < 3 * one_group < whole / 3


@pytest.mark.parametrize(
    "bad",
    ["a/b", "..", "x..y", "../etc", "a\\b", "", ".hidden", "tab\there"],
)
def test_path_unsafe_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="PartitionKey"):
        key(bad)
    with pytest.raises(ValueError, match="PartitionKey"):
        key(window=bad)


def test_unusual_but_safe_ids_stay_readable(store: StagingStore) -> None:
    odd = PartitionKey("demo-isd", "canvas", "gradebook", "2025-09-01T00:00:00Z", "sis:C 1*[x]")
    assert str(odd.relpath) == (
        "demo-isd/canvas/gradebook/window=2025-09-01T00:00:00Z/course=sis:C%201%2A%5Bx%5D"
    )
    with store.writer(odd, run_id="run-1", streams=STREAMS) as w:
        write_pages(w, "submissions", pages=1, rows_per_page=2)
    (found,) = store.committed(institution="demo-isd", vendor="canvas", course_ids=["sis:C 1*[x]"])
    assert found.key == odd
    assert store.scan("submissions", [found]).collect().height == 2


def test_schema_drift_is_refused_naming_the_stream(store: StagingStore) -> None:
    meta = page_meta("submissions", 1)
    table = page_table(STREAMS["submissions"], meta, 2)
    with store.writer(key(), run_id="run-1", streams=STREAMS) as w:
        with pytest.raises(StagingSchemaError, match=r"'submissions'.*missing columns \['score'\]"):
            w.write("submissions", table.drop_columns(["score"]), page=meta)
        retyped = table.set_column(3, "score", pa.array([1.0, 2.0]))
        with pytest.raises(StagingSchemaError, match=r"'score' is double, declared string"):
            w.write("submissions", retyped, page=meta)
        with pytest.raises(StagingSchemaError, match="'quizzes' is not declared"):
            w.write("quizzes", table, page=meta)
        reordered = table.select(list(reversed(table.column_names)))
        w.write("submissions", reordered, page=meta)  # same columns, other order: accepted
    assert pq.read_schema(w.manifest.file("submissions")).names == STREAMS["submissions"].names


def test_expire_removes_partitions_created_before(store: StagingStore) -> None:
    for course in ("101", "102"):
        with store.writer(key(course), run_id="run-1", streams=STREAMS):
            pass
    old = store.manifest(key("101"))
    manifest_file = Path(old.path) / "manifest.json"
    body = json.loads(manifest_file.read_text())
    body["created_at"] = "2024-01-01T00:00:00+00:00"
    manifest_file.write_text(json.dumps(body))

    removed = store.expire(datetime(2025, 1, 1, tzinfo=UTC))
    assert [m.key.course_id for m in removed] == ["101"]
    assert not store.is_committed(key("101"))
    assert store.is_committed(key("102"))
    assert list(store.root.rglob(".tmp-*")) == []
    with pytest.raises(ValueError, match="timezone"):
        store.expire(datetime(2025, 1, 1))


def test_file_uri_root_and_stream_schema(tmp_path: Path) -> None:
    store = StagingStore((tmp_path / "s").as_uri())
    assert store.root == tmp_path / "s"
    with pytest.raises(ValueError, match="local paths"):
        StagingStore("s3://bucket/staging")
    assert stream_schema(["id"]).names == ["id", *LINEAGE_SCHEMA.names]
    with pytest.raises(ValueError, match="clash"):
        stream_schema(["_run_id"])

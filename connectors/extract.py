"""The shared extraction loop: one declared endpoint → a stream of staged pages.

Every vendor uses this loop; a vendor only declares endpoints and picks a paginator. A page becomes
an Arrow table in the staged shape (declared fields as text, plus lineage) that the flow hands to
the staging writer, one page at a time, so memory holds a page, never a course.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from connectors.client import Page, VendorClient
from connectors.endpoint import Endpoint
from connectors.paginators import (
    LinkHeaderPaginator,
    NextPagePaginator,
    OffsetPaginator,
    Paginator,
    SingleObject,
    SinglePage,
)
from transforms.staging import stream_schema


@dataclass(frozen=True)
class StagedPage:
    """One response page, ready for staging: the table plus what the raw archive keeps."""

    stream: str
    number: int
    url: str
    status: int
    fetched_at: datetime
    raw: bytes
    trace_id: str
    span_id: str
    table: pa.Table
    # True when the page holds only changes since the increment's cursor (an incremental fetch):
    # the stream's partition is then marked partial and the loader never deletes by absence.
    partial: bool = False

    @property
    def rows(self) -> int:
        return self.table.num_rows


@dataclass(frozen=True)
class Increment:
    """What an incremental fetch of one course's domain needs to know.

    ``since``: fetch what changed strictly after this moment (the domain's cursor minus the
    overlap window). ``previous``: rows of the baseline streams staged by the last load that
    committed (e.g. ``student_summaries``), as ``{stream: [row, ...]}``, to compare against.
    """

    since: datetime
    previous: Mapping[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class RecordPage:
    """One fetched page and its de-duplicated records, before projection to a stream's table.

    Kept (small streams only) so one response can feed several streams: Canvas's course
    enrollments feed ``enrollments``, ``course_grades``, ``enrollment_activity`` and
    ``last_attended`` from a single fetch.
    """

    page: Page
    records: list[Mapping[str, Any]]

    def staged(
        self, endpoint: Endpoint, *, course_id: str, run_id: str, partial: bool = False
    ) -> StagedPage:
        return staged_page(self.page, self.records, endpoint, course_id=course_id, run_id=run_id,
                           partial=partial)  # fmt: skip


def paginator_for(endpoint: Endpoint) -> Paginator:
    if endpoint.paging == "link":
        return LinkHeaderPaginator()
    if endpoint.paging == "single":
        return SinglePage()
    if endpoint.paging == "object":
        return SingleObject()
    if endpoint.paging == "next_page":
        return NextPagePaginator()
    return OffsetPaginator()


def stream_pages(
    client: VendorClient,
    endpoint: Endpoint,
    *,
    course_id: str,
    run_id: str,
    user_id: str | None = None,
    params: Iterable[tuple[str, str]] = (),
) -> Iterator[StagedPage]:
    """Yield the endpoint's pages for one course as staged tables, dropping repeated records.

    ``params`` add to the endpoint's declared parameters and replace any of the same name.

    Offset-paged collections repeat a record at a page boundary when data shifts between two
    requests; a record whose key was on the previous page is dropped here, so each record is staged
    once. Remembering one page of keys keeps memory flat however long the collection is.
    """
    for fetched in record_pages(
        client, endpoint, course_id=course_id, user_id=user_id, params=params
    ):
        yield fetched.staged(endpoint, course_id=course_id, run_id=run_id)


def record_pages(
    client: VendorClient,
    endpoint: Endpoint,
    *,
    course_id: str,
    user_id: str | None = None,
    params: Iterable[tuple[str, str]] = (),
) -> Iterator[RecordPage]:
    """The endpoint's pages with their records, repeated records dropped (see stream_pages)."""
    path = endpoint.url_path(course_id=course_id, user_id=user_id)
    extra = list(params)
    overridden = {name for name, _ in extra}
    query = [(k, v) for k, v in endpoint.params if k not in overridden] + extra
    previous_keys: set[tuple[Any, ...]] = set()
    for page in client.paginate(
        path,
        params=query,
        paginator=paginator_for(endpoint),
        endpoint=endpoint.path,
        course_id=course_id,
    ):
        records = [r for r in page.records if isinstance(r, Mapping)]
        keys = [_key(r, endpoint.key) for r in records]
        fresh = [r for r, k in zip(records, keys, strict=True) if k not in previous_keys]
        previous_keys = set(keys)
        yield RecordPage(page=page, records=fresh)


def staged_page(
    page: Page,
    records: list[Mapping[str, Any]],
    endpoint: Endpoint,
    *,
    course_id: str,
    run_id: str,
    partial: bool = False,
) -> StagedPage:
    return StagedPage(
        stream=endpoint.stream,
        number=page.number,
        url=page.url,
        status=page.status,
        fetched_at=page.fetched_at,
        raw=page.raw,
        trace_id=page.trace_id,
        span_id=page.span_id,
        table=to_table(
            records,
            endpoint,
            run_id=run_id,
            course_id=course_id,
            url=page.url,
            page_number=page.number,
            fetched_at=page.fetched_at,
            trace_id=page.trace_id,
            span_id=page.span_id,
        ),
        partial=partial,
    )


def to_table(
    records: list[Mapping[str, Any]],
    endpoint: Endpoint,
    *,
    run_id: str,
    course_id: str,
    url: str,
    page_number: int,
    fetched_at: datetime,
    trace_id: str,
    span_id: str,
) -> pa.Table:
    """Records → the staged table: one text column per declared field, then lineage columns."""
    n = len(records)
    columns: dict[str, pa.Array] = {}
    for field, name in zip(endpoint.fields, endpoint.columns, strict=True):
        parts = field.split(".")
        columns[name] = pa.array([_text(_dig(r, parts)) for r in records], type=pa.string())
    lineage = {
        "_run_id": pa.array([run_id] * n, type=pa.string()),
        "_course_id": pa.array([course_id] * n, type=pa.string()),
        "_source_url": pa.array([url] * n, type=pa.string()),
        "_page_number": pa.array([page_number] * n, type=pa.int32()),
        "_record_index": pa.array(range(n), type=pa.int32()),
        "_fetched_at": pa.array([fetched_at] * n, type=pa.timestamp("us", tz="UTC")),
        "_trace_id": pa.array([trace_id] * n, type=pa.string()),
        "_span_id": pa.array([span_id] * n, type=pa.string()),
    }
    schema = stream_schema(endpoint.columns)
    return pa.table({**columns, **lineage}).select(schema.names).cast(schema)


def _dig(record: Mapping[str, Any], parts: list[str]) -> Any:
    value: Any = record
    for part in parts:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str | None:
    """The vendor's value as text: strings as they are, everything else in its JSON spelling."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _key(record: Mapping[str, Any], key: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(_text(_dig(record, k.split("."))) for k in key)

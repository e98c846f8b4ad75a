"""OneRoster 1.2 as a source: a CSV bundle or the REST services, staged in the same streams.

Partitions. A "course" of the Source protocol is a OneRoster **class** (one task per class). What
spans classes — orgs, academic sessions, catalog courses, users (with their primary role) and
gradebook categories — is staged once, in a district partition listed first by
:meth:`list_courses`:

* a full sync (a bulk bundle, or REST without ``modified_since``) lists ``@district`` and then
  every class; each class partition holds the class row, its enrollments, line items and
  results, complete — so the loader's soft-delete of rows missing from a class partition is
  right;
* a delta (a bundle whose class files are ``delta``, or REST with ``modified_since``) lists one
  partition, ``@delta``, holding every changed row of every stream (REST: each collection with
  ``filter=dateLastModified>'<since>'``). Its id is no class id, so nothing is soft-deleted for
  being absent; deletions arrive as ``status=tobedeleted`` and the mapping soft-deletes them.

The mapping takes every row's class from the row (``classSourcedId``), never from the partition,
so the same map serves both shapes. ``course_ids`` in the config must include ``@district`` for
people to load (the enrollments of a class reference them).

REST specifics (1.2 REST binding): OAuth2 client credentials at ``token_url`` (HTTP Basic,
``grant_type=client_credentials``), ``limit``/``offset`` paging that stops at ``X-Total-Count``
(or, without it, when no ``Link: rel="next"`` is sent, or a page is short); failures arrive as
``imsx_codeMajor``/``imsx_severity``/``imsx_description`` payloads (``ONEROSTER_RULES``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa

from connectors.backoff import RetryPolicy
from connectors.blackboard.auth import ClientCredentialsAuth
from connectors.breaker import CircuitBreaker
from connectors.classify import ONEROSTER_RULES
from connectors.client import DEFAULT_TIMEOUT, VendorClient
from connectors.extract import StagedPage, to_table
from connectors.oneroster import streams as st
from connectors.oneroster.bundle import Bundle
from connectors.pacing import RequestRatePacer
from connectors.paginators import PageRequest
from transforms.staging import stream_schema

__all__ = ["DELTA", "DISTRICT", "OneRosterSource", "TotalCountPaginator"]

VENDOR = "oneroster"
DISTRICT = "@district"
DELTA = "@delta"
CSV_PAGE_ROWS = 50_000


@dataclass(frozen=True)
class TotalCountPaginator:
    """OneRoster ``limit``/``offset`` paging: records under ``records_key``; the next offset is
    this one plus the records read, until ``X-Total-Count`` is reached. Without the header, a
    ``Link: <...>; rel="next"`` means more (else a full page does)."""

    records_key: str
    limit: int = 100

    def records(self, data: Any) -> list[Any]:
        value = data.get(self.records_key) if isinstance(data, dict) else None
        if not isinstance(value, list):
            raise ValueError(f"expected a JSON list under {self.records_key!r}")
        return value

    def next_reference(
        self, *, request: PageRequest, response: httpx.Response, data: Any
    ) -> str | None:
        count = len(self.records(data))
        offset = int(request.param("offset") or 0) + count
        total = response.headers.get("X-Total-Count")
        if total is not None and total.isdigit():
            return str(offset) if count and offset < int(total) else None
        if "next" in response.links:
            return str(offset) if count else None
        return str(offset) if count >= self.limit else None

    def next_request(self, *, request: PageRequest, reference: str | None) -> PageRequest:
        return request.with_params(limit=self.limit, offset=reference or 0)


class OneRosterSource:
    """One OneRoster district: ``bundle_uri`` (CSV) or ``base_url`` + client credentials (REST).

    ``modified_since`` (REST only) makes the sync incremental; a bundle says itself whether it is
    a delta (manifest.csv).
    """

    vendor = VENDOR

    def __init__(
        self,
        *,
        bundle_uri: str | None = None,
        base_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        modified_since: datetime | None = None,
        per_page: int = 100,
        max_in_flight: int = 8,
        requests_per_second: float = 10.0,
        burst: int = 20,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if (bundle_uri is None) == (base_url is None):
            raise ValueError("give either bundle_uri (a CSV bundle) or base_url (REST)")
        self.bundle: Bundle | None = None
        self.client: VendorClient | None = None
        self.auth: ClientCredentialsAuth | None = None
        self.per_page = per_page
        self.since = modified_since
        self._schools: dict[str, str] = {}
        if bundle_uri is not None:
            self.bundle = Bundle(bundle_uri)
            self.mode = self.bundle.mode
            files = self.bundle.files
            gradebook = "lineItems" in files or "results" in files
            # A bundle without gradebook files says nothing about grades: the domain is not
            # synced (a bulk partition without them would soft-delete every loaded result).
            self.domains: tuple[str, ...] = st.DOMAINS if gradebook else ("roster",)
            return
        if not client_id or not client_secret:
            raise ValueError("OneRoster REST needs client_id and client_secret")
        root = base_url.rstrip("/")
        self.mode = "delta" if modified_since is not None else "bulk"
        self.domains = st.DOMAINS
        self.auth = ClientCredentialsAuth(
            token_url=token_url or f"{root}/oauth/token",
            client_id=client_id,
            client_secret=client_secret,
        )
        self.client = VendorClient(
            vendor=VENDOR,
            base_url=f"{root}/",
            auth=self.auth,
            rules=ONEROSTER_RULES,
            retry=retry or RetryPolicy(),
            pacer=RequestRatePacer(rate_per_second=requests_per_second, burst=burst),
            breaker=CircuitBreaker(failure_threshold=10, reset_after_seconds=30.0),
            timeout=timeout or DEFAULT_TIMEOUT,
            max_connections=max(max_in_flight, 1) * 2,
            transport=transport,
        )

    def __enter__(self) -> OneRosterSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.bundle is not None:
            self.bundle.close()

    def stats(self) -> dict[str, Any]:
        if self.client is None:
            assert self.bundle is not None
            return {
                "requests": 0,
                "bundle_mode": self.mode,
                "bundle_files": dict(self.bundle.files),
            }
        snapshot = self.client.stats.snapshot()
        assert self.auth is not None
        snapshot["tokens"] = self.auth.stats()
        return snapshot

    @staticmethod
    def streams(domain: str) -> dict[str, pa.Schema]:
        return {s.name: stream_schema(s.columns) for s in st.streams_for(domain)}

    # ---- partitions ----------------------------------------------------------------------------

    def list_courses(self, *, term: str | None = None) -> Iterator[dict[str, Any]]:
        """``@district`` then every class (full), or ``@delta`` alone (a delta). ``term``
        keeps classes with that academic session among their terms."""
        if self.mode == "delta":
            yield {"id": DELTA, "course_code": None, "term_id": None}
            return
        yield {"id": DISTRICT, "course_code": None, "term_id": None}
        if self.bundle is not None:
            for class_id in self.bundle.class_ids():
                yield {"id": class_id, "course_code": None, "term_id": None}
            return
        params = [("fields", "sourcedId,school,terms")]
        for record in self._records(st.CLASSES, st.CLASSES.rest_path, params, DISTRICT):
            terms = [t.get("sourcedId") for t in record.get("terms") or [] if isinstance(t, dict)]
            if term and term not in terms:
                continue
            school = (record.get("school") or {}).get("sourcedId")
            if school:
                self._schools[record["sourcedId"]] = school
            yield {"id": record["sourcedId"], "course_code": None, "term_id": (terms or [None])[0]}

    def domain_pages(
        self,
        *,
        course_id: str,
        domain: str,
        run_id: str,
        activity_since: datetime | None = None,
    ) -> Iterator[StagedPage]:
        """The partition's pages. ``activity_since`` is unused: OneRoster has no activity."""
        if domain not in st.DOMAINS:
            raise ValueError(f"unknown OneRoster domain {domain!r}; expected one of {st.DOMAINS}")
        if course_id in (DISTRICT, DELTA):
            scope = None if course_id == DELTA else "district"
            for stream in st.streams_for(domain, scope):
                yield from self._stream_pages(stream, course_id, None, run_id)
            return
        for stream in st.streams_for(domain, "class"):
            yield from self._stream_pages(stream, course_id, course_id, run_id)

    def _stream_pages(
        self, stream: st.Stream, partition: str, class_id: str | None, run_id: str
    ) -> Iterator[StagedPage]:
        if self.bundle is not None:
            yield from self._csv_pages(stream, partition, class_id, run_id)
        else:
            yield from self._rest_pages(stream, partition, class_id, run_id)

    # ---- CSV -----------------------------------------------------------------------------------

    def _csv_pages(
        self, stream: st.Stream, partition: str, class_id: str | None, run_id: str
    ) -> Iterator[StagedPage]:
        assert self.bundle is not None
        if stream.file not in self.bundle.files:
            return
        url = f"{self.bundle.uri}#{stream.file}.csv"
        fetched = datetime.now(UTC)
        raw = json.dumps(
            {"bundle": self.bundle.uri, "file": f"{stream.file}.csv",
             "mode": self.bundle.files[stream.file], "sha256": self.bundle.digest[stream.file]}
        ).encode()  # fmt: skip
        schema = stream_schema(stream.columns)
        for number, batch in enumerate(
            self.bundle.batches(stream, class_id=class_id, page_rows=CSV_PAGE_ROWS), start=1
        ):
            n = batch.num_rows
            lineage = {
                "_run_id": pa.array([run_id] * n, pa.string()),
                "_course_id": pa.array([partition] * n, pa.string()),
                "_source_url": pa.array([url] * n, pa.string()),
                "_page_number": pa.array([number] * n, pa.int32()),
                "_record_index": pa.array(range(n), pa.int32()),
                "_fetched_at": pa.array([fetched] * n, pa.timestamp("us", tz="UTC")),
                "_trace_id": pa.array([""] * n, pa.string()),
                "_span_id": pa.array([""] * n, pa.string()),
            }
            table = batch.select(list(stream.columns))
            for name, values in lineage.items():
                table = table.append_column(name, values)
            yield StagedPage(
                stream=stream.name, number=number, url=url, status=200, fetched_at=fetched,
                raw=raw, trace_id="", span_id="", table=table.cast(schema),
            )  # fmt: skip

    # ---- REST ----------------------------------------------------------------------------------

    def _records(
        self, stream: st.Stream, path: str, params: list[tuple[str, str]], partition: str
    ) -> Iterator[dict[str, Any]]:
        for page in self._pages(stream, path, params, partition):
            yield from (r for r in page.records if isinstance(r, Mapping))

    def _pages(self, stream: st.Stream, path: str, params: list[tuple[str, str]], partition: str):
        assert self.client is not None
        return self.client.paginate(
            path,
            params=params,
            paginator=TotalCountPaginator(records_key=stream.rest_key, limit=self.per_page),
            endpoint=stream.class_path or stream.rest_path,
            course_id=partition,
        )

    def _rest_pages(
        self, stream: st.Stream, partition: str, class_id: str | None, run_id: str
    ) -> Iterator[StagedPage]:
        params: list[tuple[str, str]] = []
        if class_id is None:
            path = stream.rest_path
            if self.since is not None:
                # Microsoft SDS documents the same incremental pull: ?filter=dateLastModified>'…'
                # (learn.microsoft.com/schooldatasync/sds-oneroster-api).
                stamp = self.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                params.append(("filter", f"dateLastModified>'{stamp}'"))
        elif stream is st.CLASSES:
            yield self._class_page(class_id, partition, run_id)
            return
        else:
            assert stream.class_path is not None
            school = self._school_of(class_id, partition) if "{school}" in stream.class_path else ""
            path = stream.class_path.format(id=class_id, school=school)
        for page in self._pages(stream, path, params, partition):
            records = [_flatten(stream, r) for r in page.records if isinstance(r, Mapping)]
            yield _staged(stream, records, page, partition, run_id)

    def _school_of(self, class_id: str, partition: str) -> str:
        school = self._schools.get(class_id)
        if school is None:
            assert self.client is not None
            result = self.client.get_json(
                st.CLASSES.class_path.format(id=class_id),
                endpoint=st.CLASSES.class_path,
                course_id=partition,
            )
            school = ((result.data.get("class") or {}).get("school") or {}).get("sourcedId", "")
            self._schools[class_id] = school
        return school

    def _class_page(self, class_id: str, partition: str, run_id: str) -> StagedPage:
        """``GET classes/{id}`` → the class row (one object under ``class``)."""
        assert self.client is not None and st.CLASSES.class_path is not None
        result = self.client.get_json(
            st.CLASSES.class_path.format(id=class_id),
            endpoint=st.CLASSES.class_path,
            course_id=partition,
        )
        record = result.data.get("class") if isinstance(result.data, dict) else None
        records = [_flatten(st.CLASSES, record)] if isinstance(record, Mapping) else []
        if isinstance(record, Mapping):
            school = (record.get("school") or {}).get("sourcedId")
            if school:
                self._schools[class_id] = school
        page = _PageLike(
            number=1, url=result.url, status=result.response.status_code,
            fetched_at=result.fetched_at, raw=result.response.content,
            trace_id=result.trace_id, span_id=result.span_id,
        )  # fmt: skip
        return _staged(st.CLASSES, records, page, partition, run_id)


@dataclass(frozen=True)
class _PageLike:
    number: int
    url: str
    status: int
    fetched_at: datetime
    raw: bytes
    trace_id: str
    span_id: str


def _staged(
    stream: st.Stream, records: list[dict[str, Any]], page: Any, partition: str, run_id: str
) -> StagedPage:
    return StagedPage(
        stream=stream.name, number=page.number, url=page.url, status=page.status,
        fetched_at=page.fetched_at, raw=page.raw, trace_id=page.trace_id, span_id=page.span_id,
        table=to_table(
            records, stream.endpoint, run_id=run_id, course_id=partition, url=page.url,
            page_number=page.number, fetched_at=page.fetched_at, trace_id=page.trace_id,
            span_id=page.span_id,
        ),
    )  # fmt: skip


def _flatten(stream: st.Stream, record: Mapping[str, Any]) -> dict[str, Any]:
    """A REST record → the CSV cells of the stream (see ``streams.How``)."""
    out: dict[str, Any] = {}
    for column, path, how in stream.fields:
        value = record.get(path)
        if value is None:
            out[column] = None
        elif how == "text":
            out[column] = value
        elif how == "ref":
            out[column] = value.get("sourcedId") if isinstance(value, Mapping) else None
        elif how == "refs":
            ids = [v.get("sourcedId") for v in value if isinstance(v, Mapping)]
            out[column] = ",".join(i for i in ids if i) or None
        elif how == "list":
            out[column] = (
                ",".join(str(v) for v in value) or None if isinstance(value, list) else value
            )
        elif how == "user_ids":
            pairs = [v for v in value if isinstance(v, Mapping)]
            out[column] = (
                ",".join(f"{{{v.get('type')}:{v.get('identifier')}}}" for v in pairs) or None
            )
        elif how == "primary_role":
            roles = [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []
            primary = [r for r in roles if r.get("roleType") == "primary"] or roles
            out[column] = primary[0].get("role") if primary else None
    return out

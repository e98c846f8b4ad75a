"""One paginator protocol for every vendor's paging style (dlt's two-step idea).

A paginator is a small immutable value; the client keeps the paging state. For each page it:

1. reads the next *reference* from the response (`next_reference`) — None means last page;
2. turns a reference into the next request (`next_request`; reference None → the first request).

References are compared by the client, so a repeated one — a vendor sending the same "next" link
again — stops paging with `PaginationLoopError` whatever the style. URL references are made
absolute against the URL actually requested, so the client can refuse links to other hosts.
`records(data)` says where the page's records live in the JSON.

    Canvas      GET courses/1/enrollments?per_page=100
                Link: <https://c.example/api/v1/courses/1/enrollments?page=2>; rel="next"
                → reference "https://c.example/api/v1/courses/1/enrollments?page=2"
    Blackboard  {"results": [...], "paging": {"nextPage": "/learn/api/public/v1/users?offset=100"}}
    Moodle      100 users for limitfrom=0&limitnumber=100 → reference "100"; a short page ends it
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

QueryParams = Mapping[str, str | int] | Iterable[tuple[str, str | int]]


@dataclass(frozen=True)
class PageRequest:
    """What to fetch: a path relative to the client's base URL, or an absolute URL.

    `params` are (name, value) pairs so repeated names survive (`include[]=a&include[]=b`).
    """

    url: str
    params: tuple[tuple[str, str | int], ...] = ()

    @classmethod
    def of(cls, url: str, params: QueryParams | None = None) -> PageRequest:
        pairs = params.items() if isinstance(params, Mapping) else params or ()
        return cls(url=url, params=tuple(pairs))

    def param(self, name: str) -> str | int | None:
        """The last value of `name`, or None."""
        values = [value for key, value in self.params if key == name]
        return values[-1] if values else None

    def with_params(self, **values: str | int) -> PageRequest:
        """A copy where each named parameter is set to exactly one value."""
        kept = tuple((k, v) for k, v in self.params if k not in values)
        return PageRequest(url=self.url, params=kept + tuple(values.items()))


class Paginator(Protocol):
    def records(self, data: Any) -> list[Any]:
        """The page's records; raises ValueError if `data` is not shaped as declared."""
        ...

    def next_reference(
        self, *, request: PageRequest, response: httpx.Response, data: Any
    ) -> str | None:
        """The reference to the next page, or None if this was the last page."""
        ...

    def next_request(self, *, request: PageRequest, reference: str | None) -> PageRequest:
        """The request for `reference` (None: prepare the first request)."""
        ...


def _records_at(data: Any, key: str | None) -> list[Any]:
    value = data.get(key) if key is not None and isinstance(data, dict) else data
    if not isinstance(value, list):
        where = f"under {key!r}" if key is not None else "at the top level"
        raise ValueError(f"expected a JSON list {where}, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class SinglePage:
    """An endpoint that returns everything at once (`records_key` None: the body is the list)."""

    records_key: str | None = None

    def records(self, data: Any) -> list[Any]:
        return _records_at(data, self.records_key)

    def next_reference(
        self, *, request: PageRequest, response: httpx.Response, data: Any
    ) -> str | None:
        return None

    def next_request(self, *, request: PageRequest, reference: str | None) -> PageRequest:
        return request


@dataclass(frozen=True)
class SingleObject(SinglePage):
    """An endpoint that returns one object (`GET courses/:id`): it is the page's one record."""

    def records(self, data: Any) -> list[Any]:
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object at the top level, got {type(data).__name__}")
        return [data]


@dataclass(frozen=True)
class LinkHeaderPaginator:
    """Canvas: follow `Link: <url>; rel="next"` (ordinal and bookmark pages alike).

    The next URL is opaque: it already carries `page` and `per_page`, so it replaces the previous
    URL and parameters entirely. Relative links are resolved against the URL requested.
    """

    records_key: str | None = None
    rel: str = "next"

    def records(self, data: Any) -> list[Any]:
        return _records_at(data, self.records_key)

    def next_reference(
        self, *, request: PageRequest, response: httpx.Response, data: Any
    ) -> str | None:
        link = response.links.get(self.rel, {}).get("url")
        if not link:
            return None
        return str(response.request.url.join(link))

    def next_request(self, *, request: PageRequest, reference: str | None) -> PageRequest:
        if reference is None:
            return request
        return PageRequest(url=reference)


@dataclass(frozen=True)
class OffsetPaginator:
    """Offset/limit paging that ends on a short page (Moodle `limitfrom`/`limitnumber`).

    Moodle passes options as name/value pairs, so the parameter names are the pair's value slots:
    `params={"options[0][name]": "limitfrom", "options[1][name]": "limitnumber"}` with
    `OffsetPaginator(offset_param="options[0][value]", limit_param="options[1][value]", limit=100)`.
    """

    limit_param: str = "limit"
    offset_param: str = "offset"
    limit: int = 100
    records_key: str | None = None

    def records(self, data: Any) -> list[Any]:
        return _records_at(data, self.records_key)

    def next_reference(
        self, *, request: PageRequest, response: httpx.Response, data: Any
    ) -> str | None:
        count = len(self.records(data))
        if count < self.limit:
            return None
        return str(int(request.param(self.offset_param) or 0) + count)

    def next_request(self, *, request: PageRequest, reference: str | None) -> PageRequest:
        offset = reference if reference is not None else 0
        return request.with_params(**{self.limit_param: self.limit, self.offset_param: offset})


@dataclass(frozen=True)
class NextPagePaginator:
    """Blackboard: records under `results`; `paging.nextPage` is a host-relative path+query.

    On the last page `paging` is absent or `nextPage` is null.
    """

    records_key: str = "results"

    def records(self, data: Any) -> list[Any]:
        return _records_at(data, self.records_key)

    def next_reference(
        self, *, request: PageRequest, response: httpx.Response, data: Any
    ) -> str | None:
        paging = data.get("paging") if isinstance(data, dict) else None
        next_page = paging.get("nextPage") if isinstance(paging, dict) else None
        if not next_page:
            return None
        return str(response.request.url.join(next_page))

    def next_request(self, *, request: PageRequest, reference: str | None) -> PageRequest:
        if reference is None:
            return request
        return PageRequest(url=reference)

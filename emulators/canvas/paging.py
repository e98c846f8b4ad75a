"""Canvas pagination, exactly as canvas-api.md §1.2 describes it.

Two styles: ordinal (``page=1,2,...``; ``rel="last"`` when the total is cheap to know) and
bookmark (keyset; ``page=bookmark:<urlsafe base64 JSON>``, first page ``page=first``, never a
``rel="last"``). A page is a list of records plus the ``page`` value of each relation; the app
turns those into a Link header against the request URL.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any
from urllib.parse import urlencode

# canvas-api.md §1.2: these never reappear in Link URLs; page and per_page are re-appended last.
_STRIPPED_PARAMS = frozenset({"page", "per_page", "access_token", "api_key"})
_REL_ORDER = ("current", "next", "prev", "first", "last")


class InvalidPage(Exception):
    """A numeric page > 1 asked of a bookmarked collection (Canvas answers 404)."""


@dataclass
class Page:
    """One page of records and the ``page`` parameter value of each Link relation."""

    items: list[Any]
    rels: dict[str, str] = field(default_factory=dict)
    duplicated: bool = False  # a fault repeated the previous page's last record


def per_page_for(raw: str | None, *, default: int, maximum: int) -> int:
    """`Api.per_page_for`: default when absent or unparsable, clamped to [1, maximum]."""
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = default
    return max(1, min(maximum, value))


def encode_bookmark(value: Any) -> str:
    """``bookmark:`` + URL-safe base64 of the JSON value, padding stripped (gems/json_token)."""
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return "bookmark:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_bookmark(page: str) -> Any | None:
    """The JSON value in a bookmark page, or None when it cannot be decoded (→ first page)."""
    token = page.removeprefix("bookmark:")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        return None


def ordinal_page(
    items: Sequence[Any], page: str | None, per_page: int, *, with_last: bool, duplicate: bool
) -> Page:
    """Slice an ordered collection by page number; past the end is ``[]``, never 404."""
    number = int(page) if page and page.isdigit() and int(page) >= 1 else 1
    start = (number - 1) * per_page
    chunk = list(items[start : start + per_page])
    rels = {"current": str(number)}
    if start + per_page < len(items):
        rels["next"] = str(number + 1)
    if number > 1:
        rels["prev"] = str(number - 1)
    rels["first"] = "1"
    if with_last:
        rels["last"] = str(max(1, -(-len(items) // per_page)))
    duplicated = False
    if duplicate and number > 1 and chunk and start - 1 < len(items):
        chunk.insert(0, items[start - 1])
        duplicated = True
    return Page(chunk, rels, duplicated)


def bookmark_page(
    seek: Callable[[Any | None, bool], Iterable[Any]],
    key: Callable[[Any], Any],
    page: str | None,
    per_page: int,
    *,
    duplicate: bool,
) -> Page:
    """Keyset page: records strictly after the bookmarked key.

    ``seek(start_key, inclusive)`` yields records in collection order from a key (None = start),
    so large collections are generated lazily; one extra record tells whether a next page exists.
    """
    start = _bookmark_start(page)
    chunk = list(islice(seek(start, False), per_page + 1))
    more = len(chunk) > per_page
    chunk = chunk[:per_page]
    rels = {"current": page if start is not None and page else "first"}
    if more:
        rels["next"] = encode_bookmark(key(chunk[-1]))
    rels["first"] = "first"
    if duplicate and start is not None and chunk:
        previous = next(iter(seek(start, True)), None)
        if previous is not None and _normalize(key(previous)) == _normalize(start):
            return Page([previous, *chunk], rels, duplicated=True)
    return Page(chunk, rels)


def seek_sorted(items: Sequence[Any], key: Callable[[Any], Any], descending: bool = False):
    """A ``seek`` over a small materialized collection already sorted by ``key``."""

    def seek(start: Any | None, inclusive: bool) -> Iterator[Any]:
        if start is None:
            return iter(items)
        target = _normalize(start)
        for index, item in enumerate(items):
            k = _normalize(key(item))
            after = k < target if descending else k > target
            if after or (inclusive and k == target):
                return iter(items[index:])
        return iter(())

    return seek


def link_header(base_url: str, query: Iterable[tuple[str, str]], page: Page, per_page: int) -> str:
    """Link header in Canvas order (current, next, prev, first, last) with absolute URLs."""
    kept = [(k, v) for k, v in query if k not in _STRIPPED_PARAMS]
    parts = []
    for rel in _REL_ORDER:
        if rel in page.rels:
            params = urlencode([*kept, ("page", page.rels[rel]), ("per_page", str(per_page))])
            parts.append(f'<{base_url}?{params}>; rel="{rel}"')
    return ",".join(parts)


def _bookmark_start(page: str | None) -> Any | None:
    if page is None or page in ("first", "1", ""):
        return None
    if page.isdigit():
        raise InvalidPage(page)
    if page.startswith("bookmark:"):
        return decode_bookmark(page)
    return None


def _normalize(value: Any) -> Any:
    """JSON turns tuples into lists; compare keys as tuples either way."""
    return tuple(value) if isinstance(value, list | tuple) else value

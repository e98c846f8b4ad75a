"""The typed description of one vendor collection; vendors declare instances, the loop is shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Paging = Literal["link", "offset", "next_page", "single", "object"]


@dataclass(frozen=True)
class Endpoint:
    """One collection read for one course (or for each student of a course).

    ``path`` is a template filled from ``course_id`` (and ``user_id`` for per-student endpoints).
    ``params`` are sent on the first request only; Link-paged vendors carry them in their next
    URLs (canvas-api.md §1.2). ``fields`` are the JSON paths copied into the staged stream's string
    columns. ``key`` is the record's identity within the stream, used to drop the duplicates that
    offset paging produces when data shifts between pages. Paging style is declared, never guessed.
    """

    stream: str
    domain: str
    path: str
    fields: tuple[str, ...]
    key: tuple[str, ...] = ("id",)
    params: tuple[tuple[str, str], ...] = ()
    paging: Paging = "link"
    per: Literal["course", "student"] = "course"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column_name(field) for field in self.fields)

    def url_path(self, *, course_id: str, user_id: str | None = None) -> str:
        return self.path.format(course_id=course_id, user_id=user_id)


def column_name(field: str) -> str:
    """``grades.current_score`` → ``grades__current_score`` (a staged column name)."""
    return field.replace(".", "__")

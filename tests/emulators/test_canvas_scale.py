"""A 1,000-student x 200-assignment course (~200k submissions) pages out over HTTP, and the
server generates pages on demand instead of holding the course in memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from emulators.canvas import (
    CanvasEmulator,
    CanvasEmulatorSettings,
    Institution,
    ThrottleSettings,
    build_institution,
)
from emulators.canvas.paging import encode_bookmark

from .conftest import TOKEN


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[Institution, CanvasEmulator]]:
    institution = build_institution(
        seed=99, courses=1, students_per_course=1000, assignments_per_course=200
    )
    settings = CanvasEmulatorSettings(token=TOKEN, throttle=ThrottleSettings(enabled=False))
    with CanvasEmulator(institution, settings=settings) as emulator:
        yield institution, emulator


def test_all_submissions_page_out_in_id_order(big) -> None:
    institution, emulator = big
    cid = institution.course_ids()[0]
    url: str | None = (
        f"{emulator.base_url}/api/v1/courses/{cid}/students/submissions"
        "?student_ids[]=all&per_page=100"
    )
    count, last_id = 0, -1
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        while url:
            response = client.get(url)
            for sub in response.json():
                assert sub["id"] > last_id
                last_id = sub["id"]
                count += 1
            url = response.links.get("next", {}).get("url")
    assert count == institution.submission_count(cid) > 199_000


def test_deep_pages_are_generated_not_materialized(big) -> None:
    institution, emulator = big
    cid = institution.course_ids()[0]
    _, stop = institution.submission_id_bounds(cid)
    path = f"/api/v1/courses/{cid}/students/submissions"
    with httpx.Client(
        base_url=emulator.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        client.get(path, params={"student_ids[]": "all"})  # warm the roster cache
        tracemalloc.start()
        try:
            page = encode_bookmark(stop - 5_001)
            for _ in range(20):
                response = client.get(
                    path, params={"student_ids[]": "all", "per_page": 100, "page": page}
                )
                assert len(response.json()) == 100
                page = dict(httpx.URL(response.links["next"]["url"]).params)["page"]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # The whole course as dicts would be several hundred MB; a page is well under 1 MB.
    assert peak < 20_000_000, f"serving 20 deep pages peaked at {peak / 1e6:.1f} MB"

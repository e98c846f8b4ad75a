"""The canvasapi library (ucfopen/canvasapi) works against the emulator unchanged.

canvasapi 3.6 raises ``RateLimitExceeded`` for 429 only; a 403 throttle surfaces as
``Forbidden`` whose message carries the body "403 Forbidden (Rate Limit Exceeded)"
(canvas-api.md §3 describes the 3.4-era 403 mapping and the late-2025 switch to 429).
"""

from __future__ import annotations

import threading

import pytest
from canvasapi import Canvas
from canvasapi.exceptions import Forbidden, InvalidAccessToken, RateLimitExceeded

from emulators.canvas import (
    CanvasEmulator,
    CanvasEmulatorSettings,
    Institution,
    ThrottleSettings,
)

from .conftest import TOKEN


@pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly")
def test_canvasapi_paginates_everything(canvas: CanvasEmulator, institution: Institution) -> None:
    api = Canvas(canvas.base_url, TOKEN)
    account = api.get_account(1)
    courses = list(account.get_courses(state=["all"], include=["term"], per_page=2))
    assert [c.id for c in courses] == institution.course_ids()
    cid = institution.course_ids()[0]
    course = api.get_course(cid)
    assert course.name == institution.course(cid)["name"]
    states = [
        "active",
        "invited",
        "completed",
        "inactive",
        "deleted",
        "rejected",
        "creation_pending",
    ]
    enrollments = list(course.get_enrollments(state=states, per_page=4))
    assert [e.id for e in enrollments] == [e["id"] for e in institution.enrollments(cid)]
    submissions = list(course.get_multiple_submissions(student_ids="all", per_page=7))
    assert [s.id for s in submissions] == [s["id"] for s in institution.iter_submissions(cid)]
    users = list(course.get_users(include=["enrollments"], per_page=5))
    assert users and all(hasattr(u, "enrollments") for u in users)


@pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly")
def test_canvasapi_sees_a_bad_token(canvas: CanvasEmulator) -> None:
    with pytest.raises(InvalidAccessToken):
        Canvas(canvas.base_url, "wrong").get_course(101)


@pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly")
@pytest.mark.parametrize(("dialect", "error"), [("429", RateLimitExceeded), ("403", Forbidden)])
def test_canvasapi_reports_throttling(institution: Institution, dialect: str, error) -> None:
    settings = CanvasEmulatorSettings(
        token=TOKEN, throttle=ThrottleSettings(dialect=dialect), latency_ms=300
    )
    cid = institution.course_ids()[0]
    raised: list[Exception] = []
    with CanvasEmulator(institution, settings=settings) as emulator:
        barrier = threading.Barrier(16)

        def call() -> None:
            api = Canvas(emulator.base_url, TOKEN)
            barrier.wait()
            try:
                api.get_course(cid)
            except Exception as exc:
                raised.append(exc)

        threads = [threading.Thread(target=call) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert raised and all(type(e) is error for e in raised)
    assert all("Rate Limit Exceeded" in str(e) for e in raised)

"""Injected faults: each kind is observable on the wire, counted, and deterministic per seed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from emulators.canvas import (
    FAULT_KINDS,
    CanvasEmulator,
    CanvasEmulatorSettings,
    FaultSettings,
    Institution,
    ThrottleSettings,
)
from emulators.canvas.faults import FaultPlan

from .conftest import TOKEN

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def _faulty(institution: Institution, kind: str, **extra) -> Iterator[CanvasEmulator]:
    settings = CanvasEmulatorSettings(
        token=TOKEN,
        throttle=ThrottleSettings(enabled=False),
        faults=FaultSettings(rate=1.0, kinds=frozenset({kind}), seed=5, **extra),
    )
    with CanvasEmulator(institution, settings=settings) as emulator:
        yield emulator


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors(institution: Institution, status: int) -> None:
    codes = {
        500: "internal_server_error",
        502: "bad_gateway",
        503: "service_unavailable",
        504: "gateway_timeout",
    }
    with _faulty(institution, str(status)) as canvas:
        r = httpx.get(f"{canvas.base_url}/api/v1/accounts/1/courses", headers=HEADERS)
        assert r.status_code == status
        assert r.json() == {
            "errors": [{"message": "An error occurred.", "error_code": codes[status]}]
        }
        assert canvas.stats.faults == {str(status): 1}


def test_reset_breaks_the_read(institution: Institution) -> None:
    with _faulty(institution, "reset") as canvas:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            httpx.get(f"{canvas.base_url}/api/v1/accounts/1/courses", headers=HEADERS)
        assert canvas.stats.faults == {"reset": 1}


def test_timeout_answers_too_late(institution: Institution) -> None:
    with _faulty(institution, "timeout", slow_seconds=1.0) as canvas:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{canvas.base_url}/api/v1/accounts/1/courses", headers=HEADERS, timeout=0.2)
        assert canvas.stats.faults == {"timeout": 1}


def test_malformed_is_200_with_invalid_json(institution: Institution) -> None:
    with _faulty(institution, "malformed") as canvas:
        r = httpx.get(f"{canvas.base_url}/api/v1/accounts/1/courses", headers=HEADERS)
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)
        assert canvas.stats.faults == {"malformed": 1}


def test_truncated_is_cut_with_matching_length(institution: Institution) -> None:
    with _faulty(institution, "truncated") as canvas:
        r = httpx.get(f"{canvas.base_url}/api/v1/accounts/1/courses", headers=HEADERS)
        assert r.status_code == 200
        assert int(r.headers["content-length"]) == len(r.content)
        whole = json.dumps(canvas.institution.courses(include_term=False)[:10])
        assert 0 < len(r.content) < len(whole.encode())
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)
        assert canvas.stats.faults == {"truncated": 1}


@pytest.mark.parametrize("style", ["ordinal", "bookmark"])
def test_duplicate_repeats_previous_last_record(institution: Institution, style: str) -> None:
    cid = institution.course_ids()[0]
    path = {
        "ordinal": f"/api/v1/courses/{cid}/assignments?per_page=3",
        "bookmark": f"/api/v1/courses/{cid}/students/submissions?student_ids[]=all&per_page=3",
    }[style]
    with _faulty(institution, "duplicate") as canvas:
        with httpx.Client(base_url=canvas.base_url, headers=HEADERS) as client:
            first = client.get(path)
            second = client.get(first.links["next"]["url"])
        assert len(first.json()) == 3  # never on page 1
        assert second.json()[0] == first.json()[-1]
        assert len(second.json()) == 4
        assert canvas.stats.faults == {"duplicate": 1}


def test_decisions_are_deterministic_and_retries_redraw() -> None:
    settings = FaultSettings(rate=0.5, seed=11)
    urls = [f"/api/v1/courses/{c}/enrollments?page={p}" for c in range(5) for p in range(5)]
    runs = []
    for _ in range(2):
        plan = FaultPlan(settings)
        runs.append([plan.decide("GET", u) for u in urls for _ in range(4)])
    assert runs[0] == runs[1]
    assert {k for k in runs[0] if k} == set(FAULT_KINDS)
    per_url = [runs[0][i : i + 4] for i in range(0, len(runs[0]), 4)]
    assert any(len(set(attempts)) > 1 for attempts in per_url)  # a retry gets a fresh draw
    other = FaultPlan(FaultSettings(rate=0.5, seed=12))
    assert [other.decide("GET", u) for u in urls for _ in range(4)] != runs[0]


def test_partial_rate_still_lets_a_client_finish_with_retries(institution: Institution) -> None:
    settings = CanvasEmulatorSettings(
        token=TOKEN,
        throttle=ThrottleSettings(enabled=False),
        faults=FaultSettings(
            rate=0.3, kinds=frozenset({"500", "503", "reset", "truncated"}), seed=3
        ),
    )
    cid = institution.course_ids()[0]
    with CanvasEmulator(institution, settings=settings) as canvas:
        with httpx.Client(base_url=canvas.base_url, headers=HEADERS) as client:
            url: str | None = f"/api/v1/courses/{cid}/students/submissions?student_ids[]=all"
            got: list[dict] = []
            while url:
                for _ in range(20):
                    try:
                        r = client.get(url)
                        if r.status_code == 200:
                            page = r.json()
                            break
                    except (httpx.TransportError, json.JSONDecodeError):
                        pass
                got.extend(page)
                url = r.links.get("next", {}).get("url")
        assert got == list(institution.iter_submissions(cid))
        assert sum(canvas.stats.faults.values()) > 0


def test_bad_fault_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultSettings(rate=0.1, kinds=frozenset({"418"}))
    with pytest.raises(ValueError, match=r"0\.\.1"):
        FaultSettings(rate=2.0)


def _outcomes(institution: Institution, seed: int) -> list[str]:
    settings = CanvasEmulatorSettings(
        token=TOKEN,
        throttle=ThrottleSettings(enabled=False),
        faults=FaultSettings(
            rate=0.5, kinds=frozenset({"500", "503", "malformed", "truncated"}), seed=seed
        ),
    )
    cid = institution.course_ids()[0]
    seen = []
    with (
        CanvasEmulator(institution, settings=settings) as canvas,
        httpx.Client(base_url=canvas.base_url, headers=HEADERS) as client,
    ):
        for page in [1, 2, 3, 1, 2, 3, 1, 2, 3]:
            r = client.get(f"/api/v1/courses/{cid}/assignments?per_page=2&page={page}")
            try:
                json.loads(r.content)
                seen.append(str(r.status_code))
            except json.JSONDecodeError:
                seen.append(f"{r.status_code}-bad-json")
    return seen


def test_same_fault_seed_same_wire_behaviour(institution: Institution) -> None:
    first = _outcomes(institution, seed=21)
    assert first == _outcomes(institution, seed=21)
    assert len(set(first)) > 1

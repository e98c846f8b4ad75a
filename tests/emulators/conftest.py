"""Shared fixtures: a small seeded institution served by a real emulator on loopback."""

from __future__ import annotations

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

TOKEN = "test-token"
SEED = 20260824


@pytest.fixture(scope="session")
def institution() -> Institution:
    return build_institution(seed=SEED, courses=5, students_per_course=24)


@pytest.fixture(scope="session")
def canvas(institution: Institution) -> Iterator[CanvasEmulator]:
    """A healthy, unthrottled emulator (throttling and faults have their own servers)."""
    settings = CanvasEmulatorSettings(token=TOKEN, throttle=ThrottleSettings(enabled=False))
    with CanvasEmulator(institution, settings=settings) as emulator:
        yield emulator


@pytest.fixture
def client(canvas: CanvasEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=canvas.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as c:
        yield c


def fetch_all(client: httpx.Client, path: str, params: dict | list | None = None) -> list[dict]:
    """Follow rel="next" until it is gone; fail on a repeated page URL."""
    response = client.get(path, params=params)
    response.raise_for_status()
    records, seen = list(response.json()), set()
    while "next" in response.links:
        url = response.links["next"]["url"]
        assert url not in seen, f"repeated page {url}"
        seen.add(url)
        response = client.get(url)
        response.raise_for_status()
        records.extend(response.json())
    return records

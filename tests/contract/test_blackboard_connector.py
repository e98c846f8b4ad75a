"""Contract: the Blackboard connector against the Blackboard emulator on loopback.

Every test compares what landed in staging with the emulator's ground truth, record for record;
every response the connector receives is validated against blackboard-learn-openapi.json.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from connectors.backoff import ExponentialFullJitter, RetryPolicy
from connectors.blackboard import endpoints as ep
from connectors.blackboard.quota import DailyQuotaExhausted, QuotaBudgetExceeded
from connectors.blackboard.source import BlackboardSource
from connectors.errors import AuthenticationError, PermanentError
from emulators.blackboard.institution import Institution, build_institution
from emulators.blackboard.server import BlackboardEmulator
from emulators.blackboard.settings import PAGE_CAPS, BlackboardEmulatorSettings
from emulators.canvas.faults import FaultSettings
from flows.stage import stage_domain
from tests.contract.bb_spec import validate_response
from transforms.staging import PartitionKey, StagingStore

KEY, SECRET = "contract-key", "contract-secret"


@pytest.fixture(scope="module")
def institution() -> Institution:
    return build_institution(seed=21, courses=5, students_per_course=11)


def _settings(**kw) -> BlackboardEmulatorSettings:
    return BlackboardEmulatorSettings(client_id=KEY, client_secret=SECRET, **kw)


def _source(emu: BlackboardEmulator, **kw) -> BlackboardSource:
    kw.setdefault("retry", RetryPolicy.fast())
    return BlackboardSource(
        base_url=emu.base_url,
        client_id=kw.pop("client_id", KEY),
        client_secret=kw.pop("client_secret", SECRET),
        requests_per_second=1000.0,
        burst=100,
        **kw,
    )


def _stage(source, store, course_ids, *, workers=6, window="w1"):
    def one(course_id: str) -> Exception | None:
        try:
            for domain in source.domains:
                key = PartitionKey(
                    institution="contract",
                    vendor="blackboard",
                    domain=domain,
                    window=window,
                    course_id=course_id,
                )
                stage_domain(source, store, key, run_id="run-1")
        except Exception as exc:  # the outcome under test
            return exc
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(course_ids, pool.map(one, course_ids), strict=True))


def expected_ids(inst: Institution, course_id: str) -> dict[str, list[str]]:
    columns = inst.columns(course_id)
    meetings = inst.meetings(course_id)
    ids = {
        "course": [course_id],
        "memberships": [m["id"] for m in inst.memberships(course_id)],
        "columns": [c["id"] for c in columns],
        "grades": [
            f"{g['columnId']}|{g['userId']}"
            for c in columns
            for g in inst.grades(course_id, c["id"])
        ],
        # Each graded column's newest grade (largest changeIndex), from its grade pages.
        "last_changed": [
            f"{c['id']}|{max(grades, key=lambda g: g['changeIndex'])['userId']}"
            for c in columns
            if (grades := inst.grades(course_id, c["id"]))
        ],
        "attempts": [a["id"] for c in columns for a in inst.attempts(course_id, c["id"])],
        "meetings": [str(m["id"]) for m in meetings],
        "attendance_records": [
            str(r["id"]) for m in meetings for r in inst.meeting_users(course_id, m["id"])
        ],
    }
    return {k: sorted(v) for k, v in ids.items()}


def staged_ids(store: StagingStore, course_id: str, window: str = "w1") -> dict[str, list[str]]:
    manifests = [
        m
        for m in store.committed(
            institution="contract", vendor="blackboard", course_ids=[course_id]
        )
        if m.key.window == window
    ]
    assert {m.key.domain for m in manifests} == set(ep.DOMAINS)
    out = {}
    for e in ep.ENDPOINTS:
        frame = store.scan(e.stream, manifests).collect()
        if e.stream in ("grades", "last_changed"):
            out[e.stream] = sorted(
                f"{c}|{u}" for c, u in zip(frame["columnId"], frame["userId"], strict=True)
            )
        else:
            out[e.stream] = sorted(frame["id"].to_list())
    return out


def _live(inst: Institution) -> list[str]:
    return inst.course_ids(include_disabled=False)


@pytest.mark.parametrize("cap", [3, 7, None])
def test_every_record_staged_exactly_once(institution, tmp_path, cap):
    # The emulator clamps every `limit` to `cap`, so each list pages at that size.
    caps = dict.fromkeys(PAGE_CAPS, cap) if cap else dict(PAGE_CAPS)
    with (
        BlackboardEmulator(institution, settings=_settings(page_caps=caps)) as emu,
        _source(emu) as s,
    ):
        listed = [c["id"] for c in s.list_courses()]
        assert listed == _live(institution)
        store = StagingStore(tmp_path)
        assert _stage(s, store, listed) == dict.fromkeys(listed)
        stats = s.stats()
    for course_id in listed:
        want = expected_ids(institution, course_id)
        assert staged_ids(store, course_id) == want, course_id
        assert want["grades"] and want["attempts"] and want["attendance_records"]
    assert stats["failed"] == 0 and stats["tokens"]["token_requests"] == 1


def test_ten_percent_faults_still_stage_exactly_once(institution, tmp_path):
    settings = _settings(
        latency_ms=2,
        page_caps=dict.fromkeys(PAGE_CAPS, 4),  # more, smaller pages: more faults to survive
        faults=FaultSettings(rate=0.10, seed=7, slow_seconds=1.5),
    )
    retry = RetryPolicy(max_attempts=12, strategies=(ExponentialFullJitter(base=0.02, cap=0.2),))
    timeout = httpx.Timeout(connect=2.0, read=0.5, write=2.0, pool=10.0)
    with (
        BlackboardEmulator(institution, settings=settings) as emu,
        _source(emu, retry=retry, timeout=timeout) as s,
    ):
        listed = [c["id"] for c in s.list_courses()]
        store = StagingStore(tmp_path)
        assert _stage(s, store, listed) == dict.fromkeys(listed)
        injected = emu.stats.snapshot()["faults"]
        stats = s.stats()
    for course_id in listed:
        assert staged_ids(store, course_id) == expected_ids(institution, course_id)
    assert sum(injected.values()) >= 10, injected
    assert stats["retried"] > 0 and stats["failed"] == 0


def test_bad_credentials_fail_fast(institution):
    with BlackboardEmulator(institution, settings=_settings()) as emu:
        with _source(emu, client_secret="wrong-secret-123") as s:
            with pytest.raises(AuthenticationError) as caught:
                list(s.list_courses())
            assert s.stats()["tokens"] == {"token_requests": 1, "refreshed_on_401": 0, "refused": 1}
        assert emu.stats.snapshot()["requests"] == 1
    message = str(caught.value)
    assert "401" in message and "v3/courses" in message
    assert "wrong-secret-123" not in message and "Basic" not in message
    assert "***" in repr(s.auth) and SECRET not in repr(s.auth)


def test_token_expiring_mid_sync_is_refreshed_without_losing_a_page(institution, tmp_path):
    course_id = _live(institution)[0]
    with BlackboardEmulator(institution, settings=_settings()) as emu, _source(emu) as s:
        original = s.domain_pages

        def expiring(**kw):
            for n, page in enumerate(original(**kw), start=1):
                if kw["domain"] == "gradebook" and n in (2, 5):
                    emu.tokens.expire_all()  # the hour is up: Learn now answers 401
                yield page

        s.domain_pages = expiring
        assert _stage(s, StagingStore(tmp_path), [course_id]) == {course_id: None}
        tokens = s.stats()["tokens"]
    assert tokens["refreshed_on_401"] == 2 and tokens["token_requests"] == 3
    assert staged_ids(StagingStore(tmp_path), course_id) == expected_ids(institution, course_id)


def test_token_refreshed_before_it_expires(institution):
    # A 2 s token lifetime: the source renews it a tenth of its life early, never meeting a 401.
    with (
        BlackboardEmulator(
            institution, settings=_settings(token_ttl_seconds=2.0, latency_ms=30)
        ) as emu,
        _source(emu) as s,
    ):
        course_id = _live(institution)[0]
        rows = 0
        for _ in range(3):
            for domain in s.domains:
                rows += sum(
                    p.rows for p in s.domain_pages(course_id=course_id, domain=domain, run_id="r")
                )
        tokens = s.stats()["tokens"]
    assert rows > 0
    assert tokens["token_requests"] >= 2 and tokens["refreshed_on_401"] == 0


def test_budget_share_refuses_the_run_before_it_starts(institution):
    with BlackboardEmulator(institution, settings=_settings(daily_quota=1_000)) as emu:
        with (
            _source(emu, daily_call_budget_share=0.02) as s,
            pytest.raises(QuotaBudgetExceeded) as caught,
        ):
            list(s.list_courses())
        paths = emu.stats.snapshot()["paths"]
    message = str(caught.value)
    assert (
        "needs about" in message
        and "may use 20" in message
        and "daily_call_budget_share" in message
    )
    # Only the course list, the token and the size probes were spent: no course was synced.
    assert not any("/attempts" in p or "/meetings/" in p for p in paths)
    assert caught.value.kind == "configuration"


def test_estimate_matches_the_calls_a_sync_makes(institution, tmp_path):
    with (
        BlackboardEmulator(institution, settings=_settings()) as emu,
        _source(emu, daily_call_budget_share=1.0) as s,
    ):
        listed = [c["id"] for c in s.list_courses()]
        estimate = s.stats()["estimate"]
        before = emu.stats.requests
        assert _stage(s, StagingStore(tmp_path), listed) == dict.fromkeys(listed)
        # A request retried on a loaded machine (a read timeout) is not a call the sync needed.
        retried = s.stats()["retried"]
        used = emu.stats.requests - before - retried
        quota = s.stats()["quota"]
    assert used <= estimate["calls_needed"] <= used + 1  # + the token allowance
    # A retried request whose answer the client never read still spent quota at the vendor.
    spent = 10_000 - emu.stats.requests
    assert spent <= quota["remaining"] <= spent + retried
    assert estimate["probe_calls"] == 3 * len(listed)


def test_estimate_leaves_out_what_the_window_already_staged(institution, tmp_path):
    store = StagingStore(tmp_path)
    with BlackboardEmulator(institution, settings=_settings()) as emu:
        with _source(emu, daily_call_budget_share=1.0) as s:
            listed = [c["id"] for c in s.list_courses()]
            full = s.stats()["estimate"]
            assert _stage(s, store, listed) == dict.fromkeys(listed)
        done: dict[str, set[str]] = {}
        for m in store.committed(institution="contract", vendor="blackboard", window="w1"):
            done.setdefault(m.key.course_id, set()).add(m.key.domain)
        # One course lost its gradebook (as if the run had died there): only it is estimated.
        done[listed[0]].discard("gradebook")
        with _source(emu, daily_call_budget_share=1.0) as s:
            s.already_staged(done)  # what the flow does before listing courses
            before = emu.stats.snapshot()["paths"]
            assert [c["id"] for c in s.list_courses()] == listed
            again = s.stats()["estimate"]
            after = emu.stats.snapshot()["paths"]
    probed = {p for p in after if after[p] > before.get(p, 0) and "/courses/" in p}
    assert again["courses_already_staged"] == len(listed) - 1
    assert again["probe_calls"] == 3 and all(listed[0] in p for p in probed), probed
    assert 1 < again["calls_needed"] < full["calls_needed"] / len(listed)


def test_exhausted_quota_fails_courses_cleanly_and_the_next_run_completes(institution, tmp_path):
    listed = _live(institution)
    store = StagingStore(tmp_path)
    with BlackboardEmulator(institution, settings=_settings()) as emu, _source(emu) as s:
        # Another application of the developer group spends the rest of the day's quota while
        # the third course's gradebook is being read.
        spent = threading.Event()
        original = s.domain_pages

        def draining(**kw):
            for n, page in enumerate(original(**kw)):
                if (
                    not spent.is_set()
                    and kw["course_id"] == listed[2]
                    and kw["domain"] == "gradebook"
                    and n == 1
                ):
                    emu.quota.exhaust()
                    spent.set()
                yield page

        s.domain_pages = draining
        first = _stage(s, store, listed, workers=1)
        assert spent.is_set()
        failed = {c: e for c, e in first.items() if e is not None}
        assert set(failed) == set(listed[2:])
        for course_id, error in failed.items():
            assert isinstance(error, DailyQuotaExhausted) and error.kind == "transient"
            assert f"course {course_id}" in str(error) and "429" in str(error)
            assert "run the same window again" in str(error)
        # What was synced is whole; the interrupted course left no partial partition.
        for course_id in listed[:2]:
            assert staged_ids(store, course_id) == expected_ids(institution, course_id)
        partial = store.committed(
            institution="contract", vendor="blackboard", course_ids=[listed[2]]
        )
        assert {m.key.domain for m in partial} == {"roster"}
        # A new day: the same window fetches only what is missing.
        emu.quota.reset()
        paths_before = emu.stats.snapshot()["paths"]
        second = _stage(s, store, listed, workers=1)
        paths_after = emu.stats.snapshot()["paths"]
    assert second == dict.fromkeys(listed)
    for course_id in listed:
        assert staged_ids(store, course_id) == expected_ids(institution, course_id)
    refetched = {p for p in paths_after if paths_after[p] != paths_before.get(p, 0)}
    assert not any(
        f"/courses/{c}/" in p or p.endswith(f"/courses/{c}") for c in listed[:2] for p in refetched
    )


class _Recording(httpx.BaseTransport):
    """Keeps every response the connector receives (method, path, status, body)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list[tuple[str, str, int, bytes]] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        with self._lock:
            self.seen.append((request.method, request.url.path, response.status_code, body))
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    def close(self) -> None:
        self.inner.close()


def test_every_response_the_connector_receives_conforms_to_the_spec(institution, tmp_path):
    recording = _Recording()
    caps = dict.fromkeys(PAGE_CAPS, 5)
    with (
        BlackboardEmulator(institution, settings=_settings(page_caps=caps)) as emu,
        _source(emu, transport=recording, daily_call_budget_share=1.0) as s,
    ):
        listed = [c["id"] for c in s.list_courses()]
        assert _stage(s, StagingStore(tmp_path), listed) == dict.fromkeys(listed)
        emu.tokens.expire_all()  # a 401 body
        list(s.domain_pages(course_id=listed[0], domain="attendance", run_id="r"))
        with pytest.raises(PermanentError):  # a 404 body
            list(s.domain_pages(course_id="_999_1", domain="roster", run_id="r"))
        emu.quota.exhaust()  # a 429 body
        with pytest.raises(DailyQuotaExhausted):
            list(s.domain_pages(course_id=listed[0], domain="roster", run_id="r"))
    models: dict[str, int] = {}
    for method, path, status, body in recording.seen:
        model = validate_response(method, path, status, body)
        models[f"{status} {model}"] = models.get(f"{status} {model}", 0) + 1
    assert {
        "200 OAuth2AccessToken",
        "200 CourseV2",
        "200 CourseV2[]",
        "200 CourseMembership[]",
        "200 GradeColumnV2[]",
        "200 GradeV2[]",
        "200 AttemptV2[]",
        "200 CourseMeeting[]",
        "200 AttendanceRecord[]",
        "401 RestException",
        "404 RestException",
        "429 RestException",
    } <= set(models), models

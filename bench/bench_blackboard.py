"""Blackboard: API calls per synced record — the daily quota is the scarce resource.

The connector (``connectors.blackboard``: memberships with ``expand=user``, grades per column, pages
at Learn's caps, ``fields=`` projection) beside a naive client doing what public Learn scripts do:
page the memberships, then fetch each user (``GET /v1/users/{id}``), each student's grades
(``GET /v2/courses/{id}/gradebook/users/{userId}``) and each student's attendance
(``GET /v1/courses/{id}/meetings/users/{userId}``), with one token for the run. Both read the same
site (emulator in its own process) and their calls include the token request; records are the
connector's staged rows (the same data the naive client reads). The budget preflight's probe calls
are a second figure. Peak RSS is the connector's, in a fresh process.
"""

from __future__ import annotations

import httpx

from bench.emulated import emulator_process
from bench.results import Figure
from bench.rss import measure

KEY, SECRET = "bench-key", "bench-secret"
COURSES, STUDENTS = 20, 40
P = "/learn/api/public"


def _args() -> list[str]:
    return [
        "--seed", "4", "--courses", str(COURSES), "--students-per-course", str(STUDENTS),
        "--client-id", KEY, "--client-secret", SECRET, "--daily-quota", "1000000",
    ]  # fmt: skip


def _connector(base_url: str, share: float | None) -> tuple[int, int, int]:
    """(records staged, calls made, of which preflight probes)."""
    from connectors.blackboard.source import BlackboardSource

    with BlackboardSource(
        base_url=base_url,
        client_id=KEY,
        client_secret=SECRET,
        requests_per_second=1000.0,
        burst=100,
        daily_call_budget_share=share,
    ) as source:
        records = 0
        for course in source.list_courses():
            for domain in source.domains:
                for page in source.domain_pages(course_id=course["id"], domain=domain, run_id="b"):
                    records += page.rows
        probes = (source.estimate or {}).get("probe_calls", 0)
        return records, source.meter.calls, probes


def _naive(base_url: str) -> int:
    """Calls a per-user script makes for the same data."""
    calls = 0
    with httpx.Client(base_url=base_url, timeout=30) as http:
        token = http.post(
            f"{P}/v1/oauth2/token", auth=(KEY, SECRET), data={"grant_type": "client_credentials"}
        ).json()["access_token"]
        calls += 1
        http.headers["Authorization"] = f"Bearer {token}"

        def listing(path: str) -> list[dict]:
            nonlocal calls
            out, url = [], path
            while url:
                body = http.get(url).json()
                calls += 1
                out += body["results"]
                url = (body.get("paging") or {}).get("nextPage")
            return out

        for course in listing(f"{P}/v3/courses"):
            if course["availability"]["available"] == "Disabled":
                continue
            cid = course["id"]
            http.get(f"{P}/v3/courses/{cid}")
            calls += 1
            members = listing(f"{P}/v1/courses/{cid}/users")
            for m in members:
                http.get(f"{P}/v1/users/{m['userId']}")
                calls += 1
            students = [m for m in members if m["courseRoleId"] == "Student"]
            for m in students:
                listing(f"{P}/v2/courses/{cid}/gradebook/users/{m['userId']}")
            for column in listing(f"{P}/v2/courses/{cid}/gradebook/columns"):
                if column["grading"]["type"] == "Attempts":
                    listing(f"{P}/v2/courses/{cid}/gradebook/columns/{column['id']}/attempts")
            listing(f"{P}/v1/courses/{cid}/meetings")
            for m in students:
                listing(f"{P}/v1/courses/{cid}/meetings/users/{m['userId']}")
    return calls


def run() -> list[Figure]:
    with emulator_process("blackboard", *_args()) as base_url:
        (records, calls, _), peak = measure(_connector, base_url, None)
        (_, calls_budgeted, probes), _ = measure(_connector, base_url, 1.0)
        naive_calls = _naive(base_url)
    per_record = calls / records
    naive_per_record = naive_calls / records
    print(
        f"   {records} records: connector {calls} calls ({calls_budgeted} with the budget "
        f"preflight, {probes} probes), naive {naive_calls} calls"
    )
    return [
        Figure.compare(
            "blackboard connector API calls per synced record",
            round(per_record, 5),
            "calls/record",
            baseline_name="naive per-user Learn client",
            baseline_value=round(naive_per_record, 5),
            peak_rss_mb=round(peak, 1),
        ),
        Figure.compare(
            "blackboard connector calls per record incl. budget preflight",
            round(calls_budgeted / records, 5),
            "calls/record",
            baseline_name="naive per-user Learn client",
            baseline_value=round(naive_per_record, 5),
        ),
    ]

"""Everything that tunes one emulated Moodle: credentials, service, latency, workers, faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.moodle.faults import FaultSettings

DEFAULT_TOKEN = "lms-sync-demo-moodle-token"


@dataclass(frozen=True)
class LatencySettings:
    """Simulated service time, modelled on moodle-api.md §5 (PHP built-in server, 4 workers):
    most calls 20–100 ms, ``core_enrol_get_enrolled_users`` 0.3 s for 102 users (~3 ms a user),
    ``gradereport_user_get_grade_items`` 1.4 s for 100 users (~14 ms a user).

    A call takes ``scale × (base_ms + per_record_ms[function] × records)``; ``scale`` 0 turns
    latency off (the default, for tests), 1 is the measured site.
    """

    scale: float = 0.0
    base_ms: float = 40.0
    per_record_ms: tuple[tuple[str, float], ...] = (
        ("core_enrol_get_enrolled_users", 2.6),
        ("gradereport_user_get_grade_items", 13.6),
        ("mod_assign_get_submissions", 0.3),
        ("mod_assign_get_grades", 0.1),
        ("mod_attendance_get_sessions", 0.2),
    )

    def __post_init__(self) -> None:
        if self.scale < 0 or self.base_ms < 0:
            raise ValueError("latency scale and base_ms must be >= 0")

    def seconds(self, function: str, records: int) -> float:
        per = dict(self.per_record_ms).get(function, 0.0)
        return self.scale * (self.base_ms + per * records) / 1000


@dataclass(frozen=True)
class MoodleEmulatorSettings:
    """Settings of one emulator instance. Defaults behave like a healthy Moodle 4.5 site whose
    web service has every function the connector needs."""

    token: str = DEFAULT_TOKEN
    webservices_enabled: bool = True  # False: every call is HTTP 403 with an empty body (§4)
    debug: bool = False  # True: error bodies carry ``debuginfo`` (DEVELOPER debug level, §4)
    latency: LatencySettings = field(default_factory=LatencySettings)
    workers: int = 0  # concurrent requests served (PHP workers); 0 = unlimited
    faults: FaultSettings = field(default_factory=FaultSettings)
    # Functions the token's service may call; None = every function the emulator implements.
    service_functions: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("the emulator needs a non-empty web-service token")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")

"""Everything that tunes one emulated Learn site: credentials, tokens, quota, latency, faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.canvas.faults import FaultSettings

DEFAULT_CLIENT_ID = "lms-sync-demo-key"
DEFAULT_CLIENT_SECRET = "lms-sync-demo-secret"

# Largest `limit` per list (reference §1b, measured on Learn 3400): users and courses 100,
# memberships and grade columns 200, column grades 100. Attempts, meetings and attendance are
# unverified; 100 (the SDK generator's defaultLimit) is used. A larger `limit` is clamped.
PAGE_CAPS = {
    "courses": 100,
    "users": 100,
    "memberships": 200,
    "columns": 200,
    "grades": 100,
    "attempts": 100,
    "user_grades": 100,
    "meetings": 100,
    "meeting_users": 100,
}


@dataclass(frozen=True)
class BlackboardEmulatorSettings:
    """Settings of one emulator instance. Defaults behave like a healthy Learn SaaS site."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    token_ttl_seconds: float = 3600.0  # reference §1a: the portal grants a token for one hour
    daily_quota: int = 10_000  # reference §1c: 10,000 calls per 24 h by default
    quota_window_seconds: float = 86_400.0
    latency_ms: float = 0.0
    faults: FaultSettings = field(default_factory=FaultSettings)
    page_caps: dict[str, int] = field(default_factory=lambda: dict(PAGE_CAPS))

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("the emulator needs a non-empty application key and secret")
        if self.token_ttl_seconds <= 0:
            raise ValueError("token_ttl_seconds must be > 0")
        if self.daily_quota < 0 or self.quota_window_seconds <= 0:
            raise ValueError("daily_quota must be >= 0 and quota_window_seconds > 0")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")

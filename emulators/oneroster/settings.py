"""Everything that tunes one emulated OneRoster service: credentials, tokens, paging, faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.canvas.faults import FaultSettings

DEFAULT_CLIENT_ID = "lms-sync-oneroster-demo"
DEFAULT_CLIENT_SECRET = "lms-sync-oneroster-secret"


@dataclass(frozen=True)
class OneRosterEmulatorSettings:
    """Defaults behave like a healthy district SIS. Faults: only the 5xx kinds are injected."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    token_ttl_seconds: float = 3600.0
    max_limit: int = 1000  # a provider's cap on `limit`; larger values are clamped
    latency_ms: float = 0.0
    faults: FaultSettings = field(
        default_factory=lambda: FaultSettings(kinds=frozenset({"500", "503"}))
    )

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("the emulator needs a non-empty client id and secret")
        if self.token_ttl_seconds <= 0 or self.max_limit < 1 or self.latency_ms < 0:
            raise ValueError("token_ttl_seconds > 0, max_limit >= 1 and latency_ms >= 0")

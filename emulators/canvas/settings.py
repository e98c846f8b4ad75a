"""Everything that tunes one emulated Canvas: credentials, throttle, latency, faults, paging."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.canvas.faults import FaultSettings
from emulators.canvas.throttle import ThrottleSettings

DEFAULT_TOKEN = "lms-sync-demo-token"
DEFAULT_DAP_CLIENT_ID = "us-east-1#lms-sync-demo"
DEFAULT_DAP_CLIENT_SECRET = "lms-sync-demo-dap-secret"


@dataclass(frozen=True)
class CanvasEmulatorSettings:
    """Settings of one emulator instance. Defaults behave like a healthy hosted Canvas."""

    token: str = DEFAULT_TOKEN
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    latency_ms: float = 0.0  # simulated service time of every request (held in the bucket)
    faults: FaultSettings = field(default_factory=FaultSettings)
    default_per_page: int = 10  # canvas-api.md §1.2: Api::PER_PAGE
    max_per_page: int = 100  # canvas-api.md §1.2: Api::MAX_PER_PAGE
    dap_client_id: str = DEFAULT_DAP_CLIENT_ID  # Canvas Data 2 OAuth client (§5.1)
    dap_client_secret: str = DEFAULT_DAP_CLIENT_SECRET
    dap_processing_seconds: float = 1.0  # how long a DAP job / account report takes

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("the emulator needs a non-empty access token")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if not 1 <= self.default_per_page <= self.max_per_page:
            raise ValueError("need 1 <= default_per_page <= max_per_page")

"""The vendor-agnostic HTTP layer: pooled client, classified retries, pacing, breaker, paging.

Vendor sub-packages (`connectors.canvas`, …) build on this surface only.
"""

from connectors.auth import BearerAuth, QueryTokenAuth
from connectors.backoff import ExponentialFullJitter, ResetHeader, RetryAfter, RetryPolicy
from connectors.breaker import BreakerState, CircuitBreaker
from connectors.classify import (
    BLACKBOARD_RULES,
    CANVAS_RULES,
    MOODLE_RULES,
    Action,
    Rule,
    Verdict,
    classify,
)
from connectors.client import ClientStats, JsonResponse, Page, VendorClient
from connectors.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConnectorError,
    ForeignHostError,
    MalformedResponseError,
    PaginationLoopError,
    PermanentError,
    RetryBudgetExhausted,
)
from connectors.pacing import AdaptivePacer, PacedTransport, Pacer, RequestRatePacer
from connectors.paginators import (
    LinkHeaderPaginator,
    NextPagePaginator,
    OffsetPaginator,
    PageRequest,
    Paginator,
    SingleObject,
    SinglePage,
)

__all__ = [
    "BLACKBOARD_RULES",
    "CANVAS_RULES",
    "MOODLE_RULES",
    "Action",
    "AdaptivePacer",
    "AuthenticationError",
    "BearerAuth",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientStats",
    "ConnectorError",
    "ExponentialFullJitter",
    "ForeignHostError",
    "JsonResponse",
    "LinkHeaderPaginator",
    "MalformedResponseError",
    "NextPagePaginator",
    "OffsetPaginator",
    "PacedTransport",
    "Pacer",
    "Page",
    "PageRequest",
    "PaginationLoopError",
    "Paginator",
    "PermanentError",
    "QueryTokenAuth",
    "RequestRatePacer",
    "ResetHeader",
    "RetryAfter",
    "RetryBudgetExhausted",
    "RetryPolicy",
    "Rule",
    "SingleObject",
    "SinglePage",
    "VendorClient",
    "Verdict",
    "classify",
]

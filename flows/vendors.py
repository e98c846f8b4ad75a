"""Which source and mapping serve a vendor: the one place the flow learns vendor names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

import httpx
import pyarrow as pa

from connectors.backoff import RetryPolicy
from connectors.extract import StagedPage
from flows.limits import shared_budget
from flows.settings import ConfigError, InstitutionConfig
from transforms.mapping import VendorMapping


class Source(Protocol):
    vendor: str
    domains: tuple[str, ...]

    def streams(self, domain: str) -> dict[str, pa.Schema]: ...

    def list_courses(self, *, term: str | None = None) -> Iterator[dict[str, Any]]: ...

    def domain_pages(
        self, *, course_id: str, domain: str, run_id: str, activity_since: datetime | None = None
    ) -> Iterator[StagedPage]: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def open_source(config: InstitutionConfig) -> Source:
    if config.vendor == "canvas":
        from connectors.canvas.source import CanvasSource

        assert config.token is not None  # enforced by the settings validator
        http = config.http
        return CanvasSource(
            shared_pacer=shared_budget(config),
            base_url=config.base_url,
            token=config.token.get_secret_value(),
            account_id=config.account_id,
            max_in_flight=config.quota.max_in_flight_requests,
            per_page=http.per_page,
            retry=RetryPolicy(
                max_attempts=http.max_attempts, max_total_seconds=http.max_retry_seconds
            ),
            timeout=httpx.Timeout(http.read_timeout_seconds, connect=http.connect_timeout_seconds),
        )
    if config.vendor == "moodle":
        from connectors.moodle.source import MoodleSource

        assert config.token is not None  # enforced by the settings validator
        return MoodleSource(
            base_url=config.base_url,
            token=config.token.get_secret_value(),
            max_in_flight=config.quota.max_in_flight_requests,
            # Moodle publishes no rate-limit headers: pace to the configured request budget.
            requests_per_second=config.quota.requests_per_second,
            burst=config.quota.burst,
        )
    if config.vendor == "blackboard":
        from connectors.blackboard.source import BlackboardSource

        assert config.client_id is not None and config.client_secret is not None
        source = BlackboardSource(
            base_url=config.base_url,
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
            max_in_flight=config.quota.max_in_flight_requests,
            requests_per_second=config.quota.requests_per_second,
            burst=config.quota.burst,
            daily_call_budget_share=config.daily_call_budget_share,
        )
        if config.course_ids and config.daily_call_budget_share is not None:
            source.preflight(config.course_ids)  # list_courses is skipped: check the budget here
        return source
    if config.vendor == "oneroster":
        from connectors.oneroster.source import OneRosterSource

        http = config.http
        secret = config.client_secret.get_secret_value() if config.client_secret else None
        try:
            return OneRosterSource(
                bundle_uri=config.bundle_uri,
                base_url=None if config.bundle_uri else config.base_url,
                client_id=config.client_id,
                client_secret=secret,
                modified_since=config.modified_since,
                per_page=http.per_page,
                max_in_flight=config.quota.max_in_flight_requests,
                requests_per_second=config.quota.requests_per_second,
                burst=config.quota.burst,
            )
        except ValueError as exc:  # a bundle that breaks the spec names file, line and column
            raise ConfigError(f"oneroster: {exc}") from None
    raise ConfigError(f"vendor: '{config.vendor}' has no connector in this release yet")


def mapping_for(config: InstitutionConfig) -> VendorMapping:
    if config.vendor == "canvas":
        from connectors.canvas.mapping import canvas_mapping

        return canvas_mapping(extra_credit_allowed=config.extra_credit_allowed)
    if config.vendor == "moodle":
        from connectors.moodle.mapping import moodle_mapping

        return moodle_mapping()
    if config.vendor == "blackboard":
        from connectors.blackboard.mapping import blackboard_mapping

        return blackboard_mapping(extra_credit_allowed=config.extra_credit_allowed)
    if config.vendor == "oneroster":
        from connectors.oneroster.mapping import oneroster_mapping

        return oneroster_mapping()
    raise ConfigError(f"vendor: '{config.vendor}' has no mapping in this release yet")

"""Institution configuration: one validated object per institution, from a file and/or environment.

Precedence (highest first): ``LMS_SYNC_*`` environment variables, then the TOML/YAML file given with
``--config``, then defaults. Nested values use ``__`` in variable names, e.g.
``LMS_SYNC_QUOTA__MAX_CONCURRENT_COURSES=4``. Secrets are ``SecretStr`` so they never print.

A bad configuration fails at start with :class:`ConfigError`, whose message names each field and
what to change — the 2 a.m. operator should not have to read a pydantic traceback.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

Vendor = Literal["canvas", "moodle", "blackboard", "oneroster"]
_INSTITUTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class ConfigError(ValueError):
    """Configuration that cannot run; the message lists every field to fix."""


class QuotaSettings(BaseModel):
    """The vendor quota as the institution's contract states it.

    The same numbers feed the Prefect global concurrency limits (course tasks in flight, request
    rate across every worker) and the in-process pacer.
    """

    max_concurrent_courses: int = Field(4, ge=1, le=256)
    requests_per_second: float = Field(10.0, gt=0)
    burst: int = Field(20, ge=1)
    max_in_flight_requests: int = Field(8, ge=1, le=64)
    shared_requests_per_second: float | None = Field(
        None,
        gt=0,
        description="a request-rate budget shared by every worker of the institution (a Prefect "
        "rate limit); unset: each process paces on the vendor's own signals",
    )


class HttpSettings(BaseModel):
    """How patiently to talk to the vendor: timeouts, page size and the retry budget per request."""

    connect_timeout_seconds: float = Field(5.0, gt=0)
    read_timeout_seconds: float = Field(30.0, gt=0)
    per_page: int = Field(100, ge=1, le=100)
    max_attempts: int = Field(8, ge=1, le=50)
    max_retry_seconds: float = Field(300.0, gt=0)


def _check_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("give the LMS root URL with scheme, e.g. https://canvas.example.edu")
    return value.rstrip("/")


def _check_secret(value: SecretStr | None) -> SecretStr | None:
    if value is not None and not value.get_secret_value().strip():
        raise ValueError("is empty — give the secret or leave the setting out")
    return value


class SourceSettings(BaseModel):
    """One LMS of an institution that runs several (``[[sources]]`` in the config file).

    Unset fields take the institution's top-level value. Secrets can be named by environment
    variable (``token_env = "CANVAS_TOKEN"``) so each source's secret comes from its own
    Kubernetes Secret without appearing in the file.
    """

    model_config = ConfigDict(extra="forbid")

    vendor: Vendor
    base_url: str | None = None
    bundle_uri: str | None = None
    modified_since: datetime | None = None
    token: SecretStr | None = None
    token_env: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_env: str | None = None
    account_id: str | None = None
    term_filter: str | None = None
    course_ids: list[str] | None = None
    quota: QuotaSettings | None = None
    http: HttpSettings | None = None
    extra_credit_allowed: bool | None = None
    daily_call_budget_share: float | None = Field(None, gt=0, le=1)
    shards: int | None = Field(None, ge=1, le=256)
    bulk_domains: list[str] | None = None
    dap_base_url: str | None = None
    dap_client_id: str | None = None
    dap_client_secret: SecretStr | None = None
    dap_client_secret_env: str | None = None

    @field_validator("base_url", "dap_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("token", "client_secret", "dap_client_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_secret(value)

    def resolved(self) -> dict[str, Any]:
        """The fields to lay over the institution's, secrets read from their variables."""
        envs = {"token_env", "client_secret_env", "dap_client_secret_env"}
        values = self.model_dump(exclude_unset=True, exclude=envs)
        for field, env in (
            ("token", self.token_env),
            ("client_secret", self.client_secret_env),
            ("dap_client_secret", self.dap_client_secret_env),
        ):
            if env is not None:
                secret = os.environ.get(env)
                if not secret:
                    raise ConfigError(
                        f"sources[{self.vendor}].{field}_env: variable {env} is not set"
                    )
                values[field] = SecretStr(secret)
        for nested in ("quota", "http"):
            if nested in values:
                values[nested] = getattr(self, nested)
        return values


class InstitutionConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LMS_SYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    institution_id: str = Field(description="short slug, e.g. 'state-u'; names limits and paths")
    vendor: Vendor = "canvas"
    base_url: str | None = Field(None, description="the LMS root, e.g. https://canvas.example.edu")
    token: SecretStr | None = Field(None, description="Canvas API token / Moodle web-service token")
    client_id: str | None = Field(None, description="OAuth2 client id (Blackboard, OneRoster)")
    client_secret: SecretStr | None = None
    bundle_uri: str | None = Field(
        None,
        description="OneRoster: a CSV bundle (folder or .zip; path or file:// URI) to read"
        " instead of the REST service at base_url",
    )
    modified_since: datetime | None = Field(
        None,
        description="OneRoster REST: only records changed after this instant"
        " (filter=dateLastModified>'...'); unset: a full pull",
    )
    account_id: str = Field("1", description="Canvas root account id whose courses are synced")
    term_filter: str | None = Field(None, description="enrollment term id or 'sis_term_id:X'")
    course_ids: list[str] | None = Field(None, description="limit the sync to these course ids")
    quota: QuotaSettings = QuotaSettings()
    http: HttpSettings = HttpSettings()
    staging_uri: str = "data/staging"
    serving_dsn: str = Field("data/lms-sync.duckdb", description="DuckDB file path or md: DSN")
    hmac_key_ref: str = Field(
        "env:LMS_SYNC_HMAC_KEY", description="where the HMAC key lives: env:NAME or file:PATH"
    )
    hmac_key_version: str = "v1"
    extra_credit_allowed: bool = Field(
        False, description="Canvas has no per-assignment extra-credit flag; allow scores > points"
    )
    quarantine_threshold: float = Field(0.05, ge=0, le=1)
    shards: int = Field(1, ge=1, le=256, description="course shards, each its own deployment run")
    shard_deployment: str = Field(
        "sync-shard/sync-shard", description="the deployment that runs one shard (flow/deployment)"
    )
    daily_call_budget_share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Blackboard: the share of the daily API quota left at start one run may use;"
        " a sync estimated to need more fails before it starts (unset: not checked)",
    )
    engagement_lookback_days: int = Field(
        180, ge=1, le=3650, description="how far back page views are read on each sync"
    )
    incremental_overlap_minutes: float = Field(
        10.0,
        ge=0,
        le=1440,
        description="how far before the cursor an incremental sync re-reads, so same-second "
        "updates and clock skew between the LMS and this worker lose nothing",
    )
    sources: list[SourceSettings] = Field(
        default_factory=list,
        description="several LMSs of one institution, landing in one serving database",
    )
    bulk_domains: list[str] = Field(
        default_factory=list,
        description="Canvas: domains synced institution-wide from Canvas Data 2 instead of per "
        "course over REST, e.g. ['gradebook'] (see flows/bulk.py)",
    )
    dap_base_url: str | None = Field(
        None,
        description="Canvas Data 2 (DAP) API root; unset: base_url. Instructure's is "
        "https://api-gateway.instructure.com",
    )
    dap_client_id: str | None = Field(
        None, description="Canvas Data 2 client id (identity.instructure.com), e.g. 'us-east-1#…'"
    )
    dap_client_secret: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get("path")
        if path is not None:
            if path.suffix in (".yaml", ".yml"):
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            else:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("institution_id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _INSTITUTION_ID.match(value):
            raise ValueError("use lowercase letters, digits and '-', starting with a letter/digit")
        return value

    @field_validator("base_url", "dap_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("hmac_key_ref")
    @classmethod
    def _key_ref(cls, value: str) -> str:
        if not value.startswith(("env:", "file:")):
            raise ValueError("use env:VARIABLE_NAME or file:/path/to/key")
        return value

    @field_validator("token", "client_secret", "dap_client_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_secret(value)

    @model_validator(mode="after")
    def _credentials(self) -> InstitutionConfig:
        if self.sources:
            return self
        return self.check_credentials()

    def check_credentials(self) -> InstitutionConfig:
        self._check_bulk()
        bundle = self.vendor == "oneroster" and self.bundle_uri is not None
        if self.base_url is None and not bundle:
            hint = " (or bundle_uri, a OneRoster CSV bundle)" if self.vendor == "oneroster" else ""
            raise ValueError(
                "base_url: required — the LMS root URL (LMS_SYNC_BASE_URL), or list [[sources]]"
                + hint
            )
        if bundle:
            return self  # a CSV bundle needs no credentials
        if self.vendor in ("canvas", "moodle") and self.token is None:
            raise ValueError(
                f"token: required for vendor '{self.vendor}' (LMS_SYNC_TOKEN or 'token' in file)"
            )
        oauth = self.client_id and self.client_secret
        if self.vendor in ("blackboard", "oneroster") and not oauth:
            raise ValueError(
                f"client_id and client_secret: required for vendor '{self.vendor}'"
                " (LMS_SYNC_CLIENT_ID / LMS_SYNC_CLIENT_SECRET)"
            )
        return self

    def _check_bulk(self) -> None:
        """``bulk_domains`` needs Canvas, a Canvas Data 2 plan for each domain and DAP
        credentials (canvas-api.md §5.1)."""
        if not self.bulk_domains:
            return
        if self.vendor != "canvas":
            raise ValueError(
                f"bulk_domains: Canvas Data 2 serves Canvas only; vendor '{self.vendor}' syncs"
                " every domain over its API — remove bulk_domains"
            )
        from connectors.canvas.dap_tables import DOMAIN_TABLES

        unknown = [d for d in self.bulk_domains if d not in DOMAIN_TABLES]
        if unknown:
            raise ValueError(
                f"bulk_domains: no Canvas Data 2 plan for {', '.join(map(repr, unknown))};"
                f" domains that have one: {', '.join(sorted(DOMAIN_TABLES))}"
            )
        if not (self.dap_client_id and self.dap_client_secret):
            raise ValueError(
                "dap_client_id and dap_client_secret: required for bulk_domains"
                " (LMS_SYNC_DAP_CLIENT_ID / LMS_SYNC_DAP_CLIENT_SECRET)"
            )

    def per_source(self) -> list[InstitutionConfig]:
        """One complete config per LMS: the institution's settings with each source's laid over."""
        if not self.sources:
            return [self]
        configs = []
        for source in self.sources:
            merged = self.model_copy(update={**source.resolved(), "sources": []})
            try:
                merged.check_credentials()
            except ValueError as exc:
                raise ConfigError(f"sources[{source.vendor}]: {exc}") from None
            configs.append(merged)
        vendors = [c.vendor for c in configs]
        if len(set(vendors)) != len(vendors):
            raise ConfigError("sources: one source per vendor (staging and cursors are per vendor)")
        return configs

    def masked(self) -> dict[str, Any]:
        """The configuration as it may be logged: secrets shown as '**********'."""
        return self.model_dump(mode="json")


_CONFIG_FILE: dict[str, Path] = {}


def load_config(path: Path | None = None, **overrides: Any) -> InstitutionConfig:
    """Read and validate the institution config; raise ConfigError with a fix-it message."""
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    _CONFIG_FILE.clear()
    if path is not None:
        _CONFIG_FILE["path"] = path
    try:
        return InstitutionConfig(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None
    finally:
        _CONFIG_FILE.clear()


def _explain(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = [f"invalid lms-sync configuration{where}:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(config)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            env = "LMS_SYNC_" + "__".join(str(p).upper() for p in err["loc"])
            message = f"required — set '{field}' in the config file or {env}"
        elif err["type"] == "extra_forbidden":
            message = "unknown setting — check its spelling"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)

"""Configuration: one pydantic-settings class read from the environment."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a Liftoff process; env prefix `LIFTOFF_`."""

    model_config = SettingsConfigDict(env_prefix="LIFTOFF_", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "LIFTOFF_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "LIFTOFF_REDIS_URL")
    )
    data_dir: Path = Path(".liftoff")
    secret_key: str | None = None
    jwt_issuer: str = "liftoff"
    jwt_audience: str = "liftoff-api"
    token_ttl_hours: int = 24 * 30
    auth_cache_seconds: float = 10.0
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_min: int = 1
    db_pool_max: int = 10
    graphiql: bool = True
    introspection: Literal["on", "off", "admin"] | None = None
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_query_cost: int = 100_000
    max_validation_seconds: float = 0.5
    max_body_bytes: int = 1024 * 1024
    max_json_depth: int = 32
    max_variable_chars: int = 256 * 1024
    max_variable_items: int = 1000
    max_response_bytes: int = 16 * 1024 * 1024
    log_level: str = "INFO"
    analytics_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="How long an api process answers `analytics` from a report it computed "
        "while the organization's rollups have not changed (0: never).",
    )
    inline_worker: bool | None = None
    outbox_retention_hours: int = 72
    max_relay_lag_seconds: float = 60.0
    event_retention_days: int = 400
    outbox_poll_seconds: float = 1.0
    outbox_batch_size: int = 500
    ws_max_subscriptions: int = 20
    rate_per_address: str = "1200/minute"
    rate_per_organization: str = "6000/minute"
    rate_reads: str = "600/minute"
    rate_writes: str = "300/minute"
    rate_sign_ins: str = "60/minute"
    rate_ingest: str = "6000/minute"
    rate_subscribes: str = "300/minute"
    rate_ws_connects: str = "120/minute"
    rate_local_share: float = Field(default=0.02, ge=0.0, le=0.25)
    ws_max_per_subject: int = 50
    ws_max_per_organization: int = 5000
    ws_connection_init_seconds: float = 5.0
    ws_keepalive_seconds: float = 15.0
    ws_compression: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics: bool = True
    metrics_allow: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    metrics_token: str | None = None
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9465
    shutdown_seconds: float = 20.0
    signin_ttl_minutes: int = 60
    public_url: str | None = None
    embed_frame_ancestors: str = "'none'"
    paused_consumers: str = Field(
        default="", description="Comma-separated consumer names this process does not run."
    )
    smtp_url: str | None = None
    mail_from: str = "Liftoff <noreply@liftoff.local>"
    webhook_allow_private: bool = False
    webhook_private_hosts: list[str] = []
    webhook_timeout_seconds: float = 10.0
    webhook_retry_scale: float = 1.0
    delivery_batch_size: int = 50
    delivery_poll_seconds: float = 1.0
    automation_schedule_seconds: float = 60.0

    def base_url(self, *, host: str | None = None, port: int | None = None) -> str:
        """Where browsers reach the pages: LIFTOFF_PUBLIC_URL, else the bound host and port."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{host or self.host}:{port or self.port}"

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        """`LIFTOFF_ALLOWED_ORIGINS=https://a.example,https://b.example`."""
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @property
    def introspection_mode(self) -> str:
        """`on` in the embedded default (demo, development); `admin` (ADMIN tokens only) once
        a database is configured, unless LIFTOFF_INTROSPECTION says otherwise."""
        if self.introspection is not None:
            return self.introspection
        return "admin" if self.database_url else "on"

    @property
    def paused_consumer_names(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.paused_consumers.split(",") if n.strip())

    @property
    def runs_inline_worker(self) -> bool:
        """Relay events inside the api process: by default only without Redis (embedded mode)."""
        return self.inline_worker if self.inline_worker is not None else not self.redis_url

    def resolved_secret_key(self) -> str:
        """The signing key; generated once and kept in the data folder when unset."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

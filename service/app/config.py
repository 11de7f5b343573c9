"""Runtime settings read from ``PGHA_*`` environment variables (the contract with infra)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PGHA_", extra="ignore", frozen=True)

    # Secrets carry credentials, so they have no defaults and never appear in reprs or logs.
    write_dsn: SecretStr
    read_dsn: SecretStr
    redis_url: SecretStr

    cache_ttl_seconds: int = Field(default=60, ge=1)
    read_fallback: Literal["none", "primary"] = "none"
    fence_ttl_seconds: int = Field(default=300, ge=1)
    db_connect_timeout_seconds: float = Field(default=1.5, gt=0)
    redis_timeout_seconds: float = Field(default=0.05, gt=0)
    redis_breaker_seconds: float = Field(default=3.0, ge=0)
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)
    log_level: str = "INFO"
    # cacheMode sentinel: set by infra; empty means one Redis at PGHA_REDIS_URL (single mode).
    redis_sentinels: str = ""
    redis_sentinel_service: str = "pgha"
    # The Sentinels' ACL user that may only ask where the primary is (infra/sentinel_cfg.py);
    # unset: the default user.
    redis_sentinel_username: str | None = None
    redis_sentinel_password: SecretStr | None = None
    # Sentinel mode only: the cache epoch check, the grace period after a new primary and
    # primary reads while the cache is bypassed (service/README.md, "Cache failover").
    # Off only to show what it prevents; never in production.
    cache_failover_guard: bool = True
    cache_epoch_grace_seconds: float = Field(default=2.0, ge=0)
    # How long a write waits for its fence script; unset: PGHA_REDIS_TIMEOUT_SECONDS (plus
    # loop lag), as reads. Infra sets 1 s in sentinel mode (service/README.md).
    fence_timeout_seconds: float | None = Field(default=None, gt=0)
    # The cache lease (app/cache/fencelog.py): an instance serves hits only this long after it
    # last drained the fence log, and a write whose fence Redis did not take waits at most
    # this long (plus 5 %) before it is acknowledged. The log is drained 5 times per lease.
    cache_lease_seconds: float = Field(default=1.0, gt=0)

    # Not part of the infra contract; defaults are tuned for "503 within 2 s" and fast recovery.
    pool_timeout_seconds: float = Field(default=1.5, gt=0)
    pool_degraded_timeout_seconds: float = Field(default=0.25, gt=0)
    # psycopg_pool retries a failed connect after 1 s, 2 s, 4 s ... until this long; while a
    # series sleeps no new attempt starts, so a short series bounds the wait after recovery.
    pool_reconnect_timeout_seconds: float = Field(default=0.5, gt=0)
    recent_writes_max: int = Field(default=10_000, ge=1)
    redis_max_connections: int = Field(default=16, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.pool_min > self.pool_max:
            raise ValueError("PGHA_POOL_MIN must not exceed PGHA_POOL_MAX")
        return self

    @property
    def sentinel_mode(self) -> bool:
        return bool(self.redis_sentinels.strip())

    @property
    def redis_user(self) -> str | None:
        return unquote(urlsplit(self.redis_url.get_secret_value()).username or "") or None

    @property
    def redis_password(self) -> str | None:
        return unquote(urlsplit(self.redis_url.get_secret_value()).password or "") or None

    @property
    def connect_timeout_param(self) -> int:
        # libpq only takes whole seconds and treats anything below 2 as 2; the pool wait
        # (pool_timeout_seconds) is what actually bounds a request.
        return max(2, round(self.db_connect_timeout_seconds))

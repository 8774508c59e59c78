"""Configuration from the environment: one settings object per service.

Every variable is listed in the README's configuration table. Shared values use the
`CRM_` prefix; each service's own values use `CRM_<SERVICE>_` (e.g. CRM_LEADS_HTTP_PORT).
An optional env file named by CRM_ENV_FILE is read first; real variables win over it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env_file() -> str | None:
    return os.environ.get("CRM_ENV_FILE") or None


class PlatformSettings(BaseSettings):
    """Values every process of the platform shares."""

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prepended to every topic name; lets several platforms share one broker (tests do).
    topic_prefix: str = ""
    topic_partitions: int = 3
    # "memory" (eventsourcing's in-process store) is for fast application tests only.
    store: Literal["sqlite", "postgres", "memory"] = "sqlite"
    data_dir: Path = Path("data")
    # SQLite stores: NORMAL survives any process crash, FULL also an OS crash or power loss,
    # at a disk sync per commit (crm_runtime.sqlite_store explains the trade).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_dbname: str = "crm"
    postgres_user: str = "crm"
    postgres_password: SecretStr = SecretStr("crm")
    # When set, every event store encrypts event state with AES-GCM (eventsourcing's
    # AESCipher); a base64 key of 16, 24 or 32 bytes. Read models stay plaintext.
    cipher_key: SecretStr | None = None
    # Outbox relay: events per Kafka batch, and how often an idle SQLite log is polled.
    relay_batch_size: int = 500
    relay_poll_interval_seconds: float = 0.01
    # Consumers: how long a silent member keeps its partitions before a rebalance.
    consumer_session_timeout_seconds: float = 10.0
    # Signs and verifies bearer tokens (HS256, at least 32 characters). Unset: the secret in
    # auth_secret_file (default <data_dir>/auth-secret), which a service bound only to
    # loopback creates on first use (crm_runtime.secret_file); other services refuse to start.
    auth_secret: SecretStr | None = None
    auth_secret_file: Path | None = None
    # Longest token lifetime (exp - iat) any service accepts or the token command issues.
    auth_max_token_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    # HTTP requests over these sizes are refused (413 / 431) before anything parses them.
    http_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    http_max_header_bytes: int = Field(default=16 * 1024, gt=0)
    # Threads a service process runs its store work in. Captures arriving together wait in
    # them for one group commit (crm_runtime.group_commit), so they bound its batch: with
    # Python's default (cores + 4) a busy service queues requests behind waiting ones.
    api_threads: int = Field(default=32, gt=0)
    log_level: str = "INFO"
    log_json: bool = True

    def __init__(self, **values: Any) -> None:
        super().__init__(_env_file=_env_file(), **values)


class ServiceSettings(BaseSettings):
    """Base of each service's settings; subclasses set the env prefix and defaults."""

    model_config = SettingsConfigDict(extra="ignore")

    name: str = "service"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50050
    # Prometheus /metrics of the service's relay and consumer processes (0: not served).
    relay_metrics_port: int = 0
    worker_metrics_port: int = 0
    dispatcher_metrics_port: int = 0
    # Per-call deadline of the commands this service's dispatcher sends; a slow call is retried.
    command_timeout_seconds: float = 5.0
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    def __init__(self, **values: Any) -> None:
        super().__init__(_env_file=_env_file(), **values)

"""Event stores chosen by setting: SQLite files by default, PostgreSQL when CRM_STORE=postgres.

Each service's application subclasses `ServiceApplication`. The store is also the outbox:
the relay follows its notification log, so an event is published if and only if it was
committed. The trace context of the request that caused an event is stored with it, so
the relay can put it in the record's headers.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, TypeVar

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, PersistenceError, ProcessRecorder, StoredEvent, TrackingRecorder

from crm_runtime import tracing
from crm_runtime.errors import InvalidField
from crm_runtime.settings import PlatformSettings

TRACE_ATTRIBUTE = "_trace"
# Every event must fit in one Kafka record (1 MiB by default) with its headers; the
# relay never skips an event, so an oversized one would stall the topic behind it.
MAX_EVENT_BYTES = 256 * 1024
T = TypeVar("T")


def store_env(name: str, platform: PlatformSettings) -> dict[str, str]:
    """The eventsourcing environment for application `name` under these settings."""
    return {**_persistence_env(name, platform), **_cipher_env(platform)}


def _cipher_env(platform: PlatformSettings) -> dict[str, str]:
    if platform.cipher_key is None:
        return {}
    return {"CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
            "CIPHER_KEY": platform.cipher_key.get_secret_value()}


def _persistence_env(name: str, platform: PlatformSettings) -> dict[str, str]:
    if platform.store == "postgres":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_HOST": platform.postgres_host,
            "POSTGRES_PORT": str(platform.postgres_port),
            "POSTGRES_DBNAME": platform.postgres_dbname,
            "POSTGRES_USER": platform.postgres_user,
            "POSTGRES_PASSWORD": platform.postgres_password.get_secret_value(),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "CREATE_TABLE": "true",
        }
    platform.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str((platform.data_dir / f"{name.lower()}.sqlite3").resolve()),
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "true",
    }


def retry_schema_race(create: Callable[[], T], errors: type[Exception] | tuple = PersistenceError,
                      attempts: int = 8) -> T:
    """Runs `create`, retrying when another process creates the same tables concurrently.

    PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin (a
    service's API and its relay or consumer start together); the loser finds the tables
    next time. `errors` are the store library's exceptions for that race.
    """
    for attempt in range(attempts):
        try:
            return create()
        except errors:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


class TracingMapper(Mapper):
    """Stores the current trace context beside each event's own state."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        context = tracing.current()
        if context and not hasattr(domain_event, TRACE_ATTRIBUTE):
            domain_event = copy.copy(domain_event)
            object.__setattr__(domain_event, TRACE_ATTRIBUTE, context)
        stored = super().to_stored_event(domain_event)
        if len(stored.state) > MAX_EVENT_BYTES:
            raise InvalidField("request", f"the change is too large to record "
                                          f"({len(stored.state)} bytes; at most {MAX_EVENT_BYTES})")
        return stored


def trace_context(domain_event: Any) -> dict[str, str]:
    return dict(getattr(domain_event, TRACE_ATTRIBUTE, None) or {})


class ServiceApplication(Application):
    """An eventsourcing application whose persistence comes from the platform settings."""

    def __init__(self, platform: PlatformSettings, env: dict[str, str] | None = None):
        self.platform = platform
        full_env = {**store_env(self.name, platform), **(env or {})}
        retry_schema_race(lambda: super(ServiceApplication, self).__init__(env=full_env))

    def tracking_recorder(self) -> TrackingRecorder:
        """A tracking recorder in the same database (the relay keeps its position there)."""
        return retry_schema_race(self.factory.tracking_recorder)

    def construct_recorder(self) -> ProcessRecorder:
        """A process recorder: an application recorder that can also write a consumer's
        position in the same transaction as the events it decided (`insert_events(...,
        tracking=...)`), for `crm_runtime.consumer.EventStoreHandler`."""
        return self.factory.process_recorder()

    def construct_mapper(self) -> Mapper:
        return self.factory.mapper(transcoder=self.construct_transcoder(),
                                   mapper_class=TracingMapper)

    def check_store(self) -> None:
        """Raises if the store cannot be queried (used by /readyz)."""
        self.recorder.max_notification_id()

"""Read-model storage for consumers: SQLAlchemy over SQLite (default) or PostgreSQL.

`apply_once` is how consumers get exactly-once effect on an at-least-once stream: the
event id is recorded in the same transaction as the effect, and an event already recorded
is skipped. A relay re-send carries the same ce_id, so it is skipped too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from crm_runtime.eventstore import retry_schema_race
from crm_runtime.settings import PlatformSettings

T = TypeVar("T")


def make_engine(platform: PlatformSettings, name: str) -> Engine:
    if platform.store == "postgres":
        url = URL.create(
            "postgresql+psycopg", username=platform.postgres_user,
            password=platform.postgres_password.get_secret_value(),
            host=platform.postgres_host, port=platform.postgres_port,
            database=platform.postgres_dbname)
        return create_engine(url, pool_pre_ping=True, pool_size=5)
    platform.data_dir.mkdir(parents=True, exist_ok=True)
    path = (platform.data_dir / f"{name}.sqlite3").resolve()
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    return engine


def processed_events_table(metadata: MetaData, prefix: str) -> Table:
    return Table(
        f"{prefix}_processed_events", metadata,
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), server_default=func.now()),
    )


class ReadStore:
    def __init__(self, engine: Engine, metadata: MetaData, processed: Table):
        self.engine = engine
        self.metadata = metadata
        self.processed = processed

    def create_tables(self) -> None:
        retry_schema_race(lambda: self.metadata.create_all(self.engine), errors=DBAPIError)

    def drop_tables(self) -> None:
        """Drops the read model and its processed-event ids (before a rebuild by replay)."""
        self.metadata.drop_all(self.engine)

    def apply_once(self, event_id: str, effect: Callable[[Connection], T]) -> tuple[bool, T | None]:
        """Runs `effect` and records `event_id` atomically, unless it was recorded before.

        Returns (applied, result). A duplicate is detected by the primary key, so two
        consumers racing on the same event cannot both apply it.
        """
        try:
            with self.engine.begin() as conn:
                if self._seen(conn, event_id):
                    return False, None
                result = effect(conn)
                conn.execute(insert(self.processed).values(event_id=event_id))
                return True, result
        except IntegrityError:
            with self.engine.connect() as conn:
                if self._seen(conn, event_id):  # another consumer applied it first
                    return False, None
            raise

    def _seen(self, conn: Connection, event_id: str) -> bool:
        query = select(self.processed.c.event_id).where(self.processed.c.event_id == event_id)
        return conn.execute(query).first() is not None

    def check(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

"""Read-model storage for consumers: SQLAlchemy over SQLite (default) or PostgreSQL.

`Projection` is the batch handler of a read model (see `crm_runtime.consumer`): a batch's
effects, the ids of its events and the partition's new position are written in one
transaction, and an event whose id is recorded already is skipped (a relay re-send
carries the same ce_id). Each projection has its own processed-events table and its own
positions, so projections never skip each other's events, and a store that lacks events
(new, switched, restored, rebuilt) is replayed from where its positions say.

`ReadStore.apply_once` is the per-event form of the same guarantee.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError

from crm_runtime import tracing
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.errors import Conflict
from crm_runtime.eventstore import retry_schema_race
from crm_runtime.group_commit import GroupCommit, all_or_each
from crm_runtime.settings import PlatformSettings

if TYPE_CHECKING:
    from crm_runtime.consumer import Delivery

T = TypeVar("T")


def make_engine(platform: PlatformSettings, name: str) -> Engine:
    if platform.store == "postgres":
        url = URL.create(
            "postgresql+psycopg", username=platform.postgres_user,
            password=platform.postgres_password.get_secret_value(),
            host=platform.postgres_host, port=platform.postgres_port,
            database=platform.postgres_dbname)
        engine = create_engine(url, pool_size=5)
        _ping_when_idle(engine)
        return engine
    platform.data_dir.mkdir(parents=True, exist_ok=True)
    path = (platform.data_dir / f"{name}.sqlite3").resolve()
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    event.listen(engine, "connect", _sqlite_wal)
    return engine


# A pooled PostgreSQL connection is pinged before use only when it sat idle that long: a
# server restart is still noticed (the dead connection is replaced, as with pool_pre_ping),
# and a busy service does not pay one more round trip for every checkout.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error:  # e.g. AdminShutdown: the server ended it
            alive = False
        if not alive:
            raise DisconnectionError("the connection was closed while idle")  # the pool replaces it

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    # Readers (the API) never block the consumer's writes, and a commit is not an fsync of
    # the whole journal. A crash can lose the last commits, never half of one: a lost
    # commit takes its positions with it, so the consumer applies those events again.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(engine: Engine) -> contextlib.AbstractContextManager[Any]:
    """SQLite takes one writer at a time; the partitions' threads queue here rather than in
    SQLite's busy handler (which sleeps up to 100 ms between tries) or fail on a snapshot
    that another writer moved. PostgreSQL needs no lock."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _write_locks_guard:
        return _write_locks.setdefault(str(engine.url), threading.Lock())


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


class ConcurrentApply(Conflict):
    """Another consumer recorded some of this batch's events (or this partition's first
    position) at the same moment: the transaction was rolled back; applying the batch
    again skips what the other one did. A `Conflict`: the consumer retries it."""


_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_ID_CHUNK = 1000  # event ids per IN (...) query or per INSERT
_Part = tuple[str, int, "Sequence[Delivery]"]  # one partition's batch: topic, partition, deliveries
# Each dialect's INSERT (both have ON CONFLICT and RETURNING).
DIALECT_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


# Statements built once and run with a list of rows (SQLAlchemy sends them as one multi-row
# INSERT): a statement built with its rows' values in it has no cache key, so SQLAlchemy
# compiled it again for every batch, a tenth of a projection's CPU.

@functools.lru_cache(maxsize=64)
def _record_new_statement(dialect: str, processed: Table) -> Any:
    return (DIALECT_INSERTS[dialect](processed)
            .on_conflict_do_nothing(index_elements=[processed.c.event_id])
            .returning(processed.c.event_id))


class Projection:
    """A read model fed in batches: a `crm_runtime.consumer.BatchHandler`.

    `apply_event(conn, envelope)` writes one event's effect with the given connection
    (upserts keyed by the read model's ids), the producer's trace context bound. Or,
    set-based, `apply_events(conn, envelopes)` writes the effects of a batch's new events
    (in order, each id once) with a few statements: against PostgreSQL a round trip per
    event is what limits a projection. The projection owns two tables besides the
    read model's, both named after it: `<name>_processed_events(event_id)` and
    `<name>_positions(topic, partition, offset)`; `apply` writes the effects of the
    events not seen before, their ids and the new position in ONE transaction.

    `metadata` holds the read model's own tables (one MetaData per projection): the two
    tables are added to it, `create_tables` creates them all, `drop` drops them all and
    `reset` makes them again, empty (a rebuild: the consumer then replays from the start,
    with no consumer-group surgery).
    """

    def __init__(self, store: Engine | ReadStore, name: str,
                 apply_event: Callable[[Connection, EventEnvelope], object] | None = None,
                 metadata: MetaData | None = None, *,
                 apply_events: Callable[[Connection, Sequence[EventEnvelope]], object] | None = None,
                 create: bool = True):
        if not _NAME.fullmatch(name):
            raise ValueError(f"projection name {name!r}: lower-case letters, digits and _, at most 40")
        if (apply_event is None) == (apply_events is None):
            raise TypeError("give apply_event or apply_events")
        self.engine: Engine = store.engine if isinstance(store, ReadStore) else store
        self.name = name
        self.apply_event = apply_event
        self.apply_events = apply_events
        self.metadata = metadata if metadata is not None else MetaData()
        self.processed = self._table(
            f"{name}_processed_events",
            Column("event_id", String(255), primary_key=True),
            Column("processed_at", DateTime(timezone=True), server_default=func.now()))
        self.positions_table = self._table(
            f"{name}_positions",
            Column("topic", String(255), primary_key=True),
            Column("partition", Integer, primary_key=True, quote=True),
            Column("offset", BigInteger, nullable=False, quote=True),
            Column("updated_at", DateTime(timezone=True), server_default=func.now()))
        self._writing = _write_lock(self.engine)
        self._together: GroupCommit[_Part, None] = GroupCommit(f"projection.{name}", self._apply_together)
        if create:
            self.create_tables()

    def _table(self, name: str, *columns: Column[Any]) -> Table:
        existing = self.metadata.tables.get(name)
        return existing if existing is not None else Table(name, self.metadata, *columns)

    # -- BatchHandler --

    def positions(self) -> dict[tuple[str, int], int]:
        t = self.positions_table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.topic, t.c["partition"], t.c["offset"]))
            return {(topic, partition): offset for topic, partition, offset in rows}

    def apply(self, topic: str, partition: int, deliveries: Sequence[Delivery]) -> None:
        """Partitions' batches applied at the same time share one transaction (a group
        commit): under load the fixed cost of a transaction, not the events, is what a
        projection spends most on."""
        if deliveries:
            self._together.submit((topic, partition, deliveries))

    def _apply_together(self, parts: list[_Part]) -> list[None | BaseException]:
        """One transaction for all; when it fails, each part again on its own, so that one
        partition's faulty event or race is that partition's alone."""
        return all_or_each(parts, self._apply_parts, lambda part: self._apply_alone(*part))

    def _apply_parts(self, parts: Sequence[_Part]) -> None:
        with self._writing, self.engine.begin() as conn:
            for part in parts:
                self.apply_in(conn, *part)

    def _apply_alone(self, topic: str, partition: int, deliveries: Sequence[Delivery]) -> None:
        try:
            self._apply_parts([(topic, partition, deliveries)])
        except IntegrityError as exc:
            # A twin consumer (a rebalance overlap) may have committed some of these events
            # meanwhile: then this is a race, not a fault of the events, and applying the
            # batch again skips what the twin did.
            if self._recorded_any([d.envelope.id for d in deliveries]):
                raise ConcurrentApply(f"{self.name}: events recorded concurrently") from exc
            raise

    def advance(self, topic: str, partition: int, offset: int) -> None:
        with self._writing, self.engine.begin() as conn:
            self._advance(conn, topic, partition, offset)

    # -- the transaction --

    def apply_in(self, conn: Connection, topic: str, partition: int, deliveries: Sequence[Delivery]) -> int:
        """`apply` within the caller's transaction; returns how many events had an effect."""
        new = self._record_new(conn, list(dict.fromkeys(d.envelope.id for d in deliveries)))
        fresh: list[EventEnvelope] = []
        for delivery in deliveries:
            if delivery.envelope.id in new:
                new.discard(delivery.envelope.id)
                fresh.append(delivery.envelope)
        if self.apply_events is not None:
            if fresh:
                self.apply_events(conn, fresh)
        else:
            assert self.apply_event is not None  # one of the two is given (see __init__)
            for envelope in fresh:
                with tracing.bound_from_headers(envelope.context):
                    self.apply_event(conn, envelope)
        self._advance(conn, topic, partition, max(d.offset for d in deliveries))
        return len(fresh)

    def _record_new(self, conn: Connection, event_ids: Sequence[str]) -> set[str]:
        """Records the event ids not recorded before and returns them: one INSERT … ON
        CONFLICT DO NOTHING RETURNING per chunk, where a look-up and then an insert per
        event cost PostgreSQL a statement each. A twin's concurrent insert of an id makes
        this one wait for the twin's commit, and then skip it."""
        statement = _record_new_statement(conn.dialect.name, self.processed)
        new: set[str] = set()
        for start in range(0, len(event_ids), _ID_CHUNK):
            chunk = event_ids[start:start + _ID_CHUNK]
            new.update(conn.execute(statement, [{"event_id": event_id} for event_id in chunk]).scalars())
        return new

    def _recorded_any(self, event_ids: Sequence[str]) -> bool:
        column = self.processed.c.event_id
        with self.engine.connect() as conn:
            return any(conn.execute(select(column).where(column.in_(event_ids[start:start + _ID_CHUNK]))).first()
                       for start in range(0, len(event_ids), _ID_CHUNK))

    def _advance(self, conn: Connection, topic: str, partition: int, offset: int) -> None:
        """Moves the partition's position forward (never back: a slower twin may commit late)."""
        t = self.positions_table
        moved = conn.execute(
            update(t).where(t.c.topic == topic, t.c["partition"] == partition, t.c["offset"] < offset)
            .values({"offset": offset, "updated_at": func.now()}))
        if moved.rowcount:
            return
        exists = conn.execute(
            select(t.c["offset"]).where(t.c.topic == topic, t.c["partition"] == partition)).first()
        if exists is None:
            try:
                conn.execute(insert(t).values({"topic": topic, "partition": partition, "offset": offset}))
            except IntegrityError as exc:
                raise ConcurrentApply(f"{self.name}: position of {topic}:{partition} recorded concurrently") from exc

    # -- schema --

    def create_tables(self) -> None:
        retry_schema_race(lambda: self.metadata.create_all(self.engine), errors=DBAPIError)

    def drop(self) -> None:
        """Drops the read model, its processed-event ids and its positions."""
        self.metadata.drop_all(self.engine)

    def reset(self) -> None:
        """Empty again: the next consumer start replays every topic from the beginning."""
        self.drop()
        self.create_tables()

    def check(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))


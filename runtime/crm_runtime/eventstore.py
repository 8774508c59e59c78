"""Event stores chosen by setting: SQLite files by default, PostgreSQL when CRM_STORE=postgres.

Each service's application subclasses `ServiceApplication`. The store is also the outbox:
the relay follows its notification log, so an event is published if and only if it was
committed. The trace context of the request that caused an event is stored with it, so
the relay can put it in the record's headers.
"""

from __future__ import annotations

import contextvars
import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    PersistenceError,
    ProcessRecorder,
    StoredEvent,
    TrackingRecorder,
)

from crm_runtime import retries, tracing
from crm_runtime.errors import Conflict, InvalidField, NotFound, ServiceError
from crm_runtime.settings import PlatformSettings

TRACE_ATTRIBUTE = "_trace"
# Aggregates `find_many` reads with one query.
FIND_MANY_CHUNK = 100
# Every event must fit in one Kafka record (1 MiB by default) with its headers; the
# relay never skips an event, so an oversized one would stall the topic behind it.
MAX_EVENT_BYTES = 256 * 1024
T = TypeVar("T")
A = TypeVar("A")
C = TypeVar("C")


def project(aggregate: Any, domain_events: Iterable[Any]) -> Any:
    """eventsourcing's `project_aggregate` without its per-event `isinstance` of a runtime
    Protocol, which on Python 3.11 walks the protocol's attributes every time (about a
    tenth of a consumer's CPU when it loads aggregates)."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def store_env(name: str, platform: PlatformSettings) -> dict[str, str]:
    """The eventsourcing environment for application `name` under these settings."""
    return {**_persistence_env(name, platform), **_cipher_env(platform)}


def _cipher_env(platform: PlatformSettings) -> dict[str, str]:
    if platform.cipher_key is None:
        return {}
    return {"CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
            "CIPHER_KEY": platform.cipher_key.get_secret_value()}


def _persistence_env(name: str, platform: PlatformSettings) -> dict[str, str]:
    if platform.store == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if platform.store == "postgres":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "PROCESS_RECORDER_TOPIC": "crm_runtime.postgres_store:PostgresProcessRecorder",
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
        "PERSISTENCE_MODULE": "crm_runtime.sqlite_store:SQLiteFactory",
        "PROCESS_RECORDER_TOPIC": "crm_runtime.sqlite_store:SQLiteProcessRecorder",
        "SQLITE_SYNCHRONOUS": platform.sqlite_synchronous,
        "SQLITE_DBNAME": str((platform.data_dir / f"{name.lower()}.sqlite3").resolve()),
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "true",
    }


def retry_schema_race(create: Callable[[], T],
                      errors: type[Exception] | tuple[type[Exception], ...] = PersistenceError,
                      attempts: int = 8) -> T:
    """Runs `create`, retrying while a twin process creates the same tables (see
    crm_runtime.retries.schema_race); `errors` are the store library's exceptions for it."""
    return retries.schema_race(errors, attempts)(create)


class TracingMapper(Mapper[Any]):
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


def stamp_trace(aggregate: Any, context: Mapping[str, str], since: int = 0) -> None:
    """Stores `context` with the aggregate's pending events (from the `since`th) instead of
    the current one: a consumer deciding a batch saves it in one transaction, each decision
    with its cause's trace (so the dispatcher's command and every log line after it carry it on)."""
    if context:
        for pending in aggregate.pending_events[since:]:
            object.__setattr__(pending, TRACE_ATTRIBUTE, dict(context))


def trace_context(domain_event: Any) -> dict[str, str]:
    return dict(getattr(domain_event, TRACE_ATTRIBUTE, None) or {})


# Aggregates a batched command read ahead in one query (apply_in_order); `find` takes each
# from here once instead of reading it again.
_READ_AHEAD: contextvars.ContextVar[dict[UUID, Any] | None] = contextvars.ContextVar(
    "read_ahead", default=None)


class ServiceApplication(Application[Any]):
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

    def construct_mapper(self) -> Mapper[Any]:
        return self.factory.mapper(transcoder=self.construct_transcoder(),
                                   mapper_class=TracingMapper)

    def check_store(self) -> None:
        """Raises if the store cannot be queried (used by /readyz)."""
        self.recorder.max_notification_id()

    # -- the application kit: what every command and query of every context needs ----------

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        """The aggregate, or None when there is none (or it is of another type)."""
        ahead = _READ_AHEAD.get()
        if ahead and aggregate_id in ahead:
            found = ahead.pop(aggregate_id)
            return found if isinstance(found, cls) else None
        try:
            aggregate: Any = self.repository.get(aggregate_id, projector_func=project)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, cls) else None

    def find_many(self, cls: type[A], aggregate_ids: Iterable[UUID]) -> dict[UUID, A]:
        """The aggregates among `aggregate_ids` that exist and are of type `cls`, read with
        one query per 100 ids where `find` costs two queries each (a snapshot look-up, then
        the events). For aggregates with short histories: every event of each is read, so a
        class with snapshots is read with `find`."""
        ids = list(dict.fromkeys(aggregate_ids))
        if cls in (self.snapshotting_intervals or {}):
            return {aggregate_id: found for aggregate_id in ids
                    if (found := self.find(cls, aggregate_id)) is not None}
        aggregates: dict[UUID, A] = {}
        for start in range(0, len(ids), FIND_MANY_CHUNK):
            rows = _select_events_of(self.recorder, ids[start:start + FIND_MANY_CHUNK])
            for aggregate_id, stored in groupby(rows, key=lambda row: row.originator_id):
                aggregate = project(None, map(self.mapper.to_domain_event, stored))
                if isinstance(aggregate, cls):
                    aggregates[UUID(str(aggregate_id))] = aggregate
        return aggregates

    def get(self, cls: type[A], raw_id: str | UUID, what: str | None = None) -> A:
        """The aggregate named by a caller's id, or NotFound (a malformed id: InvalidField)."""
        what = what or cls.__name__.lower()
        aggregate = self.find(cls, parse_id(f"{what}_id", raw_id))
        if aggregate is None:
            raise NotFound(f"{what} {raw_id} does not exist")
        return aggregate

    def save_changes(self, *aggregates: Any) -> None:
        """Saves, turning a lost optimistic-concurrency race into Conflict (409 / ABORTED)."""
        try:
            self.save(*aggregates)
        except IntegrityError:
            names = ", ".join(f"{type(a).__name__.lower()} {a.id}" for a in aggregates if a is not None)
            raise Conflict(f"{names} changed concurrently; reload and retry") from None

    def create_once(self, aggregate: A, same: Callable[[A], bool]) -> tuple[A, bool]:
        """Saves a new aggregate whose id derives from an idempotency key; returns
        (aggregate, created). A repeat (or a racing twin) returns the first one, provided
        `same(first)` holds: the same key with a different request is a Conflict."""
        # Saved first, read only when that fails: a new key (the common case) costs one write.
        try:
            self.save(aggregate)  # type: ignore[arg-type]  # an eventsourcing aggregate
            return aggregate, True
        except IntegrityError:  # a repeat, or a concurrent request with the same key won
            existing = self.find(type(aggregate), aggregate.id)  # type: ignore[attr-defined]
            if existing is None:
                raise
        if not same(existing):
            raise Conflict("Idempotency-Key was already used for a different request")
        return existing, False

    def apply_in_order(self, commands: Sequence[C], contexts: Sequence[Mapping[str, str]],
                       target: Callable[[C], UUID], load: Callable[[UUID], A],
                       act: Callable[[A, C], bool],
                       read_ahead: type[A] | None = None) -> tuple[int, ServiceError | None, list[A]]:
        """The batched form of a command (crm.common.v1.CommandResult): `act(aggregate,
        command)` for each command in order, on the aggregate `target(command)` names
        (loaded once per batch by `load`), stopping at the first ServiceError; what was
        applied is saved in ONE transaction. `contexts`, parallel to `commands` (may be
        shorter), is each one's trace context, stored with the events it caused.

        Returns (how many were applied, the refusal or None, the aggregates changed).
        `act` returns whether it changed anything (False: a repeat, by idempotency key).
        `read_ahead`: the aggregates' class, to read them all in one query (`find_many`)
        before `load` (through `find`) takes each."""
        if read_ahead is None:
            return self._apply_in_order(commands, contexts, target, load, act)
        ids = []
        for command in commands:
            try:
                ids.append(target(command))
            except ServiceError:
                break  # refused in its turn, below
        token = _READ_AHEAD.set(self.find_many(read_ahead, ids))
        try:
            return self._apply_in_order(commands, contexts, target, load, act)
        finally:
            _READ_AHEAD.reset(token)

    def _apply_in_order(self, commands: Sequence[C], contexts: Sequence[Mapping[str, str]],
                        target: Callable[[C], UUID], load: Callable[[UUID], A],
                        act: Callable[[A, C], bool]) -> tuple[int, ServiceError | None, list[A]]:
        loaded: dict[UUID, A] = {}  # one copy of an aggregate named twice in the batch
        applied, refused = 0, None
        for n, command in enumerate(commands):
            try:
                aggregate_id = target(command)
                aggregate = loaded[aggregate_id] if aggregate_id in loaded else load(aggregate_id)
                before = len(aggregate.pending_events)  # type: ignore[attr-defined]
                if act(aggregate, command) and n < len(contexts):
                    stamp_trace(aggregate, contexts[n], since=before)
            except ServiceError as exc:
                refused = exc
                break
            loaded[aggregate_id] = aggregate
            applied += 1
        changed = [aggregate for aggregate in loaded.values()
                   if aggregate.pending_events]  # type: ignore[attr-defined]
        if changed:
            self.save_changes(*changed)
        return applied, refused, changed


def _select_events_of(recorder: Any, ids: Sequence[UUID]) -> list[StoredEvent]:
    """The stored events of the aggregates `ids`, by aggregate then version, in one query
    (the recorder's own API reads one aggregate at a time)."""
    from eventsourcing.postgres import PostgresAggregateRecorder
    from eventsourcing.sqlite import SQLiteAggregateRecorder

    if isinstance(recorder, PostgresAggregateRecorder):
        from psycopg.sql import SQL, Identifier

        query = SQL("SELECT originator_id, originator_version, topic, state FROM {0}.{1} "
                    "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(query, (list(ids),))
            return [StoredEvent(row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"]))
                    for row in cursor.fetchall()]
    if isinstance(recorder, SQLiteAggregateRecorder):
        as_hex = recorder.datastore.originator_id_type == "uuid"  # how the recorder stores ids
        marks = ",".join("?" * len(ids))
        statement = (f"SELECT originator_id, originator_version, topic, state FROM {recorder.events_table_name} "
                     f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version")
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, [aggregate_id.hex if as_hex else str(aggregate_id) for aggregate_id in ids])
            return [StoredEvent(recorder.convert_originator_id(row["originator_id"]), row["originator_version"],
                                row["topic"], row["state"]) for row in cursor.fetchall()]
    return [stored for aggregate_id in sorted(ids, key=str)  # in memory: one look-up each
            for stored in recorder.select_events(aggregate_id)]


def check_version(aggregate: Any, expected: int | None) -> None:
    """Optimistic concurrency on a caller's `If-Match` / expected_version (None: no check)."""
    if expected is not None and aggregate.version != expected:
        raise Conflict(f"{type(aggregate).__name__.lower()} {aggregate.id} is at version "
                       f"{aggregate.version}, not {expected}")


def parse_id(field: str, raw: str | UUID) -> UUID:
    try:
        return raw if isinstance(raw, UUID) else UUID(str(raw))
    except ValueError:
        raise InvalidField(field, f"{str(raw)[:80]!r} is not a UUID") from None


def caller_scoped(subject: str | None, key: str | None) -> str | None:
    """Idempotency keys are the caller's own: two callers' "1" are different requests."""
    return f"{subject}\n{key}" if key and subject else key

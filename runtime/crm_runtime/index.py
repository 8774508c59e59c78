"""Query models for lists: index tables that follow a service's own notification log.

An event store answers "this record, please", not "rep-7's leads changed since Monday, 50
at a time". For that a service keeps index tables in SQL (through
crm_runtime.readstore.make_engine: the service's PostgreSQL database, or a SQLite file of
its own beside the store) and fills them from its event store's notification log. This
module is the machinery every such query model shares; a service declares its tables and
says, per event and its position in the log, which rows change (`rows_of`):

- `Upsert(table, row)`: the record's whole row (an event that carries the whole state);
  it replaces the stored row only when its `version` is newer, and keeps the columns named
  in `keep` (by default `id` and `created_at`) of the row first inserted.
- `Patch(table, id, version, values)`: some columns of an existing row, again only when
  the event is newer than the row (an event that carries only what it changed).

The index follows the log with a position that is written in the same transaction as the
rows it changed, so it is always exactly "the log up to its position": it cannot diverge,
a crash loses nothing (the next catch-up starts at the stored position), and `rebuild()`
(drop, recreate, catch up from the start) gives the same rows. An index whose stored tables
lack a column or a table its declaration has (added by a new release) is dropped when it is
opened and so rebuilt by the next catch-up: no migration to write. Rows only move forward in
version and the position only forward, so catch-ups that race (threads, API processes) are
harmless. A service catches up when its API starts, synchronously after each command (a
client reads its own writes) and before each list (another process's writes show too).

Lists page with an opaque cursor (`encode_cursor`/`decode_cursor`: the last row's sort
key, tagged with the list it belongs to) and answer a `Page`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from eventsourcing.application import Application
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from crm_runtime import logs
from crm_runtime.errors import InvalidField
from crm_runtime.eventstore import retry_schema_race
from crm_runtime.readstore import DIALECT_INSERTS, make_engine
from crm_runtime.settings import PlatformSettings

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
CURSOR_MAX = 1024
BATCH_SIZE = 500  # notifications per catch-up transaction
R = TypeVar("R")
log = logs.get(__name__)

# Sort keys compare by code point on every store (PostgreSQL's default collation would
# order by language rules, SQLite's by code point): the same list on both, and cursors
# compare exactly as the order does.
SortKey = String().with_variant(String(collation="C"), "postgresql")


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    next_cursor: str | None  # None: this is the last page


@dataclass(frozen=True)
class Upsert:
    """A record's whole row, as of the event's version."""

    table: Table
    row: dict[str, Any]
    keep: tuple[str, ...] = ("id", "created_at")


@dataclass(frozen=True)
class Patch:
    """Some columns of an existing row, as of `version`."""

    table: Table
    id: str
    version: int
    values: dict[str, Any] = field(default_factory=dict)


Change = Upsert | Patch
# (domain event, its position in the log) -> the rows it changes, in order
RowsOf = Callable[[Any, int], Iterable[Change]]


def position_table(metadata: MetaData, name: str) -> Table:
    """The table that holds an index's position in its log (one row per index)."""
    return Table(name, metadata,
                 Column("name", String(64), primary_key=True),
                 Column("position", BigInteger, nullable=False))


class LogIndex:
    """Index tables in `metadata`, kept up to date from `app`'s notification log."""

    def __init__(self, app: Application[Any], engine: Engine, metadata: MetaData,
                 positions: Table, position_name: str, rows_of: RowsOf, serialised: bool = False):
        """`serialised`: one shared connection (in-memory SQLite), so every use takes turns."""
        self.app = app
        self.engine = engine
        # Reads on PostgreSQL outside a transaction: each statement sees what is committed
        # (as READ COMMITTED would), without a BEGIN and a ROLLBACK round trip around it.
        self._reads = (engine.execution_options(isolation_level="AUTOCOMMIT")
                       if engine.dialect.name == "postgresql" else engine)
        self.metadata = metadata
        self.positions = positions
        self.position_name = position_name
        self.rows_of = rows_of
        self._writing = threading.Lock()
        self._reading: AbstractContextManager[Any] = self._writing if serialised else nullcontext()

    def create_tables(self) -> None:
        def create() -> None:
            if self._outdated():
                with self._writing:
                    self.metadata.drop_all(self.engine)
            self.metadata.create_all(self.engine)
            # create_all makes a table's indexes only with the table: an index declared
            # since the table was made is made here.
            for table in self.metadata.sorted_tables:
                for index in table.indexes:
                    index.create(self.engine, checkfirst=True)

        retry_schema_race(create, errors=DBAPIError)

    def _outdated(self) -> bool:
        """Whether a stored table lacks a declared column (its rows cannot be patched), or a
        built index lacks a declared table (its position is past the events that fill it)."""
        stored = inspect(self.engine)
        built = stored.has_table(self.positions.name)
        for table in self.metadata.sorted_tables:
            if table is self.positions:
                continue
            if not stored.has_table(table.name):
                if built:
                    return True
                continue
            have = {column["name"] for column in stored.get_columns(table.name)}
            if any(column.name not in have for column in table.columns):
                return True
        return False

    def rebuild(self) -> int:
        """Drops the index and builds it again from the whole log; returns the events read."""
        with self._writing:
            self.metadata.drop_all(self.engine)
        self.create_tables()
        return self.catch_up()

    def position(self) -> int:
        with self._reading, self._reads.connect() as conn:
            return self._position(conn)

    def _position(self, conn: Connection) -> int:
        found = conn.execute(_position_query(self.positions), {"name": self.position_name}).scalar()
        return int(found or 0)

    def catch_up(self) -> int:
        """Applies every notification after the stored position; returns how many it read."""
        read = 0
        if self.position() >= (self.app.recorder.max_notification_id() or 0):
            return read  # up to date: the common case of a list, without waiting for the lock
        with self._writing:
            while True:
                with self._reads.connect() as conn:
                    after = self._position(conn)
                batch = self.app.recorder.select_notifications(
                    start=after, limit=BATCH_SIZE, inclusive_of_start=False)
                if not batch:
                    return read
                changes: list[Change] = []
                for notification in batch:
                    event = self.app.mapper.to_domain_event(notification)
                    changes.extend(self.rows_of(event, notification.id))
                with self.engine.begin() as conn:
                    apply_changes(conn, changes)
                    self._move_position(conn, batch[-1].id)
                read += len(batch)
                if len(batch) < BATCH_SIZE:
                    return read  # the end of the log: no second look to find it empty

    def _move_position(self, conn: Connection, position: int) -> None:
        conn.execute(_position_upsert(conn.dialect.name, self.positions),
                     {"name": self.position_name, "position": position})

    def read(self) -> AbstractContextManager[Connection]:
        """A connection to query the index with (taking turns when serialised)."""
        return _Reading(self._reading, self._reads)

    def check(self) -> None:
        with self.read() as conn:
            conn.execute(select(1))


class _Reading:
    def __init__(self, guard: AbstractContextManager[Any], engine: Engine):
        self.guard = guard
        self.engine = engine
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        self.guard.__enter__()
        self.conn = self.engine.connect()
        return self.conn

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.conn is not None:
                self.conn.close()
        finally:
            self.guard.__exit__(*exc)


def apply_changes(conn: Connection, changes: Sequence[Change]) -> None:
    """Applies changes in log order; consecutive upserts into one table go in one statement,
    consecutive patches of the same columns of one table in one executemany."""
    run: list[Upsert] = []
    patches: list[Patch] = []
    patched: set[Any] = set()  # the ids in `patches`
    for change in changes:
        if isinstance(change, Upsert):
            _patch_all(conn, patches)
            patches, patched = [], set()
            if run and (run[0].table is not change.table or run[0].keep != change.keep):
                _flush(conn, run)
                run = []
            run.append(change)
            continue
        _flush(conn, run)
        run = []
        if patches and (patches[0].table is not change.table
                        or patches[0].values.keys() != change.values.keys()
                        or change.id in patched):  # one record twice: in order
            _patch_all(conn, patches)
            patches, patched = [], set()
        patches.append(change)
        patched.add(change.id)
    _flush(conn, run)
    _patch_all(conn, patches)


def _patch_all(conn: Connection, patches: list[Patch]) -> None:
    if len(patches) == 1:
        _patch(conn, patches[0])
    elif patches:
        table = patches[0].table
        statement = (update(table)
                     .where(table.c.id == bindparam("_id"), table.c.version < bindparam("_version"))
                     .values({**{name: bindparam(name) for name in patches[0].values},
                              "version": bindparam("_version")}))
        conn.execute(statement, [{**patch.values, "_id": patch.id, "_version": patch.version} for patch in patches])


def _flush(conn: Connection, run: list[Upsert]) -> None:
    """One row per record (the latest, with the kept columns of the earliest): a statement
    may not touch one row twice on PostgreSQL."""
    if not run:
        return
    table, keep = run[0].table, run[0].keep
    rows: dict[str, dict[str, Any]] = {}
    for change in run:
        row = dict(change.row)
        earlier = rows.get(row["id"])
        if earlier is not None:
            row.update({name: earlier[name] for name in keep if name in earlier})
        rows[row["id"]] = row
    upsert(conn, table, list(rows.values()), keep)


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]],
           keep: tuple[str, ...] = ("id", "created_at")) -> None:
    """Inserts or replaces rows, but never with an older version than the one stored."""
    if rows:
        conn.execute(_upsert_statement(conn.dialect.name, table, tuple(keep)), rows)


# Statements are built once per table and dialect: building an ON CONFLICT statement costs
# more than running it, and an index catches up after every command of its service.

@functools.lru_cache(maxsize=256)
def _upsert_statement(dialect: str, table: Table, keep: tuple[str, ...]) -> Any:
    statement = DIALECT_INSERTS[dialect](table)
    replaced = {column.name: statement.excluded[column.name] for column in table.columns
                if column.name not in keep}
    return statement.on_conflict_do_update(index_elements=[table.c.id], set_=replaced,
                                           where=table.c.version < statement.excluded.version)


@functools.lru_cache(maxsize=64)
def _position_upsert(dialect: str, table: Table) -> Any:
    statement = DIALECT_INSERTS[dialect](table).values(name=bindparam("name"), position=bindparam("position"))
    return statement.on_conflict_do_update(
        index_elements=[table.c.name], set_={"position": statement.excluded.position},
        where=table.c.position < statement.excluded.position)


@functools.lru_cache(maxsize=64)
def _position_query(table: Table) -> Any:
    return select(table.c.position).where(table.c.name == bindparam("name"))


def _patch(conn: Connection, change: Patch) -> None:
    table = change.table
    conn.execute(update(table).where(table.c.id == change.id, table.c.version < change.version)
                 .values(**change.values, version=change.version))


def open_engine(platform: PlatformSettings, name: str) -> tuple[Engine, bool]:
    """The engine of an index named `name` under these settings, and whether its use must be
    serialised (application tests: an in-memory database, like the store)."""
    if platform.store == "memory":
        return create_engine("sqlite://", poolclass=StaticPool,
                             connect_args={"check_same_thread": False}), True
    return make_engine(platform, name), False


# -- lists ------------------------------------------------------------------------------------

def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fold(text: str) -> str:
    """The case-insensitive form of a text (sort keys, prefix and contains filters)."""
    return text.casefold()


def like_pattern(text: str, prefix: bool = False) -> str:
    """A LIKE pattern (escape character `\\`) matching `text` as a prefix or anywhere."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%" if prefix else f"%{escaped}%"


def encode_cursor(kind: str, *keys: str | int) -> str:
    raw = json.dumps([kind, *keys], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(kind: str, cursor: str, types: tuple[type, ...] = (str, str)) -> tuple[Any, ...]:
    """The sort key a cursor this service gave out stands for; anything else is refused."""
    refused = InvalidField("cursor", "is not a cursor this list gave out; start again without one")
    if len(cursor) > CURSOR_MAX:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, *keys = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise refused from None
    if tag != kind or len(keys) != len(types):
        raise refused
    for key, expected in zip(keys, types, strict=True):
        if type(key) is not expected:  # bool is an int to isinstance
            raise refused
    return tuple(keys)


def one_owner(asked: str | None, only: str | None) -> str | None | bool:
    """The owner to filter by: what the caller asked and what it may see (False: nothing)."""
    if asked is not None and only is not None and asked != only:
        return False
    return asked if asked is not None else only


def page_of(items: list[R], limit: int, cursor_of: Callable[[R], str]) -> Page[R]:
    """A page of `limit` items from a query that asked for limit + 1."""
    if len(items) <= limit:
        return Page(items, None)
    return Page(items[:limit], cursor_of(items[limit - 1]))


def check_limit(limit: int | None) -> int:
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidField("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def check_since(field_name: str, since: datetime | None) -> datetime | None:
    if since is not None and since.utcoffset() is None:
        raise InvalidField(field_name, "needs a time zone offset (RFC 3339), e.g. 2025-01-31T09:00:00Z")
    return since


Condition = ColumnElement[bool]


V = TypeVar("V", bound=LogIndex)
_OPENING = threading.Lock()  # held only while a query model is first opened


class ViewsOf(Generic[V]):
    """Mixed into a service application: its query model, opened when first used (only
    the API process lists anything, so relays, workers and dispatchers never open it),
    and brought up to date after each command. Subclasses say how to open it."""

    _views: V | None = None

    def make_views(self) -> V:
        raise NotImplementedError

    @property
    def views(self) -> V:
        if self._views is None:
            with _OPENING:
                if self._views is None:
                    self._views = self.make_views()
        return self._views

    def catch_up_views(self) -> int:
        return self.views.catch_up()

    def _refresh_views(self) -> None:
        # The command is committed whatever happens here; the next list catches up again.
        try:
            self.views.catch_up()
        except Exception as exc:  # noqa: BLE001
            log.exception("views.catch_up_failed", error=repr(exc))


def rebuild_command(context_name: str, module: str, argv: list[str] | None = None) -> int:
    """`python -m <module> rebuild`: drops a context's index and rebuilds it from its store
    (every service's views module answers it with this)."""
    import sys

    from crm_runtime import context

    args = sys.argv[1:] if argv is None else argv
    if args != ["rebuild"]:
        print(f"usage: python -m {module} rebuild", file=sys.stderr)
        return 2
    declared = context.get(context_name)
    app = declared.application(declared.load_settings())
    read = app.views.rebuild()
    print(f"{context_name} index rebuilt from {read} events (position {app.views.position()})")
    return 0

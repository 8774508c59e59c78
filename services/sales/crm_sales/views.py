# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The sales query model: index tables of accounts and contacts, for lists.

An event store answers "this account, please", not "rep-7's accounts whose name starts
with 'ac', changed since Monday, 50 at a time". For that the sales service keeps one index
table per record type in SQL (through crm_runtime.readstore.make_engine: the service's
PostgreSQL database, or a SQLite file of its own beside the store), and fills it from the
sales event store's own notification log:

- It follows the log with a position that is written in the same transaction as the rows
  it changed, so the index is always exactly "the log up to its position": it cannot
  diverge, a crash loses nothing (the next catch-up starts at the stored position), and
  `rebuild()` (drop, recreate, catch up from the start) gives the same rows.
- Every event carries its record's whole state, so a row is simply its record's latest
  event. A row keeps that event's version and is only replaced by a later one, and the
  position only moves forward, so catch-ups that race (threads, API processes) are
  harmless.
- The API process catches up when it starts, synchronously after each command (a client
  reads its own writes) and before each list (another process's writes show too).

Lists are ordered by name (case-insensitive), then id, and paged with an opaque cursor
(the last row's sort key); filters combine with AND. Contacts have no owner of their own:
a contact row is joined to its account's row, whose owner it lists and is filtered by.
`python -m crm_sales.views rebuild` rebuilds the index of the configured store (lists fail
for the moment it takes, so run it with the API stopped, or when lists can wait).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from eventsourcing.application import Application
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    or_,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from crm_runtime import logs
from crm_runtime.errors import InvalidField
from crm_runtime.eventstore import retry_schema_race
from crm_runtime.readstore import make_engine
from crm_runtime.settings import PlatformSettings
from crm_sales.domain import ID_MAX, Account, Contact

log = logs.get(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
CURSOR_MAX = 1024
BATCH_SIZE = 500  # notifications per catch-up transaction
R = TypeVar("R")

# Sort keys compare by code point on every store (PostgreSQL's default collation would
# order by language rules, SQLite's by code point): the same list on both, and cursors
# compare exactly as the order does.
SortKey = String().with_variant(String(collation="C"), "postgresql")

metadata = MetaData()
accounts = Table(
    "sales_account_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("name", String, nullable=False),
    Column("name_key", SortKey, nullable=False),  # the name, case-folded: order and prefix filter
    Column("domain", String),
    Column("industry", String),
    Column("region", String),
    Column("tier", String(20)),
    Column("owner_id", String(ID_MAX), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("sales_account_index_by_name", "name_key", "id"),
    Index("sales_account_index_by_owner", "owner_id", "name_key", "id"),
    Index("sales_account_index_by_update", "updated_at"),
    # Lead conversion looks accounts up by the email domain (crm_sales.conversion).
    Index("sales_account_index_by_domain", "domain", "created_at", "id"),
)
contacts = Table(
    "sales_contact_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("name", String, nullable=False),
    Column("name_key", SortKey, nullable=False),
    Column("email", String),
    Column("phone", String),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("sales_contact_index_by_name", "name_key", "id"),
    Index("sales_contact_index_by_account", "account_id", "name_key", "id"),
    Index("sales_contact_index_by_update", "updated_at"),
)
positions = Table(
    "sales_index_position", metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
)
POSITION_NAME = "sales-index"


# -- what queries answer ------------------------------------------------------------------

@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    domain: str | None
    industry: str | None
    region: str | None
    tier: str | None
    owner_id: str
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, account: Account) -> AccountRecord:
        return cls(id=str(account.id), name=account.name, domain=account.domain,
                   industry=account.industry, region=account.region,
                   tier=account.tier.value if account.tier else None, owner_id=account.owner_id,
                   version=account.version, created_at=account.created_on,
                   updated_at=account.modified_on)


@dataclass(frozen=True)
class ContactRecord:
    id: str
    account_id: str
    name: str
    email: str | None
    phone: str | None
    owner_id: str  # the owner of its account
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, contact: Contact, owner_id: str) -> ContactRecord:
        return cls(id=str(contact.id), account_id=contact.account_id, name=contact.name,
                   email=contact.email, phone=contact.phone, owner_id=owner_id,
                   version=contact.version, created_at=contact.created_on,
                   updated_at=contact.modified_on)


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    next_cursor: str | None  # None: this is the last page


@dataclass(frozen=True)
class ListQuery:
    """A list request, validated (crm_sales.application.list_query builds it)."""

    limit: int = DEFAULT_LIMIT
    after: tuple[str, str] | None = None  # the decoded cursor: (name_key, id)
    owner_id: str | None = None
    name_prefix: str | None = None
    updated_since: datetime | None = None
    account_id: str | None = None  # contacts only


def name_key(name: str) -> str:
    return name.casefold()


def encode_cursor(kind: str, key: str, record_id: str) -> str:
    raw = json.dumps([kind, key, record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(kind: str, cursor: str) -> tuple[str, str]:
    """The sort key a cursor this service gave out stands for; anything else is refused."""
    refused = InvalidField("cursor", "is not a cursor this list gave out; start again without one")
    if len(cursor) > CURSOR_MAX:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, key, record_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise refused from None
    if tag != kind or not isinstance(key, str) or not isinstance(record_id, str):
        raise refused
    return key, record_id


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the index ------------------------------------------------------------------------------

class SalesViews:
    def __init__(self, app: Application, engine: Engine, serialised: bool = False):
        """`serialised`: one shared connection (in-memory SQLite), so every use takes turns."""
        self.app = app
        self.engine = engine
        self._writing = threading.Lock()
        self._reading = self._writing if serialised else nullcontext()

    def create_tables(self) -> None:
        def create() -> None:
            metadata.create_all(self.engine)
            # create_all makes a table's indexes only with the table: an index added later
            # (by domain) is made here for tables that existed before it.
            for index in accounts.indexes:
                index.create(self.engine, checkfirst=True)

        retry_schema_race(create, errors=DBAPIError)

    def rebuild(self) -> int:
        """Drops the index and builds it again from the whole log; returns the events read."""
        with self._writing:
            metadata.drop_all(self.engine)
        self.create_tables()
        return self.catch_up()

    def position(self) -> int:
        with self._reading, self.engine.connect() as conn:
            return self._position(conn)

    @staticmethod
    def _position(conn: Connection) -> int:
        found = conn.execute(select(positions.c.position).where(positions.c.name == POSITION_NAME)).scalar()
        return int(found or 0)

    def catch_up(self) -> int:
        """Applies every notification after the stored position; returns how many it read."""
        read = 0
        if self.position() >= (self.app.recorder.max_notification_id() or 0):
            return read  # up to date: the common case of a list, without waiting for the lock
        with self._writing:
            while True:
                with self.engine.connect() as conn:
                    after = self._position(conn)
                batch = self.app.recorder.select_notifications(
                    start=after, limit=BATCH_SIZE, inclusive_of_start=False)
                if not batch:
                    return read
                account_rows, contact_rows = self._rows(batch)
                with self.engine.begin() as conn:
                    _upsert(conn, accounts, account_rows)
                    _upsert(conn, contacts, contact_rows)
                    _move_position(conn, batch[-1].id)
                read += len(batch)

    def _rows(self, batch: Sequence[Any]) -> tuple[list[dict], list[dict]]:
        """The latest row of each record the batch changed."""
        rows: dict[str, dict[str, dict]] = {"account": {}, "contact": {}}
        for notification in batch:
            event = self.app.mapper.to_domain_event(notification)
            kind, row = _row_of(event)
            if kind is None:
                continue
            earlier = rows[kind].get(row["id"])
            if earlier is not None:
                row["created_at"] = earlier["created_at"]
            rows[kind][row["id"]] = row
        return list(rows["account"].values()), list(rows["contact"].values())

    # -- queries --------------------------------------------------------------------------

    def list_accounts(self, query: ListQuery, only_owner: str | None) -> Page[AccountRecord]:
        owner = _one_owner(query.owner_id, only_owner)
        if owner is False:
            return Page([], None)
        conditions = _common(accounts, query)
        if owner is not None:
            conditions.append(accounts.c.owner_id == owner)
        statement = (select(accounts).where(*conditions)
                     .order_by(accounts.c.name_key, accounts.c.id).limit(query.limit + 1))
        with self._reading, self.engine.connect() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [AccountRecord(
            id=row["id"], name=row["name"], domain=row["domain"], industry=row["industry"],
            region=row["region"], tier=row["tier"], owner_id=row["owner_id"], version=row["version"],
            created_at=_utc(row["created_at"]), updated_at=_utc(row["updated_at"])) for row in rows]
        return _page("account", items, rows, query.limit)

    def list_contacts(self, query: ListQuery, only_owner: str | None) -> Page[ContactRecord]:
        owner = _one_owner(query.owner_id, only_owner)
        if owner is False:
            return Page([], None)
        conditions = _common(contacts, query)
        if owner is not None:
            conditions.append(accounts.c.owner_id == owner)
        if query.account_id is not None:
            conditions.append(contacts.c.account_id == query.account_id)
        statement = (select(contacts, accounts.c.owner_id)
                     .join(accounts, accounts.c.id == contacts.c.account_id)
                     .where(*conditions)
                     .order_by(contacts.c.name_key, contacts.c.id).limit(query.limit + 1))
        with self._reading, self.engine.connect() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [ContactRecord(
            id=row["id"], account_id=row["account_id"], name=row["name"], email=row["email"],
            phone=row["phone"], owner_id=row["owner_id"], version=row["version"],
            created_at=_utc(row["created_at"]), updated_at=_utc(row["updated_at"])) for row in rows]
        return _page("contact", items, rows, query.limit)

    def account_with_domain(self, domain: str) -> str | None:
        """The id of the earliest account opened with this domain (lower-case ASCII, as
        accounts keep it), or None. Reads the index as it is: catch up first."""
        statement = (select(accounts.c.id).where(accounts.c.domain == domain)
                     .order_by(accounts.c.created_at, accounts.c.id).limit(1))
        with self._reading, self.engine.connect() as conn:
            found = conn.execute(statement).scalar()
        return str(found) if found is not None else None

    def check(self) -> None:
        with self._reading, self.engine.connect() as conn:
            conn.execute(select(1))


def _row_of(event: Any) -> tuple[str | None, dict]:
    if isinstance(event, (Account.Opened, Account.Changed)):
        return "account", {
            "id": str(event.originator_id), "name": event.name, "name_key": name_key(event.name),
            "domain": event.domain, "industry": event.industry, "region": event.region,
            "tier": event.tier, "owner_id": event.owner_id, "version": event.originator_version,
            "created_at": _utc(event.timestamp), "updated_at": _utc(event.timestamp)}
    if isinstance(event, (Contact.Added, Contact.Changed)):
        return "contact", {
            "id": str(event.originator_id), "account_id": event.account_id, "name": event.name,
            "name_key": name_key(event.name), "email": event.email, "phone": event.phone,
            "version": event.originator_version,
            "created_at": _utc(event.timestamp), "updated_at": _utc(event.timestamp)}
    return None, {}


def _insert_for(conn: Connection) -> Any:
    """The dialect's INSERT (both have ON CONFLICT)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _upsert(conn: Connection, table: Table, rows: list[dict]) -> None:
    """Inserts or replaces rows, but never with an older version than the one stored."""
    if not rows:
        return
    statement = _insert_for(conn)(table)
    replaced = {column.name: statement.excluded[column.name] for column in table.columns
                if column.name not in ("id", "created_at")}
    conn.execute(statement.on_conflict_do_update(
        index_elements=[table.c.id], set_=replaced,
        where=table.c.version < statement.excluded.version), rows)


def _move_position(conn: Connection, position: int) -> None:
    statement = _insert_for(conn)(positions).values(name=POSITION_NAME, position=position)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[positions.c.name], set_={"position": statement.excluded.position},
        where=positions.c.position < statement.excluded.position))


def _one_owner(asked: str | None, only: str | None) -> str | None | bool:
    """The owner to filter by: what the caller asked and what it may see (False: nothing)."""
    if asked is not None and only is not None and asked != only:
        return False
    return asked if asked is not None else only


def _common(table: Table, query: ListQuery) -> list:
    conditions: list[ColumnElement[bool]] = []
    if query.name_prefix:
        escaped = (name_key(query.name_prefix).replace("\\", "\\\\")
                   .replace("%", "\\%").replace("_", "\\_"))
        conditions.append(table.c.name_key.like(escaped + "%", escape="\\"))
    if query.updated_since is not None:
        conditions.append(table.c.updated_at >= _utc(query.updated_since))
    if query.after is not None:
        key, record_id = query.after
        conditions.append(or_(table.c.name_key > key,
                              and_(table.c.name_key == key, table.c.id > record_id)))
    return conditions


def _page(kind: str, items: list, rows: Sequence[Any], limit: int) -> Page:
    if len(items) <= limit:
        return Page(items, None)
    last = rows[limit - 1]
    return Page(items[:limit], encode_cursor(kind, last["name_key"], last["id"]))


def open_views(app: Application, platform: PlatformSettings) -> SalesViews:
    """The index of `app`'s store under these settings, its tables created."""
    if platform.store == "memory":  # application tests: an in-memory database, like the store
        engine = create_engine("sqlite://", poolclass=StaticPool,
                               connect_args={"check_same_thread": False})
        views = SalesViews(app, engine, serialised=True)
    else:
        views = SalesViews(app, make_engine(platform, "sales_index"))
    views.create_tables()
    return views


def main(argv: list[str] | None = None) -> int:
    """`python -m crm_sales.views rebuild`: drops the index and rebuilds it from the store."""
    from crm_sales.context import CONTEXT

    args = sys.argv[1:] if argv is None else argv
    if args != ["rebuild"]:
        print("usage: python -m crm_sales.views rebuild", file=sys.stderr)
        return 2
    settings = CONTEXT.load_settings()
    app = CONTEXT.application(settings)
    read = app.views.rebuild()
    print(f"sales index rebuilt from {read} events (position {app.views.position()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

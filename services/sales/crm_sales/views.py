# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The sales query model: index tables of accounts and contacts, for lists.

The machinery (following the store's notification log with a position written in the
same transaction as the rows, upserts that only move forward in version, cursors, pages)
is the runtime's (crm_runtime.index); this module declares the tables and which row each
sales event writes. Every sales event carries its record's whole state, so a row is simply
its record's latest event.

Lists are ordered by name (case-insensitive), then id, and paged with an opaque cursor
(the last row's sort key); filters combine with AND. Contacts have no owner of their own:
a contact row is joined to its account's row, whose owner it lists and is filtered by.
`python -m crm_sales.views rebuild` rebuilds the index of the configured store (lists fail
for the moment it takes, so run it with the API stopped, or when lists can wait).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    or_,
    select,
)

from crm_runtime import logs
from crm_runtime.index import (
    CURSOR_MAX,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Change,
    LogIndex,
    Page,
    SortKey,
    Upsert,
    encode_cursor,
    fold,
    like_pattern,
    one_owner,
    open_engine,
    page_of,
    position_table,
    utc,
)
from crm_runtime.index import decode_cursor as _decode_cursor
from crm_runtime.settings import PlatformSettings
from crm_sales.domain import ID_MAX, Account, Contact

log = logs.get(__name__)

__all__ = ["CURSOR_MAX", "DEFAULT_LIMIT", "MAX_LIMIT", "Page", "AccountRecord", "ContactRecord",
           "ListQuery", "SalesViews", "decode_cursor", "open_views"]

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
positions = position_table(metadata, "sales_index_position")
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
class ListQuery:
    """A list request, validated (crm_sales.application.list_query builds it)."""

    limit: int = DEFAULT_LIMIT
    after: tuple[str, str] | None = None  # the decoded cursor: (name_key, id)
    owner_id: str | None = None
    name_prefix: str | None = None
    updated_since: datetime | None = None
    account_id: str | None = None  # contacts only


def name_key(name: str) -> str:
    return fold(name)


def decode_cursor(kind: str, cursor: str) -> tuple[str, str]:
    key, record_id = _decode_cursor(kind, cursor, (str, str))
    return key, record_id


# -- the index ------------------------------------------------------------------------------

def rows_of(event: Any, _position: int) -> Iterator[Change]:
    """The row a sales event writes: its record's whole state."""
    if isinstance(event, (Account.Opened, Account.Changed)):
        yield Upsert(accounts, {
            "id": str(event.originator_id), "name": event.name, "name_key": name_key(event.name),
            "domain": event.domain, "industry": event.industry, "region": event.region,
            "tier": event.tier, "owner_id": event.owner_id, "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})
    elif isinstance(event, (Contact.Added, Contact.Changed)):
        yield Upsert(contacts, {
            "id": str(event.originator_id), "account_id": event.account_id, "name": event.name,
            "name_key": name_key(event.name), "email": event.email, "phone": event.phone,
            "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})


class SalesViews(LogIndex):
    def __init__(self, app: Application, engine: Any, serialised: bool = False):
        super().__init__(app, engine, metadata, positions, POSITION_NAME, rows_of, serialised)

    # -- queries --------------------------------------------------------------------------

    def list_accounts(self, query: ListQuery, only_owner: str | None) -> Page[AccountRecord]:
        owner = one_owner(query.owner_id, only_owner)
        if owner is False:
            return Page([], None)
        conditions = _common(accounts, query)
        if owner is not None:
            conditions.append(accounts.c.owner_id == owner)
        statement = (select(accounts).where(*conditions)
                     .order_by(accounts.c.name_key, accounts.c.id).limit(query.limit + 1))
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [AccountRecord(
            id=row["id"], name=row["name"], domain=row["domain"], industry=row["industry"],
            region=row["region"], tier=row["tier"], owner_id=row["owner_id"], version=row["version"],
            created_at=utc(row["created_at"]), updated_at=utc(row["updated_at"])) for row in rows]
        return page_of(items, query.limit,
                       lambda last: encode_cursor("account", name_key(last.name), last.id))

    def list_contacts(self, query: ListQuery, only_owner: str | None) -> Page[ContactRecord]:
        owner = one_owner(query.owner_id, only_owner)
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
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [ContactRecord(
            id=row["id"], account_id=row["account_id"], name=row["name"], email=row["email"],
            phone=row["phone"], owner_id=row["owner_id"], version=row["version"],
            created_at=utc(row["created_at"]), updated_at=utc(row["updated_at"])) for row in rows]
        return page_of(items, query.limit,
                       lambda last: encode_cursor("contact", name_key(last.name), last.id))

    def account_with_domain(self, domain: str) -> str | None:
        """The id of the earliest account opened with this domain (lower-case ASCII, as
        accounts keep it), or None. Reads the index as it is: catch up first."""
        statement = (select(accounts.c.id).where(accounts.c.domain == domain)
                     .order_by(accounts.c.created_at, accounts.c.id).limit(1))
        with self.read() as conn:
            found = conn.execute(statement).scalar()
        return str(found) if found is not None else None


def _common(table: Table, query: ListQuery) -> list:
    conditions: list[ColumnElement[bool]] = []
    if query.name_prefix:
        conditions.append(table.c.name_key.like(like_pattern(name_key(query.name_prefix), prefix=True),
                                                escape="\\"))
    if query.updated_since is not None:
        conditions.append(table.c.updated_at >= utc(query.updated_since))
    if query.after is not None:
        key, record_id = query.after
        conditions.append(or_(table.c.name_key > key,
                              and_(table.c.name_key == key, table.c.id > record_id)))
    return conditions


def open_views(app: Application, platform: PlatformSettings) -> SalesViews:
    """The index of `app`'s store under these settings, its tables created."""
    engine, serialised = open_engine(platform, "sales_index")
    views = SalesViews(app, engine, serialised=serialised)
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

# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The sales query model: index tables of accounts, contacts, opportunities, products, price
books, quotes, contracts and orders, for lists.

The machinery (following the store's notification log with a position written in the
same transaction as the rows, upserts that only move forward in version, cursors, pages)
is the runtime's (crm_runtime.index); this module declares the tables and which row each
sales event writes. Every sales event carries its record's whole state, so a row is simply
its record's latest event; an opportunity's later events patch its stage (and, won, its
amount and close date). Opportunity lists answer ids from the index and the records from
the store (an opportunity's stage history is not in the index).

Accounts, contacts and price books are listed by name (case-insensitive), then id;
opportunities by expected close date, then id; products by SKU; quotes by valid_until, then
id; contracts by ends_on, then id; orders by placed_on, then id. Quote, contract and
order lists, like opportunity lists, answer
ids from the index and the records from the store (their lines and schedules are not
indexed). A quote's or contract's row keeps its STORED status; `expired` is what the date
says (an open quote past valid_until, an active contract past ends_on), so a status filter
compares the date with the caller's today (`quote_status_is`, `contract_status_is`).

Lists are paged with an opaque cursor (the last row's sort key); filters combine with AND.
Contacts have no owner of their own: a contact row is joined to its account's row, whose
owner it lists and is filtered by.
`python -m crm_sales.views rebuild` rebuilds the index of the configured store (lists fail
for the moment it takes, so run it with the API stopped, or when lists can wait).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Index,
    Integer,
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
    Patch,
    SortKey,
    Upsert,
    encode_cursor,
    fold,
    like_pattern,
    one_owner,
    open_engine,
    page_of,
    position_table,
    rebuild_command,
    utc,
)
from crm_runtime.index import decode_cursor as _decode_cursor
from crm_runtime.money import Money
from crm_runtime.settings import PlatformSettings
from crm_sales.catalogue import PriceBook, Product
from crm_sales.contracts import Contract, ContractStatus
from crm_sales.domain import ID_MAX, Account, Contact
from crm_sales.opportunities import Opportunity
from crm_sales.orders import LoyaltyAccount, Order, OrderStatus
from crm_sales.pipeline import Pipeline
from crm_sales.quotes import OPEN_STATUSES, Quote, QuoteStatus

log = logs.get(__name__)

__all__ = ["CURSOR_MAX", "DEFAULT_LIMIT", "MAX_LIMIT", "Page", "AccountRecord", "AmendmentRecord", "ContactRecord",
           "ContractQuery", "ListQuery",
           "OrderQuery", "OpportunityQuery", "OpportunityRecord", "PriceBookRecord", "ProductQuery",
           "ProductRecord", "QuoteQuery", "QuoteRecord", "SalesViews", "decode_cursor", "open_views"]

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
opportunities = Table(
    "sales_opportunity_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("name", String, nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("owner_id", String(ID_MAX), nullable=False),
    Column("stage", String(64), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("expected_close_on", SortKey, nullable=False),  # ISO 8601: orders as a date
    Column("closed_on", String(10)),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("sales_opportunity_index_by_close", "expected_close_on", "id"),
    Index("sales_opportunity_index_by_owner", "owner_id", "expected_close_on", "id"),
    Index("sales_opportunity_index_by_account", "account_id", "expected_close_on", "id"),
    Index("sales_opportunity_index_by_stage", "stage", "expected_close_on", "id"),
)
products = Table(
    "sales_product_index", metadata,
    Column("id", String(36), primary_key=True),
    Column("sku", SortKey, nullable=False, unique=True),
    Column("name", String, nullable=False),
    Column("family", String),
    Column("active", Boolean, nullable=False),
    Column("decimal_quantities", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("sales_product_index_by_family", "family", "sku"),
)
price_books = Table(
    "sales_price_book_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("name", String, nullable=False),
    Column("name_key", SortKey, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("entry_count", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("sales_price_book_index_by_name", "name_key", "id"),
    Index("sales_price_book_index_by_currency", "currency", "name_key", "id"),
)
quotes = Table(
    "sales_quote_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("opportunity_id", String(36), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("owner_id", String(ID_MAX), nullable=False),
    Column("status", String(20), nullable=False),  # stored: draft, sent, accepted, rejected, superseded
    Column("valid_until", SortKey, nullable=False),  # ISO 8601: orders as a date
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("sales_quote_index_by_valid_until", "valid_until", "id"),
    Index("sales_quote_index_by_owner", "owner_id", "valid_until", "id"),
    Index("sales_quote_index_by_opportunity", "opportunity_id", "valid_until", "id"),
    Index("sales_quote_index_by_account", "account_id", "valid_until", "id"),
    Index("sales_quote_index_by_status", "status", "valid_until", "id"),
)
contracts = Table(
    "sales_contract_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("quote_id", String(36), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("owner_id", String(ID_MAX), nullable=False),
    Column("status", String(20), nullable=False),  # stored: an active contract past ends_on shows expired
    Column("starts_on", String(10), nullable=False),
    Column("ends_on", SortKey, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("sales_contract_index_by_end", "ends_on", "id"),
    Index("sales_contract_index_by_owner", "owner_id", "ends_on", "id"),
    Index("sales_contract_index_by_account", "account_id", "ends_on", "id"),
    Index("sales_contract_index_by_status", "status", "ends_on", "id"),
)
orders = Table(
    "sales_order_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("opportunity_id", String(36), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("owner_id", String(ID_MAX), nullable=False),
    Column("status", String(20), nullable=False),
    Column("placed_on", SortKey, nullable=False),  # ISO 8601: orders as a date
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("sales_order_index_by_placed", "placed_on", "id"),
    Index("sales_order_index_by_owner", "owner_id", "placed_on", "id"),
    Index("sales_order_index_by_account", "account_id", "placed_on", "id"),
    Index("sales_order_index_by_status", "status", "placed_on", "id"),
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
class StageEntry:
    from_stage: str | None
    stage: str
    at: datetime
    by: str


@dataclass(frozen=True)
class OpportunityRecord:
    id: str
    name: str
    account_id: str
    amount: Money
    expected_close_on: str
    owner_id: str
    stage: str
    probability: int  # the active pipeline's, for the stage
    status: str  # open, won, lost
    closed_on: str | None
    lost_reason: str | None
    won_quote_id: str | None
    stage_history: list[StageEntry]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, opportunity: Opportunity, pipeline: Pipeline) -> OpportunityRecord:
        return cls(
            id=str(opportunity.id), name=opportunity.name, account_id=opportunity.account_id,
            amount=opportunity.amount, expected_close_on=opportunity.expected_close_on,
            owner_id=opportunity.owner_id, stage=opportunity.stage,
            probability=pipeline.probability_of(opportunity.stage), status=opportunity.status,
            closed_on=opportunity.closed_on, lost_reason=opportunity.lost_reason,
            won_quote_id=opportunity.won_quote_id,
            stage_history=[StageEntry(entry["from_stage"], entry["stage"], datetime.fromisoformat(entry["at"]),
                                      entry["by"]) for entry in opportunity.stage_history],
            version=opportunity.version, created_at=opportunity.created_on, updated_at=opportunity.modified_on)


@dataclass(frozen=True)
class ProductRecord:
    id: str
    sku: str
    name: str
    family: str | None
    active: bool
    decimal_quantities: bool
    version: int
    created_at: datetime

    @classmethod
    def of(cls, product: Product) -> ProductRecord:
        return cls(id=str(product.id), sku=product.sku, name=product.name, family=product.family,
                   active=product.active, decimal_quantities=product.decimal_quantities,
                   version=product.version, created_at=product.created_on)


@dataclass(frozen=True)
class PriceBookRecord:
    id: str
    name: str
    currency: str
    entries: list[tuple[str, Money]] | None  # None in lists
    entry_count: int
    version: int
    created_at: datetime

    @classmethod
    def of(cls, book: PriceBook) -> PriceBookRecord:
        return cls(id=str(book.id), name=book.name, currency=book.currency,
                   entries=list(book.prices.items()), entry_count=len(book.entries),
                   version=book.version, created_at=book.created_on)


@dataclass(frozen=True)
class QuoteLineRecord:
    sku: str
    quantity: str
    tax_rate: str
    discount: dict[str, str] | None  # {"percent": "10"} or {"amount": "5.00"} (quote currency)
    unit_price: Money
    list_amount: Money
    discount_amount: Money
    net: Money
    tax: Money
    gross: Money


@dataclass(frozen=True)
class QuoteRecord:
    id: str
    opportunity_id: str
    account_id: str
    owner_id: str
    price_book_id: str
    currency: str
    valid_until: str
    number: int
    previous_quote_id: str | None
    next_quote_id: str | None
    status: str  # as of today: an open quote past valid_until shows expired
    lines: list[QuoteLineRecord]
    totals: dict[str, Money]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, quote: Quote, today: date) -> QuoteRecord:
        money = quote.money
        lines = [QuoteLineRecord(
            sku=line["sku"], quantity=line["quantity"], tax_rate=line["tax_rate"],
            discount=dict(line["discount"]) if line.get("discount") else None,
            unit_price=money(line["unit_price"]), list_amount=money(line["list_amount"]),
            discount_amount=money(line["discount_amount"]), net=money(line["net"]), tax=money(line["tax"]),
            gross=money(line["gross"])) for line in quote.lines]
        return cls(id=str(quote.id), opportunity_id=quote.opportunity_id, account_id=quote.account_id,
                   owner_id=quote.owner_id, price_book_id=quote.price_book_id, currency=quote.currency,
                   valid_until=quote.valid_until, number=quote.number, previous_quote_id=quote.previous_quote_id,
                   next_quote_id=quote.next_quote_id, status=str(quote.status_on(today)), lines=lines,
                   totals=quote.totals, version=quote.version, created_at=quote.created_on,
                   updated_at=quote.modified_on)


@dataclass(frozen=True)
class ScheduledInstalment:
    instalment: int
    due_on: str
    amount: Money
    paid: Money
    outstanding: Money


@dataclass(frozen=True)
class AmendmentRecord:
    number: int
    status: str  # pending_approval, applied, rejected
    reason: str
    ends_on: str  # as amended (or proposed)
    previous_ends_on: str
    total: Money
    previous_total: Money
    payment_schedule: list[tuple[int, str, Money]] | None  # (instalment, due_on, amount); None: unchanged
    approval_required: bool
    base_total: Money | None  # the new total in the base currency, for a raise
    requested_on: str
    requested_by: str
    decided_on: str | None
    decided_by: str | None  # None when applied at once
    comment: str | None

    @classmethod
    def of(cls, entry: dict[str, Any], contract: Contract) -> AmendmentRecord:
        money, base = contract.money, entry["base_total"]
        schedule = entry["payment_schedule"]
        return cls(
            number=entry["number"], status=entry["status"], reason=entry["reason"], ends_on=entry["ends_on"],
            previous_ends_on=entry["previous_ends_on"], total=money(entry["total"]),
            previous_total=money(entry["previous_total"]),
            payment_schedule=([(item["instalment"], item["due_on"], money(item["amount"])) for item in schedule]
                              if schedule is not None else None),
            approval_required=entry["approval_required"],
            base_total=Money(Decimal(base["amount"]), base["currency"]) if base else None,
            requested_on=entry["requested_on"], requested_by=entry["requested_by"], decided_on=entry["decided_on"],
            decided_by=entry["decided_by"], comment=entry["comment"])


@dataclass(frozen=True)
class ContractRecord:
    id: str
    quote_id: str
    opportunity_id: str
    account_id: str
    owner_id: str
    status: str  # as of today: an active contract past ends_on shows expired
    total: Money
    starts_on: str
    ends_on: str
    payment_terms: dict[str, Any]
    payment_schedule: list[ScheduledInstalment]
    outstanding: Money
    approval_required: bool | None  # None until submitted
    base_total: Money | None
    submitted_by: str | None
    approved_by: str | None
    approval_comment: str | None
    rejection_comment: str | None
    signed_on: str | None
    activated_on: str | None
    terminated_on: str | None
    termination_reason: str | None
    renews_contract_id: str | None
    renewed_by_contract_id: str | None
    amendments: list[AmendmentRecord]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, contract: Contract, today: date) -> ContractRecord:
        schedule = []
        for item in contract.instalments:
            paid = contract.paid_on_instalment(item.instalment)
            schedule.append(ScheduledInstalment(item.instalment, item.due_on.isoformat(), item.amount, paid,
                                                item.amount - paid))
        base = contract.base_total
        return cls(
            id=str(contract.id), quote_id=contract.quote_id, opportunity_id=contract.opportunity_id,
            account_id=contract.account_id, owner_id=contract.owner_id, status=str(contract.status_on(today)),
            total=contract.total_money, starts_on=contract.starts_on, ends_on=contract.ends_on,
            payment_terms=dict(contract.payment_terms), payment_schedule=schedule,
            outstanding=contract.outstanding, approval_required=contract.approval_required,
            base_total=Money(Decimal(base["amount"]), base["currency"]) if base else None,
            submitted_by=contract.submitted_by, approved_by=contract.approved_by,
            approval_comment=contract.approval_comment, rejection_comment=contract.rejection_comment,
            signed_on=contract.signed_on, activated_on=contract.activated_on,
            terminated_on=contract.terminated_on, termination_reason=contract.termination_reason,
            renews_contract_id=contract.renews_contract_id,
            renewed_by_contract_id=contract.renewed_by_contract_id,
            amendments=[AmendmentRecord.of(entry, contract) for entry in contract.amendments],
            version=contract.version, created_at=contract.created_on, updated_at=contract.modified_on)


@dataclass(frozen=True)
class OrderLineRecord:
    sku: str
    family: str | None
    quantity: str
    net: Money
    tax: Money
    gross: Money


@dataclass(frozen=True)
class OrderRecord:
    id: str
    opportunity_id: str
    quote_id: str
    account_id: str
    owner_id: str
    lines: list[OrderLineRecord]
    totals: dict[str, Money]
    base_net: Money
    placed_on: str
    status: str  # placed
    version: int
    created_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderRecord:
        money = order.money
        return cls(
            id=str(order.id), opportunity_id=order.opportunity_id, quote_id=order.quote_id,
            account_id=order.account_id, owner_id=order.owner_id,
            lines=[OrderLineRecord(line["sku"], line["family"], line["quantity"], money(line["net"]),
                                   money(line["tax"]), money(line["gross"])) for line in order.lines],
            totals={"net": money(order.net), "tax": money(order.tax), "gross": money(order.gross)},
            base_net=order.base_net_money, placed_on=order.placed_on, status=str(order.status),
            version=order.version, created_at=order.created_on)


@dataclass(frozen=True)
class LoyaltyRecord:
    account_id: str
    balance: int
    ledger: list[dict[str, Any]]  # {"kind", "points", "balance", "reference"}

    @classmethod
    def of(cls, account_id: str, ledger: LoyaltyAccount | None) -> LoyaltyRecord:
        entries = [dict(entry) for entry in ledger.entries] if ledger is not None else []
        return cls(account_id, entries[-1]["balance"] if entries else 0, entries)


@dataclass(frozen=True)
class OpportunityQuery:
    limit: int = DEFAULT_LIMIT
    after: tuple[str, str] | None = None  # (expected_close_on, id)
    owner_id: str | None = None
    stage: str | None = None
    account_id: str | None = None
    close_month: tuple[str, str] | None = None  # [first day, first day of the next month)


@dataclass(frozen=True)
class QuoteQuery:
    today: date  # what `expired` is measured against
    limit: int = DEFAULT_LIMIT
    after: tuple[str, str] | None = None  # (valid_until, id)
    owner_id: str | None = None
    opportunity_id: str | None = None
    account_id: str | None = None
    status: QuoteStatus | None = None
    valid_until_after: str | None = None  # ISO dates, both exclusive
    valid_until_before: str | None = None


@dataclass(frozen=True)
class ContractQuery:
    today: date
    limit: int = DEFAULT_LIMIT
    after: tuple[str, str] | None = None  # (ends_on, id)
    owner_id: str | None = None
    account_id: str | None = None
    status: ContractStatus | None = None
    ends_after: str | None = None  # ISO dates, both exclusive
    ends_before: str | None = None


@dataclass(frozen=True)
class OrderQuery:
    limit: int = DEFAULT_LIMIT
    after: tuple[str, str] | None = None  # (placed_on, id)
    owner_id: str | None = None
    account_id: str | None = None
    status: str | None = None
    placed_after: str | None = None  # ISO dates, both exclusive
    placed_before: str | None = None


@dataclass(frozen=True)
class ProductQuery:
    limit: int = DEFAULT_LIMIT
    after: str | None = None  # the last SKU
    family: str | None = None
    active: bool | None = None


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

# The stored status each later quote or contract event leaves (their rows are patched).
QUOTE_STATUS_EVENTS: dict[type, str] = {
    Quote.Sent: QuoteStatus.SENT, Quote.Accepted: QuoteStatus.ACCEPTED, Quote.Rejected: QuoteStatus.REJECTED,
    Quote.Revised: QuoteStatus.SUPERSEDED}
CONTRACT_STATUS_EVENTS: dict[type, str] = {
    Contract.Submitted: ContractStatus.PENDING_APPROVAL, Contract.Approved: ContractStatus.APPROVED,
    Contract.Rejected: ContractStatus.DRAFT, Contract.Signed: ContractStatus.SIGNED,
    Contract.Activated: ContractStatus.ACTIVE, Contract.Expired: ContractStatus.EXPIRED,
    Contract.Terminated: ContractStatus.TERMINATED, Contract.Renewed: ContractStatus.RENEWED}


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
    elif isinstance(event, Opportunity.Opened):
        yield Upsert(opportunities, {
            "id": str(event.originator_id), "name": event.name, "account_id": event.account_id,
            "owner_id": event.owner_id, "stage": event.stage, "amount": event.amount,
            "currency": event.currency, "expected_close_on": event.expected_close_on, "closed_on": None,
            "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})
    elif isinstance(event, Opportunity.StageChanged):
        yield Patch(opportunities, str(event.originator_id), event.originator_version,
                    {"stage": event.stage, "updated_at": utc(event.timestamp)})
    elif isinstance(event, Opportunity.Won):
        yield Patch(opportunities, str(event.originator_id), event.originator_version,
                    {"stage": "closed_won", "amount": event.amount, "currency": event.currency,
                     "closed_on": event.closed_on, "updated_at": utc(event.timestamp)})
    elif isinstance(event, Opportunity.Lost):
        yield Patch(opportunities, str(event.originator_id), event.originator_version,
                    {"stage": "closed_lost", "closed_on": event.closed_on, "updated_at": utc(event.timestamp)})
    elif isinstance(event, Quote.Drafted):
        yield Upsert(quotes, {
            "id": str(event.originator_id), "opportunity_id": event.opportunity_id, "account_id": event.account_id,
            "owner_id": event.owner_id, "status": QuoteStatus.DRAFT, "valid_until": event.valid_until,
            "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})
    elif isinstance(event, tuple(QUOTE_STATUS_EVENTS)):
        yield Patch(quotes, str(event.originator_id), event.originator_version,
                    {"status": QUOTE_STATUS_EVENTS[type(event)], "updated_at": utc(event.timestamp)})
    elif isinstance(event, Contract.Drafted):
        yield Upsert(contracts, {
            "id": str(event.originator_id), "quote_id": event.quote_id, "account_id": event.account_id,
            "owner_id": event.owner_id, "status": ContractStatus.DRAFT, "starts_on": event.starts_on,
            "ends_on": event.ends_on, "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})
    elif isinstance(event, tuple(CONTRACT_STATUS_EVENTS)):
        yield Patch(contracts, str(event.originator_id), event.originator_version,
                    {"status": CONTRACT_STATUS_EVENTS[type(event)], "updated_at": utc(event.timestamp)})
    elif isinstance(event, Contract.Amended):
        yield Patch(contracts, str(event.originator_id), event.originator_version,
                    {"ends_on": event.ends_on, "updated_at": utc(event.timestamp)})
    elif isinstance(event, (Contract.PaymentRecorded, Contract.AmendmentRequested, Contract.AmendmentRejected)):
        yield Patch(contracts, str(event.originator_id), event.originator_version,
                    {"updated_at": utc(event.timestamp)})
    elif isinstance(event, Order.Placed):
        yield Upsert(orders, {
            "id": str(event.originator_id), "opportunity_id": event.opportunity_id, "account_id": event.account_id,
            "owner_id": event.owner_id, "status": OrderStatus.PLACED, "placed_on": event.placed_on,
            "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})
    elif isinstance(event, Product.Added):
        yield Upsert(products, {
            "id": str(event.originator_id), "sku": event.sku, "name": event.name, "family": event.family,
            "active": event.active, "decimal_quantities": event.decimal_quantities,
            "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})
    elif isinstance(event, PriceBook.Published):
        yield Upsert(price_books, {
            "id": str(event.originator_id), "name": event.name, "name_key": name_key(event.name),
            "currency": event.currency, "entry_count": len(event.entries), "version": event.originator_version,
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

    def list_opportunity_ids(self, query: OpportunityQuery, only_owner: str | None) -> Page[str]:
        """Ids of a page of opportunities (the application loads the records)."""
        owner = one_owner(query.owner_id, only_owner)
        if owner is False:
            return Page([], None)
        c = opportunities.c
        conditions = _equal(opportunities, owner_id=owner, stage=query.stage, account_id=query.account_id)
        if query.close_month is not None:
            first, following = query.close_month
            conditions += [c.expected_close_on >= first, c.expected_close_on < following]
        return self._ids_by(opportunities, c.expected_close_on, "opportunity", conditions, query.after, query.limit)

    def list_quote_ids(self, query: QuoteQuery, only_owner: str | None) -> Page[str]:
        """Ids of a page of quotes (the application loads the records)."""
        owner = one_owner(query.owner_id, only_owner)
        if owner is False:
            return Page([], None)
        c = quotes.c
        conditions = _equal(quotes, owner_id=owner, opportunity_id=query.opportunity_id, account_id=query.account_id)
        conditions += _between(c.valid_until, query.valid_until_after, query.valid_until_before)
        if query.status is not None:
            conditions.append(quote_status_is(query.status, query.today))
        return self._ids_by(quotes, c.valid_until, "quote", conditions, query.after, query.limit)

    def list_contract_ids(self, query: ContractQuery, only_owner: str | None) -> Page[str]:
        """Ids of a page of contracts (the application loads the records)."""
        owner = one_owner(query.owner_id, only_owner)
        if owner is False:
            return Page([], None)
        c = contracts.c
        conditions = _equal(contracts, owner_id=owner, account_id=query.account_id)
        conditions += _between(c.ends_on, query.ends_after, query.ends_before)
        if query.status is not None:
            conditions.append(contract_status_is(query.status, query.today))
        return self._ids_by(contracts, c.ends_on, "contract", conditions, query.after, query.limit)

    def list_order_ids(self, query: OrderQuery, only_owner: str | None) -> Page[str]:
        """Ids of a page of orders by placed_on, then id (the application loads the records)."""
        owner = one_owner(query.owner_id, only_owner)
        if owner is False:
            return Page([], None)
        c = orders.c
        conditions = _equal(orders, owner_id=owner, account_id=query.account_id, status=query.status)
        conditions += _between(c.placed_on, query.placed_after, query.placed_before)
        return self._ids_by(orders, c.placed_on, "order", conditions, query.after, query.limit)

    def _ids_by(self, table: Table, key: Any, kind: str, conditions: list[ColumnElement[bool]],
                after: tuple[str, str] | None, limit: int) -> Page[str]:
        """A page of ids ordered by (key, id), after the cursor's (key, id)."""
        if after is not None:
            last_key, last_id = after
            conditions = [*conditions, or_(key > last_key, and_(key == last_key, table.c.id > last_id))]
        statement = select(table.c.id, key).where(*conditions).order_by(key, table.c.id).limit(limit + 1)
        with self.read() as conn:
            rows = conn.execute(statement).all()
        keys = {str(row[0]): str(row[1]) for row in rows}
        return page_of([str(row[0]) for row in rows], limit, lambda last: encode_cursor(kind, keys[last], last))

    def list_products(self, query: ProductQuery) -> Page[ProductRecord]:
        table = products
        conditions: list[ColumnElement[bool]] = []
        if query.family is not None:
            conditions.append(table.c.family == query.family)
        if query.active is not None:
            conditions.append(table.c.active == query.active)
        if query.after is not None:
            conditions.append(table.c.sku > query.after)
        statement = select(table).where(*conditions).order_by(table.c.sku).limit(query.limit + 1)
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [ProductRecord(id=row["id"], sku=row["sku"], name=row["name"], family=row["family"],
                               active=bool(row["active"]), decimal_quantities=bool(row["decimal_quantities"]),
                               version=row["version"], created_at=utc(row["created_at"])) for row in rows]
        return page_of(items, query.limit, lambda last: encode_cursor("product", last.sku))

    def list_price_books(self, query: ListQuery, currency: str | None) -> Page[PriceBookRecord]:
        conditions = _common(price_books, query)
        if currency is not None:
            conditions.append(price_books.c.currency == currency)
        statement = (select(price_books).where(*conditions)
                     .order_by(price_books.c.name_key, price_books.c.id).limit(query.limit + 1))
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [PriceBookRecord(id=row["id"], name=row["name"], currency=row["currency"], entries=None,
                                 entry_count=row["entry_count"], version=row["version"],
                                 created_at=utc(row["created_at"])) for row in rows]
        return page_of(items, query.limit, lambda last: encode_cursor("price-book", name_key(last.name), last.id))

    def account_with_domain(self, domain: str) -> str | None:
        """The id of the earliest account opened with this domain (lower-case ASCII, as
        accounts keep it), or None. Reads the index as it is: catch up first."""
        statement = (select(accounts.c.id).where(accounts.c.domain == domain)
                     .order_by(accounts.c.created_at, accounts.c.id).limit(1))
        with self.read() as conn:
            found = conn.execute(statement).scalar()
        return str(found) if found is not None else None


def _equal(table: Table, **values: Any) -> list[ColumnElement[bool]]:
    """Column = value for each value given (None: no filter)."""
    return [table.c[name] == value for name, value in values.items() if value is not None]


def _between(column: Any, after: str | None, before: str | None) -> list[ColumnElement[bool]]:
    """after < column < before, for the bounds given (both exclusive)."""
    return ([column > after] if after is not None else []) + ([column < before] if before is not None else [])


def quote_status_is(status: QuoteStatus, today: date) -> ColumnElement[bool]:
    """Quotes showing `status` on `today`: a draft or sent quote past valid_until is expired."""
    c, day = quotes.c, today.isoformat()
    if status == QuoteStatus.EXPIRED:
        return and_(c.status.in_([str(s) for s in OPEN_STATUSES]), c.valid_until < day)
    if status in OPEN_STATUSES:
        return and_(c.status == str(status), c.valid_until >= day)
    return c.status == str(status)


def contract_status_is(status: ContractStatus, today: date) -> ColumnElement[bool]:
    """Contracts showing `status` on `today`: an active contract past ends_on is expired."""
    c, day = contracts.c, today.isoformat()
    if status == ContractStatus.EXPIRED:
        return or_(c.status == str(status), and_(c.status == str(ContractStatus.ACTIVE), c.ends_on < day))
    if status == ContractStatus.ACTIVE:
        return and_(c.status == str(status), c.ends_on >= day)
    return c.status == str(status)


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
    return rebuild_command("sales", "crm_sales.views", argv)


if __name__ == "__main__":
    sys.exit(main())

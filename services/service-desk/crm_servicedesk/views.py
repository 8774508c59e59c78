# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Ticket.Opened`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The service desk's query model: index tables of tickets and SLA policies.

The machinery (following the store's notification log with a position written in the same
transaction as the rows, rows that only move forward in version, cursors) is the
runtime's (crm_runtime.index). `TicketOpened` writes a ticket's whole row; every later
ticket event carries the ticket's state after it (`snapshot`), so it patches the columns
that can change. A policy's row is its latest definition: choosing the policy of a new
ticket reads them all (policies are few).

Tickets list newest first (opened at, then id), paged with an opaque cursor. Two columns
hold the due times not yet met (`first_response_open_due`: the first response while it
runs; `resolution_open_due`: the resolution while it runs or is paused after its due
time), so `breached` (past an unmet due time now) is a condition on them at query time.
`python -m crm_servicedesk.views rebuild` rebuilds the index from the store.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
)

from crm_runtime.index import (
    Change,
    LogIndex,
    Page,
    Patch,
    SortKey,
    Upsert,
    decode_cursor,
    encode_cursor,
    open_engine,
    page_of,
    position_table,
    rebuild_command,
    utc,
)
from crm_runtime.settings import PlatformSettings
from crm_servicedesk.domain import Policy, Ticket
from crm_servicedesk.sla import SlaPolicy

metadata = MetaData()
tickets = Table(
    "servicedesk_ticket_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("subject", String, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("group_name", String(64)),
    Column("category", String(64)),
    Column("account_id", String(200)),
    Column("account_tier", String(64)),
    Column("requester_email", String),
    Column("assignee_id", String(200)),
    Column("escalation_level", Integer, nullable=False),
    Column("opened_by", String(200), nullable=False),
    Column("sla", Text, nullable=False),  # JSON: the SLA as the ticket answers it
    Column("first_response_open_due", DateTime(timezone=True)),
    Column("resolution_open_due", DateTime(timezone=True)),
    Column("opened_key", SortKey, nullable=False),  # opened at, UTC, fixed width: the order
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("servicedesk_ticket_index_by_opened", "opened_key", "id"),
    Index("servicedesk_ticket_index_by_status", "status", "opened_key", "id"),
    Index("servicedesk_ticket_index_by_assignee", "assignee_id", "opened_key", "id"),
    Index("servicedesk_ticket_index_by_group", "group_name", "opened_key", "id"),
    Index("servicedesk_ticket_index_by_fr_due", "first_response_open_due"),
    Index("servicedesk_ticket_index_by_res_due", "resolution_open_due"),
)
policies = Table(
    "servicedesk_policy_index", metadata,
    Column("id", SortKey, primary_key=True),  # the policy's name, e.g. "gold"
    Column("policy", Text, nullable=False),  # JSON, as PUT takes it
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
positions = position_table(metadata, "servicedesk_index_position")
POSITION_NAME = "servicedesk-index"


@dataclass(frozen=True)
class TicketSummary:
    id: str
    subject: str
    channel: str
    status: str
    priority: str
    group: str | None
    category: str | None
    account_id: str | None
    account_tier: str | None
    requester_email: str | None
    assignee_id: str | None
    escalation_level: int
    opened_by: str
    sla: dict[str, Any]
    breached: bool
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TicketQuery:
    """A list request, validated (crm_servicedesk.application builds it)."""

    limit: int
    now: datetime
    after: tuple[str, str] | None = None
    status: str | None = None
    assignee_id: str | None = None
    group: str | None = None
    priority: str | None = None
    breached: bool | None = None
    only_opened_by: str | None = None  # the visibility rule: a sales_rep's own tickets


def opened_key(at: datetime) -> str:
    return utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def open_dues(sla: dict[str, Any]) -> dict[str, datetime | None]:
    """The due times not met yet (None: met, stopped, or paused before its due time)."""
    first, resolution = sla["first_response"], sla["resolution"]
    return {
        "first_response_open_due": _instant(first["due"]) if first["state"] == "running" else None,
        "resolution_open_due": (_instant(resolution["due"])
                                if resolution["state"] in ("running", "paused") else None),
    }


def _snapshot_columns(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {"status": snapshot["status"], "priority": snapshot["priority"], "group_name": snapshot["group"],
            "category": snapshot["category"], "account_tier": snapshot["account_tier"],
            "assignee_id": snapshot["assignee_id"], "escalation_level": snapshot["escalation_level"],
            "sla": json.dumps(snapshot["sla"]), **open_dues(snapshot["sla"])}


def rows_of(event: Any, _position: int) -> Iterator[Change]:
    if isinstance(event, Ticket.Opened):
        yield Upsert(tickets, {
            "id": str(event.originator_id), "subject": event.subject, "channel": event.channel,
            "account_id": event.account_id, "requester_email": event.requester_email,
            "opened_by": event.opened_by, "opened_key": opened_key(event.at),
            "version": event.originator_version, "created_at": utc(event.at), "updated_at": utc(event.at),
            **_snapshot_columns(event.snapshot)})
    elif isinstance(event, Ticket.Event) and hasattr(event, "snapshot"):
        yield Patch(tickets, str(event.originator_id), event.originator_version,
                    {**_snapshot_columns(event.snapshot), "updated_at": utc(event.at)})
    elif isinstance(event, (Policy.Defined, Policy.Changed)):
        yield Upsert(policies, {
            "id": event.policy_id,
            "policy": json.dumps(event.policy), "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})


class ServiceDeskViews(LogIndex):
    def __init__(self, app: Application, engine: Any, serialised: bool = False):
        super().__init__(app, engine, metadata, positions, POSITION_NAME, rows_of, serialised)

    def list_tickets(self, query: TicketQuery) -> Page[TicketSummary]:
        t = tickets.c
        conditions: list[ColumnElement[bool]] = []
        for column, value in ((t.status, query.status), (t.assignee_id, query.assignee_id),
                              (t.group_name, query.group), (t.priority, query.priority),
                              (t.opened_by, query.only_opened_by)):
            if value is not None:
                conditions.append(column == value)
        now = utc(query.now)
        if query.breached is True:
            conditions.append(or_(t.first_response_open_due <= now, t.resolution_open_due <= now))
        elif query.breached is False:
            conditions.append(and_(or_(t.first_response_open_due.is_(None), t.first_response_open_due > now),
                                   or_(t.resolution_open_due.is_(None), t.resolution_open_due > now)))
        if query.after is not None:
            key, ticket_id = query.after
            conditions.append(or_(t.opened_key < key, and_(t.opened_key == key, t.id < ticket_id)))
        statement = (select(tickets).where(*conditions)
                     .order_by(t.opened_key.desc(), t.id.desc()).limit(query.limit + 1))
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [_summary(row, now) for row in rows]
        return page_of(items, query.limit,
                       lambda last: encode_cursor("ticket", opened_key(last.created_at), last.id))

    def policies(self) -> list[SlaPolicy]:
        """Every defined policy (a redefined `default` among them)."""
        with self.read() as conn:
            rows = conn.execute(select(policies.c.id, policies.c.policy).order_by(policies.c.id)).all()
        return [SlaPolicy.parse(row.id, json.loads(row.policy)) for row in rows]


def _summary(row: Any, now: datetime) -> TicketSummary:
    dues = [row["first_response_open_due"], row["resolution_open_due"]]
    return TicketSummary(
        id=row["id"], subject=row["subject"], channel=row["channel"], status=row["status"],
        priority=row["priority"], group=row["group_name"], category=row["category"],
        account_id=row["account_id"], account_tier=row["account_tier"],
        requester_email=row["requester_email"], assignee_id=row["assignee_id"],
        escalation_level=row["escalation_level"], opened_by=row["opened_by"], sla=json.loads(row["sla"]),
        breached=any(due is not None and utc(due) <= now for due in dues), version=row["version"],
        created_at=utc(row["created_at"]), updated_at=utc(row["updated_at"]))


def decode_ticket_cursor(cursor: str) -> tuple[str, str]:
    key, ticket_id = decode_cursor("ticket", cursor, (str, str))
    return key, ticket_id


def open_views(app: Application, platform: PlatformSettings) -> ServiceDeskViews:
    engine, serialised = open_engine(platform, "servicedesk_index")
    views = ServiceDeskViews(app, engine, serialised=serialised)
    views.create_tables()
    return views


def main(argv: list[str] | None = None) -> int:
    """`python -m crm_servicedesk.views rebuild`: drops the index and rebuilds it from the store."""
    return rebuild_command("service-desk", "crm_servicedesk.views", argv)


if __name__ == "__main__":
    sys.exit(main())

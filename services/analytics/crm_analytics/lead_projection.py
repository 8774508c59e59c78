"""The lead read model: one row per lead, and the lead report's counts kept beside it.

A `Projection` (crm_runtime.readstore) named `lead_report`: it is fed batches of lead
events, writes their effects with a few set-based statements, and records the event ids and
its position per partition in the same transaction, so a replayed or re-sent event changes
nothing and a new, switched or restored store replays what it lacks by itself. `reset()`
(the rebuild command) empties it; the worker then replays the topic from the start.

The report reads `analytics_lead_counts` (captured, assigned, per channel, per owner), which
each batch moves by the changes it makes to the lead rows, in the same transaction: a
report costs a read of a few rows, not a count over every lead. A store made before the
counts existed gets them once, counted from its lead rows, in the transaction that creates
their table.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    inspect,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import DBAPIError

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import logs, tracing
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.eventstore import retry_schema_race
from crm_runtime.readstore import DIALECT_INSERTS, Projection, make_engine
from crm_runtime.settings import PlatformSettings

log = logs.get(__name__)
NAME = "lead_report"
metadata = MetaData()
leads = Table(
    "analytics_leads", metadata,
    Column("lead_id", String(64), primary_key=True),
    Column("channel", String(32)),
    Column("captured_at", DateTime(timezone=True)),
    Column("owner_id", String(200)),
    Column("assigned_at", DateTime(timezone=True)),
)
FIELDS = ("channel", "captured_at", "owner_id", "assigned_at")
# The report's numbers: (dimension, item) -> total, where dimension is "captured" or
# "assigned" (item "") or "channel" or "owner" (item: the channel or the owner).
counts = Table(
    "analytics_lead_counts", metadata,
    Column("dimension", String(16), primary_key=True),
    Column("item", String(200), primary_key=True),
    Column("total", BigInteger, nullable=False),
)


def channel_name(value: int) -> str:
    return leads_events.Channel.Name(value).removeprefix("CHANNEL_").lower()


@dataclass
class LeadReport:
    captured: int = 0
    assigned: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_owner: dict[str, int] = field(default_factory=dict)


def changes(envelope: EventEnvelope) -> tuple[str, dict[str, Any]] | None:
    """The lead row an event touches, and the values it sets."""
    message = envelope.message
    if isinstance(message, leads_events.LeadCaptured):
        return message.lead_id, {"channel": channel_name(message.channel),
                                 "captured_at": message.captured_at.ToDatetime(tzinfo=envelope.time.tzinfo)}
    if isinstance(message, leads_events.LeadAssigned):
        return message.lead_id, {"owner_id": message.owner_id,
                                 "assigned_at": message.assigned_at.ToDatetime(tzinfo=envelope.time.tzinfo)}
    return None


def apply_events(conn: Connection, envelopes: Sequence[EventEnvelope]) -> None:
    """The effects of a batch's new events, in order: one SELECT, one INSERT and one UPDATE
    for the whole batch, whatever its size (a round trip per event is what limits a
    projection on PostgreSQL)."""
    rows: dict[str, dict[str, Any]] = {}
    for envelope in envelopes:
        change = changes(envelope)
        if change is not None:
            rows.setdefault(change[0], {}).update(change[1])
        with tracing.bound_from_headers(envelope.context):  # one line per event, in its trace
            log.info("analytics.projected", projection=NAME, event_id=envelope.id, type=envelope.type)
    if not rows:
        return
    stored = {row.lead_id: row for row in conn.execute(
        select(leads.c.lead_id, leads.c.channel, leads.c.captured_at, leads.c.owner_id)
        .where(leads.c.lead_id.in_(list(rows))))}
    moves: Counter[tuple[str, str]] = Counter()
    for lead_id, values in rows.items():
        before = stored.get(lead_id)
        old = {name: getattr(before, name, None) for name in ("channel", "captured_at", "owner_id")}
        _move(moves, old, -1)
        _move(moves, {**old, **{n: v for n, v in values.items() if n in old}}, +1)
    _count(conn, moves)
    fresh = [{"lead_id": lead_id, **{name: values.get(name) for name in FIELDS}}
             for lead_id, values in rows.items() if lead_id not in stored]
    if fresh:
        conn.execute(insert(leads), fresh)
    # Existing rows: only the fields the batch set, so a captured-then-assigned pair split
    # over two batches keeps both halves. One statement per set of fields.
    by_fields: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for lead_id, values in rows.items():
        if lead_id in stored:
            names = tuple(sorted(values))
            by_fields.setdefault(names, []).append({"key": lead_id, **{f"v_{n}": values[n] for n in names}})
    for names, params in by_fields.items():
        statement = (update(leads).where(leads.c.lead_id == bindparam("key"))
                     .values({n: bindparam(f"v_{n}") for n in names}))
        conn.execute(statement, params)


def _move(moves: Counter[tuple[str, str]], lead: dict[str, Any], by: int) -> None:
    """Adds `by` to every count a lead in this state is part of."""
    if lead["captured_at"] is not None:
        moves["captured", ""] += by
        moves["channel", lead["channel"] or ""] += by
    if lead["owner_id"] is not None:
        moves["assigned", ""] += by
        moves["owner", lead["owner_id"]] += by


def _count(conn: Connection, moves: Counter[tuple[str, str]]) -> None:
    """Moves the counts, in one statement (a count never seen before starts at 0)."""
    rows = [{"dimension": dimension, "item": item, "total": by}
            for (dimension, item), by in sorted(moves.items()) if by]
    if not rows:
        return
    conn.execute(_count_statement(conn.dialect.name), rows)


@functools.lru_cache(maxsize=4)
def _count_statement(dialect: str) -> Any:
    """Built once, run with the rows (see crm_runtime.readstore: a statement with its rows'
    values in it is compiled again every time)."""
    statement = DIALECT_INSERTS[dialect](counts)
    return statement.on_conflict_do_update(index_elements=[counts.c.dimension, counts.c.item],
                                           set_={"total": counts.c.total + statement.excluded.total})


def _counted_from_leads() -> Any:
    """The counts of the lead rows as they are (for a store made before the counts were)."""
    captured = leads.c.captured_at.is_not(None)
    assigned = leads.c.owner_id.is_not(None)
    return union_all(
        select(literal("captured"), literal(""), func.count()).where(captured),
        select(literal("assigned"), literal(""), func.count()).where(assigned),
        select(literal("channel"), func.coalesce(leads.c.channel, ""), func.count())
        .where(captured).group_by(leads.c.channel),
        select(literal("owner"), leads.c.owner_id, func.count()).where(assigned).group_by(leads.c.owner_id))


def report(conn: Connection) -> LeadReport:
    result = LeadReport()
    for dimension, item, total in conn.execute(
            select(counts.c.dimension, counts.c.item, counts.c.total).where(counts.c.total > 0)):
        if dimension == "captured":
            result.captured = total
        elif dimension == "assigned":
            result.assigned = total
        elif dimension == "channel":
            result.by_channel[item] = total
        elif dimension == "owner":
            result.by_owner[item] = total
    return result


def _add_counts(engine: Any) -> None:
    """A store whose lead rows predate the counts: creates the counts' table and counts the
    rows, in one transaction, so that of two processes starting at once one does it and
    the other finds it done (its CREATE fails, and is retried as a schema race)."""
    def add() -> None:
        stored = inspect(engine)
        if stored.has_table(counts.name) or not stored.has_table(leads.name):
            return
        with engine.begin() as conn:
            counts.create(conn)
            conn.execute(insert(counts).from_select(["dimension", "item", "total"], _counted_from_leads()))
        log.info("analytics.counts_added", projection=NAME)

    retry_schema_race(add, errors=DBAPIError)


def open_projection(platform: PlatformSettings) -> Projection:
    engine = make_engine(platform, "analytics")
    _add_counts(engine)
    return Projection(engine, NAME, metadata=metadata, apply_events=apply_events)


def read_report(projection: Projection) -> LeadReport:
    with projection.engine.connect() as conn:
        return report(conn)

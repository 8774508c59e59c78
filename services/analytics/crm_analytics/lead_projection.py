"""The lead read model: one row per lead, counted into the lead report.

A `Projection` (crm_runtime.readstore) named `lead_report`: it is fed batches of lead
events, writes their effects with a few set-based statements, and records the event ids and
its position per partition in the same transaction, so a replayed or re-sent event changes
nothing and a new, switched or restored store replays what it lacks by itself. `reset()`
(the rebuild command) empties it; the worker then replays the topic from the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, bindparam, func, insert, select, update

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import logs, tracing
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.readstore import Projection, make_engine
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
    known = set(conn.execute(select(leads.c.lead_id).where(leads.c.lead_id.in_(list(rows)))).scalars())
    fresh = [{"lead_id": lead_id, **{name: values.get(name) for name in FIELDS}}
             for lead_id, values in rows.items() if lead_id not in known]
    if fresh:
        conn.execute(insert(leads), fresh)
    # Existing rows: only the fields the batch set, so a captured-then-assigned pair split
    # over two batches keeps both halves. One statement per set of fields.
    by_fields: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for lead_id, values in rows.items():
        if lead_id in known:
            names = tuple(sorted(values))
            by_fields.setdefault(names, []).append({"key": lead_id, **{f"v_{n}": values[n] for n in names}})
    for names, params in by_fields.items():
        statement = (update(leads).where(leads.c.lead_id == bindparam("key"))
                     .values({n: bindparam(f"v_{n}") for n in names}))
        conn.execute(statement, params)


def report(conn: Connection) -> LeadReport:
    captured = leads.c.captured_at.is_not(None)
    assigned = leads.c.owner_id.is_not(None)
    result = LeadReport(
        captured=conn.execute(select(func.count()).where(captured)).scalar_one(),
        assigned=conn.execute(select(func.count()).where(assigned)).scalar_one(),
    )
    for channel, count in conn.execute(
            select(leads.c.channel, func.count()).where(captured).group_by(leads.c.channel)):
        result.by_channel[channel] = count
    for owner, count in conn.execute(
            select(leads.c.owner_id, func.count()).where(assigned).group_by(leads.c.owner_id)):
        result.by_owner[owner] = count
    return result


def open_projection(platform: PlatformSettings) -> Projection:
    return Projection(make_engine(platform, "analytics"), NAME, metadata=metadata, apply_events=apply_events)


def read_report(projection: Projection) -> LeadReport:
    with projection.engine.connect() as conn:
        return report(conn)

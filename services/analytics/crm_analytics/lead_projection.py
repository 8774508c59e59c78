"""The lead read model: one row per lead, counted into the lead report.

Effects are upserts keyed by lead id, applied through ReadStore.apply_once, so a replayed
or re-sent event changes nothing. Dropping the tables and replaying the topic rebuilds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, func, insert, select, update

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.readstore import ReadStore, make_engine, processed_events_table
from crm_runtime.settings import PlatformSettings

metadata = MetaData()
leads = Table(
    "analytics_leads", metadata,
    Column("lead_id", String(64), primary_key=True),
    Column("channel", String(32)),
    Column("captured_at", DateTime(timezone=True)),
    Column("owner_id", String(200)),
    Column("assigned_at", DateTime(timezone=True)),
)
processed = processed_events_table(metadata, "analytics")


def channel_name(value: int) -> str:
    return leads_events.Channel.Name(value).removeprefix("CHANNEL_").lower()


@dataclass
class LeadReport:
    captured: int = 0
    assigned: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_owner: dict[str, int] = field(default_factory=dict)


def _upsert(conn: Connection, lead_id: str, **values) -> None:
    exists = conn.execute(select(leads.c.lead_id).where(leads.c.lead_id == lead_id)).first()
    if exists:
        conn.execute(update(leads).where(leads.c.lead_id == lead_id).values(**values))
    else:
        conn.execute(insert(leads).values(lead_id=lead_id, **values))


def apply(conn: Connection, envelope: EventEnvelope) -> None:
    message = envelope.message
    if isinstance(message, leads_events.LeadCaptured):
        _upsert(conn, message.lead_id, channel=channel_name(message.channel),
                captured_at=message.captured_at.ToDatetime(tzinfo=envelope.time.tzinfo))
    elif isinstance(message, leads_events.LeadAssigned):
        _upsert(conn, message.lead_id, owner_id=message.owner_id,
                assigned_at=message.assigned_at.ToDatetime(tzinfo=envelope.time.tzinfo))


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


def open_store(platform: PlatformSettings) -> ReadStore:
    store = ReadStore(make_engine(platform, "analytics"), metadata, processed)
    store.create_tables()
    return store


def read_report(store: ReadStore) -> LeadReport:
    with store.engine.connect() as conn:
        return report(conn)

# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""Lead domain events to their protobuf messages (crm.leads.v1): the events the leads
context publishes, and the Lead resource the APIs answer with."""

from __future__ import annotations

from crm.leads.v1 import events_pb2, leads_pb2
from crm_leads.domain import Channel, Lead
from crm_runtime.cloudevents import timestamp
from crm_runtime.events import EventMap

CHANNEL_TO_PROTO = {channel: events_pb2.Channel.Value(f"CHANNEL_{channel.name}") for channel in Channel}
PROTO_TO_CHANNEL = {value: channel.value for channel, value in CHANNEL_TO_PROTO.items()}

EVENTS = EventMap(events_pb2)


@EVENTS.publishes(Lead.Captured)
def captured(event: Lead.Captured) -> events_pb2.LeadCaptured:
    return events_pb2.LeadCaptured(
        lead_id=str(event.originator_id), name=event.name, email=event.email, phone=event.phone,
        company=event.company, channel=CHANNEL_TO_PROTO[Channel(event.channel)],
        captured_at=timestamp(event.timestamp))


@EVENTS.publishes(Lead.Assigned)
def assigned(event: Lead.Assigned) -> events_pb2.LeadAssigned:
    return events_pb2.LeadAssigned(
        lead_id=str(event.originator_id), owner_id=event.owner_id,
        idempotency_key=event.idempotency_key, assigned_at=timestamp(event.timestamp))


def lead_to_message(lead: Lead) -> leads_pb2.Lead:
    return leads_pb2.Lead(
        id=str(lead.id), name=lead.name, email=lead.email, phone=lead.phone,
        company=lead.company, channel=CHANNEL_TO_PROTO[lead.channel],
        status=leads_pb2.LEAD_STATUS_NEW, owner_id=lead.owner_id or "",
        version=lead.version, captured_at=timestamp(lead.created_on))

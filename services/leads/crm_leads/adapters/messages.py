"""Lead domain events to their protobuf messages (crm.leads.v1), for the relay and the APIs."""

from __future__ import annotations

from crm.leads.v1 import leads_pb2
from crm_leads.domain import Channel, Lead
from crm_runtime.cloudevents import timestamp

CHANNEL_TO_PROTO = {channel: leads_pb2.Channel.Value(f"CHANNEL_{channel.name}") for channel in Channel}
PROTO_TO_CHANNEL = {value: channel.value for channel, value in CHANNEL_TO_PROTO.items()}


def event_to_message(domain_event):
    if isinstance(domain_event, Lead.Captured):
        return leads_pb2.LeadCaptured(
            lead_id=str(domain_event.originator_id), name=domain_event.name,
            email=domain_event.email, phone=domain_event.phone, company=domain_event.company,
            channel=CHANNEL_TO_PROTO[Channel(domain_event.channel)],
            captured_at=timestamp(domain_event.timestamp))
    if isinstance(domain_event, Lead.Assigned):
        return leads_pb2.LeadAssigned(
            lead_id=str(domain_event.originator_id), owner_id=domain_event.owner_id,
            idempotency_key=domain_event.idempotency_key,
            assigned_at=timestamp(domain_event.timestamp))
    raise TypeError(f"no message for {type(domain_event).__qualname__}")


def lead_to_message(lead: Lead) -> leads_pb2.Lead:
    return leads_pb2.Lead(
        id=str(lead.id), name=lead.name, email=lead.email, phone=lead.phone,
        company=lead.company, channel=CHANNEL_TO_PROTO[lead.channel],
        status=leads_pb2.LEAD_STATUS_NEW, owner_id=lead.owner_id or "",
        version=lead.version, captured_at=timestamp(lead.created_on))

"""The service desk's ticket events as the workflow reads them (`tickets.TicketFact`).

Every ticket event carries `ticket` (`TicketState`): the ticket's whole state after it,
SLA included, so each is read alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import events_pb2, types_pb2
from crm_workflow.sla_timers import SlaState, TargetClock
from crm_workflow.tickets import TicketFact

RUNNING = types_pb2.SLA_TARGET_STATE_RUNNING
PAUSED = types_pb2.SLA_TARGET_STATE_PAUSED
DONE = (types_pb2.SLA_TARGET_STATE_MET, types_pb2.SLA_TARGET_STATE_STOPPED)


def _instant(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    value: Timestamp = getattr(message, name)
    return value.ToDatetime(tzinfo=UTC)


def clock_of(target: types_pb2.SlaTarget) -> TargetClock:
    """A target's clock: its timers run only while the state is RUNNING."""
    running = target.state == RUNNING
    return TargetClock(due=_instant(target, "due") if running else None,
                       warn_at=_instant(target, "warn_at") if running else None,
                       met=target.state in DONE, paused=target.state == PAUSED)


def sla_state(ticket: types_pb2.TicketState) -> SlaState:
    sla = ticket.sla
    return SlaState(subject_id=ticket.ticket_id, first_response=clock_of(sla.first_response),
                    resolution=clock_of(sla.resolution),
                    escalation_steps=tuple(step.ToTimedelta() for step in sla.escalation_steps))


def status_name(status: int) -> str:
    return types_pb2.TicketStatus.Name(status).removeprefix("TICKET_STATUS_").lower()


def fact_of(message: Any, event_id: str) -> TicketFact | None:
    """The ticket fact of a service-desk event; None for events that carry no ticket."""
    if "ticket" not in message.DESCRIPTOR.fields_by_name or not message.HasField("ticket"):
        return None
    ticket = message.ticket
    return TicketFact(ticket_id=ticket.ticket_id, version=ticket.version, status=status_name(ticket.status),
                      group=ticket.group, assignee_id=ticket.assignee_id, category=ticket.category,
                      tags=tuple(ticket.tags), sla=sla_state(ticket), cause_event_id=event_id,
                      opened=isinstance(message, events_pb2.TicketOpened))

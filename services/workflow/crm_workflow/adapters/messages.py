# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The workflow's stored events as messages: the events it publishes (crm.workflow.v1) and
the commands its decisions carry to other services (the command outbox)."""

from __future__ import annotations

from google.protobuf.message import Message

from crm.common.v1 import money_pb2
from crm.leads.v1 import leads_pb2
from crm.servicedesk.v1 import servicedesk_pb2
from crm.workflow.v1 import events_pb2, workflow_pb2
from crm_runtime.cloudevents import timestamp
from crm_runtime.commands import Command, CommandMap
from crm_runtime.events import EventMap
from crm_workflow.application import LEAD
from crm_workflow.assignment import Assignment, Rotation
from crm_workflow.contract_reminders import ReminderTarget
from crm_workflow.contracts import ContractWatch
from crm_workflow.desk import AgentRecord, RoutingGroup, TicketWork, Timer
from crm_workflow.sla_timers import TimerKind
from crm_workflow.views import TimerRow

STRATEGY = {"round_robin": events_pb2.ASSIGNMENT_STRATEGY_ROUND_ROBIN}
LEADS_SERVICE = leads_pb2.DESCRIPTOR.services_by_name["LeadsService"]

EVENTS = EventMap(events_pb2)
EVENTS.internal(Rotation.Started, Rotation.Advanced)  # turns of the rotation: bookkeeping

COMMANDS = CommandMap()


def decided_message(assignment_id, state, decided_at) -> events_pb2.AssignmentDecided:
    return events_pb2.AssignmentDecided(
        assignment_id=str(assignment_id), subject_type=state.subject_type,
        subject_id=state.subject_id, owner_id=state.owner_id,
        strategy=STRATEGY[str(state.strategy)], cause_event_id=state.cause_event_id,
        decided_at=timestamp(decided_at))


@EVENTS.publishes(Assignment.Decided)
def decided(event: Assignment.Decided) -> events_pb2.AssignmentDecided:
    return decided_message(event.originator_id, event, event.timestamp)


@COMMANDS.sends(Assignment.Decided)
def assign(event: Assignment.Decided) -> Command | None:
    if event.subject_type != LEAD:
        return None
    key = Assignment.idempotency_key_for(event.cause_event_id)
    return Command.to("leads", LEADS_SERVICE, "AssignLead", leads_pb2.AssignLeadRequest(
        lead_id=event.subject_id, owner_id=event.owner_id, idempotency_key=key),
        idempotency_key=key, ordering_key=event.subject_id, batch_method="AssignLeads")


def assignment_to_message(assignment: Assignment) -> events_pb2.AssignmentDecided:
    return decided_message(assignment.id, assignment, assignment.created_on)


# -- tickets: routing decisions, timers; contracts: reminders --------------------------------

ROUTING_STRATEGY = {"round_robin": events_pb2.ROUTING_STRATEGY_ROUND_ROBIN,
                    "least_loaded": events_pb2.ROUTING_STRATEGY_LEAST_LOADED,
                    "skills": events_pb2.ROUTING_STRATEGY_SKILLS}
SLA_TARGET = {"first_response": events_pb2.SLA_TARGET_KIND_FIRST_RESPONSE,
              "resolution": events_pb2.SLA_TARGET_KIND_RESOLUTION}
SERVICE_DESK = servicedesk_pb2.DESCRIPTOR.services_by_name["ServiceDeskService"]

EVENTS.internal(
    AgentRecord.Registered, AgentRecord.Changed, AgentRecord.WorkTaken, AgentRecord.WorkLeft,
    RoutingGroup.Defined, RoutingGroup.StrategyChanged, RoutingGroup.MemberJoined, RoutingGroup.MemberLeft,
    RoutingGroup.TicketQueued, RoutingGroup.TicketRouted, RoutingGroup.TicketDropped,
    TicketWork.Observed, TicketWork.Updated, TicketWork.TimersTracked,
    Timer.Scheduled, Timer.Moved, Timer.Cancelled,
    ContractWatch.Started, ContractWatch.Updated,
)


@EVENTS.publishes(TicketWork.Routed)
def ticket_routed(event: TicketWork.Routed) -> events_pb2.TicketRouted:
    return events_pb2.TicketRouted(
        ticket_id=event.ticket_id, agent_id=event.agent_id, group=event.group,
        strategy=ROUTING_STRATEGY.get(event.strategy, events_pb2.ROUTING_STRATEGY_UNSPECIFIED),
        cause_event_id=event.cause_event_id, idempotency_key=event.idempotency_key,
        routed_at=timestamp(event.timestamp))


@EVENTS.publishes(TicketWork.Queued)
def ticket_queued(event: TicketWork.Queued) -> events_pb2.TicketQueued:
    return events_pb2.TicketQueued(ticket_id=event.ticket_id, group=event.group,
                                   cause_event_id=event.cause_event_id, queued_at=timestamp(event.timestamp))


@COMMANDS.sends(TicketWork.Routed)
def assign_ticket(event: TicketWork.Routed) -> Command:
    return Command.to("service-desk", SERVICE_DESK, "AssignTicket", servicedesk_pb2.AssignTicketRequest(
        ticket_id=event.ticket_id, assignee_id=event.agent_id, idempotency_key=event.idempotency_key),
        idempotency_key=event.idempotency_key, ordering_key=event.ticket_id, batch_method="AssignTickets")


@EVENTS.publishes(Timer.Fired)
def timer_fired(event: Timer.Fired) -> Message:
    if event.target not in SLA_TARGET:
        return reminder_fired(event)
    common = {"ticket_id": event.subject_id, "target": SLA_TARGET[event.target], "timer_name": event.name,
              "fire_at": timestamp(event.fire_at), "fired_at": timestamp(event.fired_at)}
    if event.kind == TimerKind.WARNING:
        return events_pb2.SlaWarningReached(**common)
    if event.kind == TimerKind.BREACH:
        return events_pb2.SlaBreached(**common)
    return events_pb2.SlaEscalationReached(**common, level=event.level,
                                           idempotency_key=Timer.idempotency_key_for(event.name))


def reminder_fired(event: Timer.Fired) -> Message:
    """A contract's reminder: what it says was stored with the timer (its payload)."""
    payload = getattr(event, "payload", None) or {}
    common = {"contract_id": payload.get("contract_id", event.subject_id), "account_id": payload.get("account_id", ""),
              "owner_id": payload.get("owner_id", ""), "timer_name": event.name,
              "fire_at": timestamp(event.fire_at), "fired_at": timestamp(event.fired_at)}
    currency = payload.get("currency", "")
    if event.target == ReminderTarget.INSTALMENT:
        return events_pb2.InstalmentReminderDue(
            **common, instalment=event.level, due_on=payload.get("due_on", ""),
            amount=money_pb2.Money(amount=payload.get("amount", ""), currency_code=currency),
            outstanding=money_pb2.Money(amount=payload.get("outstanding", payload.get("amount", "")),
                                        currency_code=currency))
    if event.target == ReminderTarget.RENEWAL:
        return events_pb2.ContractRenewalDue(
            **common, ends_on=payload.get("ends_on", ""),
            total=money_pb2.Money(amount=payload.get("total", ""), currency_code=currency))
    raise ValueError(f"timer {event.name}: no event for target {event.target!r}")


@COMMANDS.sends(Timer.Fired)
def escalate_ticket(event: Timer.Fired) -> Command | None:
    if event.kind != TimerKind.ESCALATION:
        return None
    key = Timer.idempotency_key_for(event.name)
    return Command.to("service-desk", SERVICE_DESK, "EscalateTicket", servicedesk_pb2.EscalateTicketRequest(
        ticket_id=event.subject_id, level=event.level, idempotency_key=key, reason=event.target),
        idempotency_key=key, ordering_key=event.subject_id, batch_method="EscalateTickets")


def timer_to_message(row: TimerRow) -> workflow_pb2.Timer:
    message = workflow_pb2.Timer(
        timer_id=row.id, name=row.name, subject_id=row.subject_id,
        target=SLA_TARGET.get(row.target, events_pb2.SLA_TARGET_KIND_UNSPECIFIED),
        kind=TIMER_KIND.get(row.kind, workflow_pb2.TIMER_KIND_UNSPECIFIED), level=row.level,
        fire_at=timestamp(row.fire_at), state=TIMER_STATE[row.state])
    if row.fired_at is not None:
        message.fired_at.CopyFrom(timestamp(row.fired_at))
    return message


TIMER_KIND = {"warning": workflow_pb2.TIMER_KIND_WARNING, "breach": workflow_pb2.TIMER_KIND_BREACH,
              "escalation": workflow_pb2.TIMER_KIND_ESCALATION, "reminder": workflow_pb2.TIMER_KIND_REMINDER}
TIMER_STATE = {"pending": workflow_pb2.TIMER_STATE_PENDING, "cancelled": workflow_pb2.TIMER_STATE_CANCELLED,
               "fired": workflow_pb2.TIMER_STATE_FIRED}

# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The workflow's stored events as messages: the events it publishes (crm.workflow.v1) and
the commands its decisions carry to other services (the command outbox)."""

from __future__ import annotations

from crm.leads.v1 import leads_pb2
from crm.workflow.v1 import events_pb2
from crm_runtime.cloudevents import timestamp
from crm_runtime.commands import Command, CommandMap
from crm_runtime.events import EventMap
from crm_workflow.application import LEAD
from crm_workflow.assignment import Assignment, Rotation

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
        idempotency_key=key, ordering_key=event.subject_id)


def assignment_to_message(assignment: Assignment) -> events_pb2.AssignmentDecided:
    return decided_message(assignment.id, assignment, assignment.created_on)

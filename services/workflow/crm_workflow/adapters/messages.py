"""Workflow domain events to crm.workflow.v1 messages, for the relay and the gRPC API."""

from __future__ import annotations

from crm.workflow.v1 import workflow_pb2
from crm_runtime.cloudevents import timestamp
from crm_workflow.assignment import Assignment

STRATEGY = {"round_robin": workflow_pb2.ASSIGNMENT_STRATEGY_ROUND_ROBIN}


def decided_message(assignment_id, state, decided_at) -> workflow_pb2.AssignmentDecided:
    return workflow_pb2.AssignmentDecided(
        assignment_id=str(assignment_id), subject_type=state.subject_type,
        subject_id=state.subject_id, owner_id=state.owner_id,
        strategy=STRATEGY[str(state.strategy)], cause_event_id=state.cause_event_id,
        decided_at=timestamp(decided_at))


def event_to_message(domain_event):
    if isinstance(domain_event, Assignment.Decided):
        return decided_message(domain_event.originator_id, domain_event, domain_event.timestamp)
    return None  # rotation turns are internal bookkeeping, not published


def assignment_to_message(assignment: Assignment) -> workflow_pb2.AssignmentDecided:
    return decided_message(assignment.id, assignment, assignment.created_on)

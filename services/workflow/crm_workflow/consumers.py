"""What the workflow does with other contexts' events: decide, locally, in one transaction.

A batch of lead events becomes the rotation's turns and the new assignments, saved with the
consumer's position in the workflow store (crm_runtime.consumer.EventStoreHandler).
Commands to other services are never sent from here: a decision is stored, and the
dispatcher delivers the command it carries (see adapters/messages.py `COMMANDS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import logs, tracing
from crm_runtime.consumer import Delivery, EventStoreHandler
from crm_runtime.eventstore import stamp_trace
from crm_workflow.adapters import sales
from crm_workflow.adapters.servicedesk import fact_of
from crm_workflow.application import WorkflowApplication

log = logs.get(__name__)


def lead_events(_settings: Any, app: WorkflowApplication) -> EventStoreHandler:
    def decide(deliveries: Sequence[Delivery]) -> list[Any]:
        captured = [(d.envelope.message.lead_id, d.envelope.id) for d in deliveries
                    if isinstance(d.envelope.message, leads_events.LeadCaptured)]
        if not captured:
            return []
        changed, _ = app.plan_lead_owners(captured)
        causes = {d.envelope.id: d.envelope.context for d in deliveries}
        for assignment in changed[1:]:
            context = causes.get(assignment.cause_event_id, {})
            stamp_trace(assignment, context)
            with tracing.bound_from_headers(context):
                log.info("assignment.decided", lead_id=assignment.subject_id, owner_id=assignment.owner_id)
        return changed

    # Every decision turns the one rotation: partitions decide one after the other.
    return EventStoreHandler(app, "assignments", decide, serialize=True)


def ticket_events(_settings: Any, app: WorkflowApplication) -> EventStoreHandler:
    """Service-desk ticket events -> loads, routing decisions, queues and timers, saved with
    the partition's position in one transaction (crm_workflow.tickets)."""

    def decide(deliveries: Sequence[Delivery]) -> list[Any]:
        facts = [fact for d in deliveries if (fact := fact_of(d.envelope.message, d.envelope.id)) is not None]
        if not facts:
            return []
        changed, desk = app.plan_tickets(facts)
        causes = {d.envelope.id: d.envelope.context for d in deliveries}
        for aggregate in changed:
            stamp_trace(aggregate, causes.get(_cause_of(aggregate) or "", {}))
        for ticket_id, agent_id in desk.outcome.routed:
            log.info("ticket.routed", ticket_id=ticket_id, agent_id=agent_id)
        for ticket_id in desk.outcome.queued:
            log.info("ticket.queued", ticket_id=ticket_id)
        if desk.outcome.scheduled or desk.outcome.cancelled:
            log.info("timers.changed", scheduled=len(desk.outcome.scheduled), cancelled=len(desk.outcome.cancelled))
        return changed

    # Routing moves shared aggregates (a group's turn and queue, agents' loads): partitions
    # decide one after the other rather than race and decide again.
    return EventStoreHandler(app, "tickets", decide, serialize=True)


def contract_events(settings: Any, app: WorkflowApplication) -> EventStoreHandler:
    """Sales' contract events -> the contracts' reminder timers, saved with the partition's
    position in one transaction (crm_workflow.contracts)."""

    def decide(deliveries: Sequence[Delivery]) -> list[Any]:
        facts = [fact for d in deliveries if (fact := sales.fact_of(d.envelope.message, d.envelope.id)) is not None]
        if not facts:
            return []
        changed, reminders = app.plan_contracts(facts, settings.reminders)
        causes = {d.envelope.id: d.envelope.context for d in deliveries}
        for aggregate in changed:
            stamp_trace(aggregate, causes.get(_cause_of(aggregate) or "", {}))
        if reminders.outcome.scheduled or reminders.outcome.cancelled:
            log.info("reminders.changed", scheduled=len(reminders.outcome.scheduled),
                     cancelled=len(reminders.outcome.cancelled))
        return changed

    # Each contract's watch and timers are its own: partitions decide side by side.
    return EventStoreHandler(app, "contracts", decide)


def _cause_of(aggregate: Any) -> str | None:
    for pending in aggregate.pending_events:
        cause = getattr(pending, "cause_event_id", None)
        if cause:
            return str(cause)
    return None

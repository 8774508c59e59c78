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

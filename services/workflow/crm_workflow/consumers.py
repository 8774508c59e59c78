"""What the workflow does with other contexts' events: decide, locally, in one transaction.

Commands to other services are never sent from here: a decision is stored, and the
dispatcher delivers the command it carries (see adapters/messages.py `COMMANDS`).
"""

from __future__ import annotations

import asyncio

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime.cloudevents import EventEnvelope
from crm_workflow.application import WorkflowApplication


def lead_events(_settings, app: WorkflowApplication):
    async def decide(envelope: EventEnvelope) -> None:
        message = envelope.message
        if isinstance(message, leads_events.LeadCaptured):
            await asyncio.to_thread(app.decide_lead_owner, message.lead_id, envelope.id)

    return decide

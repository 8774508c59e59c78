"""Entry point: `python -m crm_workflow.worker`, the faust app reacting to lead events.

On LeadCaptured it decides an owner (once per lead, durably) and tells the leads service
with an idempotency key derived from the event, retrying while the leads service is down.
"""

from __future__ import annotations

import asyncio

from crm.leads.v1 import leads_pb2
from crm_runtime import consumer, logs, service
from crm_runtime.auth import ServiceAccount
from crm_runtime.cloudevents import EventEnvelope, EventRegistry
from crm_runtime.topics import events_topic
from crm_workflow.adapters.leads_client import LeadsClient
from crm_workflow.application import WorkflowApplication
from crm_workflow.settings import WorkflowSettings

log = logs.get(__name__)


class LeadEventsHandler:
    def __init__(self, app: WorkflowApplication, leads: LeadsClient):
        self.app = app
        self.leads = leads

    async def __call__(self, envelope: EventEnvelope) -> None:
        message = envelope.message
        if isinstance(message, leads_pb2.LeadCaptured):
            assignment = await asyncio.to_thread(self.app.decide_lead_owner, message.lead_id, envelope.id)
            await self.leads.assign_lead(message.lead_id, assignment.owner_id, assignment.idempotency_key)
            log.info("lead.assignment_sent", lead_id=message.lead_id, owner_id=assignment.owner_id)


def build(settings: WorkflowSettings):
    platform = settings.platform
    faust_app = consumer.make_app("crm-workflow", platform)
    handler = LeadEventsHandler(WorkflowApplication(platform, settings.sales_rep_ids),
                                LeadsClient(settings.leads_grpc_target, settings.command_timeout_seconds,
                                            ServiceAccount(service.token_codec(settings), "workflow")))
    consumer.EventConsumer(faust_app, events_topic("leads", platform.topic_prefix),
                           EventRegistry.from_modules(leads_pb2), handler, name="workflow")
    return faust_app


def main() -> None:
    consumer.main(WorkflowSettings(), "workflow-worker", build)


if __name__ == "__main__":
    main()

"""The workflow context, declared once: everything that runs it is derived from this."""

from crm_runtime.context import Consumer, Context
from crm_workflow import consumers
from crm_workflow.adapters import grpc, http
from crm_workflow.adapters.messages import COMMANDS, EVENTS
from crm_workflow.application import WorkflowApplication
from crm_workflow.permissions import ASSIGNMENTS
from crm_workflow.settings import WorkflowSettings

CONTEXT = Context(
    name="workflow",
    settings=WorkflowSettings,
    application=lambda settings: WorkflowApplication(settings.platform, settings.sales_rep_ids),
    topic="workflow",
    events=EVENTS,
    http=http.routers,
    grpc=grpc.registrations,
    consumers=(Consumer("assignments", topics=("leads",), handler=consumers.lead_events),),
    commands=COMMANDS,
    resources=(ASSIGNMENTS,),
)

"""The workflow context, declared once: everything that runs it is derived from this."""

from crm_runtime.context import Consumer, Context, Periodic
from crm_workflow import consumers, firing
from crm_workflow.adapters import grpc, http
from crm_workflow.adapters.messages import COMMANDS, EVENTS
from crm_workflow.application import WorkflowApplication
from crm_workflow.permissions import AGENTS, ASSIGNMENTS, ROUTING, TIMERS
from crm_workflow.settings import WorkflowSettings

CONTEXT = Context(
    name="workflow",
    settings=WorkflowSettings,
    application=lambda settings: WorkflowApplication(settings.platform, settings.sales_rep_ids),
    topic="workflow",
    events=EVENTS,
    http=http.routers,
    grpc=grpc.registrations,
    consumers=(Consumer("assignments", topics=("leads",), handler=consumers.lead_events),
               Consumer("tickets", topics=("servicedesk",), handler=consumers.ticket_events),
               Consumer("contracts", topics=("sales",), handler=consumers.contract_events)),
    # The worker fires due SLA timers and contract reminders (crm_workflow.firing) beside its consumers.
    periodic=(Periodic("timers", "timer_poll_seconds", firing.timer_firer),),
    commands=COMMANDS,
    resources=(ASSIGNMENTS, AGENTS, ROUTING, TIMERS),
)

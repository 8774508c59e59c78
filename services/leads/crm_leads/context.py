"""The leads context, declared once: everything that runs it is derived from this."""

from crm_leads import consumers
from crm_leads.adapters import grpc, http
from crm_leads.adapters.messages import EVENTS
from crm_leads.application import LeadsApplication
from crm_leads.permissions import CAMPAIGNS, LEADS, SCORING_RULES
from crm_leads.settings import LeadsSettings
from crm_runtime.context import Consumer, Context

CONTEXT = Context(
    name="leads",
    settings=LeadsSettings,
    application=lambda settings: LeadsApplication(settings.platform, settings.default_phone_region),
    topic="leads",
    events=EVENTS,
    http=http.routers,
    grpc=grpc.registrations,
    # The account a converted lead joined (crm.sales.v1.ContactAdded), recorded on the lead.
    consumers=(Consumer("conversions", topics=("sales",), handler=consumers.account_links),),
    resources=(LEADS, CAMPAIGNS, SCORING_RULES),
)

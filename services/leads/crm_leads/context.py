"""The leads context, declared once: everything that runs it is derived from this."""

from crm_leads.adapters import grpc, http
from crm_leads.adapters.messages import EVENTS
from crm_leads.application import LeadsApplication
from crm_leads.permissions import CAMPAIGNS, LEADS, SCORING_RULES
from crm_leads.settings import LeadsSettings
from crm_runtime.context import Context

CONTEXT = Context(
    name="leads",
    settings=LeadsSettings,
    application=lambda settings: LeadsApplication(settings.platform, settings.default_phone_region),
    topic="leads",
    events=EVENTS,
    http=http.routers,
    grpc=grpc.registrations,
    resources=(LEADS, CAMPAIGNS, SCORING_RULES),
)

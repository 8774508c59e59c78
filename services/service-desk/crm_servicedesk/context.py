"""The service-desk context, declared once: everything that runs it is derived from this."""

from crm_runtime.context import Context
from crm_servicedesk.adapters import grpc, http
from crm_servicedesk.adapters.messages import EVENTS
from crm_servicedesk.application import ServiceDeskApplication
from crm_servicedesk.permissions import ARTICLES, CALENDARS, SLA_POLICIES, SURVEYS, TICKETS
from crm_servicedesk.settings import ServiceDeskSettings

CONTEXT = Context(
    name="service-desk",
    settings=ServiceDeskSettings,
    # The system clock: every due time counts from the instant a command happened.
    application=lambda settings: ServiceDeskApplication(settings.platform),
    topic="servicedesk",
    events=EVENTS,
    http=http.routers,
    grpc=grpc.registrations,
    resources=(TICKETS, SLA_POLICIES, CALENDARS, ARTICLES, SURVEYS),
)

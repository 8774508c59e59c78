"""The analytics context, declared once: everything that runs it is derived from this."""

from crm_analytics.adapters import grpc, http
from crm_analytics.permissions import REPORTS
from crm_analytics.read_models import ReadModels
from crm_analytics.settings import AnalyticsSettings
from crm_runtime.context import Consumer, Context

CONTEXT = Context(
    name="analytics",
    settings=AnalyticsSettings,
    # Its "application" is the read models the projections write and the reports read.
    application=lambda settings: ReadModels(settings.platform),
    http=http.routers,
    grpc=grpc.registrations,
    consumers=(Consumer("lead-report", topics=("leads",), handler=lambda _settings, models: models.lead_report),),
    resources=(REPORTS,),
)

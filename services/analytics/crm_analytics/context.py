"""The analytics context, declared once: everything that runs it is derived from this."""

from crm_analytics import consumers, lead_projection
from crm_analytics.adapters import grpc, http
from crm_analytics.permissions import REPORTS
from crm_analytics.settings import AnalyticsSettings
from crm_runtime.context import Consumer, Context

CONTEXT = Context(
    name="analytics",
    settings=AnalyticsSettings,
    # Its "application" is the read store the projections write and the reports read.
    application=lambda settings: lead_projection.open_store(settings.platform),
    http=http.routers,
    grpc=grpc.registrations,
    consumers=(Consumer("lead-report", topics=("leads",), handler=consumers.lead_report),),
    store_check=lambda store: store.check,
    resources=(REPORTS,),
)

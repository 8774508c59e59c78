"""The sales context, declared once: everything that runs it is derived from this."""

from crm_runtime.context import Consumer, Context
from crm_sales import consumers
from crm_sales.adapters import grpc, http
from crm_sales.adapters.messages import EVENTS
from crm_sales.application import SalesApplication
from crm_sales.permissions import (
    ACCOUNTS,
    COMMISSIONS,
    CONTACTS,
    CONTRACT_APPROVALS,
    CONTRACTS,
    FX_RATES,
    LOYALTY,
    OPPORTUNITIES,
    ORDERS,
    PIPELINE,
    PRICE_BOOKS,
    PRODUCTS,
    QUOTES,
)
from crm_sales.settings import SalesSettings

CONTEXT = Context(
    name="sales",
    settings=SalesSettings,
    application=lambda settings: SalesApplication(
        settings.platform, settings.default_phone_region, base_currency=settings.base_currency,
        approval_threshold=settings.contract_approval_threshold,
        converted_close_days=settings.converted_opportunity_close_days),
    topic="sales",
    events=EVENTS,
    http=http.routers,
    grpc=grpc.registrations,
    # Converted leads (crm.leads.v1.LeadConverted) become accounts and contacts.
    consumers=(Consumer("conversions", topics=("leads",), handler=consumers.lead_conversions),),
    resources=(ACCOUNTS, CONTACTS, PIPELINE, OPPORTUNITIES, PRODUCTS, PRICE_BOOKS, QUOTES, FX_RATES, CONTRACTS,
               CONTRACT_APPROVALS, ORDERS, LOYALTY, COMMISSIONS),
)

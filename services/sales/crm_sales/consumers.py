"""What the sales service does with other contexts' events: converted leads become
accounts and contacts, decided and saved locally in one transaction per batch.

A batch's `crm.leads.v1.LeadConverted` events are planned together (crm_sales.conversion:
redeliveries change nothing, a known email domain's account is reused, two leads of one
new domain share one account) and the plan's aggregates are saved with the consumer's
position in the sales store (crm_runtime.consumer.EventStoreHandler). The sales relay then
publishes `AccountOpened` and `ContactAdded` (with the lead id) on crm.sales.events.v1,
from which the leads service learns the account its lead joined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import logs, tracing
from crm_runtime.consumer import Delivery, EventStoreHandler
from crm_runtime.eventstore import stamp_trace
from crm_sales.application import SalesApplication
from crm_sales.conversion import Conversion, ConversionPlan
from crm_sales.settings import SalesSettings

log = logs.get(__name__)


def decide_conversions(app: SalesApplication, unassigned_owner: str,
                       deliveries: Sequence[Delivery]) -> list[Any]:
    """The aggregates a batch of deliveries changes (other lead events change nothing); a
    converted lead that names an opportunity also opens it (crm_sales.conversion)."""
    converted = [d for d in deliveries if isinstance(d.envelope.message, leads_events.LeadConverted)]
    if not converted:
        return []
    plan = ConversionPlan(app.conversion_lookups(), unassigned_owner, base_currency=app.base_currency,
                          close_days=app.converted_close_days)
    for delivery in converted:
        envelope = delivery.envelope
        with tracing.bound_from_headers(envelope.context):
            outcome = plan.convert(Conversion.from_message(envelope.message, app.default_phone_region))
            for aggregate in outcome.changed:
                stamp_trace(aggregate, envelope.context)
            log.info("conversion.applied", result=outcome.result, lead_id=outcome.conversion.lead_id,
                     account_id=str(outcome.account_id), contact_id=str(outcome.conversion.contact_id),
                     account_reused=outcome.account_reused, event_id=envelope.id)
    return plan.aggregates


def lead_conversions(settings: SalesSettings, app: SalesApplication) -> EventStoreHandler:
    # Partitions decide concurrently: two of them opening an account for the same new
    # domain collide on the domain's claim, and the loser decides again and joins it.
    return EventStoreHandler(app, "conversions",
                             lambda deliveries: decide_conversions(app, settings.unassigned_owner, deliveries))

"""What the leads service does with other contexts' events: the account a converted lead
joined, recorded on the lead in one transaction per batch.

Sales publishes `crm.sales.v1.ContactAdded` with the lead's id when it turns a converted
lead into a contact; `crm_leads.conversion.link_accounts` records the account the contact
joined on the lead (`LeadAccountLinked`), saved with the consumer's position in the leads
store (crm_runtime.consumer.EventStoreHandler). A redelivered event finds the link already
recorded and changes nothing.
"""

from __future__ import annotations

from typing import Any

from crm_leads.application import LeadsApplication
from crm_leads.conversion import link_accounts
from crm_runtime.consumer import EventStoreHandler


def account_links(_settings: Any, app: LeadsApplication) -> EventStoreHandler:
    # A lead's link and an API command on the same lead may race: the loser of the save
    # decides again (EventStoreHandler), on the lead as it is then.
    return EventStoreHandler(app, "conversions", lambda deliveries: link_accounts(app, deliveries))

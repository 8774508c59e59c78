"""Converting a lead, the leads side: the command, and the account the lead joined.

`convert_lead` takes a qualified lead (else a FailedPrecondition naming its status, also
for a second convert: the lead is `converted` then) to `converted` and records
`LeadConverted` with the lead's details (owner, email domain, ...) and the ids the sales
service is to use, derived from the lead's id (`crm_leads.domain.conversion_ids`: the same
lead always names the same account and contact; the lead shows them from then on).

The sales service consumes `LeadConverted`, opens the account (or, for an email domain it
knows, adds the contact to the account that has it) and publishes `ContactAdded` with the
lead's id. The leads worker (consumer `conversions`, crm_leads.consumers) reads that and
records on the lead the account the contact actually joined (`LeadAccountLinked`), once:
a redelivery finds it recorded and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from crm.sales.v1 import events_pb2 as sales_events
from crm_leads.domain import Lead, OpportunityToOpen, record_id
from crm_runtime import logs, tracing
from crm_runtime.auth import Principal, current_principal
from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.eventstore import check_version, stamp_trace
from crm_runtime.ownership import check_visible

if TYPE_CHECKING:
    from crm_leads.application import LeadsApplication
    from crm_runtime.consumer import Delivery

log = logs.get(__name__)


@dataclass(frozen=True)
class ConvertLead:
    lead_id: str | UUID
    expected_version: int | None = None  # optional (If-Match): the status guards the move
    caller: Principal | None = None
    opportunity: OpportunityToOpen | None = None  # sales opens it for the new customer


def convert_lead(app: LeadsApplication, command: ConvertLead) -> Lead:
    """qualified -> converted; the lead then carries its account_id and contact_id."""
    who = command.caller if command.caller is not None else current_principal()
    if command.expected_version is not None and command.expected_version < 1:
        raise InvalidField("expected_version", "versions start at 1")
    lead = check_visible(app.get(Lead, command.lead_id, "lead"), "lead", who)
    check_version(lead, command.expected_version)
    account_id, contact_id = lead.convert(by=who.subject if who is not None else "",
                                          opportunity=command.opportunity)
    app.save_changes(lead)
    log.info("lead.converted", lead_id=str(lead.id), account_id=account_id, contact_id=contact_id)
    app._refresh_views()
    return lead


def link_accounts(app: LeadsApplication, deliveries: Sequence[Delivery]) -> list[Any]:
    """The leads a batch of sales events changes: each `ContactAdded` that names a lead of
    this store records the account the lead's contact joined (other sales events, and
    contacts of leads this store does not hold, change nothing)."""
    changed: dict[UUID, Lead] = {}
    for delivery in deliveries:
        envelope = delivery.envelope
        message = envelope.message
        if not isinstance(message, sales_events.ContactAdded) or not message.lead_id:
            continue
        with tracing.bound_from_headers(envelope.context):
            try:
                lead_id = UUID(message.lead_id)
            except ValueError:
                log.info("conversion.not_a_lead_of_ours", lead_id=message.lead_id[:80], event_id=envelope.id)
                continue
            lead = changed.get(lead_id) or app.find(Lead, lead_id)
            if lead is None:
                log.info("conversion.not_a_lead_of_ours", lead_id=str(lead_id), event_id=envelope.id)
                continue
            # A malformed id from sales is a fault of the event: dead-lettered after retries.
            account_id, contact_id = _id("account_id", message.account_id), _id("contact_id", message.contact_id)
            try:
                linked = lead.link_account(account_id, contact_id, message.account_reused)
            except FailedPrecondition as refused:
                log.warning("conversion.link_refused", lead_id=str(lead_id), reason=str(refused),
                            event_id=envelope.id)
                continue
            if linked:
                stamp_trace(lead, envelope.context)
                changed[lead_id] = lead
                log.info("lead.account_linked", lead_id=str(lead_id), account_id=account_id,
                         account_reused=message.account_reused, event_id=envelope.id)
    return list(changed.values())


def _id(field: str, raw: str) -> str:
    found = record_id(field, raw)
    if found is None:
        raise InvalidField(field, "is required")
    return found

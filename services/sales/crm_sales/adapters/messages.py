# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""Sales domain events to their protobuf messages (crm.sales.v1): the events the sales
context publishes on crm.sales.events.v1, and the Account and Contact resources the gRPC
API answers with. Absent optional values are empty strings (tier: TIER_UNSPECIFIED)."""

from __future__ import annotations

from crm.sales.v1 import events_pb2, sales_pb2
from crm_runtime.cloudevents import timestamp
from crm_runtime.events import EventMap
from crm_sales.domain import Account, Contact, DomainAccount, Tier
from crm_sales.views import AccountRecord, ContactRecord

TIER_TO_PROTO = {tier.value: events_pb2.Tier.Value(f"TIER_{tier.name}") for tier in Tier}
PROTO_TO_TIER = {value: tier for tier, value in TIER_TO_PROTO.items()}

EVENTS = EventMap(events_pb2)
# Which account an email domain's converted leads join: bookkeeping of the conversion.
EVENTS.internal(DomainAccount.Claimed, DomainAccount.Moved)


def tier_to_proto(tier: str | None) -> events_pb2.Tier.ValueType:
    return TIER_TO_PROTO[tier] if tier else events_pb2.TIER_UNSPECIFIED


@EVENTS.publishes(Account.Opened)
def account_opened(event: Account.Opened) -> events_pb2.AccountOpened:
    return events_pb2.AccountOpened(
        account_id=str(event.originator_id), name=event.name, domain=event.domain or "",
        industry=event.industry or "", region=event.region or "", tier=tier_to_proto(event.tier),
        owner_id=event.owner_id, version=event.originator_version,
        opened_at=timestamp(event.timestamp), opened_by=event.opened_by)


@EVENTS.publishes(Account.Changed)
def account_changed(event: Account.Changed) -> events_pb2.AccountChanged:
    return events_pb2.AccountChanged(
        account_id=str(event.originator_id), name=event.name, domain=event.domain or "",
        industry=event.industry or "", region=event.region or "", tier=tier_to_proto(event.tier),
        owner_id=event.owner_id, version=event.originator_version,
        changed_fields=list(event.changed_fields), changed_at=timestamp(event.timestamp),
        changed_by=event.changed_by)


@EVENTS.publishes(Contact.Added)
def contact_added(event: Contact.Added) -> events_pb2.ContactAdded:
    return events_pb2.ContactAdded(
        contact_id=str(event.originator_id), account_id=event.account_id, name=event.name,
        email=event.email or "", phone=event.phone or "", version=event.originator_version,
        added_at=timestamp(event.timestamp), added_by=event.added_by,
        # Events stored before conversion existed have neither attribute.
        lead_id=getattr(event, "lead_id", None) or "",
        account_reused=bool(getattr(event, "account_reused", False)))


@EVENTS.publishes(Contact.Changed)
def contact_changed(event: Contact.Changed) -> events_pb2.ContactChanged:
    return events_pb2.ContactChanged(
        contact_id=str(event.originator_id), account_id=event.account_id, name=event.name,
        email=event.email or "", phone=event.phone or "", version=event.originator_version,
        changed_fields=list(event.changed_fields), changed_at=timestamp(event.timestamp),
        changed_by=event.changed_by)


def account_to_message(account: AccountRecord) -> sales_pb2.Account:
    return sales_pb2.Account(
        id=account.id, name=account.name, domain=account.domain or "",
        industry=account.industry or "", region=account.region or "",
        tier=tier_to_proto(account.tier), owner_id=account.owner_id, version=account.version,
        created_at=timestamp(account.created_at), updated_at=timestamp(account.updated_at))


def contact_to_message(contact: ContactRecord) -> sales_pb2.Contact:
    return sales_pb2.Contact(
        id=contact.id, account_id=contact.account_id, name=contact.name,
        email=contact.email or "", phone=contact.phone or "", owner_id=contact.owner_id,
        version=contact.version, created_at=timestamp(contact.created_at),
        updated_at=timestamp(contact.updated_at))

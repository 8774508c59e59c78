"""gRPC adapter: crm.sales.v1.SalesService. Each method names its permission once (`@rpc`);
errors map to status codes through the runtime's one table (crm_runtime.errors)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

from crm.sales.v1 import events_pb2, sales_pb2, sales_pb2_grpc
from crm_runtime.auth import current_principal
from crm_runtime.errors import InvalidField
from crm_runtime.grpc_server import Registration, rpc
from crm_sales.adapters.messages import PROTO_TO_TIER, account_to_message, contact_to_message
from crm_sales.application import AddContact, ChangeAccount, ChangeContact, ListRecords, OpenAccount, SalesApplication
from crm_sales.permissions import ACCOUNTS, CONTACTS
from crm_sales.views import DEFAULT_LIMIT, MAX_LIMIT

# The list fields' names on this protocol.
_LIST_FIELDS = {"limit": "page_size", "cursor": "page_token"}


def _tier(value: int) -> str | None:
    """A Tier number as the domain's name; an unknown number is passed on to be refused."""
    if value == events_pb2.TIER_UNSPECIFIED:
        return None
    return PROTO_TO_TIER.get(value, str(value))


def _set_fields(request, names: tuple[str, ...]) -> dict[str, Any]:
    """The optional fields the caller set: only those change (an empty value clears)."""
    changes: dict[str, Any] = {}
    for name in names:
        if request.HasField(name):
            value = getattr(request, name)
            changes[name] = _tier(value) if name == "tier" else (value or None)
    return changes


def _list_request(request, account_id: str | None = None) -> ListRecords:
    if request.page_size < 0:
        raise InvalidField("page_size", "must not be negative")
    return ListRecords(
        limit=min(request.page_size, MAX_LIMIT) or DEFAULT_LIMIT,
        cursor=request.page_token or None, owner_id=request.owner_id or None,
        name_prefix=request.name_prefix or None,
        updated_since=(request.updated_since.ToDatetime(tzinfo=UTC)
                       if request.HasField("updated_since") else None),
        account_id=account_id, caller=current_principal())


async def _listed(fn, request: ListRecords):
    try:
        return await asyncio.to_thread(fn, request)
    except InvalidField as exc:
        name = _LIST_FIELDS.get(exc.field)
        if name is None:
            raise
        raise InvalidField(name, exc.message) from None


class SalesServicer(sales_pb2_grpc.SalesServiceServicer):
    def __init__(self, app: SalesApplication):
        self.app = app

    # -- accounts -------------------------------------------------------------------------

    @rpc(ACCOUNTS.create)
    async def CreateAccount(self, request, context):
        account, created = await asyncio.to_thread(self.app.open_account, OpenAccount(
            name=request.name, domain=request.domain, industry=request.industry,
            region=request.region, tier=_tier(request.tier), owner_id=request.owner_id or None,
            request_key=request.request_id or None, caller=current_principal()))
        return sales_pb2.CreateAccountResponse(account=account_to_message(account), created=created)

    @rpc(ACCOUNTS.view)
    async def GetAccount(self, request, context):
        account = await asyncio.to_thread(self.app.get_account, request.account_id, current_principal())
        return sales_pb2.GetAccountResponse(account=account_to_message(account))

    @rpc(ACCOUNTS.edit)
    async def UpdateAccount(self, request, context):
        changes = _set_fields(request, ("name", "domain", "industry", "region", "tier", "owner_id"))
        account = await asyncio.to_thread(self.app.change_account, ChangeAccount(
            account_id=request.account_id, expected_version=request.expected_version or None,
            changes=changes, caller=current_principal()))
        return sales_pb2.UpdateAccountResponse(account=account_to_message(account))

    @rpc(ACCOUNTS.view)
    async def ListAccounts(self, request, context):
        page = await _listed(self.app.list_accounts, _list_request(request))
        return sales_pb2.ListAccountsResponse(accounts=[account_to_message(a) for a in page.items],
                                              next_page_token=page.next_cursor or "")

    # -- contacts -------------------------------------------------------------------------

    @rpc(CONTACTS.create)
    async def CreateContact(self, request, context):
        contact, created = await asyncio.to_thread(self.app.add_contact, AddContact(
            account_id=request.account_id, name=request.name, email=request.email,
            phone=request.phone, request_key=request.request_id or None, caller=current_principal()))
        return sales_pb2.CreateContactResponse(contact=contact_to_message(contact), created=created)

    @rpc(CONTACTS.view)
    async def GetContact(self, request, context):
        contact = await asyncio.to_thread(self.app.get_contact, request.contact_id, current_principal())
        return sales_pb2.GetContactResponse(contact=contact_to_message(contact))

    @rpc(CONTACTS.edit)
    async def UpdateContact(self, request, context):
        changes = _set_fields(request, ("name", "email", "phone", "account_id"))
        contact = await asyncio.to_thread(self.app.change_contact, ChangeContact(
            contact_id=request.contact_id, expected_version=request.expected_version or None,
            changes=changes, caller=current_principal()))
        return sales_pb2.UpdateContactResponse(contact=contact_to_message(contact))

    @rpc(CONTACTS.view)
    async def ListContacts(self, request, context):
        page = await _listed(self.app.list_contacts,
                             _list_request(request, account_id=request.account_id or None))
        return sales_pb2.ListContactsResponse(contacts=[contact_to_message(c) for c in page.items],
                                              next_page_token=page.next_cursor or "")


def registrations(app: SalesApplication) -> list[Registration]:
    return [Registration(sales_pb2_grpc.add_SalesServiceServicer_to_server, SalesServicer(app),
                         sales_pb2.DESCRIPTOR.services_by_name["SalesService"])]

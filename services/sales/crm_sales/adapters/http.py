"""HTTP adapter: /v1/accounts and /v1/contacts (the deals' routes are in
crm_sales.adapters.deals). Pydantic models live here, at the edge only.

Creating is `POST` (honours `Idempotency-Key`, per caller; answers `Location` and `ETag`),
reading `GET /{id}`, changing `PATCH /{id}` with only the fields to change (null clears an
optional one) and `If-Match: "<version>"` (missing: 428; stale: 409), listing `GET` with
`limit`, `cursor` and filters. Bodies with unknown fields are refused.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses, expected_version, given_fields, precondition_required, tag
from crm_sales.application import AddContact, ChangeAccount, ChangeContact, ListRecords, OpenAccount, SalesApplication
from crm_sales.domain import DOMAIN_MAX, EMAIL_MAX, ID_MAX, INDUSTRY_MAX, NAME_MAX, PHONE_MAX, REGION_MAX, Tier
from crm_sales.permissions import ACCOUNTS, CONTACTS
from crm_sales.views import CURSOR_MAX, DEFAULT_LIMIT, MAX_LIMIT, AccountRecord, ContactRecord

if TYPE_CHECKING:
    TierName = str
else:  # the tier names, for the schema clients see
    TierName = Literal[tuple(tier.value for tier in Tier)]


# -- request bodies -------------------------------------------------------------------------
# The domain validates again and names the field; the schema tells clients up front.

class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=NAME_MAX, pattern=r"\S", description="The organisation's name")
    domain: str | None = Field(default=None, max_length=DOMAIN_MAX,
                               description="Its web domain, e.g. example.com; stored lower-case (IDNA)")
    industry: str | None = Field(default=None, max_length=INDUSTRY_MAX)
    region: str | None = Field(default=None, max_length=REGION_MAX,
                               description="A short code or a name, e.g. EMEA")
    tier: TierName | None = None
    owner_id: str | None = Field(default=None, max_length=ID_MAX,
                                 description="Default: the caller. Another subject needs accounts:assign")


class AccountChanges(BaseModel):
    """Only the fields to change; null clears an optional field (name and owner_id cannot be cleared)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=NAME_MAX)
    domain: str | None = Field(default=None, max_length=DOMAIN_MAX)
    industry: str | None = Field(default=None, max_length=INDUSTRY_MAX)
    region: str | None = Field(default=None, max_length=REGION_MAX)
    tier: TierName | None = None
    owner_id: str | None = Field(default=None, max_length=ID_MAX,
                                 description="Another subject than the caller needs accounts:assign")


class NewContact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: UUID = Field(description="An account the caller can see")
    name: str = Field(max_length=NAME_MAX, pattern=r"\S", description="The person's full name")
    email: str | None = Field(default=None, max_length=EMAIL_MAX, json_schema_extra={"format": "email"},
                              description="Normalised on the way in")
    phone: str | None = Field(default=None, max_length=PHONE_MAX,
                              description="International, or in the service's default region; stored in E.164")


class ContactChanges(BaseModel):
    """Only the fields to change; null clears email or phone. account_id moves the contact."""

    model_config = ConfigDict(extra="forbid")

    account_id: UUID | None = None
    name: str | None = Field(default=None, max_length=NAME_MAX)
    email: str | None = Field(default=None, max_length=EMAIL_MAX)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)


# -- responses ------------------------------------------------------------------------------

class AccountOut(BaseModel):
    id: str
    name: str
    domain: str | None
    industry: str | None
    region: str | None
    tier: TierName | None
    owner_id: str
    version: int = Field(description="Send it back as If-Match to change the account")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: AccountRecord) -> AccountOut:
        return cls(**record.__dict__)


class ContactOut(BaseModel):
    id: str
    account_id: str
    name: str
    email: str | None
    phone: str | None
    owner_id: str = Field(description="The owner of the contact's account")
    version: int = Field(description="Send it back as If-Match to change the contact")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: ContactRecord) -> ContactOut:
        return cls(**record.__dict__)


class AccountPage(BaseModel):
    items: list[AccountOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


# -- shared parameters ------------------------------------------------------------------------

IdempotencyKey = Annotated[str | None, Header(max_length=200, description=
                           "The same key (per caller) creates the record once; a repeat answers 200")]
IfMatch = Annotated[str | None, Header(max_length=40, description='The version you read, e.g. "3"')]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}")]
Cursor = Annotated[str | None, Query(max_length=CURSOR_MAX, description="next_cursor of the previous page")]
OwnerFilter = Annotated[str | None, Query(max_length=ID_MAX)]
NamePrefix = Annotated[str | None, Query(max_length=NAME_MAX, description="Case-insensitive")]
UpdatedSince = Annotated[AwareDatetime | None, Query(
    description="RFC 3339 with an offset: only records changed at or after it")]

PATCH_ERRORS = error_responses(404, 409, 422, 428)


def routers(app: SalesApplication) -> list[APIRouter]:
    from crm_sales.adapters import (
        deals,  # pipeline, opportunities, products, price books, quotes
        lead_to_cash,  # FX, contracts, orders, loyalty, commissions
    )

    return [accounts_router(app), contacts_router(app), *deals.routers(app), *lead_to_cash.routers(app)]


def accounts_router(app: SalesApplication) -> APIRouter:
    @asynccontextmanager
    async def lifespan(_api):
        # The API answers lists from the index: bring it up to date before serving.
        await asyncio.to_thread(app.catch_up_views)
        yield

    api = APIRouter(prefix="/v1/accounts", tags=["accounts"], lifespan=lifespan)

    @api.post("", status_code=201, response_model=AccountOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first account", "model": AccountOut},
                         **error_responses(404, 409, 422)})
    async def open_account(body: NewAccount, response: Response,
                           caller: Principal = require(ACCOUNTS.create),
                           idempotency_key: IdempotencyKey = None):
        account, created = await asyncio.to_thread(app.open_account, OpenAccount(
            name=body.name, domain=body.domain, industry=body.industry, region=body.region,
            tier=body.tier, owner_id=body.owner_id, request_key=idempotency_key, caller=caller))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/accounts/{account.id}"
        tag(response, account.version)
        return AccountOut.of(account)

    @api.get("/{account_id}", response_model=AccountOut, responses=error_responses(404, 422))
    async def get_account(account_id: UUID, response: Response,
                          caller: Principal = require(ACCOUNTS.view)):
        account = await asyncio.to_thread(app.get_account, account_id, caller)
        tag(response, account.version)
        return AccountOut.of(account)

    @api.patch("/{account_id}", response_model=AccountOut, responses=PATCH_ERRORS)
    async def change_account(account_id: UUID, body: AccountChanges, response: Response,
                             caller: Principal = require(ACCOUNTS.edit), if_match: IfMatch = None):
        expected = expected_version(if_match)
        if expected is None:
            return precondition_required("account")
        account = await asyncio.to_thread(app.change_account, ChangeAccount(
            account_id=account_id, expected_version=expected, changes=given_fields(body), caller=caller))
        tag(response, account.version)
        return AccountOut.of(account)

    @api.get("", response_model=AccountPage, responses=error_responses(422))
    async def list_accounts(caller: Principal = require(ACCOUNTS.view), limit: Limit = DEFAULT_LIMIT,
                            cursor: Cursor = None, owner_id: OwnerFilter = None,
                            name_prefix: NamePrefix = None, updated_since: UpdatedSince = None):
        page = await asyncio.to_thread(app.list_accounts, ListRecords(
            limit=limit, cursor=cursor, owner_id=owner_id, name_prefix=name_prefix,
            updated_since=updated_since, caller=caller))
        return AccountPage(items=[AccountOut.of(a) for a in page.items], next_cursor=page.next_cursor)

    return api


def contacts_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/contacts", tags=["contacts"])

    @api.post("", status_code=201, response_model=ContactOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first contact", "model": ContactOut},
                         **error_responses(404, 409, 422)})
    async def add_contact(body: NewContact, response: Response,
                          caller: Principal = require(CONTACTS.create),
                          idempotency_key: IdempotencyKey = None):
        contact, created = await asyncio.to_thread(app.add_contact, AddContact(
            account_id=str(body.account_id), name=body.name, email=body.email, phone=body.phone,
            request_key=idempotency_key, caller=caller))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/contacts/{contact.id}"
        tag(response, contact.version)
        return ContactOut.of(contact)

    @api.get("/{contact_id}", response_model=ContactOut, responses=error_responses(404, 422))
    async def get_contact(contact_id: UUID, response: Response,
                          caller: Principal = require(CONTACTS.view)):
        contact = await asyncio.to_thread(app.get_contact, contact_id, caller)
        tag(response, contact.version)
        return ContactOut.of(contact)

    @api.patch("/{contact_id}", response_model=ContactOut, responses=PATCH_ERRORS)
    async def change_contact(contact_id: UUID, body: ContactChanges, response: Response,
                             caller: Principal = require(CONTACTS.edit), if_match: IfMatch = None):
        expected = expected_version(if_match)
        if expected is None:
            return precondition_required("contact")
        contact = await asyncio.to_thread(app.change_contact, ChangeContact(
            contact_id=contact_id, expected_version=expected, changes=given_fields(body), caller=caller))
        tag(response, contact.version)
        return ContactOut.of(contact)

    @api.get("", response_model=ContactPage, responses=error_responses(422))
    async def list_contacts(caller: Principal = require(CONTACTS.view), limit: Limit = DEFAULT_LIMIT,
                            cursor: Cursor = None, owner_id: OwnerFilter = None,
                            name_prefix: NamePrefix = None, updated_since: UpdatedSince = None,
                            account_id: Annotated[UUID | None, Query()] = None):
        page = await asyncio.to_thread(app.list_contacts, ListRecords(
            limit=limit, cursor=cursor, owner_id=owner_id, name_prefix=name_prefix,
            updated_since=updated_since, account_id=str(account_id) if account_id else None,
            caller=caller))
        return ContactPage(items=[ContactOut.of(c) for c in page.items], next_cursor=page.next_cursor)

    return api

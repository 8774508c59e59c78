"""HTTP adapter: /v1/leads and /v1/campaigns. Pydantic models live here, at the edge only.

Capturing and creating is `POST` (honours `Idempotency-Key`, per caller; answers `Location`
and `ETag`), reading `GET /{id}`, changing `PATCH /{id}` with only the fields to change
(null clears an optional one) and `If-Match: "<version>"` (missing: 428; stale: 409),
status commands `POST /{id}/contact|qualify|disqualify|reopen` (an illegal transition: 409
naming the current status; an optional If-Match is checked too), listing `GET` with
`limit`, `cursor` and filters. Bodies with unknown fields are refused.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from crm_leads.application import (
    CaptureLead,
    ChangeLead,
    LaunchCampaign,
    LeadsApplication,
    ListLeads,
    LogActivity,
    MoveLead,
)
from crm_leads.domain import (
    CAMPAIGN_NAME_MAX,
    COMPANY_MAX,
    COMPANY_SIZE_MAX,
    ID_MAX,
    INDUSTRY_MAX,
    NAME_MAX,
    NOTE_MAX,
    REASON_MAX,
    TITLE_MAX,
    Activity,
    ActivityKind,
    Channel,
    Grade,
    Lead,
    LeadStatus,
)
from crm_leads.permissions import CAMPAIGNS, LEADS
from crm_leads.views import CampaignRecord, LeadRecord
from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses, expected_version, given_fields, precondition_required, tag
from crm_runtime.index import CURSOR_MAX, DEFAULT_LIMIT, MAX_LIMIT

if TYPE_CHECKING:
    ChannelName = str
    StatusName = str
    KindName = str
    GradeName = str
else:  # the names, for the schema clients see
    ChannelName = Literal[tuple(channel.value for channel in Channel)]
    StatusName = Literal[tuple(status.value for status in LeadStatus)]
    KindName = Literal[tuple(kind.value for kind in ActivityKind)]
    GradeName = Literal[tuple(grade.value for grade in Grade)]

CompanySize = Annotated[StrictInt, Field(ge=1, le=COMPANY_SIZE_MAX, description="Number of employees")]
Country = Annotated[str, Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2, e.g. DE")]
Date = Annotated[str, Field(max_length=10, pattern=r"^\d{4}-\d{2}-\d{2}$", json_schema_extra={"format": "date"},
                            description="ISO 8601 date, e.g. 2025-03-31")]


# -- request bodies -------------------------------------------------------------------------
# The domain validates again and names the field; the schema tells clients up front.

class CaptureLeadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=NAME_MAX, pattern=r"\S", description="Full name of the person")
    email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                       json_schema_extra={"format": "email"},
                       description="Email address; normalised on capture")
    phone: str | None = Field(default=None, max_length=40,
                              description="Phone number, international or in the default region; stored in E.164")
    company: str | None = Field(default=None, max_length=COMPANY_MAX)
    channel: ChannelName = Field(description="The channel the lead arrived through")
    title: str | None = Field(default=None, max_length=TITLE_MAX, description="The person's job title")
    industry: str | None = Field(default=None, max_length=INDUSTRY_MAX)
    company_size: CompanySize | None = None
    country: Country | None = None
    campaign_id: UUID | None = Field(default=None, description="A campaign that exists (else 422)")


class LeadChanges(BaseModel):
    """Only the fields to change; null clears an optional field (name cannot be cleared)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=NAME_MAX)
    phone: str | None = Field(default=None, max_length=40)
    company: str | None = Field(default=None, max_length=COMPANY_MAX)
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    industry: str | None = Field(default=None, max_length=INDUSTRY_MAX)
    company_size: CompanySize | None = None
    country: Country | None = None
    follow_up_on: Date | None = Field(default=None, description="ISO 8601 date; null clears it")


class DisqualifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=REASON_MAX, pattern=r"\S", description="Why the lead is not pursued")


class NewActivity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: KindName
    at: AwareDatetime = Field(description="When it happened: RFC 3339 with an offset; stored in UTC")
    note: str | None = Field(default=None, max_length=NOTE_MAX)


class MoneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictStr = Field(max_length=40, pattern=r"^[+-]?[0-9]+(\.[0-9]+)?$",
                              description='A decimal string, e.g. "5000.00" (never a JSON number); '
                                          "rounded half-even to the currency's minor unit")
    currency: StrictStr = Field(min_length=3, max_length=3, description="ISO 4217, e.g. EUR")


class NewCampaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=CAMPAIGN_NAME_MAX, pattern=r"\S")
    channel: ChannelName
    budget: MoneyIn
    starts_on: Date
    ends_on: Date = Field(description="On or after starts_on")


# -- responses ------------------------------------------------------------------------------

class ScoreReasonOut(BaseModel):
    rule_id: str
    description: str
    points: int


class LeadOut(BaseModel):
    id: str
    name: str
    email: str
    phone: str
    company: str
    channel: str
    status: StatusName
    owner_id: str | None
    title: str | None
    industry: str | None
    company_size: int | None
    country: str | None
    campaign_id: str | None
    follow_up_on: str | None
    grade: GradeName | None = Field(description="Null until the lead is scored")
    disqualified_reason: str | None
    version: int = Field(description="Send it back as If-Match to change the lead")
    captured_at: datetime
    updated_at: datetime
    score: int | None = Field(default=None, description="The sum of the matched scoring rules' points")
    score_reasons: list[ScoreReasonOut] = Field(default_factory=list,
                                                description="Every matched rule, with its points")

    @classmethod
    def of(cls, lead: Lead | LeadRecord) -> LeadOut:
        record = LeadRecord.of(lead) if isinstance(lead, Lead) else lead
        fields = dict(record.__dict__)
        fields["captured_at"] = fields.pop("created_at")
        return cls(**fields)


class LeadPage(BaseModel):
    items: list[LeadOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class ActivityOut(BaseModel):
    id: str
    lead_id: str
    kind: KindName
    at: datetime
    note: str
    logged_by: str
    logged_at: datetime

    @classmethod
    def of(cls, lead_id: UUID | str, activity: Activity) -> ActivityOut:
        return cls(id=activity.id, lead_id=str(lead_id), kind=activity.kind.value, at=activity.at,
                   note=activity.note, logged_by=activity.logged_by, logged_at=activity.logged_at)


class ActivityPage(BaseModel):
    items: list[ActivityOut]
    next_cursor: str | None


class MoneyOut(BaseModel):
    amount: str = Field(description='A decimal string, e.g. "5000.00"')
    currency: str


class CampaignOut(BaseModel):
    id: str
    name: str
    channel: str
    budget: MoneyOut
    starts_on: str
    ends_on: str
    version: int
    created_at: datetime

    @classmethod
    def of(cls, campaign: CampaignRecord) -> CampaignOut:
        return cls(id=campaign.id, name=campaign.name, channel=campaign.channel,
                   budget=MoneyOut(amount=campaign.budget.amount_text, currency=campaign.budget.currency),
                   starts_on=campaign.starts_on, ends_on=campaign.ends_on, version=campaign.version,
                   created_at=campaign.created_at)


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    next_cursor: str | None


# -- shared parameters ------------------------------------------------------------------------

IdempotencyKey = Annotated[str | None, Header(max_length=200, description=
                           "The same key (per caller) creates the record once; a repeat answers 200")]
IfMatch = Annotated[str | None, Header(max_length=40, description='The version you read, e.g. "3"')]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}")]
Cursor = Annotated[str | None, Query(max_length=CURSOR_MAX, description="next_cursor of the previous page")]
COMMAND_ERRORS = error_responses(404, 409, 422)


def routers(app: LeadsApplication) -> list[APIRouter]:
    from crm_leads.adapters.http_imports import imports_router
    from crm_leads.adapters.http_scoring import scoring_router

    return [leads_router(app), campaigns_router(app), scoring_router(app), imports_router(app)]


def leads_router(app: LeadsApplication) -> APIRouter:
    @asynccontextmanager
    async def lifespan(_api):
        # The API answers lists from the index: bring it up to date before serving.
        await asyncio.to_thread(app.catch_up_views)
        yield

    api = APIRouter(prefix="/v1/leads", tags=["leads"], lifespan=lifespan)

    @api.post("", status_code=201, response_model=LeadOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first lead", "model": LeadOut},
                         **error_responses(409, 422)})
    async def capture_lead(body: CaptureLeadBody, response: Response,
                           caller: Principal = require(LEADS.create),
                           idempotency_key: IdempotencyKey = None):
        lead, created = await asyncio.to_thread(app.capture_lead, CaptureLead(
            name=body.name, email=body.email, phone=body.phone, company=body.company,
            channel=body.channel, request_key=idempotency_key, caller=caller.subject,
            title=body.title, industry=body.industry, company_size=body.company_size,
            country=body.country, campaign_id=str(body.campaign_id) if body.campaign_id else None))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/leads/{lead.id}"
        tag(response, lead.version)
        return LeadOut.of(lead)

    @api.get("", response_model=LeadPage, responses=error_responses(422))
    async def list_leads(caller: Principal = require(LEADS.view), limit: Limit = DEFAULT_LIMIT,
                         cursor: Cursor = None,
                         status: Annotated[StatusName | None, Query()] = None,
                         owner_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
                         channel: Annotated[ChannelName | None, Query()] = None,
                         campaign_id: Annotated[UUID | None, Query()] = None,
                         grade: Annotated[GradeName | None, Query()] = None,
                         updated_since: Annotated[AwareDatetime | None, Query(
                             description="RFC 3339 with an offset: only leads changed at or after it")] = None,
                         q: Annotated[str | None, Query(max_length=200, description=
                                                        "Name, email or company contains it (any case)")] = None):
        page = await asyncio.to_thread(app.list_leads, ListLeads(
            limit=limit, cursor=cursor, status=status, owner_id=owner_id, channel=channel,
            campaign_id=str(campaign_id) if campaign_id else None, grade=grade,
            updated_since=updated_since, q=q, caller=caller))
        return LeadPage(items=[LeadOut.of(lead) for lead in page.items], next_cursor=page.next_cursor)

    @api.get("/{lead_id}", response_model=LeadOut, responses=error_responses(404, 422))
    async def get_lead(lead_id: UUID, response: Response, caller: Principal = require(LEADS.view)):
        lead = await asyncio.to_thread(app.get_lead, lead_id, caller)
        tag(response, lead.version)
        return LeadOut.of(lead)

    @api.patch("/{lead_id}", response_model=LeadOut, responses=error_responses(404, 409, 422, 428))
    async def change_lead(lead_id: UUID, body: LeadChanges, response: Response,
                          caller: Principal = require(LEADS.edit), if_match: IfMatch = None):
        expected = expected_version(if_match)
        if expected is None:
            return precondition_required("lead")
        lead = await asyncio.to_thread(app.change_lead, ChangeLead(
            lead_id=lead_id, expected_version=expected, changes=given_fields(body), caller=caller))
        tag(response, lead.version)
        return LeadOut.of(lead)

    async def move(lead_id: UUID, action: str, caller: Principal, if_match: str | None,
                   response: Response, reason: str | None = None) -> LeadOut:
        lead = await asyncio.to_thread(app.move_lead, MoveLead(
            lead_id=lead_id, action=action, reason=reason,
            expected_version=expected_version(if_match), caller=caller))
        tag(response, lead.version)
        return LeadOut.of(lead)

    @api.post("/{lead_id}/contact", response_model=LeadOut, responses=COMMAND_ERRORS,
              summary="new -> contacted")
    async def contact_lead(lead_id: UUID, response: Response, caller: Principal = require(LEADS.edit),
                           if_match: IfMatch = None):
        return await move(lead_id, "contact", caller, if_match, response)

    @api.post("/{lead_id}/qualify", response_model=LeadOut, responses=COMMAND_ERRORS,
              summary="contacted -> qualified")
    async def qualify_lead(lead_id: UUID, response: Response, caller: Principal = require(LEADS.edit),
                           if_match: IfMatch = None):
        return await move(lead_id, "qualify", caller, if_match, response)

    @api.post("/{lead_id}/disqualify", response_model=LeadOut, responses=COMMAND_ERRORS,
              summary="new, contacted or qualified -> disqualified, with a reason")
    async def disqualify_lead(lead_id: UUID, body: DisqualifyBody, response: Response,
                              caller: Principal = require(LEADS.edit), if_match: IfMatch = None):
        return await move(lead_id, "disqualify", caller, if_match, response, reason=body.reason)

    @api.post("/{lead_id}/reopen", response_model=LeadOut, responses=COMMAND_ERRORS,
              summary="disqualified -> contacted if it ever was, else new")
    async def reopen_lead(lead_id: UUID, response: Response, caller: Principal = require(LEADS.edit),
                          if_match: IfMatch = None):
        return await move(lead_id, "reopen", caller, if_match, response)

    @api.post("/{lead_id}/activities", status_code=201, response_model=ActivityOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first activity",
                               "model": ActivityOut}, **COMMAND_ERRORS})
    async def log_activity(lead_id: UUID, body: NewActivity, response: Response,
                           caller: Principal = require(LEADS.edit), idempotency_key: IdempotencyKey = None):
        activity, logged = await asyncio.to_thread(app.log_activity, LogActivity(
            lead_id=lead_id, kind=body.kind, at=body.at, note=body.note,
            request_key=idempotency_key, caller=caller))
        response.status_code = 201 if logged else 200
        return ActivityOut.of(lead_id, activity)

    @api.get("/{lead_id}/activities", response_model=ActivityPage, responses=error_responses(404, 422))
    async def list_activities(lead_id: UUID, caller: Principal = require(LEADS.view),
                              limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None):
        page = await asyncio.to_thread(app.list_activities, lead_id, limit, cursor, caller)
        return ActivityPage(items=[ActivityOut.of(lead_id, a) for a in page.items],
                            next_cursor=page.next_cursor)

    return api


def campaigns_router(app: LeadsApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

    @api.post("", status_code=201, response_model=CampaignOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first campaign",
                               "model": CampaignOut}, **error_responses(409, 422)})
    async def create_campaign(body: NewCampaign, response: Response,
                              caller: Principal = require(CAMPAIGNS.create),
                              idempotency_key: IdempotencyKey = None):
        campaign, created = await asyncio.to_thread(app.launch_campaign, LaunchCampaign(
            name=body.name, channel=body.channel, budget_amount=body.budget.amount,
            budget_currency=body.budget.currency, starts_on=body.starts_on, ends_on=body.ends_on,
            request_key=idempotency_key, caller=caller))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/campaigns/{campaign.id}"
        tag(response, campaign.version)
        return CampaignOut.of(campaign)

    @api.get("/{campaign_id}", response_model=CampaignOut, responses=error_responses(404, 422))
    async def get_campaign(campaign_id: UUID, _caller: Principal = require(CAMPAIGNS.view)):
        return CampaignOut.of(await asyncio.to_thread(app.get_campaign, campaign_id))

    @api.get("", response_model=CampaignPage, responses=error_responses(422))
    async def list_campaigns(_caller: Principal = require(CAMPAIGNS.view), limit: Limit = DEFAULT_LIMIT,
                             cursor: Cursor = None,
                             channel: Annotated[ChannelName | None, Query()] = None):
        page = await asyncio.to_thread(app.list_campaigns, limit, cursor, channel)
        return CampaignPage(items=[CampaignOut.of(c) for c in page.items], next_cursor=page.next_cursor)

    return api

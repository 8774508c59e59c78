"""HTTP adapter: /v1/leads. Pydantic models live here, at the edge only."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from crm_leads.application import CaptureLead, LeadsApplication
from crm_leads.domain import COMPANY_MAX, NAME_MAX, Channel, Lead
from crm_leads.permissions import LEADS
from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses

if TYPE_CHECKING:
    ChannelName = str
else:  # the channel names, for the schema clients see
    ChannelName = Literal[tuple(channel.value for channel in Channel)]


class CaptureLeadBody(BaseModel):
    # The domain validates again and names the field; the schema tells clients up front.
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=NAME_MAX, pattern=r"\S", description="Full name of the person")
    email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                       json_schema_extra={"format": "email"},
                       description="Email address; normalised on capture")
    phone: str | None = Field(default=None, max_length=40,
                              description="Phone number, international or in the default region; stored in E.164")
    company: str | None = Field(default=None, max_length=COMPANY_MAX)
    channel: ChannelName = Field(description="The channel the lead arrived through")


class LeadOut(BaseModel):
    id: str
    name: str
    email: str
    phone: str
    company: str
    channel: str
    status: str
    owner_id: str | None
    version: int
    captured_at: datetime

    @classmethod
    def of(cls, lead: Lead) -> LeadOut:
        return cls(id=str(lead.id), name=lead.name, email=lead.email, phone=lead.phone,
                   company=lead.company, channel=lead.channel.value, status=lead.status.value,
                   owner_id=lead.owner_id, version=lead.version, captured_at=lead.created_on)


def routers(app: LeadsApplication) -> list[APIRouter]:
    return [leads_router(app)]


def leads_router(app: LeadsApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/leads", tags=["leads"])

    @api.post("", status_code=201, response_model=LeadOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first lead", "model": LeadOut},
                         **error_responses(409, 422)})
    async def capture_lead(body: CaptureLeadBody, response: Response,
                           caller: Principal = require(LEADS.create),
                           idempotency_key: Annotated[str | None, Header(max_length=200)] = None):
        lead, created = await asyncio.to_thread(app.capture_lead, CaptureLead(
            name=body.name, email=body.email, phone=body.phone, company=body.company,
            channel=body.channel, request_key=idempotency_key, caller=caller.subject))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/leads/{lead.id}"
        return LeadOut.of(lead)

    @api.get("/{lead_id}", response_model=LeadOut, responses=error_responses(404, 422))
    async def get_lead(lead_id: UUID, _caller: Principal = require(LEADS.view)):
        return LeadOut.of(await asyncio.to_thread(app.get_lead, lead_id))

    return api

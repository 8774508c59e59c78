"""HTTP adapter: /v1/leads. Pydantic models live here, at the edge only."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from crm_leads.application import LeadsApplication
from crm_leads.domain import Lead


class CaptureLeadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Full name of the person")
    email: str = Field(description="Email address; normalised on capture")
    phone: str | None = Field(default=None, description="Phone number; stored in E.164")
    company: str | None = None
    channel: str = Field(description="web, email, phone, referral, event, social or partner")


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
    def of(cls, lead: Lead) -> "LeadOut":
        return cls(id=str(lead.id), name=lead.name, email=lead.email, phone=lead.phone,
                   company=lead.company, channel=lead.channel.value, status=lead.status.value,
                   owner_id=lead.owner_id, version=lead.version, captured_at=lead.created_on)


def router(app: LeadsApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/leads", tags=["leads"])

    @api.post("", status_code=201, response_model=LeadOut)
    async def capture_lead(body: CaptureLeadBody, response: Response,
                           idempotency_key: Annotated[str | None, Header(max_length=200)] = None):
        lead, created = await asyncio.to_thread(
            app.capture_lead, name=body.name, email=body.email, phone=body.phone,
            company=body.company, channel=body.channel, request_key=idempotency_key)
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/leads/{lead.id}"
        return LeadOut.of(lead)

    @api.get("/{lead_id}", response_model=LeadOut)
    async def get_lead(lead_id: str):
        return LeadOut.of(await asyncio.to_thread(app.get_lead, lead_id))

    return api

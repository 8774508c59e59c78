"""HTTP adapter for a lead's duplicates, merge and conversion (crm_leads.merging,
crm_leads.conversion), under /v1/leads/{id}:

- `GET  /duplicates`: the open leads sharing its email or phone, earliest first;
- `POST /merge` `{"duplicate_id"}`: merges that lead into this one; answers both leads.
  Into itself, or a merged or converted lead on either side: 409 problem+json;
- `POST /convert`: qualified -> converted, 202 with the ids the sales service will use
  (a lead in any other status, a converted one too: 409 naming it).

An optional `If-Match` on the merge (the survivor's version) and on the conversion is
checked (stale: 409).
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from crm_leads.adapters.http import COMMAND_ERRORS, IfMatch, LeadOut
from crm_leads.application import LeadsApplication
from crm_leads.conversion import ConvertLead, convert_lead
from crm_leads.domain import OpportunityToOpen
from crm_leads.merging import MergeLeads, list_duplicates, merge_leads
from crm_leads.permissions import LEADS
from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses, expected_version, tag
from crm_runtime.money import Money


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duplicate_id: UUID = Field(description="The lead to merge into this one; it ends merged")


class MergeOut(BaseModel):
    survivor: LeadOut = Field(description="This lead, with what it gained")
    merged: LeadOut = Field(description="The other lead: status merged, merged_into this one")


class DuplicatesOut(BaseModel):
    items: list[LeadOut] = Field(description="Open leads with the same email or phone, earliest "
                                             "first (at most 200)")


class OpportunityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, description="The opportunity sales opens for the new customer")
    amount: dict[str, Any] | None = Field(default=None, description='{"amount": "5000.00", "currency": "EUR"}')


class ConvertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opportunity: OpportunityIn | None = Field(default=None, description="Optional: also open an opportunity")


class ConversionOut(BaseModel):
    lead_id: str
    account_id: str = Field(description="The account sales opens for the lead (derived from the "
                                        "lead id), unless it adds the contact to an account of "
                                        "the same email domain: the lead's account_id then says which")
    contact_id: str


def merge_router(app: LeadsApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/leads", tags=["leads"])

    @api.get("/{lead_id}/duplicates", response_model=DuplicatesOut, responses=error_responses(404, 422))
    async def lead_duplicates(lead_id: UUID, caller: Principal = require(LEADS.view)):
        matches = await asyncio.to_thread(list_duplicates, app, lead_id, caller)
        return DuplicatesOut(items=[LeadOut.of(match) for match in matches])

    @api.post("/{lead_id}/merge", response_model=MergeOut, responses=COMMAND_ERRORS,
              summary="Merge another lead into this one")
    async def merge(lead_id: UUID, body: MergeBody, response: Response,
                    caller: Principal = require(LEADS.edit), if_match: IfMatch = None):
        survivor, merged = await asyncio.to_thread(merge_leads, app, MergeLeads(
            lead_id=lead_id, duplicate_id=body.duplicate_id, expected_version=expected_version(if_match),
            caller=caller))
        tag(response, survivor.version)
        return MergeOut(survivor=LeadOut.of(survivor), merged=LeadOut.of(merged))

    @api.post("/{lead_id}/convert", status_code=202, response_model=ConversionOut,
              responses=COMMAND_ERRORS, summary="qualified -> converted")
    async def convert(lead_id: UUID, response: Response, body: ConvertBody | None = None,
                      caller: Principal = require(LEADS.edit), if_match: IfMatch = None):
        opportunity = None
        if body is not None and body.opportunity is not None:
            amount = (Money.parse(body.opportunity.amount, field="opportunity.amount")
                      if body.opportunity.amount is not None else None)
            opportunity = OpportunityToOpen.parse(body.opportunity.name, amount)
        lead = await asyncio.to_thread(convert_lead, app, ConvertLead(
            lead_id=lead_id, expected_version=expected_version(if_match), caller=caller,
            opportunity=opportunity))
        tag(response, lead.version)
        response.headers["Location"] = f"/v1/leads/{lead.id}"
        return ConversionOut(lead_id=str(lead.id), account_id=lead.account_id or "",
                             contact_id=lead.contact_id or "")

    return api

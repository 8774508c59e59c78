"""gRPC adapter: crm.leads.v1.LeadsService. Each method names its permission once (`@rpc`);
errors map to status codes through the runtime's one table (crm_runtime.errors): an
illegal transition FAILED_PRECONDITION, a stale expected_version ABORTED."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

from crm.leads.v1 import events_pb2, leads_pb2, leads_pb2_grpc
from crm_leads.adapters.grpc_merge import MergeRpcs
from crm_leads.adapters.grpc_scoring import ScoringServicer
from crm_leads.adapters.messages import (
    PROTO_TO_CHANNEL,
    PROTO_TO_KIND,
    PROTO_TO_STATUS,
    activity_to_message,
    campaign_to_message,
    lead_to_message,
)
from crm_leads.application import (
    AssignLead,
    CaptureLead,
    ChangeLead,
    LaunchCampaign,
    LeadsApplication,
    ListLeads,
    LogActivity,
    MoveLead,
)
from crm_leads.permissions import CAMPAIGNS, LEADS
from crm_runtime.auth import current_principal
from crm_runtime.errors import InvalidField, ServiceError
from crm_runtime.grpc_server import Registration, apply_batch, rpc
from crm_runtime.index import DEFAULT_LIMIT, MAX_LIMIT

# The list fields' names on this protocol.
_LIST_FIELDS = {"limit": "page_size", "cursor": "page_token"}
_EDITABLE = ("name", "phone", "company", "title", "industry", "company_size", "country", "follow_up_on")


def _enum(value: int, names: dict[int, str], unspecified: int) -> str | None:
    """An enum number as the domain's name; UNSPECIFIED is None, an unknown number is passed
    on as text to be refused by name."""
    if value == unspecified:
        return None
    return names.get(value, str(value))


def _page_size(request: Any) -> int:
    if request.page_size < 0:
        raise InvalidField("page_size", "must not be negative")
    return min(request.page_size, MAX_LIMIT) or DEFAULT_LIMIT


def _changes(request: leads_pb2.UpdateLeadRequest) -> dict[str, Any]:
    """The optional fields the caller set: only those change (empty / 0 clears)."""
    changes: dict[str, Any] = {}
    for name in _EDITABLE:
        if request.HasField(name):
            value = getattr(request, name)
            changes[name] = value if value not in ("", 0) else None
    return changes


def _assignment(request: leads_pb2.AssignLeadRequest) -> AssignLead:
    return AssignLead(lead_id=request.lead_id, owner_id=request.owner_id,
                      idempotency_key=request.idempotency_key,
                      expected_version=request.expected_version or None)


async def _listed(fn: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except InvalidField as exc:
        name = _LIST_FIELDS.get(exc.field)
        if name is None:
            raise
        raise InvalidField(name, exc.message) from None


class LeadsServicer(ScoringServicer, MergeRpcs, leads_pb2_grpc.LeadsServiceServicer):
    def __init__(self, app: LeadsApplication):
        self.app = app

    @rpc(LEADS.create)
    async def CaptureLead(self, request, context):
        command = CaptureLead(
            name=request.name, email=request.email, phone=request.phone, company=request.company,
            channel=PROTO_TO_CHANNEL.get(request.channel, ""),  # UNSPECIFIED: named in the error
            request_key=request.request_id or None,
            caller=getattr(current_principal(), "subject", None),
            title=request.title or None, industry=request.industry or None,
            company_size=request.company_size if request.HasField("company_size") else None,
            country=request.country or None, campaign_id=request.campaign_id or None)
        lead, _ = await asyncio.to_thread(self.app.capture_lead, command)
        return lead_to_message(lead)

    @rpc(LEADS.view)
    async def GetLead(self, request, context):
        return lead_to_message(await asyncio.to_thread(self.app.get_lead, request.lead_id,
                                                       current_principal()))

    @rpc(LEADS.assign)
    async def AssignLead(self, request, context):
        return lead_to_message(await asyncio.to_thread(self.app.assign_lead, _assignment(request)))

    @rpc(LEADS.assign)
    async def AssignLeads(self, request, context):
        def assign(items: list[Any], contexts: list[dict[str, str]]) -> tuple[int, ServiceError | None]:
            return self.app.assign_leads([_assignment(item) for item in items], contexts)

        return leads_pb2.AssignLeadsResponse(results=await apply_batch(request, assign))

    @rpc(LEADS.view)
    async def ListLeads(self, request, context):
        updated_since = (request.updated_since.ToDatetime(tzinfo=UTC)
                         if request.HasField("updated_since") else None)
        page = await _listed(self.app.list_leads, ListLeads(
            limit=_page_size(request), cursor=request.page_token or None,
            status=_enum(request.status, PROTO_TO_STATUS, leads_pb2.LEAD_STATUS_UNSPECIFIED),
            owner_id=request.owner_id or None,
            channel=_enum(request.channel, PROTO_TO_CHANNEL, events_pb2.CHANNEL_UNSPECIFIED),
            campaign_id=request.campaign_id or None, grade=request.grade or None,
            updated_since=updated_since, q=request.q or None, caller=current_principal()))
        return leads_pb2.ListLeadsResponse(leads=[lead_to_message(lead) for lead in page.items],
                                           next_page_token=page.next_cursor or "")

    @rpc(LEADS.edit)
    async def UpdateLead(self, request, context):
        lead = await asyncio.to_thread(self.app.change_lead, ChangeLead(
            lead_id=request.lead_id, expected_version=request.expected_version or None,
            changes=_changes(request), caller=current_principal()))
        return lead_to_message(lead)

    async def _move(self, request: Any, action: str, reason: str | None = None) -> leads_pb2.Lead:
        lead = await asyncio.to_thread(self.app.move_lead, MoveLead(
            lead_id=request.lead_id, action=action, reason=reason,
            expected_version=request.expected_version or None, caller=current_principal()))
        return lead_to_message(lead)

    @rpc(LEADS.edit)
    async def ContactLead(self, request, context):
        return await self._move(request, "contact")

    @rpc(LEADS.edit)
    async def QualifyLead(self, request, context):
        return await self._move(request, "qualify")

    @rpc(LEADS.edit)
    async def DisqualifyLead(self, request, context):
        return await self._move(request, "disqualify", request.reason)

    @rpc(LEADS.edit)
    async def ReopenLead(self, request, context):
        return await self._move(request, "reopen")

    @rpc(LEADS.edit)
    async def LogActivity(self, request, context):
        at = request.at.ToDatetime(tzinfo=UTC) if request.HasField("at") else None
        activity, _ = await asyncio.to_thread(self.app.log_activity, LogActivity(
            lead_id=request.lead_id,
            kind=_enum(request.kind, PROTO_TO_KIND, events_pb2.ACTIVITY_KIND_UNSPECIFIED),
            at=at, note=request.note, request_key=request.request_id or None,
            caller=current_principal()))
        return activity_to_message(request.lead_id, activity)

    @rpc(LEADS.view)
    async def ListActivities(self, request, context):
        page = await _listed(self.app.list_activities, request.lead_id, _page_size(request),
                             request.page_token or None, current_principal())
        return leads_pb2.ListActivitiesResponse(
            activities=[activity_to_message(request.lead_id, a) for a in page.items],
            next_page_token=page.next_cursor or "")

    @rpc(CAMPAIGNS.create)
    async def CreateCampaign(self, request, context):
        budget = request.budget if request.HasField("budget") else None
        campaign, created = await asyncio.to_thread(self.app.launch_campaign, LaunchCampaign(
            name=request.name, channel=PROTO_TO_CHANNEL.get(request.channel, ""),
            budget_amount=budget.amount if budget else None,
            budget_currency=budget.currency_code if budget else None,
            starts_on=request.starts_on, ends_on=request.ends_on,
            request_key=request.request_id or None, caller=current_principal()))
        return leads_pb2.CreateCampaignResponse(campaign=campaign_to_message(campaign), created=created)

    @rpc(CAMPAIGNS.view)
    async def GetCampaign(self, request, context):
        return campaign_to_message(await asyncio.to_thread(self.app.get_campaign, request.campaign_id))

    @rpc(CAMPAIGNS.view)
    async def ListCampaigns(self, request, context):
        page = await _listed(self.app.list_campaigns, _page_size(request), request.page_token or None,
                             _enum(request.channel, PROTO_TO_CHANNEL, events_pb2.CHANNEL_UNSPECIFIED))
        return leads_pb2.ListCampaignsResponse(campaigns=[campaign_to_message(c) for c in page.items],
                                               next_page_token=page.next_cursor or "")


def registrations(app: LeadsApplication) -> list[Registration]:
    return [Registration(leads_pb2_grpc.add_LeadsServiceServicer_to_server, LeadsServicer(app),
                         leads_pb2.DESCRIPTOR.services_by_name["LeadsService"])]

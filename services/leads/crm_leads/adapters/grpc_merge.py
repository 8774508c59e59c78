"""gRPC methods for a lead's duplicates, merge and conversion (ListDuplicates, MergeLeads,
ConvertLead of crm.leads.v1.LeadsService), mixed into `LeadsServicer`: the same commands
as HTTP (crm_leads.merging, crm_leads.conversion); a refused merge or conversion is
FAILED_PRECONDITION naming the status, a stale expected_version ABORTED."""

from __future__ import annotations

import asyncio
import io

from crm.leads.v1 import leads_pb2
from crm_leads.adapters.messages import PROTO_TO_CHANNEL, lead_to_message
from crm_leads.application import LeadsApplication
from crm_leads.conversion import ConvertLead, convert_lead
from crm_leads.domain import OpportunityToOpen
from crm_leads.importer import ImportLeads, import_leads
from crm_leads.merging import MergeLeads, list_duplicates, merge_leads
from crm_leads.permissions import LEADS
from crm_runtime.auth import current_principal
from crm_runtime.grpc_server import rpc
from crm_runtime.money import Money


class MergeRpcs:
    app: LeadsApplication

    @rpc(LEADS.create)
    async def ImportLeads(self, request, context):
        channel = PROTO_TO_CHANNEL.get(request.channel) if request.channel else None
        who = current_principal()
        result = await asyncio.to_thread(import_leads, self.app, ImportLeads(
            io.BytesIO(request.file), caller=who.subject if who else None, channel=channel))
        return leads_pb2.ImportLeadsResponse(
            import_id=result.import_id, rows=result.rows, captured=result.captured,
            already_imported=result.already_imported, duplicates=result.duplicates, failed=result.failed,
            errors=[leads_pb2.ImportRowError(line=e.line, field=e.field, reason=e.reason) for e in result.errors])

    @rpc(LEADS.view)
    async def ListDuplicates(self, request, context):
        matches = await asyncio.to_thread(list_duplicates, self.app, request.lead_id, current_principal())
        return leads_pb2.ListDuplicatesResponse(leads=[lead_to_message(match) for match in matches])

    @rpc(LEADS.edit)
    async def MergeLeads(self, request, context):
        survivor, merged = await asyncio.to_thread(merge_leads, self.app, MergeLeads(
            lead_id=request.lead_id, duplicate_id=request.duplicate_id,
            expected_version=request.expected_version or None, caller=current_principal()))
        return leads_pb2.MergeLeadsResponse(survivor=lead_to_message(survivor), merged=lead_to_message(merged))

    @rpc(LEADS.edit)
    async def ConvertLead(self, request, context):
        opportunity = None
        if request.opportunity_name or request.HasField("opportunity_amount"):
            amount = (Money.from_proto(request.opportunity_amount, field="opportunity_amount")
                      if request.HasField("opportunity_amount") else None)
            opportunity = OpportunityToOpen.parse(request.opportunity_name, amount)
        lead = await asyncio.to_thread(convert_lead, self.app, ConvertLead(
            lead_id=request.lead_id, expected_version=request.expected_version or None,
            caller=current_principal(), opportunity=opportunity))
        return leads_pb2.ConvertLeadResponse(account_id=lead.account_id or "", contact_id=lead.contact_id or "",
                                             lead=lead_to_message(lead))

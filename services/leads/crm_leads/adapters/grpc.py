"""gRPC adapter: crm.leads.v1.LeadsService."""

from __future__ import annotations

import asyncio

from crm.leads.v1 import leads_pb2, leads_pb2_grpc
from crm_leads.adapters.messages import PROTO_TO_CHANNEL, lead_to_message
from crm_leads.application import AssignLead, CaptureLead, LeadsApplication
from crm_leads.permissions import LEADS
from crm_runtime.auth import current_principal
from crm_runtime.grpc_server import Registration, rpc


class LeadsServicer(leads_pb2_grpc.LeadsServiceServicer):
    def __init__(self, app: LeadsApplication):
        self.app = app

    @rpc(LEADS.create)
    async def CaptureLead(self, request, context):
        command = CaptureLead(
            name=request.name, email=request.email, phone=request.phone, company=request.company,
            channel=PROTO_TO_CHANNEL.get(request.channel, ""),  # UNSPECIFIED: named in the error
            request_key=request.request_id or None,
            caller=getattr(current_principal(), "subject", None))
        lead, _ = await asyncio.to_thread(self.app.capture_lead, command)
        return lead_to_message(lead)

    @rpc(LEADS.view)
    async def GetLead(self, request, context):
        return lead_to_message(await asyncio.to_thread(self.app.get_lead, request.lead_id))

    @rpc(LEADS.assign)
    async def AssignLead(self, request, context):
        command = AssignLead(lead_id=request.lead_id, owner_id=request.owner_id,
                             idempotency_key=request.idempotency_key,
                             expected_version=request.expected_version or None)
        return lead_to_message(await asyncio.to_thread(self.app.assign_lead, command))


def registrations(app: LeadsApplication) -> list[Registration]:
    return [Registration(leads_pb2_grpc.add_LeadsServiceServicer_to_server, LeadsServicer(app),
                         leads_pb2.DESCRIPTOR.services_by_name["LeadsService"])]

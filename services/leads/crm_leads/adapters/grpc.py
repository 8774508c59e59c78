"""gRPC adapter: crm.leads.v1.LeadsService."""

from __future__ import annotations

import asyncio

from crm.leads.v1 import leads_pb2, leads_pb2_grpc
from crm_leads.adapters.messages import PROTO_TO_CHANNEL, lead_to_message
from crm_leads.application import LeadsApplication, caller_scoped
from crm_runtime.auth import Action, current_principal
from crm_runtime.grpc_server import Registration, rpc


class LeadsServicer(leads_pb2_grpc.LeadsServiceServicer):
    def __init__(self, app: LeadsApplication):
        self.app = app

    @rpc
    async def CaptureLead(self, request, context):
        channel = PROTO_TO_CHANNEL.get(request.channel, "")  # UNSPECIFIED: named in the error
        lead, _ = await asyncio.to_thread(
            self.app.capture_lead, name=request.name, email=request.email, phone=request.phone,
            company=request.company, channel=channel,
            request_key=caller_scoped(getattr(current_principal(), "subject", None),
                                      request.request_id or None))
        return lead_to_message(lead)

    @rpc
    async def GetLead(self, request, context):
        return lead_to_message(await asyncio.to_thread(self.app.get_lead, request.lead_id))

    @rpc
    async def AssignLead(self, request, context):
        lead = await asyncio.to_thread(
            self.app.assign_lead, request.lead_id, request.owner_id, request.idempotency_key,
            request.expected_version or None)
        return lead_to_message(lead)


def registration(app: LeadsApplication) -> Registration:
    return Registration(
        leads_pb2_grpc.add_LeadsServiceServicer_to_server, LeadsServicer(app),
        leads_pb2.DESCRIPTOR.services_by_name["LeadsService"],
        permissions={"CaptureLead": ("leads", Action.CREATE), "GetLead": ("leads", Action.VIEW),
                     "AssignLead": ("leads", Action.ASSIGN)})

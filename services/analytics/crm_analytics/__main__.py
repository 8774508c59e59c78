"""Entry point: `python -m crm_analytics` serves the reports over HTTP and gRPC."""

import asyncio
from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel

from crm.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from crm_analytics import lead_projection
from crm_analytics.settings import AnalyticsSettings
from crm_runtime import service
from crm_runtime.auth import Action, Principal, require
from crm_runtime.grpc_server import Registration, rpc
from crm_runtime.readstore import ReadStore



class LeadReportOut(BaseModel):
    captured: int
    assigned: int
    by_channel: dict[str, int]
    by_owner: dict[str, int]


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, store: ReadStore):
        self.store = store

    @rpc
    async def GetLeadReport(self, request, context):
        report = await asyncio.to_thread(lead_projection.read_report, self.store)
        return analytics_pb2.LeadReport(**asdict(report))


def router(store: ReadStore) -> APIRouter:
    api = APIRouter(prefix="/v1/reports", tags=["reports"])

    @api.get("/leads", response_model=LeadReportOut)
    async def lead_report(_caller: Principal = require("reports", Action.VIEW)):
        return asdict(await asyncio.to_thread(lead_projection.read_report, store))

    return api


def main() -> None:
    settings = AnalyticsSettings()
    service.configure_logging(settings)
    store = lead_projection.open_store(settings.platform)
    service.launch(settings, store.check, routers=[router(store)], registrations=[Registration(
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server, AnalyticsServicer(store),
        analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"],
        permissions={"GetLeadReport": ("reports", Action.VIEW)})])


if __name__ == "__main__":
    main()

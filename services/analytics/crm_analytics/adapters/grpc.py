"""gRPC adapter: crm.analytics.v1.AnalyticsService."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from crm.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from crm_analytics import lead_projection
from crm_analytics.permissions import REPORTS
from crm_analytics.read_models import ReadModels
from crm_runtime.grpc_server import Registration, rpc


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, models: ReadModels):
        self.models = models

    @rpc(REPORTS.view)
    async def GetLeadReport(self, request, context):
        report = await asyncio.to_thread(lead_projection.read_report, self.models.lead_report)
        return analytics_pb2.LeadReport(**asdict(report))


def registrations(models: ReadModels) -> list[Registration]:
    return [Registration(analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
                         AnalyticsServicer(models),
                         analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"])]

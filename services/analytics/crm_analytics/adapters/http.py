"""HTTP adapter: /v1/reports."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel

from crm_analytics import lead_projection
from crm_analytics.permissions import REPORTS
from crm_analytics.read_models import ReadModels
from crm_runtime.auth import Principal, require


class LeadReportOut(BaseModel):
    captured: int
    assigned: int
    by_channel: dict[str, int]
    by_owner: dict[str, int]


def routers(models: ReadModels) -> list[APIRouter]:
    api = APIRouter(prefix="/v1/reports", tags=["reports"])

    @api.get("/leads", response_model=LeadReportOut)
    async def lead_report(_caller: Principal = require(REPORTS.view)):
        return asdict(await asyncio.to_thread(lead_projection.read_report, models.lead_report))

    return [api]

"""HTTP adapter: /v1/assignments."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses
from crm_workflow.application import WorkflowApplication
from crm_workflow.permissions import ASSIGNMENTS


def routers(app: WorkflowApplication) -> list[APIRouter]:
    api = APIRouter(prefix="/v1/assignments", tags=["assignments"])

    @api.get("/{subject_id}", responses=error_responses(404))
    async def get_assignment(subject_id: str, _caller: Principal = require(ASSIGNMENTS.view)) -> dict:
        assignment = await asyncio.to_thread(app.get_assignment, subject_id)
        return {"id": str(assignment.id), "subject_type": assignment.subject_type,
                "subject_id": assignment.subject_id, "owner_id": assignment.owner_id,
                "strategy": assignment.strategy.value, "cause_event_id": assignment.cause_event_id,
                "decided_at": assignment.created_on.isoformat()}

    return [api]

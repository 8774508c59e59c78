"""Entry point: `python -m crm_workflow` serves the workflow HTTP and gRPC APIs."""

import asyncio

from fastapi import APIRouter

from crm.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from crm_runtime import service
from crm_runtime.auth import Action, Principal, require
from crm_runtime.grpc_server import Registration, rpc
from crm_runtime.http import error_responses
from crm_workflow.adapters.messages import assignment_to_message
from crm_workflow.application import WorkflowApplication
from crm_workflow.settings import WorkflowSettings



class WorkflowServicer(workflow_pb2_grpc.WorkflowServiceServicer):
    def __init__(self, app: WorkflowApplication):
        self.app = app

    @rpc
    async def GetAssignment(self, request, context):
        return assignment_to_message(await asyncio.to_thread(self.app.get_assignment, request.subject_id))


def router(app: WorkflowApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/assignments", tags=["assignments"])

    @api.get("/{subject_id}", responses=error_responses(404))
    async def get_assignment(subject_id: str,
                             _caller: Principal = require("assignments", Action.VIEW)) -> dict:
        assignment = await asyncio.to_thread(app.get_assignment, subject_id)
        return {"id": str(assignment.id), "subject_type": assignment.subject_type,
                "subject_id": assignment.subject_id, "owner_id": assignment.owner_id,
                "strategy": assignment.strategy.value, "cause_event_id": assignment.cause_event_id,
                "decided_at": assignment.created_on.isoformat()}

    return api


def main() -> None:
    settings = WorkflowSettings()
    service.configure_logging(settings)
    app = WorkflowApplication(settings.platform, settings.sales_rep_ids)
    service.launch(settings, app.check_store, routers=[router(app)], registrations=[Registration(
        workflow_pb2_grpc.add_WorkflowServiceServicer_to_server, WorkflowServicer(app),
        workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"],
        permissions={"GetAssignment": ("assignments", Action.VIEW)})])


if __name__ == "__main__":
    main()

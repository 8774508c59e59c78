"""gRPC adapter: crm.workflow.v1.WorkflowService."""

from __future__ import annotations

import asyncio

from crm.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from crm_runtime.grpc_server import Registration, rpc
from crm_workflow.adapters.messages import assignment_to_message
from crm_workflow.application import WorkflowApplication
from crm_workflow.permissions import ASSIGNMENTS


class WorkflowServicer(workflow_pb2_grpc.WorkflowServiceServicer):
    def __init__(self, app: WorkflowApplication):
        self.app = app

    @rpc(ASSIGNMENTS.view)
    async def GetAssignment(self, request, context):
        return assignment_to_message(await asyncio.to_thread(self.app.get_assignment, request.subject_id))


def registrations(app: WorkflowApplication) -> list[Registration]:
    return [Registration(workflow_pb2_grpc.add_WorkflowServiceServicer_to_server, WorkflowServicer(app),
                         workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"])]

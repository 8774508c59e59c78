"""gRPC adapter: crm.workflow.v1.WorkflowService."""

from __future__ import annotations

import asyncio
from typing import Any

from crm.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from crm_runtime.errors import InvalidField
from crm_runtime.grpc_server import Registration, rpc
from crm_workflow.adapters.messages import ROUTING_STRATEGY, assignment_to_message, timer_to_message
from crm_workflow.application import WorkflowApplication
from crm_workflow.desk import AgentRecord, RoutingGroup
from crm_workflow.permissions import AGENTS, ASSIGNMENTS, ROUTING, TIMERS

STRATEGY_NAME = {number: name for name, number in ROUTING_STRATEGY.items()}

def agent_message(record: AgentRecord) -> workflow_pb2.Agent:
    return workflow_pb2.Agent(agent_id=record.agent_id, groups=sorted(record.groups), skills=sorted(record.skills),
                              capacity=record.capacity, on_shift=record.on_shift, load=record.load,
                              open_ticket_ids=list(record.open_tickets), version=record.version)

def group_message(group: RoutingGroup) -> workflow_pb2.RoutingGroup:
    return workflow_pb2.RoutingGroup(
        group=group.name, strategy=ROUTING_STRATEGY[group.strategy.value], member_ids=sorted(group.members),
        last_agent_id=group.last_agent_id or "", queued_ticket_ids=[item["ticket_id"] for item in group.queue],
        version=group.version)

class WorkflowServicer(workflow_pb2_grpc.WorkflowServiceServicer):
    def __init__(self, app: WorkflowApplication):
        self.app = app

    @rpc(ASSIGNMENTS.view)
    async def GetAssignment(self, request, context):
        return assignment_to_message(await asyncio.to_thread(self.app.get_assignment, request.subject_id))

    @rpc(AGENTS.edit)
    async def PutAgent(self, request, context):
        raw: dict[str, Any] = {"groups": list(request.groups), "skills": list(request.skills)}
        if request.HasField("capacity"):
            raw["capacity"] = request.capacity
        if request.HasField("on_shift"):
            raw["on_shift"] = request.on_shift
        return agent_message(await asyncio.to_thread(self.app.put_agent, request.agent_id, raw))

    @rpc(AGENTS.view)
    async def GetAgent(self, request, context):
        return agent_message(await asyncio.to_thread(self.app.get_agent, request.agent_id))

    @rpc(AGENTS.view)
    async def ListAgents(self, request, context):
        records, next_cursor = await asyncio.to_thread(
            self.app.list_agents, request.limit or None, request.cursor or None)
        return workflow_pb2.ListAgentsResponse(items=[agent_message(r) for r in records],
                                               next_cursor=next_cursor or "")

    @rpc(ROUTING.edit)
    async def PutRoutingGroup(self, request, context):
        if request.strategy not in STRATEGY_NAME:
            raise InvalidField("strategy", "name a routing strategy: ROUND_ROBIN, LEAST_LOADED or SKILLS")
        return group_message(await asyncio.to_thread(
            self.app.put_group, request.group, {"strategy": STRATEGY_NAME[request.strategy]}))

    @rpc(ROUTING.view)
    async def GetRoutingGroup(self, request, context):
        return group_message(await asyncio.to_thread(self.app.get_group, request.group))

    @rpc(TIMERS.view)
    async def ListTimers(self, request, context):
        rows = await asyncio.to_thread(self.app.timers_of, request.subject_id)
        return workflow_pb2.ListTimersResponse(timers=[timer_to_message(row) for row in rows])

def registrations(app: WorkflowApplication) -> list[Registration]:
    return [Registration(workflow_pb2_grpc.add_WorkflowServiceServicer_to_server, WorkflowServicer(app),
                         workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"])]

"""HTTP adapter: /v1/assignments, /v1/agents, /v1/routing/groups, /v1/timers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses
from crm_runtime.index import CURSOR_MAX, MAX_LIMIT
from crm_workflow.application import WorkflowApplication
from crm_workflow.desk import AgentRecord, RoutingGroup
from crm_workflow.permissions import AGENTS, ASSIGNMENTS, ROUTING, TIMERS
from crm_workflow.routing import MAX_CAPACITY, MAX_NAMES, NAME_MAX, RoutingStrategy

if TYPE_CHECKING:
    StrategyName = str
else:
    StrategyName = Literal[tuple(s.value for s in RoutingStrategy)]

Id = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]
Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Lower-case letters, digits, - and _")]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]


class AgentBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "groups": ["support"], "skills": ["billing", "printer"], "capacity": 5, "on_shift": True}})

    groups: list[Name] = Field(default_factory=list, max_length=MAX_NAMES)
    skills: list[Name] = Field(default_factory=list, max_length=MAX_NAMES)
    capacity: int = Field(default=10, ge=0, le=MAX_CAPACITY, description="Open tickets at most")
    on_shift: bool = True


class AgentOut(BaseModel):
    id: str
    groups: list[str]
    skills: list[str]
    capacity: int
    on_shift: bool
    load: int = Field(description="Open work: assigned tickets not solved, closed or pending")
    open_tickets: list[str]
    version: int


class AgentList(BaseModel):
    items: list[AgentOut]
    next_cursor: str | None


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName  # type: ignore[valid-type]


class GroupOut(BaseModel):
    group: str
    strategy: str
    members: list[str]
    last_agent_id: str | None
    queue: list[str] = Field(description="Tickets waiting for an agent, oldest first")
    version: int


class TimerOut(BaseModel):
    id: str
    name: str
    subject_id: str
    target: str
    kind: str
    level: int
    fire_at: str
    state: str = Field(description="pending, cancelled or fired")
    fired_at: str | None
    version: int


class TimerList(BaseModel):
    items: list[TimerOut]


def agent_out(record: AgentRecord) -> AgentOut:
    return AgentOut(**record.to_dict())


def group_out(group: RoutingGroup) -> GroupOut:
    return GroupOut(**group.to_dict())


def routers(app: WorkflowApplication) -> list[APIRouter]:
    api = APIRouter(prefix="/v1/assignments", tags=["assignments"])

    @api.get("/{subject_id}", responses=error_responses(404))
    async def get_assignment(subject_id: str, _caller: Principal = require(ASSIGNMENTS.view)) -> dict:
        assignment = await asyncio.to_thread(app.get_assignment, subject_id)
        return {"id": str(assignment.id), "subject_type": assignment.subject_type,
                "subject_id": assignment.subject_id, "owner_id": assignment.owner_id,
                "strategy": assignment.strategy.value, "cause_event_id": assignment.cause_event_id,
                "decided_at": assignment.created_on.isoformat()}

    agents = APIRouter(prefix="/v1/agents", tags=["agents"])

    @agents.put("/{agent_id}", responses=error_responses(409, 422))
    async def put_agent(agent_id: Id, body: AgentBody, _caller: Principal = require(AGENTS.edit)) -> AgentOut:
        """Defines or changes an agent; queued tickets of their groups may be routed to them."""
        return agent_out(await asyncio.to_thread(app.put_agent, agent_id, body.model_dump()))

    @agents.get("/{agent_id}", responses=error_responses(404, 422))
    async def get_agent(agent_id: Id, _caller: Principal = require(AGENTS.view)) -> AgentOut:
        return agent_out(await asyncio.to_thread(app.get_agent, agent_id))

    @agents.get("", responses=error_responses(422))
    async def list_agents(limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
                          cursor: Annotated[str | None, Query(max_length=CURSOR_MAX)] = None,
                          _caller: Principal = require(AGENTS.view)) -> AgentList:
        records, next_cursor = await asyncio.to_thread(app.list_agents, limit, cursor)
        return AgentList(items=[agent_out(r) for r in records], next_cursor=next_cursor)

    groups = APIRouter(prefix="/v1/routing/groups", tags=["routing"])

    @groups.put("/{group}", responses=error_responses(409, 422))
    async def put_group(group: Slug, body: GroupBody, _caller: Principal = require(ROUTING.edit)) -> GroupOut:
        """Sets the group's strategy: round_robin, least_loaded or skills."""
        return group_out(await asyncio.to_thread(app.put_group, group, body.model_dump()))

    @groups.get("/{group}", responses=error_responses(404, 422))
    async def get_group(group: Slug, _caller: Principal = require(ROUTING.view)) -> GroupOut:
        return group_out(await asyncio.to_thread(app.get_group, group))

    timers = APIRouter(prefix="/v1/timers", tags=["timers"])

    @timers.get("", responses=error_responses(422))
    async def list_timers(subject_id: Annotated[str, Query(min_length=1, max_length=200)],
                          _caller: Principal = require(TIMERS.view)) -> TimerList:
        """A ticket's SLA timers, or a contract's reminders: pending, cancelled and fired, by fire time."""
        rows = await asyncio.to_thread(app.timers_of, subject_id)
        return TimerList(items=[TimerOut(**row.to_dict()) for row in rows])

    return [api, agents, groups, timers]

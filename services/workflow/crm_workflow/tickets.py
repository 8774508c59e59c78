"""What the workflow does with a ticket event, and with an agent's or group's change: one
unit of work over the aggregates of `desk.py`, saved in one transaction by the caller.

`Desk` loads each aggregate once (so a batch sees its own earlier decisions), and
`changed()` lists the aggregates with new events. Nothing is saved here: the tickets
consumer saves them with its position (crm_runtime.consumer.EventStoreHandler), the API
saves an agent's change with the drains it allows.

Per ticket event (`TicketFact`, the ticket's whole state after the event):

1. an event at or below the version already applied changes nothing (a re-send);
2. the ticket's open work moves between agents' loads when its assignee or status changes
   (open work: not solved, closed or pending); an agent whose load fell drains the queues
   of their groups;
3. a ticket that opens unassigned in a group is routed with the group's strategy
   (`TicketWork.Routed`, which the dispatcher delivers as `AssignTicket`) or queued;
   a queued ticket that is solved, closed or assigned by hand leaves the queue;
4. its SLA state gives the timers it needs (`sla_timers.plan`), reconciled with the
   timers it has (`sla_timers.reconcile`): new ones scheduled, moved ones moved, the rest
   cancelled. A fired timer stays fired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from crm_workflow.desk import AgentRecord, RoutingGroup, TicketWork, UnitOfWork
from crm_workflow.routing import Agent, RoutingStrategy, choose, drain
from crm_workflow.sla_timers import SlaState, plan

A = TypeVar("A")
CLOSED_STATUSES = frozenset({"solved", "closed"})


@dataclass(frozen=True)
class TicketFact:
    """A ticket event as the workflow reads it: the ticket's state after it."""

    ticket_id: str
    version: int
    status: str  # new, open, pending, on_hold, solved, closed, reopened
    group: str
    assignee_id: str
    category: str
    tags: tuple[str, ...]
    sla: SlaState
    cause_event_id: str
    opened: bool = False  # TicketOpened


@dataclass
class Outcome:
    """What a unit of work decided (for log lines and tests)."""

    routed: list[tuple[str, str]] = field(default_factory=list)  # (ticket id, agent id)
    queued: list[str] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)  # timer names
    cancelled: list[str] = field(default_factory=list)


class Desk(UnitOfWork):
    def __init__(self, find: Callable[[type[Any], UUID], Any],
                 find_many: Callable[[type[Any], list[UUID]], dict[UUID, Any]] | None = None):
        super().__init__(find, find_many)
        self.outcome = Outcome()

    # -- loading, once per unit of work --------------------------------------------------------

    def agent(self, agent_id: str) -> AgentRecord | None:
        return self._get(AgentRecord, AgentRecord.id_for(agent_id))

    def group(self, name: str, create: bool = True) -> RoutingGroup | None:
        group = self._get(RoutingGroup, RoutingGroup.id_for(name))
        if group is None and create:
            group = self._add(RoutingGroup.define(name))
        return group

    def work(self, ticket_id: str) -> TicketWork | None:
        return self._get(TicketWork, TicketWork.id_for(ticket_id))

    # -- agents and groups ---------------------------------------------------------------------

    def put_agent(self, profile: Agent) -> AgentRecord:
        record = self.agent(profile.id)
        before: set[str] = set()
        if record is None:
            record = self._add(AgentRecord.register(profile))
        else:
            before = set(record.groups)
            record.update(profile)
        for name in sorted(before - profile.groups):
            group = self.group(name)
            assert group is not None
            group.leave(profile.id)
        for name in sorted(profile.groups):
            group = self.group(name)
            assert group is not None
            group.join(profile.id)
            self.drain(name, cause_event_id=f"agent/{profile.id}/{record.version}")
        return record

    def put_group(self, name: str, strategy: RoutingStrategy) -> RoutingGroup:
        group = self.group(name)
        assert group is not None
        group.use(strategy)
        self.drain(name, cause_event_id=f"group/{name}/{group.version}")
        return group

    def _members(self, group: RoutingGroup) -> list[AgentRecord]:
        return [agent for agent in (self.agent(agent_id) for agent_id in group.members) if agent is not None]

    def drain(self, name: str, cause_event_id: str) -> None:
        """Hands the group's queued tickets to whoever can take them now, oldest first."""
        group = self.group(name, create=False)
        if group is None or not group.queue:
            return
        members = self._members(group)
        loads = {agent.agent_id: agent.load for agent in members}
        for decision in drain(group.strategy, group.queued, [agent.profile for agent in members], loads,
                              group.last_agent_id):
            work = self.work(decision.ticket_id)
            if work is None or work.assignee_id or work.status in CLOSED_STATUSES:
                group.drop(decision.ticket_id)
                continue
            self._route(work, group, decision.agent_id, cause_event_id)

    def _route(self, work: TicketWork, group: RoutingGroup, agent_id: str, cause_event_id: str) -> None:
        work.route(ticket_id=work.ticket_id, agent_id=agent_id, group=group.name, strategy=group.strategy.value,
                   cause_event_id=cause_event_id, idempotency_key=work.next_routing_key())
        group.routed(ticket_id=work.ticket_id, agent_id=agent_id)
        agent = self.agent(agent_id)
        if agent is not None and work.holder == agent_id:
            agent.take(work.ticket_id)
        self.outcome.routed.append((work.ticket_id, agent_id))

    # -- ticket events -------------------------------------------------------------------------

    def apply(self, fact: TicketFact) -> None:
        work = self.work(fact.ticket_id)
        if work is not None and fact.version <= work.ticket_version:
            return  # applied before
        before = work.holder if work is not None else None
        # A routing decided but not yet carried out keeps its agent until the ticket shows one.
        assignee = fact.assignee_id or (work.assignee_id if work is not None else "")
        values: dict[str, Any] = {"status": fact.status, "group": fact.group, "assignee_id": assignee,
                  "category": fact.category, "tags": sorted(fact.tags)}
        if work is None:
            work = self._add(TicketWork(id=TicketWork.id_for(fact.ticket_id), ticket_id=fact.ticket_id,
                                        ticket_version=fact.version, **values))
        else:
            work.observe(ticket_version=fact.version, **values)
        self._move_load(work, before, fact.cause_event_id)
        self._route_or_queue(work, fact)
        self._timers(work, fact)

    def _move_load(self, work: TicketWork, before: str | None, cause_event_id: str) -> None:
        after = work.holder
        if before == after:
            return
        if after is not None and (agent := self.agent(after)) is not None:
            agent.take(work.ticket_id)
        if before is not None and (agent := self.agent(before)) is not None:
            agent.leave(work.ticket_id)
            for name in sorted(agent.groups):
                self.drain(name, cause_event_id)

    def _route_or_queue(self, work: TicketWork, fact: TicketFact) -> None:
        if work.queued and (work.assignee_id or work.status in CLOSED_STATUSES):
            group = self.group(work.group, create=False)
            if group is not None:
                group.drop(work.ticket_id)
            return
        if not fact.opened or work.assignee_id or work.routings or work.queued or not work.group:
            return
        group = self.group(work.group)
        assert group is not None
        members = self._members(group)
        loads = {agent.agent_id: agent.load for agent in members}
        chosen = choose(group.strategy, work.to_route, [agent.profile for agent in members], loads,
                        group.last_agent_id)
        if chosen is not None:
            self._route(work, group, chosen.id, fact.cause_event_id)
            return
        work.queue(ticket_id=work.ticket_id, group=group.name, cause_event_id=fact.cause_event_id)
        group.enqueue(work.to_route)
        self.outcome.queued.append(work.ticket_id)

    def _timers(self, work: TicketWork, fact: TicketFact) -> None:
        changes = self.follow_timers(work.timer_names, plan(fact.sla), fact.cause_event_id)
        self.outcome.scheduled += changes.scheduled
        self.outcome.cancelled += changes.cancelled
        work.track_timers(changes.scheduled)

"""Workflow application: decisions are saved atomically with the rotation they advance.

A decision is also the command that carries it out (the command outbox): the dispatcher
delivers every stored `Assignment.Decided` to the owning service, so the consumer that
decides does only local work.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError

from crm_runtime import logs
from crm_runtime.business_time import Clock, SystemClock
from crm_runtime.errors import Conflict, InvalidField, NotFound
from crm_runtime.eventstore import ServiceApplication
from crm_runtime.index import check_limit, decode_cursor, encode_cursor
from crm_runtime.settings import PlatformSettings
from crm_runtime.text import plain_identifier
from crm_workflow.assignment import Assignment, Rotation, Strategy
from crm_workflow.contract_reminders import ReminderSettings
from crm_workflow.contracts import ContractFact, Reminders
from crm_workflow.desk import AgentRecord, RoutingGroup, TicketWork, Timer
from crm_workflow.routing import Agent, parse_strategy
from crm_workflow.tickets import Desk, TicketFact
from crm_workflow.views import TimerRow, WorkflowViews, open_views

log = logs.get(__name__)

LEAD = "crm.leads.v1.Lead"
SALES_REPS_POOL = "sales-reps"


class WorkflowApplication(ServiceApplication):
    name = "Workflow"
    # The rotation gains an event per lead: snapshots keep loading it cheap.
    snapshotting_intervals = {Rotation: 200, AgentRecord: 200, RoutingGroup: 200}

    def __init__(self, platform: PlatformSettings, sales_reps: list[str], clock: Clock | None = None):
        # Each batch of decisions loads the one rotation (and the routing group, the agents):
        # eventsourcing's aggregate cache keeps them and reads only the events written since,
        # by this process or another, instead of a snapshot and up to 200 events per batch.
        super().__init__(platform, env={"AGGREGATE_CACHE_MAXSIZE": "1000"})
        self.sales_reps = sales_reps
        self.clock: Clock = clock or SystemClock()
        # Partitions are decided concurrently; they all advance the one rotation.
        self._rotation_lock = threading.Lock()
        self._views: WorkflowViews | None = None
        self._views_opening = threading.Lock()

    @property
    def views(self) -> WorkflowViews:
        if self._views is None:
            with self._views_opening:
                if self._views is None:
                    self._views = open_views(self, self.platform)
        return self._views

    def plan_lead_owners(self, leads: Sequence[tuple[str, str]]) -> tuple[list[Any], list[Assignment]]:
        """The aggregates to save to decide owners for (lead id, cause event id) pairs: the
        rotation, advanced once per lead not decided before, and the new assignments; and
        every lead's assignment, in order. Nothing is saved here: a consumer saves the plan
        with its position in one transaction (crm_runtime.consumer.EventStoreHandler)."""
        decided: dict[str, Assignment] = {}
        new: list[Assignment] = []
        rotation = self.find(Rotation, Rotation.id_for(SALES_REPS_POOL)) or Rotation(
            id=Rotation.id_for(SALES_REPS_POOL), pool=SALES_REPS_POOL)
        # One read for the batch's earlier decisions (usually none: most leads are new).
        stored = self.find_many(Assignment, [Assignment.id_for(LEAD, lead_id) for lead_id, _ in leads])
        for lead_id, cause_event_id in leads:
            if lead_id in decided:
                continue
            existing = stored.get(Assignment.id_for(LEAD, lead_id))
            if existing is None:
                existing = Assignment(
                    id=Assignment.id_for(LEAD, lead_id), subject_type=LEAD, subject_id=lead_id,
                    owner_id=rotation.next_member(self.sales_reps),
                    strategy=Strategy.ROUND_ROBIN.value, cause_event_id=cause_event_id)
                new.append(existing)
            decided[lead_id] = existing
        return ([rotation, *new] if new else []), list(decided.values())

    def decide_lead_owners(self, leads: Sequence[tuple[str, str]], max_attempts: int = 20) -> list[Assignment]:
        """Decides and saves, outside a consumer (tools, tests): one transaction."""
        for _ in range(max_attempts):
            with self._rotation_lock:
                changed, assignments = self.plan_lead_owners(leads)
                if not changed:
                    return assignments
                try:
                    self.save(*changed)
                except IntegrityError:
                    continue  # another worker advanced the rotation or decided a lead: reload
            return assignments
        raise Conflict(f"could not decide owners for {len(leads)} lead(s): too much contention")

    def decide_lead_owner(self, lead_id: str, cause_event_id: str) -> Assignment:
        return self.decide_lead_owners([(lead_id, cause_event_id)])[0]

    def get_assignment(self, subject_id: str) -> Assignment:
        assignment = self.find(Assignment, Assignment.id_for(LEAD, subject_id))
        if assignment is None:
            raise NotFound(f"no assignment for {subject_id}")
        return assignment

    # -- tickets: agents, groups, routing, timers ------------------------------------------------

    def plan_tickets(self, facts: Sequence[TicketFact]) -> tuple[list[Any], Desk]:
        """The aggregates to save for a batch of ticket events (nothing saved here)."""
        desk = Desk(self.find, self.find_many)
        desk.prefetch(TicketWork, [TicketWork.id_for(fact.ticket_id) for fact in facts])
        for fact in facts:
            desk.apply(fact)
        return desk.changed(), desk

    def apply_tickets(self, facts: Sequence[TicketFact]) -> Desk:
        """Decides and saves, outside a consumer (tools, tests): one transaction."""
        return self._decide(lambda desk: [desk.apply(fact) for fact in facts])

    def _decide(self, work: Any, max_attempts: int = 20) -> Desk:
        for _ in range(max_attempts):
            desk = Desk(self.find, self.find_many)
            work(desk)
            try:
                self.save(*desk.changed())
            except IntegrityError:
                continue  # the worker or another request changed one of them: decide again
            return desk
        raise Conflict("too much contention; retry")

    def put_agent(self, agent_id: str, raw: dict[str, Any]) -> AgentRecord:
        profile = Agent.parse(agent_id, raw)
        desk = self._decide(lambda desk: desk.put_agent(profile))
        record = desk.agent(profile.id)
        assert record is not None
        return record

    def get_agent(self, agent_id: str) -> AgentRecord:
        record = self.find(AgentRecord, AgentRecord.id_for(plain_identifier("agent_id", agent_id)))
        if record is None:
            raise NotFound(f"agent {agent_id} does not exist")
        return record

    def list_agents(self, limit: int | None = None, cursor: str | None = None) -> tuple[list[AgentRecord], str | None]:
        limit = check_limit(limit)
        after = decode_cursor("agents", cursor, (str,))[0] if cursor else None
        self.views.catch_up()
        ids = self.views.agent_ids(after, limit + 1)
        records = [record for record in (self.find(AgentRecord, AgentRecord.id_for(i)) for i in ids[:limit])
                   if record is not None]
        return records, (encode_cursor("agents", ids[limit - 1]) if len(ids) > limit else None)

    def put_group(self, name: str, raw: dict[str, Any]) -> RoutingGroup:
        unknown = set(raw) - {"strategy"}
        if unknown:
            raise InvalidField(sorted(unknown)[0], "is not a field of a routing group")
        if "strategy" not in raw:
            raise InvalidField("strategy", "is required")
        strategy = parse_strategy(raw["strategy"])
        group_name = plain_identifier("group", name).lower()
        desk = self._decide(lambda desk: desk.put_group(group_name, strategy))
        group = desk.group(group_name)
        assert group is not None
        return group

    def get_group(self, name: str) -> RoutingGroup:
        group = self.find(RoutingGroup, RoutingGroup.id_for(plain_identifier("group", name).lower()))
        if group is None:
            raise NotFound(f"routing group {name} does not exist")
        return group

    # -- contracts: reminders ------------------------------------------------------------------

    def plan_contracts(self, facts: Sequence[ContractFact], settings: ReminderSettings) -> tuple[list[Any], Reminders]:
        """The aggregates to save for a batch of contract events (nothing saved here)."""
        reminders = Reminders(self.find, settings)
        for fact in facts:
            reminders.apply(fact)
        return reminders.changed(), reminders

    def get_ticket_work(self, ticket_id: str) -> TicketWork | None:
        return self.find(TicketWork, TicketWork.id_for(ticket_id))

    def timers_of(self, subject_id: str) -> list[TimerRow]:
        self.views.catch_up()
        return self.views.timers_of(plain_identifier("subject_id", subject_id))

    def get_timer(self, name: str) -> Timer | None:
        return self.find(Timer, Timer.id_for_name(name))

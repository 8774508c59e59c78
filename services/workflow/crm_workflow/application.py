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
from crm_runtime.errors import Conflict, NotFound
from crm_runtime.eventstore import ServiceApplication
from crm_runtime.settings import PlatformSettings
from crm_workflow.assignment import Assignment, Rotation, Strategy

log = logs.get(__name__)

LEAD = "crm.leads.v1.Lead"
SALES_REPS_POOL = "sales-reps"


class WorkflowApplication(ServiceApplication):
    name = "Workflow"
    # The rotation gains an event per lead: snapshots keep loading it cheap.
    snapshotting_intervals = {Rotation: 200}

    def __init__(self, platform: PlatformSettings, sales_reps: list[str]):
        super().__init__(platform)
        self.sales_reps = sales_reps
        # Partitions are decided concurrently; they all advance the one rotation.
        self._rotation_lock = threading.Lock()

    def plan_lead_owners(self, leads: Sequence[tuple[str, str]]) -> tuple[list[Any], list[Assignment]]:
        """The aggregates to save to decide owners for (lead id, cause event id) pairs: the
        rotation, advanced once per lead not decided before, and the new assignments; and
        every lead's assignment, in order. Nothing is saved here: a consumer saves the plan
        with its position in one transaction (crm_runtime.consumer.EventStoreHandler)."""
        decided: dict[str, Assignment] = {}
        new: list[Assignment] = []
        rotation = self.find(Rotation, Rotation.id_for(SALES_REPS_POOL)) or Rotation(
            id=Rotation.id_for(SALES_REPS_POOL), pool=SALES_REPS_POOL)
        for lead_id, cause_event_id in leads:
            if lead_id in decided:
                continue
            existing = self.find(Assignment, Assignment.id_for(LEAD, lead_id))
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

"""Workflow application: decisions are saved atomically with the rotation they advance."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
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

    def decide_lead_owner(self, lead_id: str, cause_event_id: str, max_attempts: int = 20) -> Assignment:
        """The lead's assignment: the one already decided, or a new round-robin decision."""
        assignment_id = Assignment.id_for(LEAD, lead_id)
        for _ in range(max_attempts):
            existing = self._find(Assignment, assignment_id)
            if existing is not None:
                return existing
            rotation = self._find(Rotation, Rotation.id_for(SALES_REPS_POOL)) or Rotation(
                id=Rotation.id_for(SALES_REPS_POOL), pool=SALES_REPS_POOL)
            owner = rotation.next_member(self.sales_reps)
            assignment = Assignment(id=assignment_id, subject_type=LEAD, subject_id=lead_id,
                                    owner_id=owner, strategy=Strategy.ROUND_ROBIN.value,
                                    cause_event_id=cause_event_id)
            try:
                self.save(rotation, assignment)
            except IntegrityError:
                continue  # another worker advanced the rotation or decided this lead: reload
            log.info("assignment.decided", lead_id=lead_id, owner_id=owner)
            return assignment
        raise Conflict(f"could not decide an owner for lead {lead_id}: too much contention")

    def get_assignment(self, subject_id: str) -> Assignment:
        assignment = self._find(Assignment, Assignment.id_for(LEAD, subject_id))
        if assignment is None:
            raise NotFound(f"no assignment for {subject_id}")
        return assignment

    def _find(self, cls, aggregate_id: UUID):
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(aggregate, cls)
        return aggregate

"""Who gets a record: the assignment rule, pure domain.

Round robin: a durable rotation hands out members in turn. Its position is an event-sourced
aggregate, so the rotation carries on where it left off after a restart. An assignment is
decided once per subject: its id is derived from the subject, so a replayed event finds the
decision already made instead of advancing the rotation again.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

_NAMESPACE = uuid5(NAMESPACE_URL, "crm:workflow")


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"


class Rotation(Aggregate):
    """A round-robin cursor over a list of members (the list itself comes from settings)."""

    @staticmethod
    def id_for(pool: str) -> UUID:
        return uuid5(_NAMESPACE, f"rotation/{pool}")

    @event("Started")
    def __init__(self, id: UUID, pool: str):  # noqa: A002
        self.pool = pool
        self.turns = 0

    def next_member(self, members: list[str]) -> str:
        if not members:
            raise ValueError(f"rotation {self.pool!r} has no members to assign to")
        member = members[self.turns % len(members)]
        self._advanced(member=member)
        return member

    @event("Advanced")
    def _advanced(self, member: str) -> None:
        self.turns += 1


class Assignment(Aggregate):
    """The decision that `owner_id` owns a subject, and the event that caused it."""

    @staticmethod
    def id_for(subject_type: str, subject_id: str) -> UUID:
        return uuid5(_NAMESPACE, f"assignment/{subject_type}/{subject_id}")

    @event("Decided")
    def __init__(self, id: UUID, subject_type: str, subject_id: str, owner_id: str,  # noqa: A002
                 strategy: str, cause_event_id: str):
        self.subject_type = subject_type
        self.subject_id = subject_id
        self.owner_id = owner_id
        self.strategy = Strategy(strategy)
        self.cause_event_id = cause_event_id

    @staticmethod
    def idempotency_key_for(cause_event_id: str) -> str:
        """The key of the command that carries out a decision; derived from its cause."""
        return f"workflow/assignment/{cause_event_id}"

    @property
    def idempotency_key(self) -> str:
        return self.idempotency_key_for(self.cause_event_id)

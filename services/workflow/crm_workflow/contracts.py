"""What the workflow does with a contract event: one unit of work over a `ContractWatch`
and the contract's reminder timers, saved in one transaction by the caller (the
`contracts` consumer saves it with its position, crm_runtime.consumer.EventStoreHandler).

Per contract event (`ContractFact`, read from sales' events by adapters/sales.py):

1. an event at or below the contract version already applied changes nothing (a re-send:
   exactly once in effect, with the position saved in the same transaction);
2. the watch records what the event says: the activation (account, owner, instalments,
   ends_on), an instalment paid in full or in part (what is still owed: the pending reminder
   is re-planned to say so), an amendment (the new schedule, what is paid,
   ends_on and total: `contract_reminders.amended` re-plans each reminder whose content
   changed under a new revision, unless it has fired for the same date), or the contract
   expired, renewed or terminated;
3. the watch's state gives the reminders it needs (`contract_reminders.plan`), and its
   timers follow them (`UnitOfWork.follow_timers`, as a ticket's SLA timers do): new ones
   scheduled with the payload their event will carry, the rest cancelled. A fired reminder
   stays fired.

The timers are fired by the worker's firing step (crm_workflow.firing), which publishes
`InstalmentReminderDue` or `ContractRenewalDue` (adapters/messages.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from crm_workflow.contract_reminders import (
    ContractState,
    ContractStatus,
    Instalment,
    ReminderSettings,
    amended,
    part_paid,
    payload_of,
    plan,
    reminder_of,
)
from crm_workflow.desk import TimerChanges, TimerState, UnitOfWork

_NAMESPACE = uuid5(NAMESPACE_URL, "crm:workflow")


class ContractChange(StrEnum):
    ACTIVATED = "activated"
    PAID_IN_FULL = "paid_in_full"  # an instalment has nothing outstanding
    PART_PAID = "part_paid"  # a payment left `outstanding` on an instalment
    EXPIRED = "expired"
    RENEWED = "renewed"
    TERMINATED = "terminated"
    AMENDED = "amended"  # a new schedule, ends_on or total


@dataclass(frozen=True)
class ContractFact:
    """A sales contract event as the workflow reads it."""

    contract_id: str
    version: int  # the contract's version after the event
    change: ContractChange
    cause_event_id: str
    account_id: str = ""
    owner_id: str = ""
    currency: str = ""
    total: str = ""
    ends_on: date | None = None
    activated_on: date | None = None
    activated_at: datetime | None = None
    instalments: tuple[Instalment, ...] = ()
    instalment: int = 0  # PAID_IN_FULL, PART_PAID: which
    outstanding: str = ""  # PART_PAID: what is still owed on it
    paid_in_full: frozenset[int] = frozenset()  # AMENDED: instalments with nothing outstanding
    owed: dict[int, str] = field(default_factory=dict)  # AMENDED: what is owed on those partly paid
    amended_at: datetime | None = None  # AMENDED: the event's time


class ContractWatch(Aggregate):
    """What the workflow knows of a contract, as of sales' `version` of it."""

    @staticmethod
    def id_for(contract_id: str) -> UUID:
        return uuid5(_NAMESPACE, f"contract/{contract_id}")

    @event("Started")
    def __init__(self, id: UUID, contract_id: str, contract_version: int, state: dict[str, Any]):  # noqa: A002
        self.contract_id = contract_id
        self.contract_version = contract_version
        self.state_json = state

    @property
    def state(self) -> ContractState:
        return ContractState.from_json(self.state_json)

    @event("Updated")
    def observe(self, contract_version: int, state: dict[str, Any]) -> None:
        self.contract_version = contract_version
        self.state_json = state


def next_state(before: ContractState | None, fact: ContractFact,
               fired: frozenset[str] = frozenset()) -> ContractState | None:
    """The contract's state after the fact; None when the workflow need not watch it (a
    contract it never saw active or paid, ended, or amended before its activation: the
    activation carries the amended schedule). `fired`: the reminders (`reminder_of` names)
    whose current revision has fired."""
    if fact.change is ContractChange.ACTIVATED:
        paid = before.paid if before is not None else frozenset()
        return ContractState(contract_id=fact.contract_id, status=ContractStatus.ACTIVE, account_id=fact.account_id,
                             owner_id=fact.owner_id, currency=fact.currency, total=fact.total, ends_on=fact.ends_on,
                             activated_on=fact.activated_on, activated_at=fact.activated_at,
                             instalments=fact.instalments, paid=paid)
    if fact.change in (ContractChange.PAID_IN_FULL, ContractChange.PART_PAID):
        current = before or ContractState(fact.contract_id, ContractStatus.SIGNED, account_id=fact.account_id,
                                          owner_id=fact.owner_id)
        if fact.change is ContractChange.PART_PAID:
            return part_paid(current, fact.instalment, fact.outstanding, fired)
        owed = {number: amount for number, amount in current.owed.items() if number != fact.instalment}
        return replace(current, paid=current.paid | {fact.instalment}, owed=owed)
    if before is None:
        return None
    if fact.change is ContractChange.AMENDED:
        assert fact.ends_on is not None and fact.amended_at is not None
        return amended(before, fact.instalments, fact.paid_in_full, fact.ends_on, fact.total, fact.amended_at,
                       fired, fact.owed)
    status = {ContractChange.EXPIRED: ContractStatus.EXPIRED, ContractChange.RENEWED: ContractStatus.RENEWED,
              ContractChange.TERMINATED: ContractStatus.TERMINATED}[fact.change]
    return replace(before, status=status)


class Reminders(UnitOfWork):
    def __init__(self, find: Callable[[type[Any], UUID], Any], settings: ReminderSettings):
        super().__init__(find)
        self.settings = settings
        self.outcome = TimerChanges()  # what this unit of work did (log lines, tests)

    def watch(self, contract_id: str) -> ContractWatch | None:
        return self._get(ContractWatch, ContractWatch.id_for(contract_id))

    def fired(self, state: ContractState) -> frozenset[str]:
        """The reminders whose current revision has fired (they are not sent again for the same date)."""
        return frozenset(reminder_of(key.target, key.level) for key in state.current_keys
                         if (timer := self.timer(key.name)) is not None and timer.state == TimerState.FIRED)

    def apply(self, fact: ContractFact) -> None:
        watch = self.watch(fact.contract_id)
        if watch is not None and fact.version <= watch.contract_version:
            return  # applied before
        before = watch.state if watch is not None else None
        needs_fired = before is not None and fact.change in (ContractChange.AMENDED, ContractChange.PART_PAID)
        state = next_state(before, fact, self.fired(before) if before is not None and needs_fired else frozenset())
        if state is None:
            return
        if watch is None:
            watch = self._add(ContractWatch(id=ContractWatch.id_for(fact.contract_id), contract_id=fact.contract_id,
                                            contract_version=fact.version, state=state.to_json()))
        else:
            watch.observe(contract_version=fact.version, state=state.to_json())
        changes = self.follow_timers([key.name for key in state.keys], plan(state, self.settings),
                                     fact.cause_event_id, lambda key: payload_of(state, key))
        self.outcome.scheduled += changes.scheduled
        self.outcome.cancelled += changes.cancelled

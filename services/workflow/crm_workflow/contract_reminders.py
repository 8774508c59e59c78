"""Which reminders a contract needs now, and when each fires: pure domain, no I/O.

Sales publishes `ContractActivated` with every instalment's due date and the contract's
`ends_on`. From what the workflow knows of a contract (`ContractState`: that activation,
the instalments paid in full since, and whether it is still active) `plan` says which
reminder timers should be pending:

- an instalment reminder `instalment_days` before each instalment's due date, unless the
  instalment is paid in full;
- a renewal reminder `renewal_days` before `ends_on`, while the contract is active (an
  expired, renewed or terminated contract needs none);
- a terminated contract needs no reminder at all; an expired or renewed one keeps its
  unpaid instalments' reminders (the money is still due).

A reminder fires at 00:00 UTC of its day. The past is measured from the activation (sales'
`activated_on` and the event's time; never from a clock, so the plan is the same whenever
the event is read, and a replay decides the same): an instalment due BEFORE the day of
activation gets no reminder (it is overdue, not coming up); a reminder whose day had
passed at activation, for a due date on or after it, fires at the activation instant,
i.e. at once. So a reminder is never scheduled before
the contract was active, and no date coming up goes without one.

Timers are the workflow's durable `desk.Timer`s, reconciled with the plan exactly as a
ticket's SLA timers are (`desk.follow_timers`): the same key with the same time is the
same timer, a fired reminder stays fired, a reminder no longer planned is cancelled.

**What a reminder says changes** when sales amends the contract (`ContractAmended`: new due
dates, amounts, ends_on or total) or a part payment leaves less outstanding on an
instalment. A timer's payload is fixed when it is scheduled, so such a change re-plans the
reminder under a new REVISION of its key (`c-1/instalment/2/reminder/r1`, revision 0 keeps
the original name): the earlier revision is cancelled and the new one scheduled with what
is now true, in the same transaction (`amended`, `part_paid`). A reminder that has already
fired is not sent again for the same due date (nor is the renewal reminder for the same
ends_on); a new due date (or ends_on) gets a reminder of its own. A reminder re-planned by
an amendment measures the past from the amendment (its day and instant), as the first
plan did from the activation; one re-planned by a part payment keeps its time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any


class ReminderTarget(StrEnum):
    INSTALMENT = "instalment"
    RENEWAL = "renewal"


class ReminderKind(StrEnum):
    REMINDER = "reminder"


class ContractStatus(StrEnum):
    """What the workflow has heard of a contract (sales' statuses it reminds on)."""

    SIGNED = "signed"  # not active yet: a payment recorded before the activation
    ACTIVE = "active"
    EXPIRED = "expired"
    RENEWED = "renewed"
    TERMINATED = "terminated"


@dataclass(frozen=True, order=True)
class ReminderKey:
    subject_id: str  # the contract's id
    target: ReminderTarget
    level: int = 0  # the instalment (1-based); 0 for the renewal reminder
    kind: ReminderKind = ReminderKind.REMINDER
    revision: int = 0  # re-planned with new content (an amendment, a part payment)

    @property
    def name(self) -> str:
        """A stable name, e.g. `c-1/instalment/2/reminder`, `c-1/instalment/2/reminder/r1`
        for its first re-planning (timer ids derive from it)."""
        suffix = f"/r{self.revision}" if self.revision else ""
        return f"{self.subject_id}/{reminder_of(self.target, self.level)}/{self.kind.value}{suffix}"


def reminder_of(target: ReminderTarget, level: int = 0) -> str:
    """The reminder a key revises, e.g. `instalment/2`, `renewal`."""
    return f"{target.value}/{level}" if target is ReminderTarget.INSTALMENT else target.value


RENEWAL = reminder_of(ReminderTarget.RENEWAL)


@dataclass(frozen=True)
class Instalment:
    number: int
    due_on: date
    amount: str  # a decimal string in the contract's currency

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "due_on": self.due_on.isoformat(), "amount": self.amount}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Instalment:
        return cls(int(raw["number"]), date.fromisoformat(raw["due_on"]), str(raw["amount"]))


@dataclass(frozen=True)
class ReminderSettings:
    instalment_days: int = 7
    renewal_days: int = 30


@dataclass(frozen=True)
class ContractState:
    contract_id: str
    status: ContractStatus
    account_id: str = ""
    owner_id: str = ""
    currency: str = ""
    total: str = ""
    ends_on: date | None = None
    activated_on: date | None = None  # sales' day of activation; None: not active yet
    activated_at: datetime | None = None  # the instant (the event's time)
    instalments: tuple[Instalment, ...] = ()
    paid: frozenset[int] = field(default_factory=frozenset)  # instalments paid in full
    # Re-planned reminders (`reminder_of` -> its revision), and for those an amendment
    # re-planned, the instant their past is measured from (else the activation).
    revisions: dict[str, int] = field(default_factory=dict)
    since: dict[str, datetime] = field(default_factory=dict)
    # What is still owed on an instalment partly paid (absent: its whole amount).
    owed: dict[int, str] = field(default_factory=dict)

    def outstanding_on(self, item: Instalment) -> str:
        return self.owed.get(item.number, item.amount)

    def to_json(self) -> dict[str, Any]:
        return {"contract_id": self.contract_id, "status": self.status.value, "account_id": self.account_id,
                "owner_id": self.owner_id, "currency": self.currency, "total": self.total,
                "ends_on": self.ends_on.isoformat() if self.ends_on else None,
                "activated_on": self.activated_on.isoformat() if self.activated_on else None,
                "activated_at": self.activated_at.isoformat() if self.activated_at else None,
                "instalments": [item.to_json() for item in self.instalments], "paid": sorted(self.paid),
                "revisions": dict(sorted(self.revisions.items())),
                "since": {name: at.isoformat() for name, at in sorted(self.since.items())},
                "owed": {str(number): amount for number, amount in sorted(self.owed.items())}}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ContractState:
        """The state as `to_json` wrote it (also before amendments existed: no revisions)."""
        return cls(contract_id=raw["contract_id"], status=ContractStatus(raw["status"]),
                   account_id=raw["account_id"], owner_id=raw["owner_id"], currency=raw["currency"],
                   total=raw["total"], ends_on=date.fromisoformat(raw["ends_on"]) if raw["ends_on"] else None,
                   activated_on=date.fromisoformat(raw["activated_on"]) if raw["activated_on"] else None,
                   activated_at=datetime.fromisoformat(raw["activated_at"]) if raw["activated_at"] else None,
                   instalments=tuple(Instalment.from_json(item) for item in raw["instalments"]),
                   paid=frozenset(raw["paid"]), revisions=dict(raw.get("revisions", {})),
                   since={name: datetime.fromisoformat(at) for name, at in raw.get("since", {}).items()},
                   owed={int(number): amount for number, amount in raw.get("owed", {}).items()})

    def key(self, target: ReminderTarget, level: int = 0) -> ReminderKey:
        """The current revision of a reminder's key."""
        return ReminderKey(self.contract_id, target, level, revision=self.revisions.get(reminder_of(target, level), 0))

    @property
    def current_keys(self) -> list[ReminderKey]:
        return [*(self.key(ReminderTarget.INSTALMENT, item.number) for item in self.instalments),
                self.key(ReminderTarget.RENEWAL)]

    @property
    def keys(self) -> list[ReminderKey]:
        """Every reminder this contract could ever have, every revision (what to reconcile
        against: earlier revisions, and instalments an amendment dropped, are cancelled)."""
        levels = {item.number for item in self.instalments}
        levels |= {int(name.split("/")[1]) for name in self.revisions if name != RENEWAL}
        found = [(ReminderTarget.INSTALMENT, level) for level in sorted(levels)] + [(ReminderTarget.RENEWAL, 0)]
        return [ReminderKey(self.contract_id, target, level, revision=revision) for target, level in found
                for revision in range(self.revisions.get(reminder_of(target, level), 0) + 1)]


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def plan(state: ContractState, settings: ReminderSettings) -> dict[ReminderKey, datetime]:
    """The reminders `state` needs pending, and when each fires."""
    planned: dict[ReminderKey, datetime] = {}
    if (state.activated_on is None or state.activated_at is None
            or state.status in (ContractStatus.SIGNED, ContractStatus.TERMINATED)):
        return planned
    activated_at, activated_on = state.activated_at.astimezone(UTC), state.activated_on

    def measured_from(name: str) -> tuple[datetime, date]:
        since = state.since.get(name)
        return (since.astimezone(UTC), since.astimezone(UTC).date()) if since else (activated_at, activated_on)

    for item in state.instalments:
        since_at, since_on = measured_from(reminder_of(ReminderTarget.INSTALMENT, item.number))
        if item.number in state.paid or item.due_on < since_on:
            continue
        at = start_of(item.due_on - timedelta(days=settings.instalment_days))
        planned[state.key(ReminderTarget.INSTALMENT, item.number)] = max(at, since_at)
    if state.status is ContractStatus.ACTIVE and state.ends_on is not None:
        since_at, _ = measured_from(RENEWAL)
        at = start_of(state.ends_on - timedelta(days=settings.renewal_days))
        planned[state.key(ReminderTarget.RENEWAL)] = max(at, since_at)
    return planned


def part_paid(state: ContractState, number: int, outstanding: str, fired: frozenset[str]) -> ContractState:
    """The state after a payment left `outstanding` (> 0) on instalment `number`: its pending
    reminder is re-planned under its next revision, at the same time, to say so (one that
    has fired is not sent again)."""
    if state.owed.get(number) == outstanding:
        return state
    revisions = dict(state.revisions)
    name = reminder_of(ReminderTarget.INSTALMENT, number)
    if state.activated_on is not None and name not in fired:
        revisions[name] = revisions.get(name, 0) + 1
    return replace(state, owed={**state.owed, number: outstanding}, revisions=revisions)


def amended(state: ContractState, instalments: tuple[Instalment, ...], paid: frozenset[int], ends_on: date,
            total: str, at: datetime, fired: frozenset[str], owed: dict[int, str] | None = None) -> ContractState:
    """The state after sales amended the contract at `at` (its new schedule, the instalments
    now paid in full, ends_on and total). Each reminder whose content changed is re-planned
    under its next revision, measured from `at`, unless it has already `fired` (names as
    `reminder_of`) for the same due date; an instalment the amendment dropped is bumped too,
    so its pending reminder is cancelled. `owed`: what is still owed on the instalments
    partly paid."""
    revisions, since, now_owed = dict(state.revisions), dict(state.since), dict(owed or {})

    def replan(name: str) -> None:
        revisions[name] = revisions.get(name, 0) + 1
        since[name] = at

    before = {item.number: item for item in state.instalments}
    for item in instalments:
        previous = before.get(item.number)
        if previous == item and state.owed.get(item.number) == now_owed.get(item.number):
            continue
        name = reminder_of(ReminderTarget.INSTALMENT, item.number)
        if name in fired and previous is not None and previous.due_on == item.due_on:
            continue  # reminded already for this date
        if previous is None and name not in revisions:
            since[name] = at  # a new instalment: its first reminder
            continue
        replan(name)
    for number in set(before) - {item.number for item in instalments}:
        replan(reminder_of(ReminderTarget.INSTALMENT, number))
    if (ends_on, total) != (state.ends_on, state.total) and not (RENEWAL in fired and ends_on == state.ends_on):
        replan(RENEWAL)
    return replace(state, instalments=instalments, paid=paid, ends_on=ends_on, total=total, revisions=revisions,
                   since=since, owed=now_owed)


def payload_of(state: ContractState, key: ReminderKey) -> dict[str, Any]:
    """What the reminder's event says when it fires (stored with its timer)."""
    common = {"contract_id": state.contract_id, "account_id": state.account_id, "owner_id": state.owner_id,
              "currency": state.currency}
    if key.target is ReminderTarget.RENEWAL:
        return {**common, "ends_on": state.ends_on.isoformat() if state.ends_on else "", "total": state.total}
    item = next(item for item in state.instalments if item.number == key.level)
    return {**common, "instalment": item.number, "due_on": item.due_on.isoformat(), "amount": item.amount,
            "outstanding": state.outstanding_on(item)}


def is_paid_in_full(outstanding: str) -> bool:
    return Decimal(outstanding or "0") <= 0

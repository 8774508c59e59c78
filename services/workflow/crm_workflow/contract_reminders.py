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
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

    @property
    def name(self) -> str:
        """A stable name, e.g. `c-1/instalment/2/reminder` (timer ids derive from it)."""
        if self.target is ReminderTarget.INSTALMENT:
            return f"{self.subject_id}/{self.target.value}/{self.level}/{self.kind.value}"
        return f"{self.subject_id}/{self.target.value}/{self.kind.value}"


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

    def to_json(self) -> dict[str, Any]:
        return {"contract_id": self.contract_id, "status": self.status.value, "account_id": self.account_id,
                "owner_id": self.owner_id, "currency": self.currency, "total": self.total,
                "ends_on": self.ends_on.isoformat() if self.ends_on else None,
                "activated_on": self.activated_on.isoformat() if self.activated_on else None,
                "activated_at": self.activated_at.isoformat() if self.activated_at else None,
                "instalments": [item.to_json() for item in self.instalments], "paid": sorted(self.paid)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ContractState:
        return cls(contract_id=raw["contract_id"], status=ContractStatus(raw["status"]),
                   account_id=raw["account_id"], owner_id=raw["owner_id"], currency=raw["currency"],
                   total=raw["total"], ends_on=date.fromisoformat(raw["ends_on"]) if raw["ends_on"] else None,
                   activated_on=date.fromisoformat(raw["activated_on"]) if raw["activated_on"] else None,
                   activated_at=datetime.fromisoformat(raw["activated_at"]) if raw["activated_at"] else None,
                   instalments=tuple(Instalment.from_json(item) for item in raw["instalments"]),
                   paid=frozenset(raw["paid"]))

    @property
    def keys(self) -> list[ReminderKey]:
        """Every reminder this contract could ever have (what to reconcile against)."""
        return [*(ReminderKey(self.contract_id, ReminderTarget.INSTALMENT, item.number) for item in self.instalments),
                ReminderKey(self.contract_id, ReminderTarget.RENEWAL)]


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def plan(state: ContractState, settings: ReminderSettings) -> dict[ReminderKey, datetime]:
    """The reminders `state` needs pending, and when each fires."""
    planned: dict[ReminderKey, datetime] = {}
    if (state.activated_on is None or state.activated_at is None
            or state.status in (ContractStatus.SIGNED, ContractStatus.TERMINATED)):
        return planned
    activated = state.activated_at.astimezone(UTC)
    for item in state.instalments:
        if item.number in state.paid or item.due_on < state.activated_on:
            continue
        at = start_of(item.due_on - timedelta(days=settings.instalment_days))
        planned[ReminderKey(state.contract_id, ReminderTarget.INSTALMENT, item.number)] = max(at, activated)
    if state.status is ContractStatus.ACTIVE and state.ends_on is not None:
        at = start_of(state.ends_on - timedelta(days=settings.renewal_days))
        planned[ReminderKey(state.contract_id, ReminderTarget.RENEWAL)] = max(at, activated)
    return planned


def payload_of(state: ContractState, key: ReminderKey) -> dict[str, Any]:
    """What the reminder's event says when it fires (stored with its timer)."""
    common = {"contract_id": state.contract_id, "account_id": state.account_id, "owner_id": state.owner_id,
              "currency": state.currency}
    if key.target is ReminderTarget.RENEWAL:
        return {**common, "ends_on": state.ends_on.isoformat() if state.ends_on else "", "total": state.total}
    item = next(item for item in state.instalments if item.number == key.level)
    return {**common, "instalment": item.number, "due_on": item.due_on.isoformat(), "amount": item.amount}


def is_paid_in_full(outstanding: str) -> bool:
    return Decimal(outstanding or "0") <= 0

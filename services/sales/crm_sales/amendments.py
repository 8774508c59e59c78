"""Contract amendments: pure rules, no I/O.

A sales team changes an active (or signed) contract mid-term with an amendment: a new
`ends_on` (an extension, or an earlier end not before today), and/or the remaining payment
schedule with the new total (`total` left out: the total stays and the schedule must still
sum to it). What the caller sends:

    {"reason": "...", "ends_on": "2027-06-30",
     "total": {"amount": "12000.00", "currency": "EUR"},
     "payment_schedule": [{"instalment": 3, "due_on": "2026-09-30", "amount": {...}}, ...]}

`payment_schedule` lists the instalments without payments as they should be; the schedule
after the amendment is the instalments with a payment recorded against them (in part or in
full), kept exactly as they are, plus the listed ones (`amended_schedule`):

- an instalment with a payment is never changed: listing it with another date or amount is
  refused (409); listing it unchanged is allowed;
- unpaid instalments that are not listed are dropped, so the result must number 1..N
  without gaps (422 naming the missing one);
- a new or changed instalment is due today or later, its amount positive, in the
  contract's currency and its minor unit (422 naming `payment_schedule[i].<field>`);
- the amounts sum EXACTLY to the total (422 naming the difference).

Whether it needs a manager (`needs_approval`): only an amendment that RAISES the total and
whose new total in the base currency is above the approval threshold; every other applies
at once. The aggregate (crm_sales.contracts) numbers amendments and keeps their history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import CurrencyMismatch, Money
from crm_runtime.text import text_field
from crm_sales.payment_schedule import MAX_INSTALMENTS, Instalment, parse_date

REASON_MAX = 1000


@dataclass(frozen=True)
class AmendmentRequest:
    """What the caller asks to change (validated for shape, not yet against the contract)."""

    reason: str
    ends_on: date | None = None
    total: Money | None = None
    schedule: tuple[Instalment, ...] | None = None  # the listed instalments, in the caller's order

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "ends_on": self.ends_on.isoformat() if self.ends_on else None,
                "total": self.total.to_json() if self.total is not None else None,
                "schedule": schedule_json(self.schedule) if self.schedule is not None else None}


def schedule_json(schedule: Sequence[Instalment]) -> list[dict[str, Any]]:
    """Instalments as a contract stores them: `{"instalment", "due_on", "amount"}` (amount a decimal string)."""
    return [{"instalment": i.instalment, "due_on": i.due_on.isoformat(), "amount": i.amount.amount_text}
            for i in schedule]


def _money(raw: Any, field: str) -> Money:
    return raw if isinstance(raw, Money) else Money.parse(raw, field=field)


def parse_amendment(raw_reason: Any, raw_ends_on: Any = None, raw_total: Any = None,
                    raw_schedule: Any = None) -> AmendmentRequest:
    """The caller's amendment, or InvalidField naming the field. At least one of ends_on,
    total and payment_schedule is given; a new total needs the schedule that sums to it."""
    reason = text_field("reason", raw_reason, REASON_MAX, required=True)
    assert reason is not None
    ends_on = parse_date("ends_on", raw_ends_on) if raw_ends_on not in (None, "") else None
    total = _money(raw_total, "total") if raw_total is not None else None
    if total is not None and not total.is_positive():
        raise InvalidField("total", "must be positive")
    schedule = None
    if raw_schedule is not None:
        if not isinstance(raw_schedule, Sequence) or isinstance(raw_schedule, str | bytes):
            raise InvalidField("payment_schedule", 'must be a list of {"instalment", "due_on", "amount"}')
        if not raw_schedule:
            raise InvalidField("payment_schedule", "must list at least one instalment")
        if len(raw_schedule) > MAX_INSTALMENTS:
            raise InvalidField("payment_schedule", f"must list at most {MAX_INSTALMENTS} instalments")
        items = []
        for index, entry in enumerate(raw_schedule):
            where = f"payment_schedule[{index}]"
            if not isinstance(entry, Mapping):
                raise InvalidField(where, 'must be {"instalment", "due_on", "amount"}')
            unknown = sorted(str(key) for key in entry if key not in ("instalment", "due_on", "amount"))
            if unknown:
                raise InvalidField(where, f"unknown keys: {', '.join(unknown)[:200]}")
            number = entry.get("instalment")
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_INSTALMENTS:
                raise InvalidField(f"{where}.instalment", f"must be a whole number between 1 and {MAX_INSTALMENTS}")
            if entry.get("amount") is None:
                raise InvalidField(f"{where}.amount", "is required")
            items.append(Instalment(number, parse_date(f"{where}.due_on", entry.get("due_on")),
                                    _money(entry["amount"], f"{where}.amount")))
        schedule = tuple(items)
    if ends_on is None and total is None and schedule is None:
        raise InvalidField("ends_on", "an amendment changes ends_on, the payment_schedule (with its total), or both")
    if total is not None and schedule is None:
        raise InvalidField("payment_schedule", "a new total needs the remaining payment schedule that sums to it")
    return AmendmentRequest(reason, ends_on, total, schedule)


def amended_schedule(current: Sequence[Instalment], paid: Mapping[int, Money], listed: Sequence[Instalment],
                     total: Money, today: date) -> tuple[Instalment, ...]:
    """The whole schedule after the amendment (rules in the module's docstring): the
    instalments with a payment, unchanged, and the `listed` ones, numbered 1..N and summing
    exactly to `total`. InvalidField (422) or FailedPrecondition (409, a paid instalment)."""
    currency = total.currency
    by_number = {item.instalment: item for item in current}
    touched = {number for number, amount in paid.items() if amount.is_positive()}
    result: dict[int, Instalment] = {number: by_number[number] for number in touched if number in by_number}
    seen: set[int] = set()
    for index, item in enumerate(listed):
        where = f"payment_schedule[{index}]"
        if item.instalment in seen:
            raise InvalidField(f"{where}.instalment", f"instalment {item.instalment} is listed twice")
        seen.add(item.instalment)
        if item.amount.currency != currency:
            raise CurrencyMismatch(currency, item.amount.currency, field=f"{where}.amount.currency",
                                   operation="amend")
        if item.instalment in touched:
            kept = by_number[item.instalment]
            if (kept.due_on, kept.amount) != (item.due_on, item.amount):
                raise FailedPrecondition(
                    f"instalment {item.instalment} has {paid[item.instalment]} paid against it: paid instalments "
                    f"are never changed (it stays due {kept.due_on.isoformat()}, {kept.amount})")
            continue
        if not item.amount.is_positive() or not item.amount.is_rounded():
            raise InvalidField(f"{where}.amount", "must be a positive amount in the currency's minor unit")
        before = by_number.get(item.instalment)
        if (before is None or before.due_on != item.due_on) and item.due_on < today:
            raise InvalidField(f"{where}.due_on", f"{item.due_on.isoformat()} is before today "
                                                  f"({today.isoformat()})")
        result[item.instalment] = item
    count = max(result, default=0)
    if count > MAX_INSTALMENTS:
        raise InvalidField("payment_schedule", f"a schedule has at most {MAX_INSTALMENTS} instalments")
    missing = [number for number in range(1, count + 1) if number not in result]
    if missing:
        raise InvalidField("payment_schedule", f"instalments are numbered 1 to {count} without gaps: instalment "
                                               f"{missing[0]} is missing (instalments with a payment are kept; "
                                               f"list every other one)")
    schedule = tuple(result[number] for number in range(1, count + 1))
    summed = Money.zero(currency)
    for item in schedule:
        summed = summed + item.amount
    if summed != total:
        raise InvalidField("payment_schedule", f"the instalments sum to {summed}, not the total {total} "
                                               f"(off by {summed - total})")
    return schedule


def needs_approval(previous_total: Money, new_total: Money, new_base_total: Money | None, threshold: Money) -> bool:
    """True when the amendment raises the total and the new total in the base currency is
    above the threshold (`new_base_total` is only needed, and only converted, for a raise)."""
    if new_total <= previous_total:
        return False
    if new_base_total is None:
        raise ValueError("a raised total needs its amount in the base currency")
    return new_base_total > threshold


def is_raise(previous_total: Money, new_total: Money) -> bool:
    return new_total > previous_total

"""A contract's payment schedule: pure, no I/O.

Terms `{"instalments": N, "first_due_on": "2026-01-31", "every_months": M}` split a contract
total into N instalments:

- **due dates**: instalment k (1-based) is due `first_due_on` + (k - 1) x M months, each
  counted from `first_due_on` (not from the previous date), clamped to the end of a shorter
  month: from Jan 31 monthly, Feb 28 (29 in a leap year), Mar 31, Apr 30, ...;
- **amounts** sum EXACTLY to the total: the total in minor units divided by N, and the
  units left over go one each to the first instalments (100.00 EUR in 3: 33.34, 33.33,
  33.33; 100 JPY: 34, 33, 33).

`check_payment` is the rule for recording a payment against an instalment: positive, in the
contract's currency, and never above what is still due on it.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import CurrencyMismatch, Money

MAX_INSTALMENTS = 120
MAX_EVERY_MONTHS = 24
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def add_months(day: date, months: int) -> date:
    """`day` moved by `months` calendar months, clamped to the last day of the target month
    (Jan 31 + 1 month = Feb 28, or Feb 29 in a leap year)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise ValueError(f"{day} + {months} months is outside the calendar")
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def parse_date(field: str, raw: object) -> date:
    """An ISO 8601 calendar date "YYYY-MM-DD" (not a date-time), else InvalidField(field)."""
    if isinstance(raw, date):
        return raw
    if not isinstance(raw, str) or not _DATE.fullmatch(raw):
        raise InvalidField(field, 'must be a date "YYYY-MM-DD"')
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidField(field, f"{raw} is not a calendar date") from None


def _count(field: str, raw: object, maximum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidField(field, "must be a whole number")
    if not 1 <= raw <= maximum:
        raise InvalidField(field, f"must be between 1 and {maximum}")
    return raw


@dataclass(frozen=True)
class PaymentTerms:
    instalments: int
    first_due_on: date
    every_months: int = 1

    @classmethod
    def parse(cls, raw: object, *, field: str = "payment_terms") -> PaymentTerms:
        """Terms from JSON, or InvalidField naming `payment_terms.<field>`. `every_months`
        may be left out (1)."""
        if not isinstance(raw, Mapping):
            raise InvalidField(field, 'must be {"instalments", "first_due_on", "every_months"}')
        unknown = sorted(str(key) for key in raw if key not in ("instalments", "first_due_on", "every_months"))
        if unknown:
            raise InvalidField(field, f"unknown keys: {', '.join(unknown)[:200]}")
        terms = cls(
            instalments=_count(f"{field}.instalments", raw.get("instalments"), MAX_INSTALMENTS),
            first_due_on=parse_date(f"{field}.first_due_on", raw.get("first_due_on")),
            every_months=_count(f"{field}.every_months", raw.get("every_months", 1), MAX_EVERY_MONTHS),
        )
        try:
            terms.due_dates()
        except ValueError:
            raise InvalidField(f"{field}.first_due_on", "the schedule runs past the year 9999") from None
        return terms

    def due_dates(self) -> list[date]:
        return [add_months(self.first_due_on, k * self.every_months) for k in range(self.instalments)]

    def to_json(self) -> dict[str, Any]:
        return {"instalments": self.instalments, "first_due_on": self.first_due_on.isoformat(),
                "every_months": self.every_months}


@dataclass(frozen=True)
class Instalment:
    instalment: int  # 1-based
    due_on: date
    amount: Money

    def to_json(self) -> dict[str, Any]:
        return {"instalment": self.instalment, "due_on": self.due_on.isoformat(), "amount": self.amount.to_json()}


def payment_schedule(total: Money, terms: PaymentTerms) -> tuple[Instalment, ...]:
    """The instalments of `total` under `terms`; their amounts sum exactly to `total`
    (which must be rounded to its minor unit and not negative)."""
    if total.is_negative():
        raise InvalidField("total", "must not be negative")
    if not total.is_rounded():
        raise ValueError(f"{total} is not rounded to the minor unit")
    amounts = total.split(terms.instalments)
    return tuple(Instalment(number, due_on, amount)
                 for number, (due_on, amount) in enumerate(zip(terms.due_dates(), amounts, strict=True), start=1))


def check_payment(schedule: Sequence[Instalment], paid: Mapping[int, Money], instalment: object, amount: Money,
                  *, field: str = "amount") -> int:
    """The instalment number if a payment of `amount` may be recorded against it, given what
    was `paid` so far per instalment. InvalidField for an unknown instalment, an amount that
    is not positive or not in the minor unit; CurrencyMismatch for another currency;
    FailedPrecondition for an instalment already paid in full or a payment above what is
    still due on it."""
    if isinstance(instalment, bool) or not isinstance(instalment, int) or not 1 <= instalment <= len(schedule):
        raise InvalidField("instalment", f"must be an instalment number between 1 and {len(schedule)}")
    due = schedule[instalment - 1]
    if amount.currency != due.amount.currency:
        raise CurrencyMismatch(due.amount.currency, amount.currency, field=field, operation="pay")
    if not amount.is_positive() or not amount.is_rounded():
        raise InvalidField(field, "must be a positive amount in the currency's minor unit")
    outstanding = due.amount - paid.get(instalment, Money.zero(due.amount.currency))
    if not outstanding.is_positive():
        raise FailedPrecondition(f"instalment {instalment} is already paid in full")
    if amount > outstanding:
        raise FailedPrecondition(f"{amount} is above the {outstanding} still due on instalment {instalment}")
    return instalment


def outstanding(schedule: Sequence[Instalment], paid: Mapping[int, Money]) -> Money | None:
    """What is still due over the whole schedule (None for an empty schedule)."""
    if not schedule:
        return None
    currency = schedule[0].amount.currency
    left = Money.zero(currency)
    for item in schedule:
        left = left + item.amount - paid.get(item.instalment, Money.zero(currency))
    return left

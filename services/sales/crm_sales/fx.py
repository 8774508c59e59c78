"""The FX table: pure domain, no I/O.

One aggregate (a fixed id) holds dated rates to the base currency (`CRM_SALES_BASE_CURRENCY`,
EUR by default). A rate follows the ECB's reference-rate convention: one unit of the base
buys `rate` units of the currency (base EUR, `{"currency": "USD", "rate": "1.0850", "on":
"2025-01-02"}`), from its date until a later rate of the same currency.

`PUT /v1/fx-rates` adds rates (a rate for a currency and date already in the table replaces
it); `GET /v1/fx-rates?on=DATE` answers, per currency, the latest rate on or before DATE.

Conversion (`to_base`) is for reporting and thresholds only (the approval threshold of a
contract, loyalty points, commission attainment): amount / rate, rounded half-even once to
the base currency's minor unit. Documents (quotes, contracts, orders) keep their currency.
A currency without a rate on or before the date cannot be converted: `FailedPrecondition`
naming the currency and the date (set a rate first), never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import CurrencyMismatch, Money, check_currency, minor_units, parse_decimal
from crm_sales.payment_schedule import parse_date

FX_TABLE_ID = uuid5(NAMESPACE_URL, "crm:sales:fx-table")
MAX_RATES = 1000
RATE_PLACES = 10
_DIVIDE = Context(prec=60, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, order=True)
class FxRate:
    currency: str
    on: date
    rate: Decimal

    def to_json(self) -> dict[str, str]:
        return {"currency": self.currency, "rate": f"{self.rate:f}", "on": self.on.isoformat()}


def parse_rates(base_currency: str, raw: object, *, field: str = "rates") -> list[FxRate]:
    """`[{"currency", "rate", "on"}]`, or InvalidField naming `rates[i].<field>`. The base
    currency itself has no rate (it is 1); a currency and date given twice is refused."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise InvalidField(field, 'must be a list of {"currency", "rate", "on"}')
    if not raw:
        raise InvalidField(field, "must hold at least one rate")
    if len(raw) > MAX_RATES:
        raise InvalidField(field, f"must hold at most {MAX_RATES} rates")
    rates: list[FxRate] = []
    seen: set[tuple[str, date]] = set()
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidField(where, "must be an object")
        unknown = sorted(str(key) for key in item if key not in ("currency", "rate", "on"))
        if unknown:
            raise InvalidField(where, f"unknown keys: {', '.join(unknown)[:200]}")
        currency = check_currency(f"{where}.currency", item.get("currency"))
        if currency == base_currency:
            raise InvalidField(f"{where}.currency", f"{currency} is the base currency: its rate is 1")
        rate = parse_decimal(f"{where}.rate", item.get("rate"), max_places=RATE_PLACES, max_integer_digits=9)
        if not rate > 0:
            raise InvalidField(f"{where}.rate", "must be positive")
        on = parse_date(f"{where}.on", item.get("on"))
        if (currency, on) in seen:
            raise InvalidField(where, f"{currency} on {on.isoformat()} is given twice")
        seen.add((currency, on))
        rates.append(FxRate(currency, on, rate))
    return rates


def check_base(configured: str, raw: object, *, field: str = "base") -> str:
    """The base currency a caller names must be the configured one (it is a setting)."""
    stated = check_currency(field, raw)
    if stated != configured:
        raise CurrencyMismatch(configured, stated, field=field,
                               operation=f"set rates to {stated}: the base currency is {configured}, so")
    return stated


@dataclass(frozen=True)
class Rates:
    """The table as a value: rates per currency, sorted by date."""

    base_currency: str
    by_currency: Mapping[str, tuple[tuple[date, Decimal], ...]]

    @classmethod
    def of(cls, base_currency: str, stored: Mapping[str, Sequence[Sequence[str]]]) -> Rates:
        return cls(base_currency, {currency: tuple(sorted((date.fromisoformat(on), Decimal(rate))
                                                          for on, rate in entries))
                                   for currency, entries in stored.items()})

    def rate_on(self, currency: str, on: date) -> Decimal | None:
        """The latest rate of `currency` on or before `on` (1 for the base), or None."""
        if currency == self.base_currency:
            return Decimal(1)
        found = None
        for day, rate in self.by_currency.get(currency, ()):
            if day > on:
                break
            found = rate
        return found

    def rates_on(self, on: date) -> list[FxRate]:
        """Per currency (by code), the latest rate on or before `on`."""
        out = []
        for currency in sorted(self.by_currency):
            for day, rate in reversed(self.by_currency[currency]):
                if day <= on:
                    out.append(FxRate(currency, day, rate))
                    break
        return out

    def to_base(self, amount: Money, on: date) -> Money:
        """`amount` in the base currency by the rate on `on`: amount / rate, rounded half-even
        to the base's minor unit. FailedPrecondition when the table has no rate for it."""
        rate = self.rate_on(amount.currency, on)
        if rate is None:
            raise FailedPrecondition(f"the FX table has no {amount.currency} rate on or before {on.isoformat()}: "
                                     f"PUT /v1/fx-rates with one to convert {amount.currency} to "
                                     f"{self.base_currency}")
        if amount.currency == self.base_currency:
            return amount.round_half_even()
        converted = _DIVIDE.divide(amount.amount, rate)
        quantum = Decimal(1).scaleb(-minor_units(self.base_currency))
        return Money(converted.quantize(quantum, context=_DIVIDE), self.base_currency)


class FxTable(Aggregate):
    """The dated rates; stored as `{currency: [[on, rate], ...]}`."""

    @event("Set")
    def __init__(self, id: UUID, base_currency: str, rates: list[dict[str, str]], set_by: str):  # noqa: A002
        self.base_currency = base_currency
        self.stored: dict[str, list[list[str]]] = {}
        self._merge(rates)
        self.set_by = set_by

    @classmethod
    def start(cls, base_currency: str, rates: list[FxRate], set_by: str) -> FxTable:
        return cls(id=FX_TABLE_ID, base_currency=base_currency, rates=[r.to_json() for r in rates], set_by=set_by)

    def _merge(self, rates: list[dict[str, str]]) -> None:
        for rate in rates:
            entries = [entry for entry in self.stored.get(rate["currency"], []) if entry[0] != rate["on"]]
            entries.append([rate["on"], rate["rate"]])
            self.stored[rate["currency"]] = sorted(entries)

    def add(self, base_currency: str, rates: list[FxRate], set_by: str) -> None:
        """Adds rates; a new base currency (the setting changed) starts the table afresh."""
        self._set(base_currency=base_currency, rates=[r.to_json() for r in rates], set_by=set_by)

    @event("Changed")
    def _set(self, base_currency: str, rates: list[dict[str, str]], set_by: str) -> None:
        if base_currency != self.base_currency:
            self.base_currency = base_currency
            self.stored = {}
        self._merge(rates)
        self.set_by = set_by

    @property
    def rates(self) -> Rates:
        return Rates.of(self.base_currency, self.stored)


def rates_of(table: FxTable | None, base_currency: str) -> Rates:
    """The table's rates, or an empty table in the base currency (only the base converts)."""
    if table is None or table.base_currency != base_currency:
        return Rates(base_currency, {})
    return table.rates


def rates_json(rates: list[FxRate]) -> list[dict[str, Any]]:
    return [rate.to_json() for rate in rates]

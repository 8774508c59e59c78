"""Loyalty points: pure, no I/O. The earning rule and an account's ledger.

**Earning** (`LoyaltyRule`): an order earns `points_per_unit` points per whole unit of the
base currency of its net amount (converted by the caller with the FX table), times the
multiplier of the account's tier (`tier_multipliers`, e.g. strategic 2; a tier without one
earns x1), rounded DOWN to whole points: 99.99 EUR at 1 point per EUR earns 99 points,
never a point that was not paid for.

**The ledger** (`LoyaltyLedger`) is append-only: each entry records the points earned
(positive) or redeemed (negative), the balance after it, and a reference (the order id, or
the redemption's idempotency key). The balance never goes below zero: redeeming more than
it is `FailedPrecondition`. A reference already in the ledger is not applied again (the
ledger is returned unchanged), so a replayed order or a retried redemption changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import CurrencyMismatch, Money, check_currency, parse_decimal
from crm_sales.domain import Tier

REFERENCE_MAX = 200
MAX_POINTS = 10**15


def _factor(where: str, raw: object) -> Decimal:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    return parse_decimal(where, raw, max_places=4, max_integer_digits=6)


@dataclass(frozen=True)
class LoyaltyRule:
    base_currency: str
    points_per_unit: Decimal = Decimal(1)
    tier_multipliers: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: object, *, base_currency: str, field: str = "loyalty") -> LoyaltyRule:
        """`{"points_per_unit": "1", "tier_multipliers": {"strategic": "2", ...}}`, or
        InvalidField naming `<field>.points_per_unit` / `<field>.tier_multipliers.<tier>`.
        Tiers are the account tiers (strategic, enterprise, mid_market, smb)."""
        check_currency("base_currency", base_currency)
        if not isinstance(raw, Mapping):
            raise InvalidField(field, 'must be {"points_per_unit", "tier_multipliers"}')
        unknown = sorted(str(key) for key in raw if key not in ("points_per_unit", "tier_multipliers", "base_currency"))
        if unknown:
            raise InvalidField(field, f"unknown keys: {', '.join(unknown)[:200]}")
        if "base_currency" in raw and raw["base_currency"] != base_currency:
            stated = check_currency(f"{field}.base_currency", raw["base_currency"])
            raise CurrencyMismatch(base_currency, stated, field=f"{field}.base_currency", operation="use a rule for")
        points = _factor(f"{field}.points_per_unit", raw.get("points_per_unit", "1"))
        multipliers_raw = raw.get("tier_multipliers") or {}
        if not isinstance(multipliers_raw, Mapping):
            raise InvalidField(f"{field}.tier_multipliers", 'must be an object {"strategic": "2", ...}')
        tiers = {tier.value for tier in Tier}
        multipliers: dict[str, Decimal] = {}
        for tier, value in multipliers_raw.items():
            if tier not in tiers:
                shown = str(tier)[:40]
                raise InvalidField(f"{field}.tier_multipliers", f"{shown!r} is not an account tier "
                                                               f"({', '.join(sorted(tiers))})")
            multipliers[tier] = _factor(f"{field}.tier_multipliers.{tier}", value)
        return cls(base_currency, points, multipliers)

    def multiplier(self, tier: str | None) -> Decimal:
        return self.tier_multipliers.get(tier, Decimal(1)) if tier is not None else Decimal(1)

    def points_for(self, amount: Money, tier: str | None) -> int:
        """Points an order of `amount` (in the base currency) earns for an account of `tier`:
        floor(amount x points_per_unit x multiplier). CurrencyMismatch naming `amount` for
        another currency; a negative amount earns nothing and is refused."""
        if amount.currency != self.base_currency:
            raise CurrencyMismatch(self.base_currency, amount.currency, field="amount", operation="earn points on")
        if amount.is_negative():
            raise InvalidField("amount", "must not be negative")
        return math.floor((amount * self.points_per_unit * self.multiplier(tier)).amount)  # exact product

    def to_json(self) -> dict[str, Any]:
        return {"base_currency": self.base_currency, "points_per_unit": f"{self.points_per_unit:f}",
                "tier_multipliers": {tier: f"{value:f}" for tier, value in sorted(self.tier_multipliers.items())}}


class EntryKind(StrEnum):
    EARNED = "earned"
    REDEEMED = "redeemed"


@dataclass(frozen=True)
class LedgerEntry:
    kind: EntryKind
    points: int  # earned > 0, redeemed < 0
    balance: int  # after this entry, never below zero
    reference: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "points": self.points, "balance": self.balance, "reference": self.reference}


def check_reference(raw: object, *, field: str = "reference") -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidField(field, "is required")
    if len(raw) > REFERENCE_MAX or not raw.isprintable():
        raise InvalidField(field, f"must be at most {REFERENCE_MAX} printable characters")
    return raw


def check_points(raw: object, *, field: str = "points") -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidField(field, "must be a whole number of points")
    if not 1 <= raw <= MAX_POINTS:
        raise InvalidField(field, "must be positive")
    return raw


@dataclass(frozen=True)
class LoyaltyLedger:
    entries: tuple[LedgerEntry, ...] = ()

    @property
    def balance(self) -> int:
        return self.entries[-1].balance if self.entries else 0

    def has(self, reference: str) -> bool:
        return any(entry.reference == reference for entry in self.entries)

    def earn(self, points: int, reference: str) -> LoyaltyLedger:
        """The ledger with `points` (>= 0; 0 records nothing) earned under `reference`."""
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            raise InvalidField("points", "must be a whole number, not negative")
        check_reference(reference)
        if points == 0 or self.has(reference):
            return self
        return self._append(EntryKind.EARNED, points, reference)

    def redeem(self, points: object, reference: str) -> LoyaltyLedger:
        """The ledger with `points` (> 0) redeemed; FailedPrecondition if the balance is
        smaller: the balance never goes below zero."""
        check_reference(reference)
        amount = check_points(points)
        if self.has(reference):
            return self
        if amount > self.balance:
            raise FailedPrecondition(f"cannot redeem {amount} points: the balance is {self.balance}")
        return self._append(EntryKind.REDEEMED, -amount, reference)

    def _append(self, kind: EntryKind, points: int, reference: str) -> LoyaltyLedger:
        entry = LedgerEntry(kind, points, self.balance + points, reference)
        return LoyaltyLedger((*self.entries, entry))

    def to_json(self) -> dict[str, Any]:
        return {"balance": self.balance, "ledger": [entry.to_json() for entry in self.entries]}

"""Commission plans and what a won line earns: pure, no I/O.

A plan (`PUT /v1/commission-plans`) is a list of rules
`{"owner_id"?, "family"?, "percent", "tiers"?: [{"attainment_from": Money, "percent"}]}`:

- **Which rule**: `owner_id` and `family` are optional filters. For a rep and a product
  family the most specific matching rule wins: owner + family, then owner only, then family
  only, then the default (neither). Two rules with the same filters are refused, so the
  winner is never ambiguous. No matching rule: no commission.
- **How much**: the rule's `percent` (0..100, a decimal string such as "5" or "2.5") of the
  won line's net amount, rounded half-even to the net's currency minor unit.
- **Tiers** raise the percentage by attainment. *Attainment* is the rep's quarter-to-date
  won net in the plan's base currency, counting the deal being commissioned (all its
  lines, converted with the FX table by the caller): the won net of every opportunity the
  rep won since the first day of the calendar quarter, up to and including this one. The
  tier with the highest `attainment_from` at or below the attainment applies, and its
  percent replaces the rule's for the whole line (not retroactive to earlier deals).
  Thresholds are Money in the base currency, positive and strictly increasing; a tier's
  percent is at least the rule's and at least the previous tier's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from crm_runtime.errors import InvalidField
from crm_runtime.money import CurrencyMismatch, Money, check_currency, parse_decimal

MAX_RULES = 500
MAX_TIERS = 20
OWNER_MAX = 200
FAMILY_MAX = 100
PERCENT_PLACES = 4


def _percent(field: str, raw: object) -> Decimal:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    value = parse_decimal(field, raw, max_places=PERCENT_PLACES, max_integer_digits=3)
    if value > 100:
        raise InvalidField(field, "must be between 0 and 100")
    return value


def _filter(field: str, raw: object, maximum: int) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidField(field, "must be a non-empty string, or left out to match any")
    value = raw.strip()
    if len(value) > maximum:
        raise InvalidField(field, f"must be at most {maximum} characters")
    if not value.isprintable():
        raise InvalidField(field, "must not contain control characters")
    return value


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Tier:
    attainment_from: Money  # in the plan's base currency
    percent: Decimal

    def to_json(self) -> dict[str, Any]:
        return {"attainment_from": self.attainment_from.to_json(), "percent": _plain(self.percent)}


@dataclass(frozen=True)
class CommissionRule:
    owner_id: str | None
    family: str | None
    percent: Decimal
    tiers: tuple[Tier, ...] = ()

    @property
    def specificity(self) -> int:
        """3 owner + family, 2 owner, 1 family, 0 the default."""
        return (2 if self.owner_id is not None else 0) + (1 if self.family is not None else 0)

    def matches(self, owner_id: str, family: str | None) -> bool:
        return ((self.owner_id is None or self.owner_id == owner_id)
                and (self.family is None or self.family == family))

    def percent_at(self, attainment: Money) -> Decimal:
        """The rule's percent raised by the highest tier reached by `attainment`."""
        percent = self.percent
        for tier in self.tiers:  # increasing thresholds
            if attainment >= tier.attainment_from:  # CurrencyMismatch across currencies
                percent = tier.percent
        return percent

    def to_json(self) -> dict[str, Any]:
        return {"owner_id": self.owner_id, "family": self.family, "percent": _plain(self.percent),
                "tiers": [tier.to_json() for tier in self.tiers]}


@dataclass(frozen=True)
class CommissionPlan:
    base_currency: str
    rules: tuple[CommissionRule, ...]

    @classmethod
    def parse(cls, raw: object, *, base_currency: str, field: str = "rules") -> CommissionPlan:
        """`{"rules": [...]}` (or the bare list) validated against the base currency (a
        `base_currency` key, as `to_json` writes it, must be that one), or
        InvalidField naming `rules[i].<field>` / `rules[i].tiers[j].<field>`."""
        check_currency("base_currency", base_currency)
        if isinstance(raw, Mapping):
            unknown = sorted(str(key) for key in raw if key not in ("rules", "base_currency"))
            if unknown:
                raise InvalidField(field, f"unknown keys: {', '.join(unknown)[:200]} (only rules)")
            if "base_currency" in raw and raw["base_currency"] != base_currency:  # as to_json shows it
                stated = check_currency("base_currency", raw["base_currency"])
                raise CurrencyMismatch(base_currency, stated, field="base_currency", operation="use a plan for")
            raw = raw.get("rules")
        if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
            raise InvalidField(field, 'must be a list of {"owner_id"?, "family"?, "percent", "tiers"?}')
        if len(raw) > MAX_RULES:
            raise InvalidField(field, f"must have at most {MAX_RULES} rules")
        rules: list[CommissionRule] = []
        seen: dict[tuple[str | None, str | None], int] = {}
        for index, item in enumerate(raw):
            where = f"{field}[{index}]"
            if not isinstance(item, Mapping):
                raise InvalidField(where, "must be an object")
            unknown = sorted(str(key) for key in item if key not in ("owner_id", "family", "percent", "tiers"))
            if unknown:
                raise InvalidField(where, f"unknown keys: {', '.join(unknown)[:200]}")
            owner_id = _filter(f"{where}.owner_id", item.get("owner_id"), OWNER_MAX)
            family = _filter(f"{where}.family", item.get("family"), FAMILY_MAX)
            if (owner_id, family) in seen:
                raise InvalidField(where, f"has the same owner_id and family as rules[{seen[owner_id, family]}]: "
                                          "the most specific rule must be unambiguous")
            seen[owner_id, family] = index
            percent = _percent(f"{where}.percent", item.get("percent"))
            tiers = _tiers(f"{where}.tiers", item.get("tiers"), base_currency, percent)
            rules.append(CommissionRule(owner_id, family, percent, tiers))
        return cls(base_currency, tuple(rules))

    def rule_for(self, owner_id: str, family: str | None) -> CommissionRule | None:
        """The most specific rule matching the rep and the product family, or None."""
        best: CommissionRule | None = None
        for rule in self.rules:
            if rule.matches(owner_id, family) and (best is None or rule.specificity > best.specificity):
                best = rule
        return best

    def to_json(self) -> dict[str, Any]:
        return {"base_currency": self.base_currency, "rules": [rule.to_json() for rule in self.rules]}


def _tiers(field: str, raw: object, base_currency: str, base_percent: Decimal) -> tuple[Tier, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise InvalidField(field, 'must be a list of {"attainment_from": Money, "percent"}')
    if len(raw) > MAX_TIERS:
        raise InvalidField(field, f"must have at most {MAX_TIERS} tiers")
    tiers: list[Tier] = []
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidField(where, "must be an object")
        unknown = sorted(str(key) for key in item if key not in ("attainment_from", "percent"))
        if unknown:
            raise InvalidField(where, f"unknown keys: {', '.join(unknown)[:200]}")
        threshold = Money.parse(item.get("attainment_from"), field=f"{where}.attainment_from")
        if threshold.currency != base_currency:
            raise CurrencyMismatch(base_currency, threshold.currency, field=f"{where}.attainment_from.currency",
                                   operation="set a tier threshold (attainment is in the base currency) mixing")
        if not threshold.is_positive():
            raise InvalidField(f"{where}.attainment_from", "must be positive")
        percent = _percent(f"{where}.percent", item.get("percent"))
        previous = tiers[-1] if tiers else None
        if previous is not None and threshold <= previous.attainment_from:
            raise InvalidField(f"{where}.attainment_from", "must be above the previous tier's")
        floor = previous.percent if previous is not None else base_percent
        if percent < floor:
            raise InvalidField(f"{where}.percent", f"must be at least {_plain(floor)}: tiers raise the percentage")
        tiers.append(Tier(threshold, percent))
    return tuple(tiers)


class Commission(NamedTuple):
    amount: Money  # in the net's currency, rounded half-even
    rule: CommissionRule | None  # None: no rule matched, nothing earned
    percent: Decimal


def commission_for(plan: CommissionPlan, owner_id: str, family: str | None, net: Money,
                   quarter_to_date: Money) -> Commission:
    """What `owner_id` earns on a won line of product `family` with net amount `net`, given
    the rep's attainment `quarter_to_date` (won net this quarter in the plan's base
    currency, this deal included). CurrencyMismatch naming `quarter_to_date` if it is not in
    the base currency; InvalidField if `net` is negative."""
    if quarter_to_date.currency != plan.base_currency:
        raise CurrencyMismatch(plan.base_currency, quarter_to_date.currency, field="quarter_to_date",
                               operation="measure attainment in")
    if net.is_negative():
        raise InvalidField("net", "must not be negative")
    rule = plan.rule_for(owner_id, family)
    if rule is None:
        return Commission(Money.zero(net.currency), None, Decimal(0))
    percent = rule.percent_at(quarter_to_date)
    return Commission(net.percent(percent).round_half_even(), rule, percent)

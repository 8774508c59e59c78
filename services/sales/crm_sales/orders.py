"""Orders and loyalty: pure domain, no I/O.

**An order** is what a won deal sold: placed when an opportunity is won with an accepted
quote, in the same transaction as the win (crm_sales.application `_win`). Its id derives
from the opportunity's, so a deal has one order however the win is retried. It carries the
quote's lines (with each product's family), totals, the account and the owner, and its net
total in the base currency (the FX table on the day it was placed).

**Loyalty** (crm_sales.loyalty holds the rules): `LoyaltyProgramme` is one aggregate (a fixed
id) holding the earning rule (until set: 1 point per whole unit of the base currency, no
tier multipliers); `LoyaltyAccount` is an account's ledger (its id derives from the
account's). An order credits `points_for(base net, account tier)` to the ledger with the
order id as its reference, in the order's transaction; a redemption never takes the
balance below zero (409), and a reference applies once.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.money import Money
from crm_sales.loyalty import EntryKind, LedgerEntry, LoyaltyLedger, LoyaltyRule

_ORDER_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:order")


class OrderStatus(StrEnum):
    """An order's status: placed is the only one so far (fulfilment, cancellation and
    refunds are not built); lists filter by it so clients need not change when more come."""

    PLACED = "placed"

_LEDGER_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:loyalty-ledger")
LOYALTY_PROGRAMME_ID = uuid5(NAMESPACE_URL, "crm:sales:loyalty-programme")


def order_id_for(opportunity_id: str | UUID) -> UUID:
    return uuid5(_ORDER_NAMESPACE, str(opportunity_id))


def ledger_id_for(account_id: str | UUID) -> UUID:
    return uuid5(_LEDGER_NAMESPACE, str(account_id))


class Order(Aggregate):
    @event("Placed")
    def __init__(self, id: UUID, opportunity_id: str, quote_id: str, account_id: str,  # noqa: A002
                 owner_id: str, currency: str, lines: list[dict[str, Any]], net: str, tax: str, gross: str,
                 base_net: dict[str, str], placed_on: str, placed_by: str):
        self.opportunity_id = opportunity_id
        self.quote_id = quote_id
        self.account_id = account_id
        self.owner_id = owner_id
        self.currency = currency
        self.lines = lines
        self.net, self.tax, self.gross = net, tax, gross
        self.base_net = base_net
        self.placed_on = placed_on
        self.placed_by = placed_by
        self.status = OrderStatus.PLACED

    @classmethod
    def place(cls, opportunity_id: str, quote: Any, families: dict[str, str | None], base_net: Money,
              placed_on: date, placed_by: str) -> Order:
        """The order of a won opportunity from its accepted quote (crm_sales.quotes.Quote)."""
        lines = [{"sku": line["sku"], "family": families.get(line["sku"]), "quantity": line["quantity"],
                  "net": line["net"], "tax": line["tax"], "gross": line["gross"]} for line in quote.lines]
        return cls(id=order_id_for(opportunity_id), opportunity_id=opportunity_id, quote_id=str(quote.id),
                   account_id=quote.account_id, owner_id=quote.owner_id, currency=quote.currency, lines=lines,
                   net=quote.net, tax=quote.tax, gross=quote.gross, base_net=base_net.to_json(),
                   placed_on=placed_on.isoformat(), placed_by=placed_by)

    def money(self, amount: str) -> Money:
        return Money(Decimal(amount), self.currency)

    @property
    def base_net_money(self) -> Money:
        return Money(Decimal(self.base_net["amount"]), self.base_net["currency"])


class LoyaltyProgramme(Aggregate):
    """The earning rule, as `LoyaltyRule.to_json()` writes it."""

    @event("RuleSet")
    def __init__(self, id: UUID, rule: dict[str, Any], set_by: str):  # noqa: A002
        self.rule_json = rule
        self.set_by = set_by

    @classmethod
    def start(cls, rule: LoyaltyRule, set_by: str) -> LoyaltyProgramme:
        return cls(id=LOYALTY_PROGRAMME_ID, rule=rule.to_json(), set_by=set_by)

    def change(self, rule: LoyaltyRule, set_by: str) -> bool:
        if rule.to_json() == self.rule_json:
            return False
        self._changed(rule=rule.to_json(), set_by=set_by)
        return True

    @event("RuleChanged")
    def _changed(self, rule: dict[str, Any], set_by: str) -> None:
        self.rule_json = rule
        self.set_by = set_by

    @property
    def rule(self) -> LoyaltyRule:
        return LoyaltyRule.parse(self.rule_json, base_currency=self.rule_json["base_currency"])


def loyalty_rule_of(programme: LoyaltyProgramme | None, base_currency: str) -> LoyaltyRule:
    """The configured rule, else the default (1 point per whole unit, no multipliers). A rule
    set for another base currency (the setting changed) is not used."""
    if programme is None or programme.rule_json.get("base_currency") != base_currency:
        return LoyaltyRule(base_currency)
    return programme.rule


class LoyaltyAccount(Aggregate):
    """An account's ledger of points (crm_sales.loyalty.LoyaltyLedger as events)."""

    @event("Opened")
    def __init__(self, id: UUID, account_id: str):  # noqa: A002
        self.account_id = account_id
        self.entries: list[dict[str, Any]] = []

    @classmethod
    def open(cls, account_id: str) -> LoyaltyAccount:
        return cls(id=ledger_id_for(account_id), account_id=account_id)

    @property
    def ledger(self) -> LoyaltyLedger:
        return LoyaltyLedger(tuple(LedgerEntry(EntryKind(e["kind"]), e["points"], e["balance"], e["reference"])
                                   for e in self.entries))

    def earn(self, points: int, order_id: str, base_amount: Money, tier: str | None) -> bool:
        """Credits the points of an order; False (no event) for 0 points or an order already credited."""
        after = self.ledger.earn(points, order_id)
        if len(after.entries) == len(self.entries):
            return False
        self._earned(account_id=self.account_id, order_id=order_id, points=points, balance=after.balance,
                     base_amount=base_amount.to_json(),
                     tier=tier)
        return True

    def redeem(self, points: object, reference: str, redeemed_by: str) -> bool:
        """Redeems points (FailedPrecondition above the balance); False for a reference already applied."""
        after = self.ledger.redeem(points, reference)
        if len(after.entries) == len(self.entries):
            return False
        entry = after.entries[-1]
        self._redeemed(account_id=self.account_id, points=-entry.points, balance=entry.balance,
                       reference=reference, redeemed_by=redeemed_by)
        return True

    @event("Earned")
    def _earned(self, account_id: str, order_id: str, points: int, balance: int, base_amount: dict[str, str],
                tier: str | None) -> None:
        self.entries.append({"kind": EntryKind.EARNED.value, "points": points, "balance": balance,
                             "reference": order_id})

    @event("Redeemed")
    def _redeemed(self, account_id: str, points: int, balance: int, reference: str, redeemed_by: str) -> None:
        self.entries.append({"kind": EntryKind.REDEEMED.value, "points": -points, "balance": balance,
                             "reference": reference})

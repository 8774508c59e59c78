"""Commissions earned: pure domain, no I/O (crm_sales.commissions holds the rules).

`CommissionPlanSetting` is one aggregate (a fixed id) holding the plan
(`PUT /v1/commission-plans`; until set, no rule: nothing is earned).

`RepQuarter` is a rep's calendar quarter (its id derives from the owner and the period,
"2025-Q2"): the won net counted so far in the base currency (the attainment) and every
commission earned. Winning an opportunity loads the owner's quarter, counts the deal (its
net in the base currency) and records `CommissionEarned` per line, each priced by
`commission_for` at the attainment with this deal included, all in the win's transaction.
Two wins for one rep racing each other conflict on the quarter (optimistic concurrency):
the loser is refused (409) and nothing of it is stored, so attainment never counts a deal
twice or misses one. A deal is counted once (its opportunity id).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import InvalidField
from crm_runtime.money import Money
from crm_sales.commissions import CommissionPlan, commission_for

_QUARTER_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:rep-quarter")
COMMISSION_PLAN_ID = uuid5(NAMESPACE_URL, "crm:sales:commission-plan")
_PERIOD = re.compile(r"([0-9]{4})-Q([1-4])")


def period_of(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def parse_period(raw: str) -> str:
    if _PERIOD.fullmatch(raw) is None:
        raise InvalidField("period", f"{raw[:20]!r} is not a quarter such as 2025-Q2 (YYYY-Qn)")
    return raw


def quarter_id_for(owner_id: str, period: str) -> UUID:
    return uuid5(_QUARTER_NAMESPACE, f"{owner_id}\n{period}")


class CommissionPlanSetting(Aggregate):
    @event("PlanSet")
    def __init__(self, id: UUID, plan: dict[str, Any], set_by: str):  # noqa: A002
        self.plan_json = plan
        self.set_by = set_by

    @classmethod
    def start(cls, plan: CommissionPlan, set_by: str) -> CommissionPlanSetting:
        return cls(id=COMMISSION_PLAN_ID, plan=plan.to_json(), set_by=set_by)

    def change(self, plan: CommissionPlan, set_by: str) -> bool:
        if plan.to_json() == self.plan_json:
            return False
        self._changed(plan=plan.to_json(), set_by=set_by)
        return True

    @event("PlanChanged")
    def _changed(self, plan: dict[str, Any], set_by: str) -> None:
        self.plan_json = plan
        self.set_by = set_by

    @property
    def plan(self) -> CommissionPlan:
        return CommissionPlan.parse(self.plan_json, base_currency=self.plan_json["base_currency"])


def plan_of(setting: CommissionPlanSetting | None, base_currency: str) -> CommissionPlan:
    if setting is None or setting.plan_json.get("base_currency") != base_currency:
        return CommissionPlan(base_currency, ())
    return setting.plan


class RepQuarter(Aggregate):
    @event("Started")
    def __init__(self, id: UUID, owner_id: str, period: str, base_currency: str):  # noqa: A002
        self.owner_id = owner_id
        self.period = period
        self.base_currency = base_currency
        self.won_net = Money.zero(base_currency).amount_text
        self.deals: list[str] = []
        self.commissions: list[dict[str, Any]] = []

    @classmethod
    def start(cls, owner_id: str, period: str, base_currency: str) -> RepQuarter:
        return cls(id=quarter_id_for(owner_id, period), owner_id=owner_id, period=period,
                   base_currency=base_currency)

    @property
    def attainment(self) -> Money:
        return Money(Decimal(self.won_net), self.base_currency)

    def count_deal(self, plan: CommissionPlan, opportunity_id: str, order_id: str | None, base_net: Money,
                   lines: list[tuple[str, str | None, Money]], won_on: date) -> bool:
        """Counts a won deal (its net in the base currency) and records the commission on
        each line (sku, family, net); False (nothing recorded) when it was counted already."""
        if opportunity_id in self.deals:
            return False
        attainment = self.attainment + base_net
        self._counted(opportunity_id=opportunity_id, base_net=base_net.amount_text,
                      attainment=attainment.amount_text)
        for sku, family, net in lines:
            earned = commission_for(plan, self.owner_id, family, net, attainment)
            if earned.rule is None:
                continue
            self._earned(opportunity_id=opportunity_id, order_id=order_id, sku=sku, family=family,
                         net=net.to_json(), percent=format(earned.percent.normalize(), "f"),
                         amount=earned.amount.to_json(),
                         attainment=attainment.to_json(), won_on=won_on.isoformat(),
                         owner_id=self.owner_id, period=self.period)
        return True

    @event("DealCounted")
    def _counted(self, opportunity_id: str, base_net: str, attainment: str) -> None:
        self.deals.append(opportunity_id)
        self.won_net = attainment

    @event("CommissionEarned")
    def _earned(self, opportunity_id: str, order_id: str | None, sku: str, family: str | None,
                net: dict[str, str], percent: str, amount: dict[str, str], attainment: dict[str, str],
                won_on: str, owner_id: str, period: str) -> None:
        self.commissions.append({"opportunity_id": opportunity_id, "order_id": order_id, "sku": sku,
                                 "family": family, "net": net, "percent": percent, "amount": amount,
                                 "attainment": attainment, "won_on": won_on})

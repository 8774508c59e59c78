"""Commission plans: the most specific rule, tiers by quarter-to-date attainment, refusals."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_runtime.errors import InvalidField
from crm_runtime.money import CurrencyMismatch, Money
from crm_sales.commissions import CommissionPlan, commission_for


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


PLAN = CommissionPlan.parse({"rules": [
    {"percent": "5", "tiers": [{"attainment_from": eur("50000"), "percent": "6"},
                               {"attainment_from": eur("100000"), "percent": "8"}]},
    {"family": "hardware", "percent": "3"},
    {"owner_id": "rep-1", "percent": "7"},
    {"owner_id": "rep-1", "family": "hardware", "percent": "4.5"},
]}, base_currency="EUR")
NONE_YET = Money.of("1000", "EUR")


@pytest.mark.parametrize("owner,family,percent", [
    ("rep-1", "hardware", Decimal("4.5")),  # owner + family
    ("rep-1", "software", Decimal("7")),  # owner
    ("rep-1", None, Decimal("7")),  # owner; a line without family
    ("rep-2", "hardware", Decimal("3")),  # family
    ("rep-2", "software", Decimal("5")),  # default
    ("rep-2", None, Decimal("5")),
])
def test_the_most_specific_rule_wins(owner, family, percent):
    amount, rule, applied = commission_for(PLAN, owner, family, Money.of("1000.00", "EUR"), NONE_YET)
    assert applied == percent
    assert rule is PLAN.rule_for(owner, family)
    assert amount == Money.of(str(percent * 10), "EUR")


def test_rule_order_does_not_matter():
    reversed_plan = CommissionPlan.parse({"rules": [r.to_json() for r in reversed(PLAN.rules)]}, base_currency="EUR")
    for owner, family in [("rep-1", "hardware"), ("rep-1", "x"), ("rep-2", "hardware"), ("rep-2", "x")]:
        assert reversed_plan.rule_for(owner, family) == PLAN.rule_for(owner, family)


@pytest.mark.parametrize("attainment,percent", [
    ("0", "5"), ("49999.99", "5"), ("50000.00", "6"), ("99999.99", "6"), ("100000", "8"), ("5000000", "8"),
])
def test_tiers_raise_the_percentage_by_quarter_to_date_attainment(attainment, percent):
    commission = commission_for(PLAN, "rep-2", "software", Money.of("200.00", "EUR"), Money.of(attainment, "EUR"))
    assert commission.percent == Decimal(percent)
    assert commission.amount == Money.of("200.00", "EUR").percent(Decimal(percent)).round_half_even()


def test_tiers_apply_to_the_rule_that_has_them_only():
    commission = commission_for(PLAN, "rep-2", "hardware", Money.of("100", "EUR"), Money.of("500000", "EUR"))
    assert commission.percent == Decimal(3)


def test_commission_is_in_the_net_currency_and_rounded_half_even():
    # 0.25 x 5% = 0.0125 -> 0.01; 0.35 x 5% = 0.0175 -> 0.02
    assert commission_for(PLAN, "x", None, Money.of("0.25", "USD"), NONE_YET).amount == Money.of("0.01", "USD")
    assert commission_for(PLAN, "x", None, Money.of("0.35", "USD"), NONE_YET).amount == Money.of("0.02", "USD")
    assert commission_for(PLAN, "x", None, Money.of("1234", "JPY"), NONE_YET).amount == Money.of("62", "JPY")


def test_no_matching_rule_earns_nothing():
    plan = CommissionPlan.parse({"rules": [{"owner_id": "rep-1", "percent": "5"}]}, base_currency="EUR")
    assert commission_for(plan, "rep-9", None, Money.of("100", "EUR"), NONE_YET) == \
        (Money.zero("EUR"), None, Decimal(0))
    assert CommissionPlan.parse({"rules": []}, base_currency="EUR").rules == ()


def test_attainment_must_be_in_the_base_currency_and_net_not_negative():
    with pytest.raises(CurrencyMismatch) as refused:
        commission_for(PLAN, "rep-1", None, Money.of("100", "EUR"), Money.of("100", "USD"))
    assert refused.value.field == "quarter_to_date"
    with pytest.raises(InvalidField):
        commission_for(PLAN, "rep-1", None, Money.of("-1", "EUR"), NONE_YET)


def test_plan_round_trips():
    again = CommissionPlan.parse(PLAN.to_json(), base_currency="EUR")
    assert again == PLAN
    assert PLAN.to_json()["rules"][0]["tiers"][0] == {"attainment_from": eur("50000.00"), "percent": "6"}


def tier(amount="1000", percent="6", currency="EUR"):
    return {"attainment_from": {"amount": amount, "currency": currency}, "percent": percent}


@pytest.mark.parametrize("rules,field,reason", [
    ([{"percent": "5"}, {"percent": "6"}], "rules[1]", "same owner_id and family as rules[0]"),
    ([{"owner_id": "a", "family": "f", "percent": "5"}, {"family": "f", "owner_id": "a", "percent": "1"}],
     "rules[1]", "same owner_id"),
    ([{"percent": "101"}], "rules[0].percent", "between 0 and 100"),
    ([{"percent": "-1"}], "rules[0].percent", "negative"),
    ([{"percent": 5.5}], "rules[0].percent", "never a float"),
    ([{"percent": "0.00001"}], "rules[0].percent", "decimal places"),
    ([{}], "rules[0].percent", "decimal string"),
    ([{"owner_id": "", "percent": "5"}], "rules[0].owner_id", "non-empty"),
    ([{"owner_id": 7, "percent": "5"}], "rules[0].owner_id", "non-empty"),
    ([{"family": "x" * 101, "percent": "5"}], "rules[0].family", "at most 100"),
    ([{"family": "a\x00b", "percent": "5"}], "rules[0].family", "control"),
    ([{"percent": "5", "cap": "1"}], "rules[0]", "unknown keys"),
    ([{"percent": "5", "tiers": [tier(currency="USD")]}], "rules[0].tiers[0].attainment_from.currency", "USD"),
    ([{"percent": "5", "tiers": [tier(amount="0")]}], "rules[0].tiers[0].attainment_from", "positive"),
    ([{"percent": "5", "tiers": [tier(percent="4")]}], "rules[0].tiers[0].percent", "at least 5"),
    ([{"percent": "5", "tiers": [tier("1000", "7"), tier("2000", "6")]}], "rules[0].tiers[1].percent", "at least 7"),
    ([{"percent": "5", "tiers": [tier("2000", "6"), tier("1000", "7")]}], "rules[0].tiers[1].attainment_from",
     "above the previous"),
    ([{"percent": "5", "tiers": [tier("1000", "6"), tier("1000", "7")]}], "rules[0].tiers[1].attainment_from",
     "above the previous"),
    ([{"percent": "5", "tiers": [{"attainment_from": "1000", "percent": "6"}]}],
     "rules[0].tiers[0].attainment_from", "object"),
    ([{"percent": "5", "tiers": [{"attainment_from": {"amount": 1000, "currency": "EUR"}, "percent": "6"}]}],
     "rules[0].tiers[0].attainment_from.amount", "decimal string"),
    ([{"percent": "5", "tiers": "high"}], "rules[0].tiers", "list"),
    (["5"], "rules[0]", "object"),
    ("all 5%", "rules", "list"),
])
def test_plans_refused(rules, field, reason):
    with pytest.raises(InvalidField) as refused:
        CommissionPlan.parse({"rules": rules}, base_currency="EUR")
    assert refused.value.field == field
    assert reason in refused.value.message


def test_plan_refuses_unknown_top_level_keys_and_a_bad_base_currency():
    with pytest.raises(InvalidField):
        CommissionPlan.parse({"rules": [], "period": "Q1"}, base_currency="EUR")
    with pytest.raises(InvalidField):
        CommissionPlan.parse({"rules": []}, base_currency="eur")
    with pytest.raises(CurrencyMismatch):
        CommissionPlan.parse({"rules": [], "base_currency": "USD"}, base_currency="EUR")


@given(st.integers(0, 10**9), st.integers(0, 10**10))
def test_commission_never_exceeds_the_top_percentage_and_grows_with_attainment(cents, attainment_cents):
    net = Money(Decimal(cents).scaleb(-2), "EUR")
    low = commission_for(PLAN, "rep-2", "software", net, Money(Decimal(attainment_cents).scaleb(-2), "EUR"))
    high = commission_for(PLAN, "rep-2", "software", net, Money(Decimal(attainment_cents + 10**7).scaleb(-2), "EUR"))
    assert low.amount.is_rounded() and not low.amount.is_negative()
    assert low.amount <= high.amount <= net.percent(8).round_half_even()

"""Loyalty: points per unit of base currency with tier multipliers, and a ledger that never
goes below zero."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import CurrencyMismatch, Money
from crm_sales.loyalty import EntryKind, LoyaltyLedger, LoyaltyRule

RULE = LoyaltyRule.parse({"points_per_unit": "1", "tier_multipliers": {"strategic": "2", "enterprise": "1.5"}},
                         base_currency="EUR")


@pytest.mark.parametrize("amount,tier,points", [
    ("99.99", None, 99),  # rounded down: no point that was not paid for
    ("100.00", "smb", 100),  # a tier without a multiplier earns x1
    ("100.00", "strategic", 200),
    ("99.99", "enterprise", 149),  # 149.985
    ("0.99", "strategic", 1),
    ("0", "strategic", 0),
])
def test_points_for(amount, tier, points):
    assert RULE.points_for(Money.of(amount, "EUR"), tier) == points


def test_points_per_unit_may_be_a_fraction():
    rule = LoyaltyRule.parse({"points_per_unit": "0.1"}, base_currency="JPY")
    assert rule.points_for(Money.of("1999", "JPY"), "strategic") == 199
    assert LoyaltyRule.parse({}, base_currency="EUR").points_for(Money.of("5", "EUR"), None) == 5


def test_points_refuse_another_currency_and_negative_amounts():
    with pytest.raises(CurrencyMismatch):
        RULE.points_for(Money.of("1", "USD"), None)
    with pytest.raises(InvalidField):
        RULE.points_for(Money.of("-1", "EUR"), None)


def test_rule_round_trips():
    assert LoyaltyRule.parse(RULE.to_json(), base_currency="EUR") == RULE


@pytest.mark.parametrize("raw,field", [
    ({"points_per_unit": 1.5}, "loyalty.points_per_unit"),
    ({"points_per_unit": "-1"}, "loyalty.points_per_unit"),
    ({"points_per_unit": "1e2"}, "loyalty.points_per_unit"),
    ({"tier_multipliers": {"gold": "2"}}, "loyalty.tier_multipliers"),
    ({"tier_multipliers": {"strategic": "-2"}}, "loyalty.tier_multipliers.strategic"),
    ({"tier_multipliers": ["strategic"]}, "loyalty.tier_multipliers"),
    ({"bonus": "1"}, "loyalty"),
    ({"base_currency": "USD"}, "loyalty.base_currency"),
    ("1 point per euro", "loyalty"),
])
def test_rule_refused(raw, field):
    with pytest.raises(InvalidField) as refused:
        LoyaltyRule.parse(raw, base_currency="EUR")
    assert refused.value.field == field


def test_ledger_earns_redeems_and_shows_each_balance():
    ledger = LoyaltyLedger().earn(120, "order-1").earn(30, "order-2").redeem(100, "redeem-1")
    assert ledger.balance == 50
    assert [(e.kind, e.points, e.balance) for e in ledger.entries] == [
        (EntryKind.EARNED, 120, 120), (EntryKind.EARNED, 30, 150), (EntryKind.REDEEMED, -100, 50)]
    assert ledger.to_json()["ledger"][2] == {"kind": "redeemed", "points": -100, "balance": 50,
                                             "reference": "redeem-1"}
    assert ledger.redeem(50, "redeem-2").balance == 0


def test_redeeming_never_goes_below_zero():
    ledger = LoyaltyLedger().earn(10, "order-1")
    with pytest.raises(FailedPrecondition, match="balance is 10"):
        ledger.redeem(11, "r")
    with pytest.raises(FailedPrecondition):
        LoyaltyLedger().redeem(1, "r")


def test_a_reference_applies_once():
    ledger = LoyaltyLedger().earn(10, "order-1")
    assert ledger.earn(10, "order-1") is ledger
    redeemed = ledger.redeem(5, "r-1")
    assert redeemed.redeem(5, "r-1") is redeemed
    assert LoyaltyLedger().earn(0, "order-0").entries == ()


@pytest.mark.parametrize("points", [0, -1, 1.5, "5", True, None])
def test_redeem_refuses_anything_but_positive_whole_points(points):
    with pytest.raises(InvalidField):
        LoyaltyLedger().earn(10, "o").redeem(points, "r")


@pytest.mark.parametrize("reference", ["", None, "x" * 201, "a\nb"])
def test_references_are_required_and_bounded(reference):
    with pytest.raises(InvalidField):
        LoyaltyLedger().earn(1, reference)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 10**6)), max_size=60))
def test_the_balance_never_goes_below_zero(operations):
    ledger = LoyaltyLedger()
    for number, (earning, points) in enumerate(operations):
        if earning:
            ledger = ledger.earn(points, f"order-{number}")
        else:
            try:
                ledger = ledger.redeem(points, f"redeem-{number}")
            except FailedPrecondition:
                assert points > ledger.balance
        assert ledger.balance >= 0
    assert ledger.balance == sum(entry.points for entry in ledger.entries)
    assert all(entry.balance >= 0 for entry in ledger.entries)


@given(st.integers(0, 10**12), st.sampled_from([None, "smb", "strategic", "enterprise"]))
def test_points_are_whole_and_never_more_than_paid_for(cents, tier):
    amount = Money(Decimal(cents).scaleb(-2), "EUR")
    points = RULE.points_for(amount, tier)
    assert isinstance(points, int)
    assert 0 <= points <= amount.amount * RULE.multiplier(tier) < points + 1

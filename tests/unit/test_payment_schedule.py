"""Payment schedules: month arithmetic clamped to month end, amounts that sum exactly, the
terms' refusals and the payment rule."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import CurrencyMismatch, Money, minor_units, sum_money
from crm_sales.payment_schedule import (
    Instalment,
    PaymentTerms,
    add_months,
    check_payment,
    outstanding,
    parse_date,
    payment_schedule,
)


@pytest.mark.parametrize("start,months,expected", [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
    (date(2026, 1, 31), 2, date(2026, 3, 31)),
    (date(2026, 1, 31), 3, date(2026, 4, 30)),
    (date(2026, 8, 31), 6, date(2027, 2, 28)),
    (date(2026, 11, 15), 2, date(2027, 1, 15)),
    (date(2026, 12, 31), 12, date(2027, 12, 31)),
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2026, 3, 31), -1, date(2026, 2, 28)),
    (date(2026, 5, 10), 0, date(2026, 5, 10)),
])
def test_add_months_clamps_to_month_end(start, months, expected):
    assert add_months(start, months) == expected


def test_due_dates_count_from_the_first_date_not_the_previous_one():
    terms = PaymentTerms.parse({"instalments": 4, "first_due_on": "2026-01-31", "every_months": 1})
    assert terms.due_dates() == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]


def test_schedule_amounts_spread_the_remainder_to_the_first_instalments():
    terms = PaymentTerms.parse({"instalments": 3, "first_due_on": "2026-01-31", "every_months": 3})
    schedule = payment_schedule(Money.of("100000.00", "EUR"), terms)
    assert [item.to_json() for item in schedule] == [
        {"instalment": 1, "due_on": "2026-01-31", "amount": {"amount": "33333.34", "currency": "EUR"}},
        {"instalment": 2, "due_on": "2026-04-30", "amount": {"amount": "33333.33", "currency": "EUR"}},
        {"instalment": 3, "due_on": "2026-07-31", "amount": {"amount": "33333.33", "currency": "EUR"}},
    ]
    jpy = payment_schedule(Money.of("100", "JPY"), PaymentTerms(3, date(2026, 1, 1), 1))
    assert [item.amount.to_json()["amount"] for item in jpy] == ["34", "33", "33"]
    assert payment_schedule(Money.of("5", "EUR"), PaymentTerms(1, date(2026, 1, 1))) == (
        Instalment(1, date(2026, 1, 1), Money.of("5", "EUR")),)


def test_terms_default_and_round_trip():
    terms = PaymentTerms.parse({"instalments": 2, "first_due_on": "2026-06-30"})
    assert terms.every_months == 1
    assert PaymentTerms.parse(terms.to_json()) == terms


@pytest.mark.parametrize("raw,field,reason", [
    ({"instalments": 0, "first_due_on": "2026-01-01"}, "payment_terms.instalments", "between 1 and 120"),
    ({"instalments": 121, "first_due_on": "2026-01-01"}, "payment_terms.instalments", "between 1 and 120"),
    ({"instalments": "3", "first_due_on": "2026-01-01"}, "payment_terms.instalments", "whole number"),
    ({"instalments": 3.0, "first_due_on": "2026-01-01"}, "payment_terms.instalments", "whole number"),
    ({"first_due_on": "2026-01-01"}, "payment_terms.instalments", "whole number"),
    ({"instalments": 3, "first_due_on": "2026-01-01", "every_months": 0}, "payment_terms.every_months", "between"),
    ({"instalments": 3, "first_due_on": "2026-01-01", "every_months": 25}, "payment_terms.every_months", "between"),
    ({"instalments": 3, "first_due_on": "2026-02-30"}, "payment_terms.first_due_on", "not a calendar date"),
    ({"instalments": 3, "first_due_on": "2026-01-01T00:00:00Z"}, "payment_terms.first_due_on", "YYYY-MM-DD"),
    ({"instalments": 3, "first_due_on": "20260101"}, "payment_terms.first_due_on", "YYYY-MM-DD"),
    ({"instalments": 3}, "payment_terms.first_due_on", "YYYY-MM-DD"),
    ({"instalments": 24, "first_due_on": "9999-01-01", "every_months": 1}, "payment_terms.first_due_on", "9999"),
    ({"instalments": 3, "first_due_on": "2026-01-01", "due": 1}, "payment_terms", "unknown keys"),
    ([3, "2026-01-01", 1], "payment_terms", "must be"),
])
def test_terms_refused(raw, field, reason):
    with pytest.raises(InvalidField) as refused:
        PaymentTerms.parse(raw)
    assert refused.value.field == field
    assert reason in refused.value.message


def test_parse_date_takes_a_date_as_is():
    assert parse_date("d", date(2026, 1, 2)) == date(2026, 1, 2)


def test_schedule_refuses_a_negative_total():
    with pytest.raises(InvalidField):
        payment_schedule(Money.of("-1", "EUR"), PaymentTerms(2, date(2026, 1, 1)))


def test_payments():
    schedule = payment_schedule(Money.of("100.00", "EUR"), PaymentTerms(3, date(2026, 1, 31)))
    paid: dict[int, Money] = {}
    assert check_payment(schedule, paid, 1, Money.of("30.00", "EUR")) == 1
    paid[1] = Money.of("30.00", "EUR")
    assert check_payment(schedule, paid, 1, Money.of("3.34", "EUR")) == 1
    with pytest.raises(FailedPrecondition, match="above the 3.34 EUR still due"):
        check_payment(schedule, paid, 1, Money.of("3.35", "EUR"))
    paid[1] = Money.of("33.34", "EUR")
    with pytest.raises(FailedPrecondition, match="paid in full"):
        check_payment(schedule, paid, 1, Money.of("0.01", "EUR"))
    with pytest.raises(CurrencyMismatch):
        check_payment(schedule, paid, 2, Money.of("1.00", "USD"))
    for bad in (0, 4, "1", True, None):
        with pytest.raises(InvalidField) as refused:
            check_payment(schedule, paid, bad, Money.of("1", "EUR"))
        assert refused.value.field == "instalment"
    with pytest.raises(InvalidField):
        check_payment(schedule, paid, 2, Money.zero("EUR"))
    with pytest.raises(InvalidField):
        check_payment(schedule, paid, 2, Money.of("-1", "EUR"))
    assert outstanding(schedule, paid) == Money.of("66.66", "EUR")
    assert outstanding((), {}) is None


CURRENCIES = ["EUR", "JPY", "BHD", "CLF", "USD"]


@given(st.sampled_from(CURRENCIES), st.integers(0, 10**14), st.integers(1, 120), st.integers(1, 24),
       st.dates(min_value=date(2000, 1, 1), max_value=date(2200, 12, 31)))
def test_instalments_always_sum_to_the_total(currency, units, instalments, every, first):
    total = Money(Decimal(units).scaleb(-minor_units(currency)), currency)
    schedule = payment_schedule(total, PaymentTerms(instalments, first, every))
    assert len(schedule) == instalments
    assert sum_money((item.amount for item in schedule), currency) == total
    assert all(item.amount.is_rounded() and not item.amount.is_negative() for item in schedule)
    amounts = [item.amount for item in schedule]
    assert amounts == sorted(amounts, reverse=True)  # the remainder goes to the first ones
    dates = [item.due_on for item in schedule]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    assert dates[0] == first
    assert all(due.day == first.day or due.day < first.day for due in dates)
    assert [item.instalment for item in schedule] == list(range(1, instalments + 1))

"""Money: ISO 4217 minor units, parsing refusals, the wire forms, half-even rounding,
arithmetic that never mixes currencies, and splits that sum exactly."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm.common.v1 import money_pb2
from crm_runtime.errors import STATUS, InvalidField, status_of
from crm_runtime.money import (
    CurrencyMismatch,
    Money,
    check_currency,
    is_currency,
    minor_units,
    parse_decimal,
    sum_money,
)

CURRENCIES = ["EUR", "USD", "JPY", "BHD", "KWD", "CLF", "GBP", "ISK", "KRW", "TND"]


@pytest.mark.parametrize("code,digits", [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3),
                                         ("KWD", 3), ("TND", 3), ("CLF", 4), ("ISK", 0)])
def test_minor_units_come_from_iso_4217(code, digits):
    assert minor_units(code) == digits
    assert is_currency(code)


@pytest.mark.parametrize("code", ["XAU", "XDR", "XXX", "XTS", "EURO", "eur", "ZZZ", "", "E1R"])
def test_codes_that_are_not_money(code):
    assert not is_currency(code)
    with pytest.raises(ValueError):
        minor_units(code)
    with pytest.raises(InvalidField) as refused:
        check_currency("budget.currency", code)
    assert refused.value.field == "budget.currency"


def test_metals_are_named_as_having_no_minor_unit():
    with pytest.raises(InvalidField, match="no minor unit"):
        check_currency("c", "XAU")
    with pytest.raises(InvalidField, match="not an ISO 4217 currency"):
        check_currency("c", "ZZZ")


@pytest.mark.parametrize("raw,expected", [
    ({"amount": "1234.50", "currency": "EUR"}, ("1234.50", "EUR")),
    ({"amount": "1234.5", "currency": "EUR"}, ("1234.50", "EUR")),
    ({"amount": "1234", "currency": "EUR"}, ("1234.00", "EUR")),
    ({"amount": "1.500", "currency": "EUR"}, ("1.50", "EUR")),  # trailing zeros are not precision
    ({"amount": "1234", "currency": "JPY"}, ("1234", "JPY")),
    ({"amount": "1234.0", "currency": "JPY"}, ("1234", "JPY")),
    ({"amount": "1.234", "currency": "BHD"}, ("1.234", "BHD")),
    ({"amount": "0", "currency": "BHD"}, ("0.000", "BHD")),
    ({"amount": "007.10", "currency": "USD"}, ("7.10", "USD")),
    ({"amount": "999999999999999.99", "currency": "EUR"}, ("999999999999999.99", "EUR")),
])
def test_parse_and_to_json_have_exactly_the_minor_unit_digits(raw, expected):
    money = Money.parse(raw, field="budget")
    assert money.to_json() == {"amount": expected[0], "currency": expected[1]}
    assert Money.parse(money.to_json(), field="budget") == money


@pytest.mark.parametrize("raw,field,reason", [
    ({"amount": 1234.5, "currency": "EUR"}, "budget.amount", "never a float"),
    ({"amount": 1234, "currency": "EUR"}, "budget.amount", "decimal string"),
    ({"amount": True, "currency": "EUR"}, "budget.amount", "decimal string"),
    ({"amount": None, "currency": "EUR"}, "budget.amount", "decimal string"),
    ({"amount": "NaN", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "Infinity", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "-inf", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "1E+3", "currency": "EUR"}, "budget.amount", "no exponent"),
    ({"amount": "1e3", "currency": "EUR"}, "budget.amount", "no exponent"),
    ({"amount": "+12", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": " 12", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "1,50", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "1_000", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": ".5", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "5.", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "١٢", "currency": "EUR"}, "budget.amount", "plain decimal"),  # Arabic-Indic digits
    ({"amount": "", "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "1" * 100, "currency": "EUR"}, "budget.amount", "plain decimal"),
    ({"amount": "1" * 16, "currency": "EUR"}, "budget.amount", "at most 15 integer digits"),
    ({"amount": "-5.00", "currency": "EUR"}, "budget.amount", "negative"),
    ({"amount": "1.505", "currency": "EUR"}, "budget.amount", "EUR has 2 minor-unit digits"),
    ({"amount": "1.5", "currency": "JPY"}, "budget.amount", "whole number"),
    ({"amount": "1.2345", "currency": "BHD"}, "budget.amount", "at most 3 decimal places"),
    ({"amount": "1.00", "currency": "eur"}, "budget.currency", "upper-case"),
    ({"amount": "1.00", "currency": "ABC"}, "budget.currency", "not an ISO 4217"),
    ({"amount": "1.00", "currency": "XAU"}, "budget.currency", "no minor unit"),
    ({"amount": "1.00", "currency": 978}, "budget.currency", "code string"),
    ({"amount": "1.00"}, "budget.currency", "required"),
    ({"currency": "EUR"}, "budget.amount", "required"),
    ({"amount": "1.00", "currency": "EUR", "rate": "1"}, "budget", "unknown keys"),
    ("1.00 EUR", "budget", "must be an object"),
    (None, "budget", "must be an object"),
])
def test_parse_refuses_naming_the_field(raw, field, reason):
    with pytest.raises(InvalidField) as refused:
        Money.parse(raw, field="budget")
    assert refused.value.field == field
    assert reason in refused.value.message


def test_negative_amounts_only_when_allowed_and_never_minus_zero():
    assert Money.parse({"amount": "-5.5", "currency": "EUR"}, field="x", allow_negative=True).to_json() == \
        {"amount": "-5.50", "currency": "EUR"}
    assert Money.parse({"amount": "-0", "currency": "EUR"}, field="x", allow_negative=True).to_json() == \
        {"amount": "0.00", "currency": "EUR"}
    assert (Money.of("1", "EUR") - Money.of("1", "EUR")).to_json()["amount"] == "0.00"


def test_parse_decimal_rules():
    assert parse_decimal("q", "2.500", max_places=3) == Decimal("2.5")
    with pytest.raises(InvalidField, match="at most 3 decimal places"):
        parse_decimal("q", "2.5001", max_places=3)
    with pytest.raises(InvalidField, match="at most 4 integer digits"):
        parse_decimal("q", "12345", max_places=0, max_integer_digits=4)


def test_proto_round_trip_and_refusals():
    money = Money.of("1234.5", "EUR")
    message = money.to_proto()
    assert isinstance(message, money_pb2.Money)
    assert (message.amount, message.currency_code) == ("1234.50", "EUR")
    assert Money.from_proto(message, field="amount") == money
    with pytest.raises(InvalidField) as refused:
        Money.from_proto(money_pb2.Money(amount="1.234", currency_code="EUR"), field="amount")
    assert refused.value.field == "amount.amount"
    with pytest.raises(InvalidField) as refused:
        Money.from_proto(money_pb2.Money(amount="1"), field="amount")
    assert refused.value.field == "amount.currency_code"


def test_construction_refuses_floats_non_finite_and_unknown_currencies():
    with pytest.raises(TypeError):
        Money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(Decimal("NaN"), "EUR")
    with pytest.raises(ValueError):
        Money(Decimal("Infinity"), "EUR")
    with pytest.raises(ValueError):
        Money(Decimal(1), "XAU")
    with pytest.raises(TypeError):
        Money.of(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money.of("1.005", "EUR")
    assert Money(5, "JPY").to_json() == {"amount": "5", "currency": "JPY"}  # int is exact


@pytest.mark.parametrize("amount,currency,rounded", [
    ("0.125", "EUR", "0.12"), ("0.135", "EUR", "0.14"), ("0.145", "EUR", "0.14"),
    ("-0.125", "EUR", "-0.12"), ("2.5", "JPY", "2"), ("3.5", "JPY", "4"),
    ("1.0005", "BHD", "1.000"), ("1.0015", "BHD", "1.002"), ("0.004", "EUR", "0.00"),
])
def test_round_half_even_to_the_minor_unit(amount, currency, rounded):
    assert Money(Decimal(amount), currency).round_half_even().to_json()["amount"] == rounded


def test_unrounded_money_is_not_serialised():
    product = Money.of("10.00", "EUR") * Decimal("0.0125")
    assert not product.is_rounded()
    with pytest.raises(ValueError, match="round_half_even"):
        product.to_json()
    with pytest.raises(ValueError):
        product.to_proto()
    assert product.round_half_even().to_json() == {"amount": "0.12", "currency": "EUR"}


def test_arithmetic_and_comparisons():
    a, b = Money.of("10.50", "EUR"), Money.of("0.75", "EUR")
    assert a + b == Money.of("11.25", "EUR")
    assert a - b == Money.of("9.75", "EUR")
    assert a * 3 == 3 * a == Money.of("31.50", "EUR")
    assert a * Decimal("0.5") == Money.of("5.25", "EUR")
    assert a.percent(10) == Money(Decimal("1.05"), "EUR")
    assert -a == Money.of("-10.50", "EUR") and abs(-a) == a
    assert b < a and b <= a and a > b and a >= b and a >= a
    assert Money.zero("EUR").is_zero() and a.is_positive() and (-a).is_negative()
    assert Money.of("1.0", "EUR") == Money.of("1", "EUR")
    assert hash(Money.of("1.0", "EUR")) == hash(Money.of("1", "EUR"))
    assert sum_money([a, b, b], "EUR") == Money.of("12.00", "EUR")
    assert sum_money([], "JPY") == Money.zero("JPY")
    with pytest.raises(TypeError):
        a * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        a + 1  # type: ignore[operator]


@pytest.mark.parametrize("operation", [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a < b, lambda a, b: a <= b,
    lambda a, b: a > b, lambda a, b: a >= b, lambda a, b: sum_money([a, b], "EUR"),
])
def test_two_currencies_never_mix(operation):
    with pytest.raises(CurrencyMismatch) as refused:
        operation(Money.of("1", "EUR"), Money.of("1", "USD"))
    assert isinstance(refused.value, InvalidField)
    assert status_of(refused.value) == STATUS[InvalidField]
    assert "EUR and USD" in str(refused.value)


def test_equality_across_currencies_is_false_not_an_error():
    assert Money.of("1", "EUR") != Money.of("1", "USD")


@pytest.mark.parametrize("amount,currency,parts,expected", [
    ("100.00", "EUR", 3, ["33.34", "33.33", "33.33"]),
    ("0.05", "EUR", 3, ["0.02", "0.02", "0.01"]),
    ("100", "JPY", 3, ["34", "33", "33"]),
    ("1.000", "BHD", 3, ["0.334", "0.333", "0.333"]),
    ("-100.00", "EUR", 3, ["-33.34", "-33.33", "-33.33"]),
    ("0.00", "EUR", 2, ["0.00", "0.00"]),
])
def test_split_spreads_the_remainder_to_the_first_parts(amount, currency, parts, expected):
    assert [part.to_json()["amount"] for part in Money.of(amount, currency).split(parts)] == expected


def test_allocate_by_ratios():
    parts = Money.of("100.00", "EUR").allocate([Decimal("0.7"), Decimal("0.2"), Decimal("0.1")])
    assert [p.to_json()["amount"] for p in parts] == ["70.00", "20.00", "10.00"]
    parts = Money.of("0.05", "EUR").allocate([3, 7])
    assert [p.to_json()["amount"] for p in parts] == ["0.02", "0.03"]
    assert [p.to_json()["amount"] for p in Money.of("1.00", "EUR").allocate([0, 1, 1])] == ["0.00", "0.50", "0.50"]
    with pytest.raises(ValueError):
        Money.of("1", "EUR").allocate([0, 0])
    with pytest.raises(ValueError):
        Money.of("1", "EUR").allocate([-1, 2])
    with pytest.raises(ValueError):
        Money.of("1", "EUR").split(0)
    with pytest.raises(ValueError, match="not rounded"):
        (Money.of("1", "EUR") * Decimal("0.001")).split(2)


# -- properties -----------------------------------------------------------------------------

currencies = st.sampled_from(CURRENCIES)


@st.composite
def money(draw, currency=None, min_units=-10**12, max_units=10**12):
    code = currency or draw(currencies)
    units = draw(st.integers(min_value=min_units, max_value=max_units))
    return Money(Decimal(units).scaleb(-minor_units(code)), code)


@given(money(), st.integers(min_value=1, max_value=400))
def test_split_sums_exactly_and_parts_differ_by_at_most_one_minor_unit(total, parts):
    shares = total.split(parts)
    assert len(shares) == parts
    assert sum_money(shares, total.currency) == total
    assert all(share.is_rounded() and share.currency == total.currency for share in shares)
    units = sorted(abs(share.amount).scaleb(total.minor_units) for share in shares)
    assert units[-1] - units[0] <= 1


@given(money(), st.lists(st.decimals(min_value=0, max_value=1000, places=3), min_size=1, max_size=30))
def test_allocate_sums_exactly(total, ratios):
    if not any(ratios):
        ratios = [*ratios, Decimal(1)]
    shares = total.allocate(ratios)
    assert sum_money(shares, total.currency) == total
    assert all(share.is_rounded() for share in shares)
    assert all(share.is_zero() for share, ratio in zip(shares, ratios, strict=True) if not ratio)


@given(money())
def test_json_and_proto_round_trip(value):
    allow = value.is_negative()
    assert Money.parse(value.to_json(), field="m", allow_negative=allow) == value
    assert Money.from_proto(value.to_proto(), field="m", allow_negative=allow) == value
    amount = value.to_json()["amount"]
    assert len(amount.partition(".")[2]) == value.minor_units


@given(money(), money())
def test_mixing_is_refused_exactly_when_currencies_differ(a, b):
    if a.currency == b.currency:
        assert (a + b) - b == a
    else:
        with pytest.raises(CurrencyMismatch):
            a + b


@given(money(), st.decimals(min_value=0, max_value=1000, places=6))
def test_rounding_a_product_lands_in_the_minor_unit(value, factor):
    rounded = (value * factor).round_half_even()
    assert rounded.is_rounded()
    assert abs((rounded - value * factor).amount) <= Decimal(1).scaleb(-value.minor_units) / 2

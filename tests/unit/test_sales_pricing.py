"""Quote pricing: line rules, refusals naming the line, and properties over random quotes."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_runtime.errors import InvalidField
from crm_runtime.money import CurrencyMismatch, Money, minor_units, sum_money
from crm_sales.pricing import (
    Discount,
    QuoteLine,
    parse_lines,
    parse_price_book_entries,
    price_line,
    price_quote,
)

BOOK = {"WIDGET": Money.of("19.99", "EUR"), "CABLE": Money.of("0.35", "EUR"), "SEAT": Money.of("120.00", "EUR")}


def quote(lines, book=BOOK, currency="EUR", **options):
    return price_quote(parse_lines(lines, currency), book, currency, **options)


def amounts(line):
    return tuple(line.__getattribute__(name).to_json()["amount"]
                 for name in ("unit_price", "list_amount", "discount_amount", "net", "tax", "gross"))


def test_a_line_without_discount():
    priced = quote([{"sku": "WIDGET", "quantity": 3, "tax_rate": "0.20"}])
    assert amounts(priced.lines[0]) == ("19.99", "59.97", "0.00", "59.97", "11.99", "71.96")
    assert (priced.net, priced.tax, priced.gross) == (Money.of("59.97", "EUR"), Money.of("11.99", "EUR"),
                                                      Money.of("71.96", "EUR"))


def test_percent_discount_is_rounded_once_at_line_level():
    # 7 x 0.35 = 2.45; 2.45 x 0.85 = 2.0825 -> 2.08; tax 2.08 x 0.19 = 0.3952 -> 0.40
    priced = quote([{"sku": "CABLE", "quantity": "7", "discount": {"percent": "15"}, "tax_rate": "0.19"}])
    assert amounts(priced.lines[0]) == ("0.35", "2.45", "0.37", "2.08", "0.40", "2.48")


def test_amount_discount():
    priced = quote([{"sku": "SEAT", "quantity": 2, "discount": {"amount": "40"}, "tax_rate": "0"}])
    assert amounts(priced.lines[0]) == ("120.00", "240.00", "40.00", "200.00", "0.00", "200.00")


def test_tax_rounds_half_even():
    # net 0.25 x 0.5 = 0.125 -> 0.12 (half-even), not 0.13
    book = {"X": Money.of("0.25", "EUR")}
    assert quote([{"sku": "X", "quantity": 1, "tax_rate": "0.5"}], book).lines[0].tax == Money.of("0.12", "EUR")
    book = {"X": Money.of("0.35", "EUR")}
    assert quote([{"sku": "X", "quantity": 1, "tax_rate": "0.5"}], book).lines[0].tax == Money.of("0.18", "EUR")


def test_totals_are_the_sums_of_the_rounded_lines_not_the_rounding_of_the_sum():
    # each line: 0.35 x 0.5 tax = 0.175 -> 0.18; three lines 0.54, while 1.05 x 0.5 = 0.525 -> 0.52
    book = {"X": Money.of("0.35", "EUR")}
    priced = quote([{"sku": "X", "quantity": 1, "tax_rate": "0.5"}] * 3, book)
    assert priced.tax == Money.of("0.54", "EUR")
    assert priced.gross == priced.net + priced.tax == Money.of("1.59", "EUR")


def test_full_discount_and_discount_equal_to_the_line_give_zero():
    priced = quote([{"sku": "SEAT", "quantity": 1, "discount": {"percent": "100"}, "tax_rate": "0.2"},
                    {"sku": "SEAT", "quantity": 1, "discount": {"amount": "120.00"}, "tax_rate": "0.2"}])
    assert priced.gross == Money.zero("EUR")


def test_decimal_quantities_only_for_products_sold_so():
    with pytest.raises(InvalidField) as refused:
        quote([{"sku": "WIDGET", "quantity": 1, "tax_rate": "0"}, {"sku": "CABLE", "quantity": "2.5", "tax_rate": "0"}])
    assert refused.value.field == "lines[1].quantity"
    assert "whole number" in refused.value.message
    priced = quote([{"sku": "CABLE", "quantity": "2.5", "tax_rate": "0"}], decimal_skus={"CABLE"})
    assert priced.net == Money.of("0.88", "EUR")  # 0.875 -> 0.88 (half-even: 8 is even)
    assert quote([{"sku": "CABLE", "quantity": "2.0", "tax_rate": "0"}]).net == Money.of("0.70", "EUR")


def test_zero_digit_and_three_digit_currencies():
    jpy = quote([{"sku": "A", "quantity": 3, "discount": {"percent": "12.5"}, "tax_rate": "0.10"}],
                {"A": Money.of("333", "JPY")}, "JPY")
    assert amounts(jpy.lines[0]) == ("333", "999", "125", "874", "87", "961")
    bhd = quote([{"sku": "A", "quantity": 1, "discount": {"amount": "0.005"}, "tax_rate": "0.10"}],
                {"A": Money.of("1.250", "BHD")}, "BHD")
    assert amounts(bhd.lines[0]) == ("1.250", "1.250", "0.005", "1.245", "0.124", "1.369")


def test_to_json_shape():
    priced = quote([{"sku": "CABLE", "quantity": "4", "discount": {"percent": "10.50"}, "tax_rate": "0.200"}])
    document = priced.to_json()
    assert document["totals"] == {"net": {"amount": "1.25", "currency": "EUR"},
                                  "tax": {"amount": "0.25", "currency": "EUR"},
                                  "gross": {"amount": "1.50", "currency": "EUR"}}
    line = document["lines"][0]
    assert (line["sku"], line["quantity"], line["discount"], line["tax_rate"]) == \
        ("CABLE", "4", {"percent": "10.5"}, "0.2")
    assert line["unit_price"] == {"amount": "0.35", "currency": "EUR"}


@pytest.mark.parametrize("lines,field,reason", [
    ([{"sku": "NOPE", "quantity": 1, "tax_rate": "0"}], "lines[0].sku", "not in the price book"),
    ([{"sku": "WIDGET", "quantity": 1, "tax_rate": "0"}, {"sku": "NOPE", "quantity": 1, "tax_rate": "0"}],
     "lines[1].sku", "NOPE is not in the price book"),
    ([{"sku": "WIDGET", "quantity": 1, "discount": {"percent": "100.01"}, "tax_rate": "0"}],
     "lines[0].discount.percent", "at most 100"),
    ([{"sku": "WIDGET", "quantity": 1, "discount": {"percent": "-1"}, "tax_rate": "0"}],
     "lines[0].discount.percent", "negative"),
    ([{"sku": "WIDGET", "quantity": 2, "discount": {"amount": "39.99"}, "tax_rate": "0"}],
     "lines[0].discount.amount", "above the line"),
    ([{"sku": "WIDGET", "quantity": 1, "discount": {"amount": "-1.00"}, "tax_rate": "0"}],
     "lines[0].discount.amount", "negative"),
    ([{"sku": "WIDGET", "quantity": 1, "discount": {"amount": "1.001"}, "tax_rate": "0"}],
     "lines[0].discount.amount", "EUR has 2 minor-unit digits"),
    ([{"sku": "WIDGET", "quantity": 1, "discount": {"amount": "1", "percent": "1"}, "tax_rate": "0"}],
     "lines[0].discount", "percent"),
    ([{"sku": "WIDGET", "quantity": 1, "discount": {"pct": "1"}, "tax_rate": "0"}], "lines[0].discount", "percent"),
    ([{"sku": "WIDGET", "quantity": -1, "tax_rate": "0"}], "lines[0].quantity", "positive"),
    ([{"sku": "WIDGET", "quantity": 0, "tax_rate": "0"}], "lines[0].quantity", "positive"),
    ([{"sku": "WIDGET", "quantity": "0.0", "tax_rate": "0"}], "lines[0].quantity", "positive"),
    ([{"sku": "WIDGET", "quantity": 1.5, "tax_rate": "0"}], "lines[0].quantity", "never a float"),
    ([{"sku": "WIDGET", "quantity": True, "tax_rate": "0"}], "lines[0].quantity", "decimal string"),
    ([{"sku": "WIDGET", "quantity": "1e3", "tax_rate": "0"}], "lines[0].quantity", "plain decimal"),
    ([{"sku": "WIDGET", "quantity": "10000000000", "tax_rate": "0"}], "lines[0].quantity", "integer digits"),
    ([{"sku": "WIDGET", "quantity": "0.0000001", "tax_rate": "0"}], "lines[0].quantity", "decimal places"),
    ([{"sku": "WIDGET", "quantity": 1, "tax_rate": "-0.1"}], "lines[0].tax_rate", "negative"),
    ([{"sku": "WIDGET", "quantity": 1, "tax_rate": "20"}], "lines[0].tax_rate", "fraction"),
    ([{"sku": "WIDGET", "quantity": 1, "tax_rate": 0.2}], "lines[0].tax_rate", "never a float"),
    ([{"sku": "WIDGET", "quantity": 1}], "lines[0].tax_rate", "required"),
    ([{"quantity": 1, "tax_rate": "0"}], "lines[0].sku", "required"),
    ([{"sku": "WID GET", "quantity": 1, "tax_rate": "0"}], "lines[0].sku", "without spaces"),
    ([{"sku": "WIDGET", "quantity": 1, "tax_rate": "0", "price": "1"}], "lines[0]", "unknown keys"),
    (["WIDGET"], "lines[0]", "object"),
    ([], "lines", "at least one"),
    ("WIDGET", "lines", "list"),
    ([{"sku": "WIDGET", "quantity": 1, "tax_rate": "0"}] * 501, "lines", "at most 500"),
])
def test_refusals_name_the_line(lines, field, reason):
    with pytest.raises(InvalidField) as refused:
        quote(lines)
    assert refused.value.field == field
    assert reason in refused.value.message


def test_a_price_book_in_another_currency_is_refused():
    usd_book = {"WIDGET": Money.of("21.00", "USD")}
    with pytest.raises(CurrencyMismatch) as refused:
        quote([{"sku": "WIDGET", "quantity": 1, "tax_rate": "0"}], usd_book, "EUR")
    assert refused.value.field == "price_book_id"
    assert "EUR and USD" in refused.value.message


def test_price_line_directly_refuses_what_the_parser_would():
    line = QuoteLine(sku="WIDGET", quantity=Decimal(1), tax_rate=Decimal(0),
                     discount=Discount(amount=Money.of("1", "USD")))
    with pytest.raises(CurrencyMismatch):
        price_line(line, Money.of("10", "EUR"))
    with pytest.raises(InvalidField, match="no valid price"):
        price_line(QuoteLine("W", Decimal(1), Decimal(0)), Money.of("-1", "EUR"))
    with pytest.raises(ValueError):
        Discount()


def test_price_book_entries():
    book = parse_price_book_entries([{"sku": "A", "unit_price": {"amount": "1.50", "currency": "EUR"}},
                                     {"sku": "B", "unit_price": {"amount": "0", "currency": "EUR"}}], "EUR")
    assert book == {"A": Money.of("1.50", "EUR"), "B": Money.zero("EUR")}
    for entries, field in [
        ([{"sku": "A", "unit_price": {"amount": "1", "currency": "USD"}}], "entries[0].unit_price.currency"),
        ([{"sku": "A", "unit_price": {"amount": "-1", "currency": "EUR"}}], "entries[0].unit_price.amount"),
        ([{"sku": "A", "unit_price": {"amount": "1", "currency": "EUR"}},
          {"sku": "A", "unit_price": {"amount": "2", "currency": "EUR"}}], "entries[1].sku"),
        ([{"sku": "A"}], "entries[0].unit_price"),
    ]:
        with pytest.raises(InvalidField) as refused:
            parse_price_book_entries(entries, "EUR")
        assert refused.value.field == field


# -- properties -----------------------------------------------------------------------------

CURRENCIES = ["EUR", "USD", "JPY", "BHD", "KWD", "CLF", "GBP", "CHF"]


@st.composite
def priced_input(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    digits = minor_units(currency)
    skus = [f"SKU-{n}" for n in range(draw(st.integers(1, 6)))]
    book = {sku: Money(Decimal(draw(st.integers(0, 10**9))).scaleb(-digits), currency) for sku in skus}
    decimal_skus = {sku for sku in skus if draw(st.booleans())}
    lines = []
    for _ in range(draw(st.integers(1, 20))):
        sku = draw(st.sampled_from(skus))
        if sku in decimal_skus:
            quantity = f"{draw(st.decimals(min_value='0.000001', max_value=10**6, places=6)):f}"
        else:
            quantity = draw(st.integers(1, 10**6))
        exact = book[sku].amount * Decimal(quantity)
        kind = draw(st.sampled_from(["none", "percent", "amount"]))
        if kind == "percent":
            discount = {"percent": f"{draw(st.decimals(min_value=0, max_value=100, places=4)):f}"}
        elif kind == "amount":
            top = int(exact.scaleb(digits))  # whole minor units at or below the line
            discount = {"amount": f"{Decimal(draw(st.integers(0, top))).scaleb(-digits):f}"}
        else:
            discount = None
        rate = f"{draw(st.decimals(min_value=0, max_value=1, places=4)):f}"
        lines.append({"sku": sku, "quantity": quantity, "discount": discount, "tax_rate": rate})
    return currency, book, decimal_skus, lines


@settings(max_examples=300)
@given(priced_input())
def test_pricing_properties(case):
    currency, book, decimal_skus, lines = case
    priced = quote(lines, book, currency, decimal_skus=decimal_skus)
    for line in priced.lines:
        assert not line.net.is_negative() and not line.tax.is_negative()
        for money in (line.unit_price, line.list_amount, line.discount_amount, line.net, line.tax, line.gross):
            assert money.currency == currency
            assert money.is_rounded()
            assert len(money.to_json()["amount"].partition(".")[2]) == minor_units(currency)
        assert line.gross == line.net + line.tax
        assert line.list_amount - line.discount_amount == line.net
    assert priced.net == sum_money((line.net for line in priced.lines), currency)
    assert priced.tax == sum_money((line.tax for line in priced.lines), currency)
    assert priced.gross == sum_money((line.gross for line in priced.lines), currency)
    assert priced.gross == priced.net + priced.tax
    again = quote(lines, book, currency, decimal_skus=decimal_skus)
    assert again == priced and again.to_json() == priced.to_json()


@given(priced_input(), st.sampled_from(CURRENCIES))
def test_two_currencies_never_mix(case, other):
    currency, book, decimal_skus, lines = case
    if other == currency:
        return
    foreign = {sku: Money(price.amount.quantize(Decimal(1)), other) for sku, price in book.items()}
    with pytest.raises(CurrencyMismatch):
        quote(lines, foreign, currency, decimal_skus=decimal_skus)

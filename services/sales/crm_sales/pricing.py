"""Quote pricing: pure, no I/O. Lines priced against a price book's unit prices.

Per line, in the quote's currency:

- `unit_price` from the book (a mapping sku -> Money);
- `list_amount` = quantity x unit price; the discount applies to the exact product:
  `{"percent": "10"}` takes that share of it, `{"amount": "5.00"}` that amount off it;
- `net` = list amount - discount, rounded half-even to the currency's minor unit ONCE;
- `tax` = net x tax rate, rounded half-even; `gross` = net + tax;
- for display, `list_amount` is shown rounded and `discount_amount` = that - net, so the
  rounded figures of a line always add up.

The quote's totals `net`, `tax`, `gross` are the sums of the rounded lines (so gross =
net + tax exactly). A line's net is never negative: a discount above 100% or above the
line is refused, as are a SKU not in the book, a quantity that is not positive (or not a
whole number for a product sold in whole units), a negative tax rate, and a price book in
another currency than the quote. Each refusal is an `InvalidField` naming
`lines[i].<field>` (or `lines`, `price_book_id`).

Bounds keep every figure exact: at most MAX_LINES lines, quantities up to 10^9 with
QUANTITY_PLACES decimals, percentages with PERCENT_PLACES decimals, tax rates between 0
and 1 (a fraction: "0.20" is 20%) with RATE_PLACES decimals.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from crm_runtime.errors import InvalidField
from crm_runtime.money import CurrencyMismatch, Money, check_currency, parse_decimal, sum_money

MAX_LINES = 500
MAX_BOOK_ENTRIES = 10_000
SKU_MAX = 64
QUANTITY_PLACES = 6
QUANTITY_INTEGER_DIGITS = 9
PERCENT_PLACES = 4
RATE_PLACES = 6
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Discount:
    """Exactly one of `percent` (0..100, of the line) or `amount` (in the quote's currency)."""

    percent: Decimal | None = None
    amount: Money | None = None

    def __post_init__(self) -> None:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("a discount is a percent or an amount, exactly one")

    def to_json(self) -> dict[str, str]:
        if self.percent is not None:
            return {"percent": _plain(self.percent)}
        assert self.amount is not None
        return {"amount": self.amount.to_json()["amount"]}


@dataclass(frozen=True)
class QuoteLine:
    """A line as the caller asked for it (validated in form, not yet against a book)."""

    sku: str
    quantity: Decimal
    tax_rate: Decimal
    discount: Discount | None = None

    def to_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "quantity": _plain(self.quantity), "tax_rate": _plain(self.tax_rate),
                "discount": self.discount.to_json() if self.discount else None}


@dataclass(frozen=True)
class PricedLine:
    line: QuoteLine
    unit_price: Money
    list_amount: Money  # quantity x unit price, rounded for display
    discount_amount: Money  # list_amount - net: the discount as the rounded figures show it
    net: Money
    tax: Money
    gross: Money

    def to_json(self) -> dict[str, Any]:
        return {**self.line.to_json(), "unit_price": self.unit_price.to_json(),
                "list_amount": self.list_amount.to_json(), "discount_amount": self.discount_amount.to_json(),
                "net": self.net.to_json(), "tax": self.tax.to_json(), "gross": self.gross.to_json()}


@dataclass(frozen=True)
class PricedQuote:
    currency: str
    lines: tuple[PricedLine, ...]
    net: Money
    tax: Money
    gross: Money

    def to_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "lines": [line.to_json() for line in self.lines],
                "totals": {"net": self.net.to_json(), "tax": self.tax.to_json(), "gross": self.gross.to_json()}}


def _plain(value: Decimal) -> str:
    """A Decimal as a plain string without trailing zeros ("10", "0.2", "2.5")."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- parsing the caller's lines ------------------------------------------------------------

def _number(field: str, raw: object, *, places: int, integer_digits: int) -> Decimal:
    """A decimal string, or a JSON integer; never a float or a boolean."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    return parse_decimal(field, raw, max_places=places, allow_negative=True, max_integer_digits=integer_digits)


def parse_quantity(field: str, raw: object) -> Decimal:
    quantity = _number(field, raw, places=QUANTITY_PLACES, integer_digits=QUANTITY_INTEGER_DIGITS)
    if quantity <= 0:
        raise InvalidField(field, "must be positive")
    return quantity


def parse_discount(field: str, raw: object, currency: str) -> Discount | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or len(raw) != 1 or not ({"percent", "amount"} & set(raw)):
        raise InvalidField(field, 'must be {"percent": "10"} or {"amount": "5.00"}, or null')
    if "percent" in raw:
        percent = _number(f"{field}.percent", raw["percent"], places=PERCENT_PLACES, integer_digits=3)
        if percent < 0:
            raise InvalidField(f"{field}.percent", "must not be negative")
        if percent > _HUNDRED:
            raise InvalidField(f"{field}.percent", "must be at most 100")
        return Discount(percent=percent)
    amount = Money.parse_amount(raw["amount"], currency, field=f"{field}.amount")  # refuses negatives
    return Discount(amount=amount)


def parse_tax_rate(field: str, raw: object) -> Decimal:
    if raw is None:
        raise InvalidField(field, 'is required: a fraction such as "0.20" ("0" for none)')
    rate = _number(field, raw, places=RATE_PLACES, integer_digits=3)
    if rate < 0:
        raise InvalidField(field, "must not be negative")
    if rate > 1:
        raise InvalidField(field, 'must be a fraction between 0 and 1 ("0.20" is 20%)')
    return rate


def parse_sku(field: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidField(field, "is required: a product SKU string")
    sku = raw.strip()
    if len(sku) > SKU_MAX:
        raise InvalidField(field, f"must be at most {SKU_MAX} characters")
    if not (sku.isascii() and sku.isprintable()) or " " in sku:
        raise InvalidField(field, "must be printable ASCII without spaces")
    return sku


_LINE_KEYS = frozenset({"sku", "quantity", "discount", "tax_rate"})


def parse_lines(raw: object, currency: str, *, field: str = "lines") -> tuple[QuoteLine, ...]:
    """The caller's lines `[{"sku", "quantity", "discount"?, "tax_rate"}]` in the quote's
    currency (discount amounts are bare decimal strings in it), or InvalidField naming
    `lines[i].<field>`."""
    check_currency("currency", currency)
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise InvalidField(field, "must be a list of lines")
    if not raw:
        raise InvalidField(field, "must have at least one line")
    if len(raw) > MAX_LINES:
        raise InvalidField(field, f"must have at most {MAX_LINES} lines")
    lines = []
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidField(where, "must be an object")
        unknown = sorted(str(key) for key in item if key not in _LINE_KEYS)
        if unknown:
            raise InvalidField(where, f"has unknown keys: {', '.join(unknown)[:200]}")
        lines.append(QuoteLine(
            sku=parse_sku(f"{where}.sku", item.get("sku")),
            quantity=parse_quantity(f"{where}.quantity", item.get("quantity")),
            tax_rate=parse_tax_rate(f"{where}.tax_rate", item.get("tax_rate")),
            discount=parse_discount(f"{where}.discount", item.get("discount"), currency),
        ))
    return tuple(lines)


def parse_price_book_entries(raw: object, currency: str, *, field: str = "entries") -> dict[str, Money]:
    """A price book's entries `[{"sku", "unit_price": {"amount", "currency"}}]` as the
    mapping sku -> unit price that `price_quote` takes; InvalidField naming
    `entries[i].<field>` for a duplicate SKU, a negative price or one in another currency
    than the book's."""
    check_currency("currency", currency)
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise InvalidField(field, "must be a list of entries")
    if len(raw) > MAX_BOOK_ENTRIES:
        raise InvalidField(field, f"must have at most {MAX_BOOK_ENTRIES} entries")
    prices: dict[str, Money] = {}
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidField(where, "must be an object")
        unknown = sorted(str(key) for key in item if key not in ("sku", "unit_price"))
        if unknown:
            raise InvalidField(where, f"has unknown keys: {', '.join(unknown)[:200]}")
        sku = parse_sku(f"{where}.sku", item.get("sku"))
        if sku in prices:
            raise InvalidField(f"{where}.sku", f"{sku} appears twice in the book")
        price = Money.parse(item.get("unit_price"), field=f"{where}.unit_price")
        if price.currency != currency:
            raise CurrencyMismatch(currency, price.currency, field=f"{where}.unit_price.currency",
                                   operation="put in one book")
        prices[sku] = price
    return prices


# -- pricing ------------------------------------------------------------------------------

def check_book_currency(unit_prices: Mapping[str, Money], currency: str, *, field: str = "price_book_id") -> None:
    """CurrencyMismatch naming `field` if any price of the book is not in the quote's currency."""
    for price in unit_prices.values():
        if price.currency != currency:
            raise CurrencyMismatch(currency, price.currency, field=field, operation="price a quote in")


def price_line(line: QuoteLine, unit_price: Money, *, field: str = "line",
               decimal_quantity: bool = False) -> PricedLine:
    """One line priced at `unit_price` (in the quote's currency), or InvalidField naming
    `<field>.quantity` / `<field>.discount...`."""
    if line.quantity <= 0:
        raise InvalidField(f"{field}.quantity", "must be positive")
    if not decimal_quantity and line.quantity != line.quantity.to_integral_value():
        raise InvalidField(f"{field}.quantity", f"must be a whole number: {line.sku} is sold in whole units")
    if line.tax_rate < 0:
        raise InvalidField(f"{field}.tax_rate", "must not be negative")
    if unit_price.is_negative() or not unit_price.is_rounded():
        raise InvalidField(f"{field}.sku", f"{line.sku} has no valid price in the book ({unit_price.amount})")
    exact = unit_price * line.quantity
    if line.discount is None:
        discount = Money.zero(unit_price.currency)
    elif line.discount.percent is not None:
        if not 0 <= line.discount.percent <= _HUNDRED:
            raise InvalidField(f"{field}.discount.percent", "must be between 0 and 100")
        discount = exact.percent(line.discount.percent)
    else:
        assert line.discount.amount is not None
        discount = line.discount.amount
        if discount.currency != unit_price.currency:
            raise CurrencyMismatch(unit_price.currency, discount.currency, field=f"{field}.discount.amount",
                                   operation="discount")
        if discount.is_negative():
            raise InvalidField(f"{field}.discount.amount", "must not be negative")
        if discount > exact:
            raise InvalidField(f"{field}.discount.amount",
                               f"{discount} is above the line's {exact.round_half_even()}: a line is never negative")
    net = (exact - discount).round_half_even()
    tax = (net * line.tax_rate).round_half_even()
    list_amount = exact.round_half_even()
    return PricedLine(line=line, unit_price=unit_price, list_amount=list_amount,
                      discount_amount=list_amount - net, net=net, tax=tax, gross=net + tax)


def price_quote(lines: Sequence[QuoteLine], unit_prices: Mapping[str, Money], currency: str, *,
                decimal_skus: Collection[str] = frozenset(), field: str = "lines") -> PricedQuote:
    """The quote priced line by line from `unit_prices` (the price book: sku -> unit price,
    all in `currency`); `decimal_skus` are the products sold in fractional quantities.
    Deterministic: the same input always prices the same."""
    check_currency("currency", currency)
    if not lines:
        raise InvalidField(field, "must have at least one line")
    if len(lines) > MAX_LINES:
        raise InvalidField(field, f"must have at most {MAX_LINES} lines")
    check_book_currency(unit_prices, currency)
    priced = []
    for index, line in enumerate(lines):
        where = f"{field}[{index}]"
        unit_price = unit_prices.get(line.sku)
        if unit_price is None:
            raise InvalidField(f"{where}.sku", f"{line.sku} is not in the price book")
        priced.append(price_line(line, unit_price, field=where, decimal_quantity=line.sku in decimal_skus))
    return PricedQuote(
        currency=currency, lines=tuple(priced),
        net=sum_money((line.net for line in priced), currency),
        tax=sum_money((line.tax for line in priced), currency),
        gross=sum_money((line.gross for line in priced), currency),
    )

"""Money: the platform's one type for an amount in a currency.

`Money(amount: Decimal, currency: str)`: a Decimal (never a float) and an ISO 4217
alphabetic code. Which codes exist and how many minor-unit digits each has (JPY 0, EUR 2,
BHD 3, CLF 4) comes from the ISO 4217 maintenance agency's own table, as packaged by
`iso4217`; codes without a minor unit (gold XAU, SDR XDR, test XTS, no-currency XXX) are
not money here.

The rules, one place for every context:

- **On the wire** an amount is a decimal string with exactly the currency's minor-unit
  digits: JSON `{"amount": "1234.50", "currency": "EUR"}` (`parse`, `to_json`), protobuf
  `crm.common.v1.Money{amount, currency_code}` (`from_proto`, `to_proto`).
- **Parsing refuses** anything that is not such a string: floats and integers, NaN and
  infinities, exponents ("1E+3"), signs other than a leading "-" (and "-" unless allowed),
  more than `MAX_INTEGER_DIGITS` integer digits, unknown or lower-case codes, and more
  fractional digits than the currency has unless the extra ones are zeros ("1.500" EUR is
  1.50; "1.505" EUR is refused, never rounded silently). Each refusal is an `InvalidField`
  naming `<field>.amount` or `<field>.currency`.
- **Rounding** is half-even to the currency's minor unit (`round_half_even`) and happens
  where a rule says so (a quote line, a commission), never implicitly: `*` keeps every
  digit, so a product can be rounded once. `to_json`/`to_proto` refuse an unrounded amount
  (a programming error: round first).
- **Two currencies never mix**: `+`, `-`, comparisons, `sum_money` raise `CurrencyMismatch`
  (an `InvalidField`, so 422 / INVALID_ARGUMENT). `==` is value equality and simply False
  across currencies.
- **Splitting** (`split(n)`, `allocate(ratios)`) gives parts that sum exactly to the
  amount, in minor units, the remainder one unit at a time to the first parts.

Arithmetic runs in a private decimal context of 60 digits that traps inexact results, so a
sum or product is exact or fails loudly; parsed amounts are far inside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, Overflow
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from iso4217 import Currency

from crm_runtime.errors import InvalidField

if TYPE_CHECKING:
    from crm.common.v1 import money_pb2

MAX_INTEGER_DIGITS = 15  # 999 trillion: more than any document holds, even in IRR or VND
_AMOUNT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")  # ASCII digits only
_AMOUNT_MAX_CHARS = 64
_CODE = re.compile(r"[A-Z]{3}")

# Exact arithmetic: 60 significant digits, and an inexact result is an error, not a rounding.
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Overflow, Inexact])
# Quantizing to the minor unit is the one place a rounding is meant.
_ROUNDING = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Overflow])


class CurrencyMismatch(InvalidField):
    """Arithmetic or a comparison on amounts in two currencies (422 / INVALID_ARGUMENT)."""

    def __init__(self, left: str, right: str, field: str = "currency", operation: str = "combine"):
        super().__init__(field, f"cannot {operation} {left} and {right}: amounts in two currencies never mix")
        self.currencies = (left, right)


@lru_cache(maxsize=512)
def _minor_units(code: str) -> int | None:
    """The ISO 4217 minor unit of `code`; None for an unknown code or one without a minor unit."""
    try:
        exponent = Currency(code).exponent
    except ValueError:
        return None
    return exponent


def is_currency(code: object) -> bool:
    """True for an upper-case ISO 4217 code of a currency with a minor unit."""
    return isinstance(code, str) and _CODE.fullmatch(code) is not None and _minor_units(code) is not None


def minor_units(currency: str) -> int:
    """Digits after the decimal point for `currency` (JPY 0, EUR 2, BHD 3); ValueError if unknown."""
    units = _minor_units(currency) if _CODE.fullmatch(currency) else None
    if units is None:
        raise ValueError(f"not an ISO 4217 currency with a minor unit: {currency!r}")
    return units


def check_currency(field: str, raw: object) -> str:
    """`raw` if it is an upper-case ISO 4217 code with a minor unit, else InvalidField(field)."""
    if not isinstance(raw, str):
        raise InvalidField(field, "must be an ISO 4217 currency code string such as \"EUR\"")
    if not _CODE.fullmatch(raw):
        raise InvalidField(field, f"must be an ISO 4217 code of three upper-case letters such as \"EUR\", not {raw!r}"
                           if len(raw) <= 20 else "must be an ISO 4217 code of three upper-case letters")
    units = _minor_units(raw)
    if units is None:
        detail = "has no minor unit (not money)" if _known(raw) else "is not an ISO 4217 currency"
        raise InvalidField(field, f"{raw} {detail}")
    return raw


def _known(code: str) -> bool:
    try:
        Currency(code)
    except ValueError:
        return False
    return True


def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def parse_decimal(field: str, raw: object, *, max_places: int, allow_negative: bool = False,
                  max_integer_digits: int = MAX_INTEGER_DIGITS) -> Decimal:
    """A plain decimal string ("12", "-0.5", "1234.50") as a Decimal, else InvalidField(field).

    Refuses floats, ints, booleans, exponents, NaN/infinity, "+", white space, a "-" unless
    `allow_negative`, more than `max_integer_digits` integer digits and more than
    `max_places` significant fractional digits (trailing zeros beyond them are dropped).
    The result keeps no more than `max_places` places and is never -0.
    """
    if isinstance(raw, float):
        raise InvalidField(field, "must be a decimal string such as \"12.50\", never a float")
    if not isinstance(raw, str):
        raise InvalidField(field, "must be a decimal string such as \"12.50\"")
    match = _AMOUNT.fullmatch(raw) if len(raw) <= _AMOUNT_MAX_CHARS else None
    if match is None:
        shown = repr(raw) if len(raw) <= 40 else "the value"
        raise InvalidField(field, f"must be a plain decimal string (digits, an optional \"-\" and \".\"; "
                                  f"at most {MAX_INTEGER_DIGITS} integer digits, no exponent), not {shown}")
    sign, integer, fraction = match.groups()
    if sign and not allow_negative:
        raise InvalidField(field, "must not be negative")
    if len(integer.lstrip("0")) > max_integer_digits:
        raise InvalidField(field, f"must have at most {max_integer_digits} integer digits")
    significant = (fraction or "").rstrip("0")
    if len(significant) > max_places:
        raise InvalidField(field, f"must have at most {max_places} decimal places" if max_places else
                           "must be a whole number")
    value = Decimal(f"{sign}{integer}.{significant}" if significant else f"{sign}{integer}")
    return value.copy_abs() if value.is_zero() else value


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one ISO 4217 currency. Construct from Decimal (or int) only.

    `amount` may carry more digits than the minor unit only as an intermediate result of
    `*` or `/`; `round_half_even()` brings it back, and the wire forms require it.
    """

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        amount: Any = self.amount
        if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
            raise TypeError(f"Money amount must be a Decimal, not {type(amount).__name__}")
        if isinstance(amount, int):
            amount = Decimal(amount)
        if not amount.is_finite():
            raise ValueError(f"Money amount must be finite, not {amount}")
        if amount.is_zero() and amount.is_signed():
            amount = amount.copy_abs()
        if amount is not self.amount:
            object.__setattr__(self, "amount", amount)
        minor_units(self.currency)  # ValueError for anything but a currency with a minor unit

    # -- construction -------------------------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0).quantize(_quantum(currency)), currency)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        """Money from a literal in code and tests (`Money.of("12.50", "EUR")`), exact to the
        minor unit: ValueError if it would need rounding. Callers' input goes through `parse`."""
        if isinstance(amount, float):
            raise TypeError("Money.of takes a string, int or Decimal, never a float")
        value = Decimal(amount)
        money = cls(value, currency)
        if not money.is_rounded():
            raise ValueError(f"{amount} has more digits than {currency}'s minor unit")
        return money.round_half_even()

    @classmethod
    def parse(cls, raw: object, *, field: str, allow_negative: bool = False) -> Money:
        """Money from its JSON form `{"amount": "1234.50", "currency": "EUR"}`, or
        InvalidField naming `<field>`, `<field>.amount` or `<field>.currency`.
        The result is exact to the currency's minor unit."""
        if not isinstance(raw, Mapping):
            raise InvalidField(field, "must be an object {\"amount\": \"1234.50\", \"currency\": \"EUR\"}")
        unknown = sorted(str(key) for key in raw if key not in ("amount", "currency"))
        if unknown:
            raise InvalidField(field, f"has unknown keys: {', '.join(unknown)[:200]} (only amount and currency)")
        if "currency" not in raw:
            raise InvalidField(f"{field}.currency", "is required")
        if "amount" not in raw:
            raise InvalidField(f"{field}.amount", "is required")
        currency = check_currency(f"{field}.currency", raw["currency"])
        return cls.parse_amount(raw["amount"], currency, field=f"{field}.amount", allow_negative=allow_negative)

    @classmethod
    def parse_amount(cls, raw: object, currency: str, *, field: str, allow_negative: bool = False) -> Money:
        """Money from a bare decimal string in a known currency (a discount `{"amount": "5.00"}`
        in the quote's currency), with the rules of `parse`; InvalidField(field)."""
        digits = minor_units(currency)
        try:
            value = parse_decimal(field, raw, max_places=digits, allow_negative=allow_negative)
        except InvalidField as error:
            if "decimal places" in error.message or "whole number" in error.message:
                raise InvalidField(field, f"{currency} has {digits} minor-unit digits: "
                                          f"{error.message.removeprefix('must ')}") from None
            raise
        return cls(value.quantize(_quantum(currency), context=_ROUNDING), currency)

    @classmethod
    def from_proto(cls, message: money_pb2.Money, *, field: str, allow_negative: bool = False) -> Money:
        """Money from `crm.common.v1.Money`, with the rules of `parse` (InvalidField naming
        `<field>.amount` / `<field>.currency`)."""
        currency = check_currency(f"{field}.currency_code", message.currency_code)
        return cls.parse_amount(message.amount, currency, field=f"{field}.amount", allow_negative=allow_negative)

    # -- the wire -----------------------------------------------------------------------

    def _wire_amount(self) -> str:
        if not self.is_rounded():
            raise ValueError(f"{self.amount} {self.currency} is not rounded to the minor unit: "
                             "call round_half_even() before serialising")
        return f"{self.amount.quantize(_quantum(self.currency), context=_ROUNDING):f}"

    @property
    def amount_text(self) -> str:
        """The amount as a decimal string with the currency's minor-unit digits, e.g. "5000.00"."""
        return format(self.amount.quantize(_quantum(self.currency)), "f")

    def to_json(self) -> dict[str, str]:
        """`{"amount": "1234.50", "currency": "EUR"}`, exactly the minor-unit digits."""
        return {"amount": self._wire_amount(), "currency": self.currency}

    def to_proto(self) -> money_pb2.Money:
        from crm.common.v1 import money_pb2  # generated by `make proto`

        return money_pb2.Money(amount=self._wire_amount(), currency_code=self.currency)

    def __str__(self) -> str:
        return f"{self.amount:f} {self.currency}"

    # -- rounding -----------------------------------------------------------------------

    @property
    def minor_units(self) -> int:
        return minor_units(self.currency)

    def is_rounded(self) -> bool:
        """True when the amount has no digit below the currency's minor unit."""
        exponent = self.amount.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked at construction
        if exponent >= -self.minor_units:
            return True
        return self.amount == self.amount.quantize(_quantum(self.currency), context=_ROUNDING)

    def round_half_even(self) -> Money:
        """The amount rounded half-even to the minor unit (banker's rounding: 0.125 -> 0.12,
        0.135 -> 0.14 in EUR), with exactly the minor-unit digits."""
        return Money(self.amount.quantize(_quantum(self.currency), context=_ROUNDING), self.currency)

    # -- arithmetic ---------------------------------------------------------------------

    def _same(self, other: Money, operation: str) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {operation} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency, operation=operation)

    def __add__(self, other: Money) -> Money:
        self._same(other, "add")
        return Money(_EXACT.add(self.amount, other.amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other, "subtract")
        return Money(_EXACT.subtract(self.amount, other.amount), self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        """Exact product (unrounded): round it where the rule says."""
        if isinstance(factor, bool) or not isinstance(factor, Decimal | int):
            raise TypeError(f"Money can be multiplied by a Decimal or an int, not {type(factor).__name__}")
        factor = Decimal(factor)
        if not factor.is_finite():
            raise ValueError("cannot multiply Money by a non-finite number")
        return Money(_EXACT.multiply(self.amount, factor), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def percent(self, percent: Decimal | int) -> Money:
        """`percent` % of the amount, unrounded (exact: a division by 100)."""
        return self * Decimal(percent).scaleb(-2)

    def _compare(self, other: Money) -> int:
        self._same(other, "compare")
        return 0 if self.amount == other.amount else (1 if self.amount > other.amount else -1)

    def __lt__(self, other: Money) -> bool:
        return self._compare(other) < 0

    def __le__(self, other: Money) -> bool:
        return self._compare(other) <= 0

    def __gt__(self, other: Money) -> bool:
        return self._compare(other) > 0

    def __ge__(self, other: Money) -> bool:
        return self._compare(other) >= 0

    def is_zero(self) -> bool:
        return self.amount.is_zero()

    def is_negative(self) -> bool:
        return self.amount < 0

    def is_positive(self) -> bool:
        return self.amount > 0

    # -- splitting ----------------------------------------------------------------------

    def _minor(self) -> int:
        if not self.is_rounded():
            raise ValueError(f"{self} is not rounded to the minor unit: round before splitting")
        return int(self.amount.scaleb(self.minor_units, context=_EXACT))

    def _from_minor(self, units: int) -> Money:
        return Money(Decimal(units).scaleb(-self.minor_units, context=_EXACT), self.currency).round_half_even()

    def split(self, parts: int) -> list[Money]:
        """`parts` amounts as equal as the minor unit allows, summing exactly to this one; the
        remainder goes one minor unit at a time to the first parts (100.00 / 3 = 33.34, 33.33,
        33.33). A negative amount splits the same way, negated."""
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise ValueError(f"split needs a positive number of parts, not {parts!r}")
        return self.allocate([1] * parts)

    def allocate(self, ratios: Sequence[Decimal | int]) -> list[Money]:
        """Amounts in proportion to `ratios` (non-negative, not all zero), summing exactly to
        this one: each part gets the floor of its exact share in minor units, and the units
        left over go one at a time to the first parts with a non-zero ratio."""
        if not ratios:
            raise ValueError("allocate needs at least one ratio")
        weights = [Decimal(ratio) for ratio in ratios]
        if any(not weight.is_finite() or weight < 0 for weight in weights) or not any(weights):
            raise ValueError("ratios must be finite, non-negative and not all zero")
        units = self._minor()
        sign, units = (-1 if units < 0 else 1), abs(units)
        total = sum((Fraction(weight) for weight in weights), Fraction(0))
        shares = [math.floor(units * Fraction(weight) / total) for weight in weights]
        left = units - sum(shares)
        receivers = [index for index, weight in enumerate(weights) if weight]
        for step in range(left):
            shares[receivers[step % len(receivers)]] += 1
        return [self._from_minor(sign * share) for share in shares]


def sum_money(amounts: Iterable[Money], currency: str) -> Money:
    """The sum of `amounts` (an empty iterable sums to zero in `currency`); CurrencyMismatch
    if any is in another currency."""
    total = Money.zero(currency)
    for amount in amounts:
        total = total + amount
    return total


def parse_money(field: str, amount: object, currency: object, *, allow_negative: bool = False) -> Money:
    """Money from a decimal string and a currency code given apart (as an event stores
    them); errors name `field.amount` or `field.currency`."""
    code = check_currency(f"{field}.currency", currency)
    return Money.parse_amount(amount, code, field=f"{field}.amount", allow_negative=allow_negative)

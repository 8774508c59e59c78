"""Money: a Decimal amount and an ISO 4217 currency, never a float.

Amounts come in as decimal strings ("5000.00", "12", "0.125") and are rounded half-even
(banker's rounding) to the currency's minor unit, as ISO 4217 defines it (EUR 2, JPY 0,
BHD 3): "0.125" EUR is "0.12", "0.135" EUR is "0.14". Codes without a minor unit (gold,
testing and "no currency" codes such as XAU, XTS, XXX) are refused: they are not money a
budget or a price can be in. The currency table is the `iso4217` package (the ISO list,
kept current by its maintainers and pinned in requirements.txt).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import iso4217

from crm_runtime.errors import InvalidField

# Plain decimal notation only: no exponents, no NaN or infinities, no thousands separators.
_AMOUNT = re.compile(r"[+-]?[0-9]{1,18}(\.[0-9]{1,18})?")


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    @property
    def amount_text(self) -> str:
        """The amount as a decimal string with the currency's minor digits, e.g. "5000.00"."""
        return format(self.amount, "f")


def minor_unit(field: str, code: str) -> int:
    """The number of decimal places of an ISO 4217 currency, or InvalidField."""
    try:
        currency = iso4217.Currency(code)
    except ValueError:
        raise InvalidField(field, f"{code[:10]!r} is not an ISO 4217 currency code, e.g. EUR") from None
    if currency.exponent is None:
        raise InvalidField(field, f"{code} ({currency.currency_name}) has no minor unit; "
                                  "use a currency such as EUR or USD")
    return int(currency.exponent)


def parse_currency(field: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidField(field, "is required: an ISO 4217 code such as EUR")
    code = raw.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise InvalidField(field, f"{raw[:10]!r} is not an ISO 4217 currency code, e.g. EUR")
    minor_unit(field, code)
    return code


def parse_money(field: str, amount: object, currency: object, *, allow_negative: bool = False) -> Money:
    """Money from a decimal string and a currency code; errors name `field.amount` or
    `field.currency`. Floats are refused: their value is not the decimal the caller meant."""
    code = parse_currency(f"{field}.currency", currency)
    if isinstance(amount, bool) or not isinstance(amount, str):
        raise InvalidField(f"{field}.amount", 'must be a decimal string such as "5000.00", not a number')
    text = amount.strip()
    if not _AMOUNT.fullmatch(text):
        raise InvalidField(f"{field}.amount", f'{amount[:40]!r} is not a decimal amount such as "5000.00"')
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise InvalidField(f"{field}.amount", f"{amount[:40]!r} is not a decimal amount") from None
    if value < 0 and not allow_negative:
        raise InvalidField(f"{field}.amount", "must not be negative")
    places = minor_unit(f"{field}.currency", code)
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        rounded = abs(rounded)  # no "-0.00"
    return Money(rounded, code)

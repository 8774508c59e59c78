"""Products and price books: pure domain, no I/O.

A `Product` is identified by its SKU: its id is derived from the SKU, so a second product
with the same SKU is the same aggregate and its creation a conflict (409 / ABORTED), whichever
process or request races to it. `decimal_quantities` says whether quotes may sell it in
fractional quantities ("2.5" hours) or whole units only.

A `PriceBook` holds unit prices of products in one currency. It is published once and never
changes: new prices are a new book (quotes keep naming the book they were priced from).
A product can be priced in several books and currencies. An entry's `unit_price` is Money in
the book's currency, `{"amount": "120.00", "currency": "EUR"}`, or a bare decimal string
`"120.00"` read in the book's currency. Stored state is JSON: amounts as decimal strings,
the currency once per book.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import InvalidField
from crm_runtime.money import Money, check_currency
from crm_runtime.text import text_field
from crm_sales.pricing import MAX_BOOK_ENTRIES, parse_price_book_entries, parse_sku

NAME_MAX = 200
FAMILY_MAX = 100
_PRODUCT_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:product")
_PRICE_BOOK_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:price-book")


# -- products ----------------------------------------------------------------------------------

def _flag(field: str, raw: Any, default: bool) -> bool:
    if raw is None:
        return default
    if not isinstance(raw, bool):
        raise InvalidField(field, "must be true or false")
    return raw


@dataclass(frozen=True)
class ProductDetails:
    sku: str
    name: str
    family: str | None
    active: bool
    decimal_quantities: bool


def validate_product(sku: Any, name: Any, family: Any = None, active: Any = None,
                     decimal_quantities: Any = None) -> ProductDetails:
    clean_name = text_field("name", name, NAME_MAX, required=True)
    assert clean_name is not None
    return ProductDetails(sku=parse_sku("sku", sku), name=clean_name,
                          family=text_field("family", family, FAMILY_MAX, required=False),
                          active=_flag("active", active, True),
                          decimal_quantities=_flag("decimal_quantities", decimal_quantities, False))


def product_id_for(sku: str) -> UUID:
    """The one id a SKU has (SKUs are compared as given: case matters)."""
    return uuid5(_PRODUCT_NAMESPACE, sku)


class Product(Aggregate):
    @event("Added")
    def __init__(self, id: UUID, sku: str, name: str, family: str | None, active: bool,  # noqa: A002
                 decimal_quantities: bool, added_by: str, request_key: str | None = None):
        self.sku = sku
        self.name = name
        self.family = family
        self.active = active
        self.decimal_quantities = decimal_quantities
        self.added_by = added_by
        # The caller-scoped idempotency key it was added with: a repeat of that request
        # answers the product; any other request for the SKU is a duplicate.
        self.request_key = request_key

    @classmethod
    def add(cls, details: ProductDetails, added_by: str, request_key: str | None) -> Product:
        return cls(id=product_id_for(details.sku), sku=details.sku, name=details.name, family=details.family,
                   active=details.active, decimal_quantities=details.decimal_quantities,
                   added_by=added_by, request_key=request_key)

    def is_repeat_of(self, details: ProductDetails, request_key: str | None) -> bool:
        return (request_key is not None and request_key == self.request_key
                and (self.sku, self.name, self.family, self.active, self.decimal_quantities)
                == (details.sku, details.name, details.family, details.active, details.decimal_quantities))


# -- price books -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PriceBookDetails:
    name: str
    currency: str
    prices: dict[str, Money]  # sku -> unit price, in the caller's order


def _entries_as_money(raw: Any, currency: str) -> Any:
    """Entries whose unit_price may be a bare decimal string, in the book's currency, made
    the `{"amount", "currency"}` form `parse_price_book_entries` reads."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        return raw
    entries = []
    for item in raw:
        if isinstance(item, Mapping) and isinstance(item.get("unit_price"), str):
            item = {**item, "unit_price": {"amount": item["unit_price"], "currency": currency}}
        elif isinstance(item, Mapping) and isinstance(item.get("unit_price"), Money):
            price: Money = item["unit_price"]
            item = {**item, "unit_price": {"amount": price.amount_text, "currency": price.currency}}
        entries.append(item)
    return entries


def validate_price_book(name: Any, currency: Any, entries: Any) -> PriceBookDetails:
    clean_name = text_field("name", name, NAME_MAX, required=True)
    assert clean_name is not None
    code = check_currency("currency", currency)
    if entries is None:
        raise InvalidField("entries", "is required: a list of {\"sku\", \"unit_price\"}")
    prices = parse_price_book_entries(_entries_as_money(entries, code), code)
    if not prices:
        raise InvalidField("entries", "must have at least one entry")
    if len(prices) > MAX_BOOK_ENTRIES:  # parse_price_book_entries checks it too
        raise InvalidField("entries", f"must have at most {MAX_BOOK_ENTRIES} entries")
    return PriceBookDetails(name=clean_name, currency=code, prices=prices)


def price_book_id_for(request_key: str | None) -> UUID:
    return uuid5(_PRICE_BOOK_NAMESPACE, request_key) if request_key else uuid4()


class PriceBook(Aggregate):
    @event("Published")
    def __init__(self, id: UUID, name: str, currency: str, entries: list[dict[str, str]],  # noqa: A002
                 published_by: str):
        self.name = name
        self.currency = currency
        self.entries = entries  # [{"sku", "unit_price"}], unit prices as decimal strings
        self.published_by = published_by

    @classmethod
    def publish(cls, details: PriceBookDetails, price_book_id: UUID, published_by: str) -> PriceBook:
        return cls(id=price_book_id, name=details.name, currency=details.currency,
                   entries=[{"sku": sku, "unit_price": price.amount_text} for sku, price in details.prices.items()],
                   published_by=published_by)

    def same_publication(self, details: PriceBookDetails) -> bool:
        return (self.name, self.currency, self.prices) == (details.name, details.currency, details.prices)

    @property
    def prices(self) -> dict[str, Money]:
        """sku -> unit price, what `crm_sales.pricing.price_quote` takes."""
        return {entry["sku"]: Money(Decimal(entry["unit_price"]), self.currency) for entry in self.entries}

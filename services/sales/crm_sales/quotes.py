"""Quotes: pure domain, no I/O.

A quote prices lines for an opportunity from one price book (crm_sales.pricing.price_quote),
in the opportunity's currency: a book in another currency is refused (422 naming
`price_book_id`). Its life:

| command | from | to | event |
| --- | --- | --- | --- |
| draft (`POST /v1/quotes`) | | draft | `Drafted` (lines, totals, valid_until) |
| send | draft | sent | `Sent` |
| accept (optionally winning the opportunity) | sent | accepted | `Accepted` |
| reject `{"reason"}` | sent | rejected | `Rejected` |
| revise (new lines) | draft, sent | superseded | `Revised` (and the new quote's `Drafted`, number + 1) |

A draft or sent quote is shown `expired` once the day (UTC) is after `valid_until`: it can
no longer be sent or accepted (409 naming the status), only revised into a new quote with a
new date. Expiry records nothing: it is what the date says. Accepted, rejected and
superseded are final. Any other command answers 409 / FAILED_PRECONDITION naming the
quote's status and records nothing.

Stored state is JSON: each line's figures are decimal strings in the quote's currency
(stored once), discounts `{"percent": "10"}` or `{"amount": "5.00"}`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import Money
from crm_sales.pricing import PricedQuote

_QUOTE_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:quote")


class QuoteStatus(StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"  # shown, never stored: a draft or sent quote past valid_until
    SUPERSEDED = "superseded"


OPEN_STATUSES = frozenset({QuoteStatus.DRAFT, QuoteStatus.SENT})


def quote_id_for(request_key: str | None) -> UUID:
    return uuid5(_QUOTE_NAMESPACE, request_key) if request_key else uuid4()


def check_valid_until(valid_until: date, today: date) -> str:
    if valid_until < today:
        raise InvalidField("valid_until", f"{valid_until.isoformat()} is in the past (today is {today.isoformat()})")
    return valid_until.isoformat()


def lines_state(priced: PricedQuote) -> list[dict[str, Any]]:
    """The priced lines as stored: the caller's inputs and the figures, amounts as strings."""
    return [{**line.line.to_json(),
             "unit_price": line.unit_price.amount_text, "list_amount": line.list_amount.amount_text,
             "discount_amount": line.discount_amount.amount_text, "net": line.net.amount_text,
             "tax": line.tax.amount_text, "gross": line.gross.amount_text}
            for line in priced.lines]


def requested_lines(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What the caller asked for, line by line (for comparing a repeated request)."""
    return [(line["sku"], line["quantity"], line["tax_rate"],
             tuple(sorted(line["discount"].items())) if line.get("discount") else None) for line in lines]


class Quote(Aggregate):
    @event("Drafted")
    def __init__(self, id: UUID, opportunity_id: str, account_id: str, owner_id: str,  # noqa: A002
                 price_book_id: str, currency: str, valid_until: str, number: int,
                 previous_quote_id: str | None, lines: list[dict[str, Any]], net: str, tax: str, gross: str,
                 drafted_by: str):
        self.opportunity_id = opportunity_id
        self.account_id = account_id
        self.owner_id = owner_id  # the opportunity's: who the quote belongs to
        self.price_book_id = price_book_id
        self.currency = currency
        self.valid_until = valid_until
        self.number = number
        self.previous_quote_id = previous_quote_id
        self.next_quote_id: str | None = None
        self.lines = lines
        self.net, self.tax, self.gross = net, tax, gross
        self.drafted_by = drafted_by
        self.stored_status = QuoteStatus.DRAFT
        self.accepted_on: str | None = None
        self.rejection_reason: str | None = None

    @classmethod
    def draft(cls, quote_id: UUID, opportunity_id: str, account_id: str, owner_id: str, price_book_id: str,
              valid_until: str, priced: PricedQuote, drafted_by: str, number: int = 1,
              previous_quote_id: str | None = None) -> Quote:
        return cls(id=quote_id, opportunity_id=opportunity_id, account_id=account_id, owner_id=owner_id,
                   price_book_id=price_book_id, currency=priced.currency, valid_until=valid_until,
                   number=number, previous_quote_id=previous_quote_id, lines=lines_state(priced),
                   net=priced.net.amount_text, tax=priced.tax.amount_text, gross=priced.gross.amount_text,
                   drafted_by=drafted_by)

    def same_request(self, opportunity_id: str, price_book_id: str, valid_until: str,
                     priced: PricedQuote, previous_quote_id: str | None = None) -> bool:
        return ((self.opportunity_id, self.price_book_id, self.valid_until, self.previous_quote_id,
                 requested_lines(self.lines))
                == (opportunity_id, price_book_id, valid_until, previous_quote_id,
                    requested_lines(lines_state(priced))))

    # -- what it shows ---------------------------------------------------------------------------

    def money(self, amount: str) -> Money:
        return Money(Decimal(amount), self.currency)

    @property
    def totals(self) -> dict[str, Money]:
        return {"net": self.money(self.net), "tax": self.money(self.tax), "gross": self.money(self.gross)}

    def status_on(self, today: date) -> QuoteStatus:
        """The status as of `today` (UTC): an open quote past valid_until is expired."""
        if self.stored_status in OPEN_STATUSES and today > date.fromisoformat(self.valid_until):
            return QuoteStatus.EXPIRED
        return self.stored_status

    def _require(self, today: date, doing: str, *allowed: QuoteStatus) -> None:
        status = self.status_on(today)
        if status not in allowed:
            needs = " or ".join(str(s) for s in allowed)
            because = f" (valid until {self.valid_until})" if status == QuoteStatus.EXPIRED else ""
            raise FailedPrecondition(f"quote {self.id} is {status}{because}; {doing} needs it to be {needs}")

    # -- commands --------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        """What every status event carries besides its change (a consumer, and the relay,
        which sees one event at a time, need no other source)."""
        return {"opportunity_id": self.opportunity_id, "account_id": self.account_id, "owner_id": self.owner_id,
                "valid_until": self.valid_until, "currency": self.currency, "net": self.net, "tax": self.tax,
                "gross": self.gross}

    def send(self, today: date, sent_by: str) -> None:
        self._require(today, "send", QuoteStatus.DRAFT)
        self._sent(**self._state(), sent_by=sent_by)

    def accept(self, today: date, accepted_by: str, opportunity_won: bool) -> None:
        self._require(today, "accept", QuoteStatus.SENT)
        self._accepted(**self._state(), accepted_on=today.isoformat(), opportunity_won=opportunity_won,
                       accepted_by=accepted_by)

    def reject(self, today: date, reason: str | None, rejected_by: str) -> None:
        # A sent quote past its date can still be turned down: it is rejected either way.
        if self.stored_status != QuoteStatus.SENT:
            self._require(today, "reject", QuoteStatus.SENT)
        self._rejected(**self._state(), reason=reason, rejected_by=rejected_by)

    def check_revisable(self, today: date) -> None:
        self._require(today, "revise", QuoteStatus.DRAFT, QuoteStatus.SENT, QuoteStatus.EXPIRED)

    def supersede(self, today: date, next_quote_id: str, revised_by: str) -> None:
        self.check_revisable(today)
        self._revised(**self._state(), next_quote_id=next_quote_id, next_number=self.number + 1,
                      revised_by=revised_by)

    # -- events ----------------------------------------------------------------------------------
    # Each carries the quote's ids, owner, valid_until, currency and totals (`_state`).

    @event("Sent")
    def _sent(self, opportunity_id: str, account_id: str, owner_id: str, valid_until: str, currency: str,
              net: str, tax: str, gross: str, sent_by: str) -> None:
        self.stored_status = QuoteStatus.SENT

    @event("Accepted")
    def _accepted(self, opportunity_id: str, account_id: str, owner_id: str, valid_until: str, currency: str,
                  net: str, tax: str, gross: str, accepted_on: str, opportunity_won: bool,
                  accepted_by: str) -> None:
        self.stored_status = QuoteStatus.ACCEPTED
        self.accepted_on = accepted_on

    @event("Rejected")
    def _rejected(self, opportunity_id: str, account_id: str, owner_id: str, valid_until: str, currency: str,
                  net: str, tax: str, gross: str, reason: str | None, rejected_by: str) -> None:
        self.stored_status = QuoteStatus.REJECTED
        self.rejection_reason = reason

    @event("Revised")
    def _revised(self, opportunity_id: str, account_id: str, owner_id: str, valid_until: str, currency: str,
                 net: str, tax: str, gross: str, next_quote_id: str, next_number: int, revised_by: str) -> None:
        self.stored_status = QuoteStatus.SUPERSEDED
        self.next_quote_id = next_quote_id

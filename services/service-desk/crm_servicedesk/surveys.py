"""Satisfaction surveys (CSAT): pure domain, no I/O, no clock reads, no randomness (the
application draws the token and passes it in).

Solving a ticket requests a survey (`Survey.request`, saved in the solve's transaction):
`Requested` carries the ticket, the requester to ask, the solve it is about (`round`: 1 for
the first solve, 2 after a reopen and a second solve, ...) and the single-use token, which
is the customer's only credential (they have no platform account). The token is in that
one event because the event is what is published for whoever mails the customer the link
(the store is the outbox); the survey itself keeps no token: its id is derived from the
token's SHA-256 digest (`survey_id_for`), so a token is checked by loading the survey it
names, and an unknown token names none.

`answer` records `Answered` once: a rating from 1 to 5 and an optional comment. A second
answer is a FailedPrecondition (409) naming when it was answered, and records nothing.
Each solve requests its own survey, so a reopened and re-solved ticket asks again, and an
earlier survey not yet answered stays answerable (once): each answer is about the solve
its round names.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import FailedPrecondition, InvalidField, NotFound
from crm_servicedesk.domain import long_text

COMMENT_MAX = 2_000
TOKEN_MAX = 128
RATINGS = range(1, 6)
_SURVEY_NAMESPACE = uuid5(NAMESPACE_URL, "crm:servicedesk:survey")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def survey_id_for(token: object) -> UUID:
    """The id of the survey a token opens; a string that cannot be a token is NotFound,
    like a token nobody was given (the caller learns nothing from the difference)."""
    if not isinstance(token, str) or _TOKEN.fullmatch(token) is None:
        raise NotFound("no survey has this token")
    return uuid5(_SURVEY_NAMESPACE, token_digest(token))


def check_rating(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw not in RATINGS:
        raise InvalidField("rating", f"must be a whole number from {RATINGS.start} to {RATINGS.stop - 1}")
    return raw


class Survey(Aggregate):
    """A satisfaction survey about one solve of a ticket (module docstring)."""

    @event("Requested")
    def __init__(self, id: UUID, ticket_id: str, round: int, token: str,  # noqa: A002
                 requester_email: str | None, requester_contact_id: str | None, at: datetime):
        # `token` stays in the event (it is published); the survey keeps none of it.
        self.ticket_id = ticket_id
        self.round = round
        self.requester_email = requester_email
        self.requester_contact_id = requester_contact_id
        self.requested_at = at
        self.rating: int | None = None
        self.comment: str | None = None
        self.answered_at: datetime | None = None

    @classmethod
    def request(cls, ticket_id: UUID, round: int, token: str, requester_email: str | None,  # noqa: A002
                requester_contact_id: str | None, at: datetime) -> Survey:
        return cls(id=survey_id_for(token), ticket_id=str(ticket_id), round=round, token=token,
                   requester_email=requester_email, requester_contact_id=requester_contact_id, at=at)

    def answer(self, rating: Any, comment: Any, at: datetime) -> None:
        rating = check_rating(rating)
        comment = long_text("comment", comment, COMMENT_MAX, required=False) or None
        if self.answered_at is not None:
            raise FailedPrecondition(f"survey {self.id} was answered at {self.answered_at.isoformat()}; "
                                     "a survey takes one answer")
        self._answered(ticket_id=self.ticket_id, round=self.round, rating=rating, comment=comment, at=at)

    @event("Answered")
    def _answered(self, ticket_id: str, round: int, rating: int, comment: str | None,  # noqa: A002
                  at: datetime) -> None:
        self.rating = rating
        self.comment = comment
        self.answered_at = at

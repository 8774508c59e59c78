"""The lead: pure domain, no I/O. Validation and normalisation happen before any event.

Who owns a lead is the workflow service's decision; the lead records it. An assignment
carries the idempotency key of the command that made it, so a repeated command is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import InvalidField
from crm_runtime.text import check_domain, check_text

NAME_MAX = 200
COMPANY_MAX = 200
ID_MAX = 200  # owner ids and idempotency keys
_CAPTURE_NAMESPACE = uuid5(NAMESPACE_URL, "crm:leads:capture")


class Channel(StrEnum):
    WEB = "web"
    EMAIL = "email"
    PHONE = "phone"
    REFERRAL = "referral"
    EVENT = "event"
    SOCIAL = "social"
    PARTNER = "partner"


class LeadStatus(StrEnum):
    NEW = "new"


@dataclass(frozen=True)
class CaptureDetails:
    """A lead's details after validation: trimmed name, normalised email, E.164 phone."""

    name: str
    email: str
    phone: str
    company: str
    channel: Channel


def normalise_email(raw: str | None) -> str:
    if not raw or not raw.strip():
        raise InvalidField("email", "is required")
    try:
        # Syntax only: a domain check would be I/O, and capture must not depend on DNS.
        address = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidField("email", str(exc)) from exc
    check_domain("email", address.domain)  # a look-alike domain (mixed scripts) is refused
    return address.normalized


def normalise_phone(raw: str | None, default_region: str) -> str:
    if raw is None or not raw.strip():
        return ""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidField("phone", f"{raw!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidField("phone", f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_channel(raw: str | None) -> Channel:
    try:
        return Channel((raw or "").strip().lower())
    except ValueError:
        allowed = ", ".join(channel.value for channel in Channel)
        raise InvalidField("channel", f"{raw!r} is not a known channel; use one of: {allowed}") from None


def validate_capture(name: str | None, email: str | None, phone: str | None,
                     company: str | None, channel: str | None,
                     default_region: str = "US") -> CaptureDetails:
    clean_name = (name or "").strip()
    if not clean_name:
        raise InvalidField("name", "is required")
    if len(clean_name) > NAME_MAX:
        raise InvalidField("name", f"must be at most {NAME_MAX} characters")
    check_text("name", clean_name)
    clean_company = (company or "").strip()
    if len(clean_company) > COMPANY_MAX:
        raise InvalidField("company", f"must be at most {COMPANY_MAX} characters")
    check_text("company", clean_company)
    return CaptureDetails(
        name=clean_name,
        email=normalise_email(email),
        phone=normalise_phone(phone, default_region),
        company=clean_company,
        channel=parse_channel(channel),
    )


def plain_identifier(field: str, raw: str | None) -> str:
    """A short printable identifier: what ids and keys from other systems must be."""
    value = (raw or "").strip()
    if not value:
        raise InvalidField(field, "is required")
    if len(value) > ID_MAX:
        raise InvalidField(field, f"must be at most {ID_MAX} characters")
    check_text(field, value)  # names the character; isprintable below also refuses separators
    if not value.isprintable():
        raise InvalidField(field, "must not contain control characters")
    return value


def lead_id_for(request_key: str | None) -> UUID:
    """The same idempotency key always names the same lead; no key, a new lead."""
    return uuid5(_CAPTURE_NAMESPACE, request_key) if request_key else uuid4()


class Lead(Aggregate):
    @event("Captured")
    def __init__(self, id: UUID, name: str, email: str, phone: str, company: str,  # noqa: A002
                 channel: str):
        self.name = name
        self.email = email
        self.phone = phone
        self.company = company
        self.channel = Channel(channel)
        self.status = LeadStatus.NEW
        self.owner_id: str | None = None
        self.assignment_keys: list[str] = []

    @classmethod
    def capture(cls, details: CaptureDetails, lead_id: UUID) -> Lead:
        return cls(id=lead_id, name=details.name, email=details.email, phone=details.phone,
                   company=details.company, channel=details.channel.value)

    def same_capture(self, details: CaptureDetails) -> bool:
        return (self.name, self.email, self.phone, self.company, self.channel) == (
            details.name, details.email, details.phone, details.company, details.channel)

    def assign(self, owner_id: str, idempotency_key: str) -> bool:
        """Assigns the lead; returns False when this key was already applied."""
        owner_id = plain_identifier("owner_id", owner_id)
        idempotency_key = plain_identifier("idempotency_key", idempotency_key)
        if idempotency_key in self.assignment_keys:
            return False
        self._assigned(owner_id=owner_id, idempotency_key=idempotency_key)
        return True

    @event("Assigned")
    def _assigned(self, owner_id: str, idempotency_key: str) -> None:
        self.owner_id = owner_id
        self.assignment_keys.append(idempotency_key)

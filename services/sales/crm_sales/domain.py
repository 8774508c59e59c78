"""Accounts and contacts: pure domain, no I/O. Fields are validated and normalised before
any event is triggered; a refused field is an `InvalidField` naming it.

An account has an owner (a subject, usually a sales rep). A contact is a person at one
account and has no owner of its own: whoever owns the account owns its contacts. So
reassigning an account moves its contacts with it, and the record-visibility rule
(crm_runtime.ownership) applies to a contact through its account.

Every event carries the record's whole state after it (the relay and the query model need
nothing else), who caused it, and for a change the names of the fields that changed. A
change that changes nothing records no event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import idna
from eventsourcing.domain import Aggregate, event

from crm_runtime import contact_points
from crm_runtime.contact_points import EMAIL_MAX, PHONE_MAX  # noqa: F401 - the adapters' limits
from crm_runtime.errors import InvalidField
from crm_runtime.text import IDENTIFIER_MAX as ID_MAX  # noqa: F401 - the adapters' limits
from crm_runtime.text import plain_identifier, text_field

NAME_MAX = 200
DOMAIN_MAX = 253
INDUSTRY_MAX = 100
REGION_MAX = 64

_ACCOUNT_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:account")
_CONTACT_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:contact")


class Tier(StrEnum):
    STRATEGIC = "strategic"
    ENTERPRISE = "enterprise"
    MID_MARKET = "mid_market"
    SMB = "smb"


# -- field rules (small local versions of the leads rules: services share no code) --------

def _text(field: str, raw: Any, maximum: int, required: bool) -> str | None:
    return text_field(field, raw, maximum, required=required)


def normalise_name(raw: Any) -> str:
    return _text("name", raw, NAME_MAX, required=True)  # type: ignore[return-value]


def normalise_industry(raw: Any) -> str | None:
    return _text("industry", raw, INDUSTRY_MAX, required=False)


def normalise_region(raw: Any) -> str | None:
    """A short code ("EMEA", "US-West") or a name ("Northern Europe"), as written."""
    return _text("region", raw, REGION_MAX, required=False)


def normalise_domain(raw: Any) -> str | None:
    """A host name, lower-case ASCII: internationalised labels become IDNA A-labels
    ("Bücher.Example" -> "xn--bcher-kva.example"). URLs, addresses and IPs are refused."""
    value = _text("domain", raw, DOMAIN_MAX, required=False)
    if value is None:
        return None
    if any(char in value for char in "/:@ ") or "://" in value:
        raise InvalidField("domain", f"{value!r} is not a domain name; give the host only, e.g. example.com")
    value = value.removesuffix(".")
    try:
        ascii_name = idna.encode(value, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidField("domain", f"{value!r} is not a valid domain name: {exc}") from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise InvalidField("domain", f"{value!r} is not a domain name; it needs a dot, e.g. example.com")
    if labels[-1].isdigit():
        raise InvalidField("domain", f"{value!r} is an address, not a domain name")
    if len(ascii_name) > DOMAIN_MAX:
        raise InvalidField("domain", f"must be at most {DOMAIN_MAX} characters once encoded")
    return ascii_name


def parse_tier(raw: Any) -> Tier | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return Tier(str(raw).strip().lower())
    except ValueError:
        allowed = ", ".join(tier.value for tier in Tier)
        raise InvalidField("tier", f"{str(raw)[:80]!r} is not a tier; use one of: {allowed}") from None


def normalise_email(raw: Any) -> str | None:
    return contact_points.normalise_email(raw, required=False)


def normalise_phone(raw: Any, default_region: str) -> str | None:
    """E.164, reading a number without a country code as one of `default_region`."""
    return contact_points.normalise_phone(raw, default_region)


def record_id(field: str, raw: Any) -> str:
    """A record id in its canonical form (a UUID)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidField(field, "is required")
    try:
        return str(raw if isinstance(raw, UUID) else UUID(str(raw).strip()))
    except ValueError:
        raise InvalidField(field, f"{str(raw)[:80]!r} is not a UUID") from None


def _clean(fields: Mapping[str, Any], rules: Mapping[str, Any], what: str) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(rules))
    if unknown:
        raise InvalidField(unknown[0], f"is not a field of {what}")
    return {name: rules[name](value) for name, value in fields.items()}


# -- accounts ---------------------------------------------------------------------------

ACCOUNT_FIELDS = ("name", "domain", "industry", "region", "tier", "owner_id")
_ACCOUNT_RULES = {
    "name": normalise_name,
    "domain": normalise_domain,
    "industry": normalise_industry,
    "region": normalise_region,
    "tier": parse_tier,
    "owner_id": lambda raw: plain_identifier("owner_id", raw),
}


@dataclass(frozen=True)
class AccountDetails:
    """An account's fields after validation."""

    name: str
    owner_id: str
    domain: str | None = None
    industry: str | None = None
    region: str | None = None
    tier: Tier | None = None


def validate_account(name: Any, owner_id: Any, domain: Any = None, industry: Any = None,
                     region: Any = None, tier: Any = None) -> AccountDetails:
    clean = _clean({"name": name, "domain": domain, "industry": industry, "region": region,
                    "tier": tier, "owner_id": owner_id}, _ACCOUNT_RULES, "an account")
    return AccountDetails(**clean)


def account_id_for(request_key: str | None) -> UUID:
    """The same idempotency key always names the same account; no key, a new account."""
    return uuid5(_ACCOUNT_NAMESPACE, request_key) if request_key else uuid4()


class Account(Aggregate):
    @event("Opened")
    def __init__(self, id: UUID, name: str, domain: str | None, industry: str | None,  # noqa: A002
                 region: str | None, tier: str | None, owner_id: str, opened_by: str):
        self._set(name, domain, industry, region, tier, owner_id)
        self.opened_by = opened_by
        # What it was opened with: a repeated create (same idempotency key) must match it.
        self.opened_as = (name, domain, industry, region, tier, owner_id)

    @classmethod
    def open(cls, details: AccountDetails, account_id: UUID, opened_by: str) -> Account:
        return cls(id=account_id, name=details.name, domain=details.domain,
                   industry=details.industry, region=details.region,
                   tier=details.tier.value if details.tier else None,
                   owner_id=details.owner_id, opened_by=opened_by)

    def same_opening(self, details: AccountDetails) -> bool:
        tier = details.tier.value if details.tier else None
        return self.opened_as == (details.name, details.domain, details.industry, details.region,
                                  tier, details.owner_id)

    def _set(self, name, domain, industry, region, tier, owner_id) -> None:
        self.name = name
        self.domain = domain
        self.industry = industry
        self.region = region
        self.tier = Tier(tier) if tier else None
        self.owner_id = owner_id

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ACCOUNT_FIELDS}

    def differences(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The given fields, validated, that differ from the account's (name and owner_id
        cannot be cleared; an unknown field is refused)."""
        clean = _clean(changes, _ACCOUNT_RULES, "an account")
        return {name: value for name, value in clean.items() if value != getattr(self, name)}

    def change(self, changes: Mapping[str, Any], changed_by: str) -> list[str]:
        """Applies the given fields; returns the names of those that changed (none: no event)."""
        differences = self.differences(changes)
        if not differences:
            return []
        state = {**self.state(), **differences}
        tier = state.pop("tier")
        changed = [name for name in ACCOUNT_FIELDS if name in differences]
        self._changed(**state, tier=tier.value if tier else None, changed_fields=changed,
                      changed_by=changed_by)
        return changed

    @event("Changed")
    def _changed(self, name: str, domain: str | None, industry: str | None, region: str | None,
                 tier: str | None, owner_id: str, changed_fields: list[str], changed_by: str) -> None:
        self._set(name, domain, industry, region, tier, owner_id)


# -- contacts ---------------------------------------------------------------------------

CONTACT_FIELDS = ("account_id", "name", "email", "phone")


def _contact_rules(default_region: str) -> dict[str, Any]:
    return {
        "account_id": lambda raw: record_id("account_id", raw),
        "name": normalise_name,
        "email": normalise_email,
        "phone": lambda raw: normalise_phone(raw, default_region),
    }


@dataclass(frozen=True)
class ContactDetails:
    account_id: str
    name: str
    email: str | None = None
    phone: str | None = None


def validate_contact(account_id: Any, name: Any, email: Any = None, phone: Any = None,
                     default_region: str = "US") -> ContactDetails:
    clean = _clean({"account_id": account_id, "name": name, "email": email, "phone": phone},
                   _contact_rules(default_region), "a contact")
    return ContactDetails(**clean)


def contact_id_for(request_key: str | None) -> UUID:
    return uuid5(_CONTACT_NAMESPACE, request_key) if request_key else uuid4()


class Contact(Aggregate):
    # lead_id and account_reused came with lead conversion: events stored before have
    # neither, and read as None and False.
    @event("Added")
    def __init__(self, id: UUID, account_id: str, name: str, email: str | None,  # noqa: A002
                 phone: str | None, added_by: str, lead_id: str | None = None,
                 account_reused: bool = False):
        self._set(account_id, name, email, phone)
        self.added_by = added_by
        self.added_as = (account_id, name, email, phone)
        # The lead it was converted from, and whether it joined an account found by its
        # email domain rather than the one its conversion named.
        self.lead_id = lead_id
        self.account_reused = account_reused

    @classmethod
    def add(cls, details: ContactDetails, contact_id: UUID, added_by: str) -> Contact:
        return cls(id=contact_id, account_id=details.account_id, name=details.name,
                   email=details.email, phone=details.phone, added_by=added_by)

    @classmethod
    def convert(cls, details: ContactDetails, contact_id: UUID, lead_id: str, account_reused: bool,
                added_by: str) -> Contact:
        """The contact a converted lead becomes (crm_sales.conversion)."""
        return cls(id=contact_id, account_id=details.account_id, name=details.name,
                   email=details.email, phone=details.phone, added_by=added_by,
                   lead_id=lead_id, account_reused=account_reused)

    def same_addition(self, details: ContactDetails) -> bool:
        return self.added_as == (details.account_id, details.name, details.email, details.phone)

    def _set(self, account_id, name, email, phone) -> None:
        self.account_id = account_id
        self.name = name
        self.email = email
        self.phone = phone

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONTACT_FIELDS}

    def differences(self, changes: Mapping[str, Any], default_region: str = "US") -> dict[str, Any]:
        clean = _clean(changes, _contact_rules(default_region), "a contact")
        return {name: value for name, value in clean.items() if value != getattr(self, name)}

    def change(self, changes: Mapping[str, Any], changed_by: str, default_region: str = "US") -> list[str]:
        differences = self.differences(changes, default_region)
        if not differences:
            return []
        changed = [name for name in CONTACT_FIELDS if name in differences]
        self._changed(**{**self.state(), **differences}, changed_fields=changed, changed_by=changed_by)
        return changed

    @event("Changed")
    def _changed(self, account_id: str, name: str, email: str | None, phone: str | None,
                 changed_fields: list[str], changed_by: str) -> None:
        self._set(account_id, name, email, phone)


# -- email domains --------------------------------------------------------------------------

_DOMAIN_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:email-domain")


class DomainAccount(Aggregate):
    """The account that converted leads writing from one email domain join.

    A uniqueness claim, one aggregate per domain (its id derives from the domain): the
    conversion that opens an account for a new domain saves the claim in the same
    transaction, so two conversions of the same new domain, in one batch, two partitions or
    two worker processes, cannot both open an account: the second save conflicts, and
    deciding again finds the claim. Internal bookkeeping: never published.
    """

    @event("Claimed")
    def __init__(self, id: UUID, domain: str, account_id: str):  # noqa: A002
        self.domain = domain
        self.account_id = account_id

    @staticmethod
    def id_for(domain: str) -> UUID:
        return uuid5(_DOMAIN_NAMESPACE, domain)

    @classmethod
    def claim(cls, domain: str, account_id: str) -> DomainAccount:
        return cls(id=cls.id_for(domain), domain=domain, account_id=account_id)

    def move_to(self, account_id: str) -> None:
        """Points the domain at another account (the one it named no longer has the domain)."""
        if account_id != self.account_id:
            self._moved(account_id=account_id)

    @event("Moved")
    def _moved(self, account_id: str) -> None:
        self.account_id = account_id

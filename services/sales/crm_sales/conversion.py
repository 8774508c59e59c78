"""Lead conversion, the sales side: what a `crm.leads.v1.LeadConverted` becomes. Pure: the
aggregates are found through `Lookups` and nothing is saved here (the consumer saves a
batch's plan with its position in one transaction: crm_sales.consumers).

For each converted lead, in order:

1. its contact (`contact_id`) exists already: nothing (a redelivery, or the same
   conversion published twice);
2. its account (`account_id`) exists already: the contact is added to it;
3. its email domain is a company's (not free mail, `crm_runtime.email_domains`) and an
   account has that domain: the contact joins that account (`account_reused`). The
   account is the one the domain's claim (`DomainAccount`) names, else the earliest one
   the query model lists with that domain, which the claim then names;
4. otherwise the account is opened with the lead's ids and details (name: the company,
   else the person's; domain: the email domain unless free mail; region: the country;
   owner: the lead's owner, else the `unassigned_owner`), the domain claimed for it, and
   the contact added to it.

When the event names an opportunity (`opportunity_name`, and optionally
`opportunity_amount`), the plan also opens it on the contact's account, once: its id derives
from the lead id (`opportunity_id_for_lead`), so a redelivery finds it and opens nothing.
It opens in the pipeline's first open stage, owned by the account's owner, expected to close
`close_days` after the conversion day, for the amount given (none: zero in the base
currency). A refused opportunity name or amount drops the opportunity (logged), never the
customer.

Within a batch the plan sees what it decided before: two leads of the same new domain end
in one account, the second joining the first. The contact's owner is its account's owner,
as for every contact.

The message comes from another service: required values that are not usable (the ids,
the person's name) refuse the conversion with `InvalidField` (the consumer dead-letters
it after its retries); optional values that the sales rules refuse are dropped, so that a
phone number sales reads differently does not keep a customer out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from crm_runtime import logs
from crm_runtime.email_domains import email_domain_of, is_free_mail
from crm_runtime.errors import InvalidField
from crm_runtime.money import Money
from crm_runtime.text import text_field
from crm_sales.domain import (
    Account,
    Contact,
    DomainAccount,
    normalise_domain,
    normalise_email,
    normalise_industry,
    normalise_name,
    normalise_phone,
    normalise_region,
    plain_identifier,
    record_id,
    validate_account,
    validate_contact,
)
from crm_sales.opportunities import NAME_MAX as OPPORTUNITY_NAME_MAX
from crm_sales.opportunities import Opportunity, validate_opportunity
from crm_sales.pipeline import Pipeline

log = logs.get(__name__)

# Who the conversion's events name as having opened the account and added the contact.
CONVERTED_BY = "service:sales"
_LEAD_OPPORTUNITY_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:lead-opportunity")


def opportunity_id_for_lead(lead_id: str) -> UUID:
    """The one opportunity a converted lead may open (stable: a redelivery finds it)."""
    return uuid5(_LEAD_OPPORTUNITY_NAMESPACE, lead_id)


@dataclass(frozen=True)
class OpportunityRequest:
    """The opportunity a converted lead asks for: its name and, if given, its amount."""

    name: str
    amount: Money | None = None


@dataclass(frozen=True)
class Conversion:
    """A converted lead as sales reads it: validated and normalised by the sales rules."""

    lead_id: str
    account_id: UUID
    contact_id: UUID
    name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    industry: str | None = None
    country: str | None = None
    owner_id: str | None = None
    # Lower-case ASCII (as accounts keep domains); None when there is none or it is unusable.
    email_domain: str | None = None
    opportunity: OpportunityRequest | None = None
    converted_on: date | None = None

    @property
    def company_domain(self) -> str | None:
        """The email domain when it names a company (not a free-mail provider)."""
        return None if is_free_mail(self.email_domain) else self.email_domain

    @classmethod
    def from_message(cls, message: Any, default_region: str = "US") -> Conversion:
        """From a `crm.leads.v1.LeadConverted`; refuses unusable ids or names (InvalidField)."""
        lead_id = plain_identifier("lead_id", message.lead_id)
        account_id = UUID(record_id("account_id", message.account_id))
        contact_id = UUID(record_id("contact_id", message.contact_id))
        if account_id == contact_id:
            raise InvalidField("contact_id", "must differ from account_id")
        email = _optional(normalise_email, message.email, lead_id)
        raw_domain = message.email_domain or email_domain_of(email or message.email)
        return cls(
            lead_id=lead_id, account_id=account_id, contact_id=contact_id,
            name=normalise_name(message.name),
            email=email,
            phone=_optional(lambda raw: normalise_phone(raw, default_region), message.phone, lead_id),
            company=_optional(normalise_name, message.company, lead_id, "company"),
            industry=_optional(normalise_industry, message.industry, lead_id),
            country=_optional(normalise_region, message.country.upper(), lead_id, "country"),
            owner_id=_optional(lambda raw: plain_identifier("owner_id", raw), message.owner_id, lead_id),
            email_domain=_optional(normalise_domain, raw_domain, lead_id, "email_domain"),
            opportunity=_optional(_opportunity_request, message, lead_id, "opportunity")
            if message.opportunity_name.strip() else None,
            converted_on=(message.converted_at.ToDatetime(tzinfo=UTC).date() if message.HasField("converted_at")
                          else None))


def _opportunity_request(message: Any) -> OpportunityRequest:
    name = text_field("opportunity_name", message.opportunity_name, OPPORTUNITY_NAME_MAX, required=True)
    assert name is not None  # required
    amount = None
    if message.HasField("opportunity_amount"):
        amount = Money.from_proto(message.opportunity_amount, field="opportunity_amount")
    return OpportunityRequest(name, amount)


def _optional(rule: Callable[[Any], Any], raw: Any, lead_id: str, name: str | None = None) -> Any:
    """The value by the rule; None when empty or refused (logged: the field is dropped)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return rule(raw)
    except InvalidField as exc:
        log.warning("conversion.field_dropped", lead_id=lead_id, field=name or exc.field, reason=str(exc))
        return None


class Lookups(Protocol):
    """What the plan reads from the sales store and its query model."""

    def account(self, account_id: UUID) -> Account | None: ...

    def opportunity(self, opportunity_id: UUID) -> Opportunity | None: ...

    def pipeline(self) -> Pipeline: ...

    def contact(self, contact_id: UUID) -> Contact | None: ...

    def domain_account(self, domain: str) -> DomainAccount | None: ...

    def account_with_domain(self, domain: str) -> UUID | None:
        """The earliest account opened with this domain, by the query model."""
        ...


@dataclass(frozen=True)
class Outcome:
    conversion: Conversion
    # "opened": a new account with the contact; "joined": the contact joined an existing
    # account; "redelivered": the contact existed, nothing changed.
    result: str
    account_id: UUID
    # The aggregates this conversion changed (their events are to be saved).
    changed: tuple[Any, ...] = ()

    @property
    def account_reused(self) -> bool:
        return self.result == "joined" and self.account_id != self.conversion.account_id


@dataclass
class ConversionPlan:
    """The aggregates a batch of conversions changes, each conversion seeing the earlier ones."""

    lookups: Lookups
    unassigned_owner: str
    converted_by: str = CONVERTED_BY
    # A converted lead's opportunity: its currency when no amount is given, and how many
    # days after the conversion it is expected to close.
    base_currency: str = "EUR"
    close_days: int = 30
    outcomes: list[Outcome] = field(default_factory=list)
    _accounts: dict[UUID, Account | None] = field(default_factory=dict)
    _contacts: dict[UUID, Contact | None] = field(default_factory=dict)
    _claims: dict[str, DomainAccount | None] = field(default_factory=dict)
    _opportunities: dict[UUID, Opportunity | None] = field(default_factory=dict)
    _changed: dict[UUID, Any] = field(default_factory=dict)

    @property
    def aggregates(self) -> list[Any]:
        """Every aggregate with new events, each once, in the order first changed."""
        return list(self._changed.values())

    def convert(self, conversion: Conversion) -> Outcome:
        outcome = self._convert(conversion)
        opportunity = self._open_opportunity(conversion, outcome.account_id)
        if opportunity is None:
            return self._done(outcome)
        self._changed[opportunity.id] = opportunity
        return self._done(Outcome(conversion, outcome.result, outcome.account_id, (*outcome.changed, opportunity)))

    def _convert(self, conversion: Conversion) -> Outcome:
        if self._contact(conversion.contact_id) is not None:
            return Outcome(conversion, "redelivered", self._contact_account(conversion))
        account = self._account(conversion.account_id)
        domain = conversion.company_domain
        result = "joined"
        changed: list[Any] = []
        if account is None and domain is not None:
            account, claim = self._account_for_domain(domain)
            if claim is not None:
                changed.append(claim)
        if account is None:
            account = self._open(conversion, domain)
            changed.append(account)
            result = "opened"
            if domain is not None:
                changed.append(self._claim_for(domain, account))
        contact = Contact.convert(
            validate_contact(str(account.id), conversion.name, conversion.email, conversion.phone),
            conversion.contact_id, lead_id=conversion.lead_id,
            account_reused=account.id != conversion.account_id, added_by=self.converted_by)
        self._contacts[contact.id] = contact
        changed.append(contact)
        for aggregate in changed:
            self._changed[aggregate.id] = aggregate
        return Outcome(conversion, result, account.id, tuple(changed))

    def _open_opportunity(self, conversion: Conversion, account_id: UUID) -> Opportunity | None:
        """The lead's opportunity, opened once on its account (None: none asked, or it exists)."""
        request = conversion.opportunity
        if request is None:
            return None
        opportunity_id = opportunity_id_for_lead(conversion.lead_id)
        if opportunity_id not in self._opportunities:
            self._opportunities[opportunity_id] = self.lookups.opportunity(opportunity_id)
        if self._opportunities[opportunity_id] is not None:
            return None
        account = self._account(account_id)
        if account is None:  # never: the contact's account was found or opened above
            return None
        pipeline = self.lookups.pipeline()
        day = conversion.converted_on or datetime.now(UTC).date()
        amount = request.amount or Money(Decimal(0), self.base_currency).round_half_even()
        try:
            details = validate_opportunity(pipeline, request.name, str(account.id), amount,
                                           day + timedelta(days=self.close_days), account.owner_id, None)
        except InvalidField as exc:
            log.warning("conversion.field_dropped", lead_id=conversion.lead_id, field="opportunity",
                        reason=str(exc))
            return None
        opportunity = Opportunity.open(details, pipeline, opportunity_id, opened_by=self.converted_by)
        self._opportunities[opportunity_id] = opportunity
        return opportunity

    def _done(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        return outcome

    def _contact_account(self, conversion: Conversion) -> UUID:
        contact = self._contact(conversion.contact_id)
        return UUID(contact.account_id) if contact is not None else conversion.account_id

    def _open(self, conversion: Conversion, domain: str | None) -> Account:
        details = validate_account(
            name=conversion.company or conversion.name,
            owner_id=conversion.owner_id or self.unassigned_owner,
            domain=domain, industry=conversion.industry, region=conversion.country)
        account = Account.open(details, conversion.account_id, opened_by=self.converted_by)
        self._accounts[account.id] = account
        return account

    def _account_for_domain(self, domain: str) -> tuple[Account | None, DomainAccount | None]:
        """The account with this domain, and the claim if it had to change to name it."""
        claim = self._claim(domain)
        if claim is not None:
            claimed = self._account(UUID(claim.account_id))
            if claimed is not None and claimed.domain == domain:
                return claimed, None
        found = self.lookups.account_with_domain(domain)
        account = self._account(found) if found is not None else None
        if account is None or account.domain != domain:
            return None, None
        return account, self._claim_for(domain, account)

    def _claim_for(self, domain: str, account: Account) -> DomainAccount:
        claim = self._claim(domain)
        if claim is None:
            claim = DomainAccount.claim(domain, str(account.id))
            self._claims[domain] = claim
        else:
            claim.move_to(str(account.id))
        return claim

    def _account(self, account_id: UUID) -> Account | None:
        if account_id not in self._accounts:
            self._accounts[account_id] = self.lookups.account(account_id)
        return self._accounts[account_id]

    def _contact(self, contact_id: UUID) -> Contact | None:
        if contact_id not in self._contacts:
            self._contacts[contact_id] = self.lookups.contact(contact_id)
        return self._contacts[contact_id]

    def _claim(self, domain: str) -> DomainAccount | None:
        if domain not in self._claims:
            self._claims[domain] = self.lookups.domain_account(domain)
        return self._claims[domain]

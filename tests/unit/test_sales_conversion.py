"""Lead conversion on the sales side: the pure plan (crm_sales.conversion) over dictionaries,
and the consumer's decision over the sales application on eventsourcing's in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest

from crm.leads.v1 import events_pb2 as leads_events
from crm.sales.v1 import events_pb2 as sales_events
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.consumer import Delivery
from crm_runtime.email_domains import FREE_MAIL_DOMAINS, email_domain_of, is_free_mail
from crm_runtime.errors import InvalidField
from crm_runtime.settings import PlatformSettings
from crm_sales.adapters.messages import EVENTS
from crm_sales.application import OpenAccount, SalesApplication
from crm_sales.consumers import decide_conversions
from crm_sales.conversion import CONVERTED_BY, Conversion, ConversionPlan
from crm_sales.domain import Account, Contact, DomainAccount, validate_account

UNASSIGNED = "unassigned"


def lead_converted(lead: str, email: str = "ada@engines.example", company: str = "Analytical Engines",
                   **fields) -> leads_events.LeadConverted:
    """As the leads service would publish it: ids derived from the lead id."""
    values = dict(lead_id=lead, account_id=str(uuid5(NAMESPACE_URL, f"account/{lead}")),
                  contact_id=str(uuid5(NAMESPACE_URL, f"contact/{lead}")), name="Ada Lovelace",
                  email=email, phone="+44 20 7183 8750", company=company, title="Director",
                  industry="Machinery", company_size=40, country="gb", owner_id="rep-ada",
                  email_domain=email_domain_of(email) or "")
    values.update(fields)
    return leads_events.LeadConverted(**values)


def conversion(lead: str, **fields) -> Conversion:
    return Conversion.from_message(lead_converted(lead, **fields))


class Dicts:
    """`Lookups` over dictionaries: what the store and the query model hold."""

    def __init__(self, *aggregates):
        self.aggregates = {a.id: a for a in aggregates}
        self.reads: list[str] = []

    def _get(self, cls, aggregate_id):
        found = self.aggregates.get(aggregate_id)
        return found if isinstance(found, cls) else None

    def account(self, account_id):
        return self._get(Account, account_id)

    def contact(self, contact_id):
        return self._get(Contact, contact_id)

    def opportunity(self, opportunity_id):
        from crm_sales.opportunities import Opportunity

        return self._get(Opportunity, opportunity_id)

    def pipeline(self):
        from crm_sales.pipeline import DEFAULT_PIPELINE

        return DEFAULT_PIPELINE

    def domain_account(self, domain):
        return self._get(DomainAccount, DomainAccount.id_for(domain))

    def account_with_domain(self, domain):
        self.reads.append(domain)
        found = sorted((a for a in self.aggregates.values() if isinstance(a, Account) and a.domain == domain),
                       key=lambda a: a.created_on)
        return found[0].id if found else None

    def save(self, aggregates):
        for aggregate in aggregates:
            aggregate.collect_events()
            self.aggregates[aggregate.id] = aggregate


def account(name="Engines Ltd", domain="engines.example", owner="rep-grace") -> Account:
    return Account.open(validate_account(name, owner, domain), uuid5(NAMESPACE_URL, name), opened_by="grace")


def plan(lookups) -> ConversionPlan:
    return ConversionPlan(lookups, UNASSIGNED)


# -- the message, as sales reads it ------------------------------------------------------

def test_a_conversion_is_read_with_the_sales_rules():
    c = conversion("lead-1", email="Ada@Engines.EXAMPLE", email_domain="", country="gb")
    assert c.email == "Ada@engines.example" and c.email_domain == "engines.example"
    assert (c.phone, c.country, c.owner_id, c.company) == ("+442071838750", "GB", "rep-ada", "Analytical Engines")
    assert isinstance(c.account_id, UUID) and c.account_id != c.contact_id
    assert conversion("lead-1", email_domain="Bücher.Example").email_domain == "xn--bcher-kva.example"


@pytest.mark.parametrize("fields,field", [
    ({"account_id": "nope"}, "account_id"),
    ({"contact_id": ""}, "contact_id"),
    ({"lead_id": ""}, "lead_id"),
    ({"name": "  "}, "name"),
    ({"account_id": "00000000-0000-0000-0000-000000000001",
      "contact_id": "00000000-0000-0000-0000-000000000001"}, "contact_id"),
])
def test_unusable_ids_or_names_refuse_the_conversion(fields, field):
    with pytest.raises(InvalidField) as refused:
        conversion("lead-1", **fields)
    assert refused.value.field == field


def test_optional_values_sales_refuses_are_dropped_not_fatal():
    c = conversion("lead-1", phone="12345", industry="i" * 500, owner_id="o" * 300, email_domain="not a domain")
    assert (c.phone, c.industry, c.owner_id) == (None, None, None)
    assert c.email_domain is None  # an unusable domain matches nothing


def test_free_mail_domains_are_one_runtime_list():
    assert {"gmail.com", "outlook.com", "yahoo.com", "hotmail.com"} <= FREE_MAIL_DOMAINS
    assert is_free_mail("GMail.com.") and not is_free_mail("engines.example") and not is_free_mail(None)
    assert all(d == d.lower().strip() and "." in d for d in FREE_MAIL_DOMAINS)
    assert email_domain_of("odd\"@\"name@Mail.Example.") == "mail.example" and email_domain_of("x") is None


# -- the plan ------------------------------------------------------------------------------

def test_a_new_domain_opens_the_account_with_the_lead_ids_and_claims_the_domain():
    store = Dicts()
    p = plan(store)
    c = conversion("lead-1")
    outcome = p.convert(c)
    assert outcome.result == "opened" and outcome.account_id == c.account_id and not outcome.account_reused
    opened, claim, contact = p.aggregates
    assert (opened.id, opened.name, opened.domain, opened.industry, opened.region, opened.owner_id,
            opened.opened_by) == (c.account_id, "Analytical Engines", "engines.example", "Machinery", "GB",
                                  "rep-ada", CONVERTED_BY)
    assert (claim.id, claim.account_id) == (DomainAccount.id_for("engines.example"), str(c.account_id))
    assert (contact.id, contact.account_id, contact.name, contact.email, contact.phone, contact.lead_id,
            contact.account_reused) == (c.contact_id, str(c.account_id), "Ada Lovelace", "ada@engines.example",
                                        "+442071838750", "lead-1", False)


def test_a_redelivered_conversion_changes_nothing():
    store = Dicts()
    first = plan(store)
    first.convert(conversion("lead-1"))
    store.save(first.aggregates)
    again = plan(store)
    outcome = again.convert(conversion("lead-1"))
    assert outcome.result == "redelivered" and again.aggregates == [] and outcome.changed == ()
    # ... also within one batch (the same conversion published twice under two event ids)
    batch = plan(Dicts())
    batch.convert(conversion("lead-2"))
    assert batch.convert(conversion("lead-2")).result == "redelivered" and len(batch.aggregates) == 3


def test_two_leads_of_one_new_domain_in_one_batch_share_one_account():
    p = plan(Dicts())
    first = p.convert(conversion("lead-1", email="ada@engines.example"))
    second = p.convert(conversion("lead-2", email="charles@engines.example", name="Charles Babbage",
                                  company="Engines (UK)"))
    assert first.result == "opened" and second.result == "joined" and second.account_reused
    assert second.account_id == first.account_id != second.conversion.account_id
    accounts = [a for a in p.aggregates if isinstance(a, Account)]
    contacts = [a for a in p.aggregates if isinstance(a, Contact)]
    assert len(accounts) == 1 and [c.account_id for c in contacts] == [str(first.account_id)] * 2
    assert contacts[1].account_reused and contacts[1].lead_id == "lead-2"


def test_an_existing_account_with_the_domain_is_joined_and_claimed():
    existing = account()
    store = Dicts(existing)
    p = plan(store)
    outcome = p.convert(conversion("lead-1", email="ada@ENGINES.example"))
    assert outcome.result == "joined" and outcome.account_id == existing.id and outcome.account_reused
    claim, contact = p.aggregates
    assert claim.account_id == str(existing.id) and contact.account_id == str(existing.id)
    store.save(p.aggregates)
    # The claim answers next time, without the query model.
    later = plan(store)
    store.reads.clear()
    assert later.convert(conversion("lead-2")).account_id == existing.id and store.reads == []
    assert [type(a) for a in later.aggregates] == [Contact]


def test_a_claim_whose_account_changed_domain_moves_to_the_next_one():
    first, second = account("First", "engines.example"), account("Second", "other.example")
    store = Dicts(first, second)
    p = plan(store)
    p.convert(conversion("lead-1"))
    store.save(p.aggregates)
    first.change({"domain": "moved.example"}, changed_by="grace")
    second.change({"domain": "engines.example"}, changed_by="grace")
    store.save([first, second])
    later = plan(store)
    assert later.convert(conversion("lead-2")).account_id == second.id
    claim = next(a for a in later.aggregates if isinstance(a, DomainAccount))
    assert claim.account_id == str(second.id) and claim.version == 2


def test_free_mail_leads_get_accounts_of_their_own():
    p = plan(Dicts(account("Gmail account", "gmail.com")))
    one = p.convert(conversion("lead-1", email="ada@gmail.com", company=""))
    two = p.convert(conversion("lead-2", email="bob@gmail.com", company="", name="Bob"))
    assert (one.result, two.result) == ("opened", "opened") and one.account_id != two.account_id
    accounts = [a for a in p.aggregates if isinstance(a, Account)]
    assert [(a.name, a.domain) for a in accounts] == [("Ada Lovelace", None), ("Bob", None)]
    assert not any(isinstance(a, DomainAccount) for a in p.aggregates)


def test_an_unassigned_lead_opens_an_account_for_the_unassigned_owner():
    p = plan(Dicts())
    p.convert(conversion("lead-1", owner_id=""))
    assert p.aggregates[0].owner_id == UNASSIGNED


def test_an_existing_account_with_the_conversion_id_takes_the_contact():
    c = conversion("lead-1", email="ada@gmail.com")
    existing = Account.open(validate_account("Opened before", "rep-ada"), c.account_id, opened_by="x")
    p = plan(Dicts(existing))
    outcome = p.convert(c)
    assert outcome.result == "joined" and not outcome.account_reused
    assert [type(a) for a in p.aggregates] == [Contact]


def test_contact_added_carries_the_lead():
    p = plan(Dicts())
    p.convert(conversion("lead-1"))
    contact = p.aggregates[-1]
    message = EVENTS.to_message(contact.collect_events()[0])
    assert isinstance(message, sales_events.ContactAdded)
    assert (message.lead_id, message.account_reused, message.added_by) == ("lead-1", False, CONVERTED_BY)
    assert EVENTS.to_message(p.aggregates[1].collect_events()[0]) is None  # the claim is internal


# -- the consumer's decision over the application -----------------------------------------

def delivery(message, offset: int, event_id: str | None = None) -> Delivery:
    envelope = EventEnvelope(id=event_id or f"e-{offset}", source="crm/leads", subject=message.lead_id,
                             time=datetime.now(UTC), message=message, context={"correlation_id": f"c-{offset}"})
    return Delivery(envelope, "crm.leads.events.v1", 0, offset)


def test_the_consumer_decides_a_batch_against_the_store_and_the_query_model():
    sales = SalesApplication(PlatformSettings(store="memory"))
    opened, _ = sales.open_account(OpenAccount(name="Known Co", domain="known.example", owner_id="rep-linus"))
    batch = [delivery(lead_converted("lead-1", email="a@new.example"), 0),
             delivery(leads_events.LeadCaptured(lead_id="lead-x"), 1),
             delivery(lead_converted("lead-2", email="b@new.example"), 2),
             delivery(lead_converted("lead-3", email="c@known.example"), 3)]
    aggregates = decide_conversions(sales, UNASSIGNED, batch)
    sales.save(*aggregates)
    contacts = {a.lead_id: a for a in aggregates if isinstance(a, Contact)}
    new_account = UUID(lead_converted("lead-1").account_id)
    assert contacts["lead-1"].account_id == contacts["lead-2"].account_id == str(new_account)
    assert contacts["lead-3"].account_id == opened.id and contacts["lead-3"].account_reused
    assert sales.get_account(new_account).domain == "new.example"
    assert decide_conversions(sales, UNASSIGNED, batch) == []  # a redelivery


# -- a converted lead with an opportunity ----------------------------------------------------

def test_a_conversion_with_an_opportunity_opens_it_once_on_the_contacts_account():
    from crm.common.v1 import money_pb2
    from crm_sales.conversion import opportunity_id_for_lead

    sales = SalesApplication(PlatformSettings(store="memory"))
    known, _ = sales.open_account(OpenAccount(name="Known Co", domain="known.example", owner_id="rep-linus"))
    message = lead_converted("lead-9", email="c@known.example")
    message.opportunity_name = "Known Co: 40 seats"
    message.opportunity_amount.CopyFrom(money_pb2.Money(amount="12000.00", currency_code="EUR"))
    message.converted_at.FromDatetime(datetime(2025, 3, 1, 10, tzinfo=UTC))
    batch = [delivery(message, 0), delivery(message, 1)]  # delivered twice in one batch
    aggregates = decide_conversions(sales, UNASSIGNED, batch)
    sales.save(*aggregates)
    opportunity = sales.get_opportunity(opportunity_id_for_lead("lead-9"))
    assert (opportunity.name, opportunity.account_id, opportunity.owner_id) == (
        "Known Co: 40 seats", known.id, "rep-linus")
    assert (str(opportunity.amount), opportunity.stage, opportunity.expected_close_on) == (
        "12000.00 EUR", "prospecting", "2025-03-31")
    assert decide_conversions(sales, UNASSIGNED, batch) == []  # delivered again later: nothing


def test_a_redelivered_conversion_that_gained_an_opportunity_opens_it_and_no_amount_is_zero():
    from crm_sales.conversion import opportunity_id_for_lead

    sales = SalesApplication(PlatformSettings(store="memory"))
    first = lead_converted("lead-7", email="x@acme.example")
    sales.save(*decide_conversions(sales, UNASSIGNED, [delivery(first, 0)]))
    again = lead_converted("lead-7", email="x@acme.example")
    again.opportunity_name = "Acme pilot"
    aggregates = decide_conversions(sales, UNASSIGNED, [delivery(again, 1)])
    assert [type(a).__name__ for a in aggregates] == ["Opportunity"]
    sales.save(*aggregates)
    assert str(sales.get_opportunity(opportunity_id_for_lead("lead-7")).amount) == "0.00 EUR"


def test_an_unusable_opportunity_is_dropped_never_the_customer():
    from crm.common.v1 import money_pb2

    message = lead_converted("lead-8", email="y@acme.example")
    message.opportunity_name = "Deal"
    message.opportunity_amount.CopyFrom(money_pb2.Money(amount="-5.00", currency_code="EUR"))
    assert Conversion.from_message(lead_converted("lead-8")).opportunity is None
    conversion = Conversion.from_message(message)
    assert conversion.opportunity is None and conversion.name

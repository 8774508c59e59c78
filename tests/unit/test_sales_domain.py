"""Accounts and contacts: field rules, events, and what a change records."""

from uuid import uuid4

import pytest

from crm_runtime.errors import InvalidField
from crm_runtime.events import aggregate_event_classes
from crm_sales.domain import (
    Account,
    Contact,
    Tier,
    account_id_for,
    contact_id_for,
    normalise_domain,
    normalise_email,
    normalise_phone,
    normalise_region,
    parse_tier,
    validate_account,
    validate_contact,
)


def acme(**overrides) -> Account:
    details = validate_account(**{"name": "Acme", "owner_id": "rep-1", "domain": "acme.example",
                                  "tier": "smb", **overrides})
    return Account.open(details, uuid4(), opened_by="rep-1")


@pytest.mark.parametrize("raw,normalised", [
    ("Example.COM", "example.com"),
    ("  www.example.com. ", "www.example.com"),
    ("Bücher.Example", "xn--bcher-kva.example"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("", None),
    (None, None),
])
def test_domains_are_lower_case_idna(raw, normalised):
    assert normalise_domain(raw) == normalised


@pytest.mark.parametrize("raw", ["https://example.com", "example.com/about", "ada@example.com",
                                 "example.com:8080", "localhost", "exa_mple.com", "-bad.example",
                                 "a..example", "10.0.0.1", "exa mple.com", "x" * 64 + ".com"])
def test_what_is_not_a_domain_is_refused_naming_the_field(raw):
    with pytest.raises(InvalidField) as caught:
        normalise_domain(raw)
    assert caught.value.field == "domain"


def test_tiers_are_an_enum():
    assert parse_tier("Mid_Market") is Tier.MID_MARKET
    assert parse_tier(None) is None and parse_tier("") is None
    with pytest.raises(InvalidField, match="use one of: strategic, enterprise, mid_market, smb"):
        parse_tier("gold")


def test_email_phone_and_region_rules():
    assert normalise_email("Ada@Example.COM") == "Ada@example.com"
    assert normalise_email(" ") is None
    with pytest.raises(InvalidField) as caught:
        normalise_email("not-an-email")
    assert caught.value.field == "email"
    assert normalise_phone("+44 20 7183 8750", "US") == "+442071838750"
    assert normalise_phone("(202) 555-0143", "US") == "+12025550143"
    assert normalise_phone("", "US") is None
    for bad in ("12345", "call me"):
        with pytest.raises(InvalidField) as caught:
            normalise_phone(bad, "US")
        assert caught.value.field == "phone"
    assert normalise_region("  US  West ") == "US West"
    with pytest.raises(InvalidField, match="region: must be at most 64"):
        normalise_region("x" * 65)


@pytest.mark.parametrize("fields,field", [
    ({"name": "  "}, "name"),
    ({"name": None}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "A\x00B"}, "name"),
    ({"owner_id": ""}, "owner_id"),
    ({"owner_id": "r" * 201}, "owner_id"),
    ({"industry": "i" * 101}, "industry"),
    ({"tier": "platinum"}, "tier"),
])
def test_an_invalid_account_names_the_field(fields, field):
    with pytest.raises(InvalidField) as caught:
        validate_account(**{"name": "Acme", "owner_id": "rep-1", **fields})
    assert caught.value.field == field


def test_opening_records_the_whole_account():
    account = acme(name="  Acme   Corp ", industry="Manufacturing", region="EMEA")
    (opened,) = account.collect_events()
    assert isinstance(opened, Account.Opened)
    assert (opened.name, opened.domain, opened.tier, opened.owner_id) == ("Acme Corp", "acme.example", "smb", "rep-1")
    assert account.tier is Tier.SMB and account.version == 1 and account.opened_by == "rep-1"


def test_a_change_records_only_what_changed_with_the_whole_state():
    account = acme()
    account.collect_events()
    assert account.change({"name": "Acme", "tier": "smb"}, changed_by="rep-1") == []
    assert account.collect_events() == []  # nothing changed: no event
    changed = account.change({"tier": "enterprise", "domain": None, "name": "Acme"}, changed_by="boss")
    assert changed == ["domain", "tier"]
    (event,) = account.collect_events()
    assert isinstance(event, Account.Changed)
    assert event.changed_fields == ["domain", "tier"] and event.changed_by == "boss"
    assert (event.name, event.domain, event.tier, event.owner_id) == ("Acme", None, "enterprise", "rep-1")
    assert account.version == 2 and account.domain is None


def test_a_change_refuses_unknown_fields_and_clearing_required_ones():
    account = acme()
    for changes, field in [({"colour": "red"}, "colour"), ({"name": None}, "name"),
                           ({"owner_id": None}, "owner_id"), ({"domain": "no"}, "domain")]:
        with pytest.raises(InvalidField) as caught:
            account.change(changes, changed_by="rep-1")
        assert caught.value.field == field
    assert account.version == 1


def test_contacts_belong_to_an_account_and_record_their_changes():
    account_id = str(uuid4())
    details = validate_contact(account_id.upper(), " Ada  Lovelace ", "Ada@Example.com", "+44 20 7183 8750")
    assert details.account_id == account_id and details.name == "Ada Lovelace"
    contact = Contact.add(details, uuid4(), added_by="rep-1")
    assert contact.same_addition(details)
    other = str(uuid4())
    changed = contact.change({"account_id": other, "phone": None, "name": "Ada Lovelace"}, "rep-1")
    assert changed == ["account_id", "phone"]
    added, changed = contact.collect_events()
    assert isinstance(added, Contact.Added) and added.email == "Ada@example.com"
    assert isinstance(changed, Contact.Changed) and changed.account_id == other and changed.phone is None
    for bad, field in [({"account_id": "nope"}, "account_id"), ({"email": "x@"}, "email"),
                       ({"owner_id": "rep-2"}, "owner_id")]:
        with pytest.raises(InvalidField) as caught:
            contact.change(bad, "rep-1")
        assert caught.value.field == field
    with pytest.raises(InvalidField) as caught:
        validate_contact(None, "Ada")
    assert caught.value.field == "account_id"


def test_idempotency_keys_name_one_record_per_kind():
    assert account_id_for("k") == account_id_for("k") != contact_id_for("k")
    assert account_id_for(None) != account_id_for(None)


def test_the_aggregates_record_exactly_these_events():
    assert {cls.__name__ for cls in aggregate_event_classes(Account)} == {"Opened", "Changed"}
    assert {cls.__name__ for cls in aggregate_event_classes(Contact)} == {"Added", "Changed"}

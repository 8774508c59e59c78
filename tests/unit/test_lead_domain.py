from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crm_leads.domain import (
    TRANSITIONS,
    ActivityKind,
    Campaign,
    Channel,
    Lead,
    LeadStatus,
    activity_id_for,
    campaign_id_for,
    lead_id_for,
    validate_campaign,
    validate_capture,
)
from crm_runtime.errors import Conflict, FailedPrecondition, InvalidField
from crm_runtime.money import Money


def capture(**overrides):
    values = dict(name=" Ada Lovelace ", email="Ada@Example.COM", phone="020 7183 8750",
                  company="Analytical Engines", channel="Web")
    values.update(overrides)
    return validate_capture(**values, default_region="GB")


def test_capture_normalises_email_phone_name_and_channel():
    details = capture()
    assert details.name == "Ada Lovelace"
    assert details.email == "Ada@example.com"  # domain lower-cased, local part kept
    assert details.phone == "+442071838750"
    assert details.channel is Channel.WEB


def test_phone_is_optional():
    assert capture(phone="").phone == ""
    assert capture(phone=None).phone == ""


@pytest.mark.parametrize("field,value", [
    ("name", ""), ("name", "   "), ("name", "x" * 201),
    ("email", ""), ("email", "not-an-email"), ("email", "a@b"),
    ("phone", "12"), ("phone", "not a phone"),
    ("channel", "fax"), ("channel", ""),
    ("company", "c" * 201),
])
def test_bad_input_names_the_field(field, value):
    with pytest.raises(InvalidField) as caught:
        capture(**{field: value})
    assert caught.value.field == field


def test_same_request_key_names_the_same_lead():
    assert lead_id_for("key-1") == lead_id_for("key-1")
    assert lead_id_for("key-1") != lead_id_for("key-2")
    assert lead_id_for(None) != lead_id_for(None)


def test_new_lead_is_new_and_unowned():
    lead = Lead.capture(capture(), lead_id_for("k"))
    assert lead.status == "new" and lead.owner_id is None and lead.version == 1


def test_assignment_with_the_same_key_is_applied_once():
    lead = Lead.capture(capture(), lead_id_for("k"))
    assert lead.assign("rep-1", "cmd-1") is True
    assert lead.assign("rep-2", "cmd-1") is False
    assert lead.owner_id == "rep-1" and lead.version == 2
    assert lead.assign("rep-2", "cmd-2") is True
    assert lead.owner_id == "rep-2" and lead.version == 3


@pytest.mark.parametrize("owner,key,field", [
    ("", "k", "owner_id"), ("rep", "", "idempotency_key"), ("r" * 201, "k", "owner_id"),
    ("rep", "k" * 201, "idempotency_key"), ("rep\x00", "k", "owner_id"), ("rep", "a\nb", "idempotency_key")])
def test_assignment_needs_owner_and_key(owner, key, field):
    lead = Lead.capture(capture(), lead_id_for("k"))
    with pytest.raises(InvalidField) as caught:
        lead.assign(owner, key)
    assert caught.value.field == field
    assert lead.version == 1


# -- the new fields at capture --------------------------------------------------------------

def test_capture_takes_title_industry_size_country_and_campaign():
    details = capture(title=" CTO ", industry="Machinery", company_size=250, country="gb",
                      campaign_id="6f1c1b1e-0000-4000-8000-000000000001")
    assert (details.title, details.industry, details.company_size, details.country) == ("CTO", "Machinery", 250, "GB")
    assert details.campaign_id == "6f1c1b1e-0000-4000-8000-000000000001"
    lead = Lead.capture(details, lead_id_for(None))
    assert lead.country == "GB" and lead.company_size == 250 and lead.grade is None


@pytest.mark.parametrize("field,value", [
    ("country", "Germany"), ("country", "XX"), ("country", "EU"), ("country", "D1"),
    ("company_size", 0), ("company_size", -5), ("company_size", "12"), ("company_size", True),
    ("title", "t" * 201), ("title", "CEO\u202e"), ("industry", "i" * 101), ("industry", "a\x00b"),
    ("campaign_id", "not-a-uuid"),
])
def test_bad_optional_fields_name_the_field(field, value):
    with pytest.raises(InvalidField) as caught:
        capture(**{field: value})
    assert caught.value.field == field


# -- the lifecycle -----------------------------------------------------------------------------

def new_lead() -> Lead:
    return Lead.capture(capture(), lead_id_for(None))


def at_status(status: str) -> Lead:
    lead = new_lead()
    steps = {"new": [], "contacted": ["contact"], "qualified": ["contact", "qualify"],
             "disqualified": ["disqualify"], "contacted_disqualified": ["contact", "disqualify"]}[status]
    for step in steps:
        if step == "disqualify":
            lead.disqualify("no budget", "rep")
        else:
            getattr(lead, step)("rep")
    return lead


LEGAL = [
    ("new", "contact", "contacted"),
    ("contacted", "qualify", "qualified"),
    ("new", "disqualify", "disqualified"),
    ("contacted", "disqualify", "disqualified"),
    ("qualified", "disqualify", "disqualified"),
    ("disqualified", "reopen", "new"),
    ("contacted_disqualified", "reopen", "contacted"),
]


@pytest.mark.parametrize("start,command,end", LEGAL)
def test_legal_transitions_record_one_event(start, command, end):
    lead = at_status(start)
    version = lead.version
    lead.collect_events()
    if command == "disqualify":
        lead.disqualify("  went with a competitor ", "rep")
    else:
        getattr(lead, command)("rep")
    events = lead.collect_events()
    assert lead.status == end and lead.version == version + 1 and len(events) == 1
    if command == "disqualify":
        assert lead.disqualified_reason == "went with a competitor"
        assert events[0].previous_status == start.removeprefix("contacted_").split("_")[0]
    if command == "reopen":
        assert lead.disqualified_reason is None and events[0].status == end


ILLEGAL = [
    ("new", "qualify"), ("new", "reopen"),
    ("contacted", "contact"), ("contacted", "reopen"),
    ("qualified", "contact"), ("qualified", "qualify"), ("qualified", "reopen"),
    ("disqualified", "contact"), ("disqualified", "qualify"), ("disqualified", "disqualify"),
]


@pytest.mark.parametrize("start,command", ILLEGAL)
def test_illegal_transitions_name_the_status_and_change_nothing(start, command):
    lead = at_status(start)
    lead.collect_events()
    before = (lead.status, lead.version)
    with pytest.raises(FailedPrecondition, match=f"is {lead.status.value}; {command} needs"):
        if command == "disqualify":
            lead.disqualify("again", "rep")
        else:
            getattr(lead, command)("rep")
    assert (lead.status, lead.version) == before and lead.collect_events() == []


def test_converted_and_merged_are_in_the_table_and_end_states():
    assert TRANSITIONS["convert"] == (frozenset({LeadStatus.QUALIFIED}), LeadStatus.CONVERTED)
    assert LeadStatus.MERGED not in TRANSITIONS["merge"][0] and LeadStatus.CONVERTED not in TRANSITIONS["merge"][0]
    lead = at_status("qualified")
    lead.status = LeadStatus.CONVERTED  # what the conversion will record
    for command in ("contact", "qualify", "disqualify", "reopen", "merge"):
        with pytest.raises(FailedPrecondition, match="is converted"):
            lead.check_transition(command)


def test_disqualify_needs_a_reason():
    lead = new_lead()
    for reason in (None, "", "   "):
        with pytest.raises(InvalidField) as caught:
            lead.disqualify(reason, "rep")
        assert caught.value.field == "reason"
    assert lead.status == "new" and lead.version == 1


# -- activities --------------------------------------------------------------------------------

def test_activities_are_logged_in_utc_and_once_per_id():
    lead = new_lead()
    activity_id = activity_id_for(lead.id, "key-1")
    activity, logged = lead.log_activity(activity_id, "Call", "2025-03-31T09:30:00+02:00",
                                         "Left a message\nCall back", "rep")
    assert logged and activity.kind is ActivityKind.CALL and activity.at == datetime(2025, 3, 31, 7, 30, tzinfo=UTC)
    assert activity.note == "Left a message\nCall back" and activity.logged_by == "rep" and lead.version == 2
    again, logged = lead.log_activity(activity_id, "call", "2025-03-31T07:30:00Z", "Left a message\nCall back", "rep")
    assert not logged and again == activity and lead.version == 2
    with pytest.raises(Conflict):
        lead.log_activity(activity_id, "email", "2025-03-31T07:30:00Z", "", "rep")


@pytest.mark.parametrize("kind,at,note,field", [
    ("fax", "2025-03-31T09:30:00Z", "", "kind"),
    ("call", "2025-03-31T09:30:00", "", "at"),
    ("call", "yesterday", "", "at"),
    ("call", None, "", "at"),
    ("call", "2025-03-31T09:30:00Z", "n" * 4001, "note"),
    ("call", "2025-03-31T09:30:00Z", "a\x1bb", "note"),
])
def test_bad_activities_name_the_field(kind, at, note, field):
    lead = new_lead()
    with pytest.raises(InvalidField) as caught:
        lead.log_activity(activity_id_for(lead.id, None), kind, at, note, "rep")
    assert caught.value.field == field and lead.version == 1


def test_every_activity_kind_is_accepted():
    lead = new_lead()
    for kind in ("call", "email", "meeting", "note", "email_opened", "page_visited", "form_submitted"):
        lead.log_activity(activity_id_for(lead.id, None), kind, datetime.now(UTC), "", "rep")
    assert len(lead.activities) == 7


# -- changes (PATCH) -----------------------------------------------------------------------------

def test_change_sets_and_clears_only_the_given_fields():
    lead = new_lead()
    changed = lead.change({"follow_up_on": "2025-04-01", "company_size": 40, "country": "fr",
                           "title": "Head of Ops"}, "rep", "GB")
    assert changed == ["title", "company_size", "country", "follow_up_on"]
    assert (lead.follow_up_on, lead.company_size, lead.country) == ("2025-04-01", 40, "FR")
    event = lead.collect_events()[-1]
    assert event.changed_fields == changed and event.name == lead.name  # the whole editable state
    assert lead.change({"follow_up_on": None, "phone": None}, "rep") == ["phone", "follow_up_on"]
    assert lead.follow_up_on is None and lead.phone == ""
    assert lead.change({"title": "Head of Ops"}, "rep") == []  # no difference, no event


@pytest.mark.parametrize("changes,field", [
    ({"email": "x@example.com"}, "email"), ({"status": "qualified"}, "status"),
    ({"owner_id": "me"}, "owner_id"), ({"name": None}, "name"),
    ({"follow_up_on": "31/03/2025"}, "follow_up_on"), ({"follow_up_on": "2025-02-30"}, "follow_up_on"),
    ({"follow_up_on": "2025-03-31T10:00:00Z"}, "follow_up_on"), ({"phone": "12"}, "phone"),
    ({"country": "Deutschland"}, "country"),
])
def test_change_refuses_unknown_and_bad_fields_by_name(changes, field):
    lead = new_lead()
    with pytest.raises(InvalidField) as caught:
        lead.change(changes, "rep")
    assert caught.value.field == field and lead.version == 1


# -- campaigns and money -----------------------------------------------------------------------------

def campaign(**overrides):
    values = dict(name="Spring fair", channel="event", budget_amount="5000.00", budget_currency="EUR",
                  starts_on="2025-03-01", ends_on="2025-03-31")
    values.update(overrides)
    return validate_campaign(**values)


@pytest.mark.parametrize("amount,currency,expected", [
    ("5000", "EUR", "5000.00"), ("0.12", "EUR", "0.12"), ("2000", "JPY", "2000"),
    ("1.000", "BHD", "1.000"), ("1.5", "BHD", "1.500"), ("12.34", "USD", "12.34"), ("0", "EUR", "0.00"),
])
def test_budgets_show_the_currencys_minor_unit(amount, currency, expected):
    details = campaign(budget_amount=amount, budget_currency=currency)
    assert details.budget.amount_text == expected and details.budget.currency == currency
    assert isinstance(details.budget.amount, Decimal)


@pytest.mark.parametrize("amount,currency", [("0.125", "EUR"), ("1999.5", "JPY"), ("1.0005", "BHD")])
def test_a_budget_more_precise_than_its_currency_is_refused_not_rounded(amount, currency):
    with pytest.raises(InvalidField) as caught:
        campaign(budget_amount=amount, budget_currency=currency)
    assert caught.value.field == "budget.amount" and "minor-unit digits" in caught.value.message


@pytest.mark.parametrize("changes,field", [
    ({"budget_amount": 5000.0}, "budget.amount"), ({"budget_amount": 5000}, "budget.amount"),
    ({"budget_amount": "5,000.00"}, "budget.amount"), ({"budget_amount": "1e3"}, "budget.amount"),
    ({"budget_amount": "NaN"}, "budget.amount"), ({"budget_amount": "-1.00"}, "budget.amount"),
    ({"budget_amount": "1" * 19}, "budget.amount"),
    ({"budget_currency": "EURO"}, "budget.currency"), ({"budget_currency": "ABC"}, "budget.currency"),
    ({"budget_currency": "XAU"}, "budget.currency"), ({"budget_currency": None}, "budget.currency"),
    ({"budget_currency": "eur"}, "budget.currency"),
    ({"ends_on": "2025-02-28"}, "ends_on"), ({"starts_on": "2025-13-01"}, "starts_on"),
    ({"channel": "tv"}, "channel"), ({"name": " "}, "name"),
])
def test_bad_campaigns_name_the_field(changes, field):
    with pytest.raises(InvalidField) as caught:
        campaign(**changes)
    assert caught.value.field == field


def test_a_campaign_keeps_its_money_exact():
    launched = Campaign.launch(campaign(budget_amount="1234.56"), campaign_id_for("k"), "boss")
    assert launched.budget == Money(Decimal("1234.56"), "EUR")
    assert launched.same_launch(campaign(budget_amount="1234.560"))
    assert launched.ends_on == "2025-03-31" and campaign(ends_on="2025-03-01").ends_on == "2025-03-01"

"""Duplicates, merge rules, conversion ids and the account link: the pure domain, then the
application commands on eventsourcing's in-memory store (with the in-memory index)."""

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from crm.leads.v1 import events_pb2
from crm.sales.v1 import events_pb2 as sales_events
from crm_leads.adapters.messages import EVENTS
from crm_leads.application import AssignLead, CaptureLead, LeadsApplication, LogActivity, MoveLead
from crm_leads.conversion import ConvertLead, convert_lead, link_accounts
from crm_leads.domain import (
    MERGED_FIELDS,
    TRANSITIONS,
    Lead,
    LeadStatus,
    check_merge,
    conversion_ids,
    merge_gains,
    validate_capture,
)
from crm_leads.merging import MergeLeads, list_duplicates, merge_leads
from crm_runtime.auth import Principal
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.consumer import Delivery
from crm_runtime.errors import FailedPrecondition, InvalidField, NotFound
from crm_runtime.settings import PlatformSettings

AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def lead(**fields) -> Lead:
    values = dict(name="Ada", email="ada@engines.example", phone=None, company=None, channel="web")
    values.update(fields)
    return Lead.capture(validate_capture(**values, default_region="GB"), uuid4())


def in_status(status: LeadStatus) -> Lead:
    found = lead()
    steps = {LeadStatus.NEW: [], LeadStatus.CONTACTED: ["contact"], LeadStatus.QUALIFIED: ["contact", "qualify"],
             LeadStatus.DISQUALIFIED: ["disqualify"], LeadStatus.CONVERTED: ["contact", "qualify", "convert"],
             LeadStatus.MERGED: ["merge"]}[status]
    for step in steps:
        if step == "disqualify":
            found.disqualify("no budget", "me")
        elif step == "merge":
            lead().merge(found, "me")
        else:
            getattr(found, step)("me")
    assert found.status is status
    return found


# -- merge rules ------------------------------------------------------------------------------

def test_the_survivor_keeps_its_own_and_gains_what_it_lacks():
    survivor = lead(phone="", company="Engines", title=None)
    other = lead(phone="+44 20 7183 8750", company="Other Co", title="CTO", industry="Machinery",
                 company_size=40, country="gb", name="Ada L.")
    survivor.log_activity(uuid4(), "call", AT, "first call", "rep")
    other.log_activity(uuid4(), "meeting", AT.replace(day=2), "met", "rep")
    other.log_activity(uuid4(), "note", AT.replace(day=3), "keen", "rep")
    gains = survivor.merge(other, "boss")
    assert dict(gains.fields) == {"phone": "+442071838750", "title": "CTO", "industry": "Machinery",
                                  "company_size": 40, "country": "GB"}
    assert (survivor.name, survivor.company, survivor.phone) == ("Ada", "Engines", "+442071838750")
    assert [(a.kind.value, a.note, a.seq) for a in survivor.activities] == [
        ("call", "first call", 1), ("meeting", "met", 2), ("note", "keen", 3)]
    assert survivor.status is LeadStatus.NEW and survivor.merged_into is None
    assert other.status is LeadStatus.MERGED and other.merged_into == str(survivor.id)
    assert [type(e).__name__ for e in survivor.collect_events()][-1] == "DuplicateMerged"
    assert [type(e).__name__ for e in other.collect_events()][-1] == "MergedInto"


def test_merge_gains_nothing_when_the_survivor_has_every_field():
    survivor = lead(phone="+44 20 7183 8750", company="A", title="T", industry="I", company_size=3,
                    country="DE")
    survivor.change({"follow_up_on": "2025-04-01"}, "me")
    other = lead(phone="+44 20 7183 8751", company="B", title="U", industry="J", company_size=4,
                 country="FR")
    assert dict(merge_gains(survivor, other).fields) == {}
    assert set(MERGED_FIELDS) >= {"phone", "company", "follow_up_on", "campaign_id"}


def test_a_lead_cannot_be_merged_into_itself():
    only = lead()
    with pytest.raises(FailedPrecondition, match="into itself"):
        only.merge(only, "me")
    assert only.status is LeadStatus.NEW


@pytest.mark.parametrize("status", [LeadStatus.MERGED, LeadStatus.CONVERTED])
def test_merged_or_converted_leads_cannot_merge_on_either_side(status):
    closed, open_lead = in_status(status), lead()
    with pytest.raises(FailedPrecondition, match=f"is {status.value}"):
        open_lead.merge(closed, "me")
    with pytest.raises(FailedPrecondition, match=f"is {status.value}; a merge needs the surviving lead"):
        closed.merge(open_lead, "me")
    assert open_lead.status is LeadStatus.NEW and closed.status is status


@pytest.mark.parametrize("status", [LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED,
                                    LeadStatus.DISQUALIFIED])
def test_open_and_disqualified_leads_merge_either_way(status):
    check_merge(in_status(status), lead())
    check_merge(lead(), in_status(status))
    assert status in TRANSITIONS["merge"][0]


def test_a_merged_lead_takes_no_activities_or_changes():
    merged = in_status(LeadStatus.MERGED)
    with pytest.raises(FailedPrecondition, match="merged into"):
        merged.log_activity(uuid4(), "call", AT, "", "me")
    with pytest.raises(FailedPrecondition):
        merged.change({"title": "CEO"}, "me")
    for command in ("contact", "qualify", "reopen"):
        with pytest.raises(FailedPrecondition, match="is merged"):
            getattr(merged, command)("me")


def test_a_survivor_that_was_the_duplicate_of_the_merged_lead_is_no_longer_one():
    first, second = lead(), lead()
    second.mark_duplicate(str(first.id), "email")
    second.merge(first, "me")
    assert second.duplicate_of is None and first.merged_into == str(second.id)


# -- conversion -------------------------------------------------------------------------------

def test_conversion_ids_are_stable_distinct_and_per_lead():
    lead_id = uuid4()
    account_id, contact_id = conversion_ids(lead_id)
    assert conversion_ids(lead_id) == conversion_ids(str(lead_id)) == (account_id, contact_id)
    assert account_id != contact_id and isinstance(account_id, UUID) and account_id.version == 5
    assert set(conversion_ids(uuid4())).isdisjoint({account_id, contact_id})


def test_convert_only_from_qualified_and_once():
    for status in (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.DISQUALIFIED, LeadStatus.MERGED):
        with pytest.raises(FailedPrecondition, match=f"is {status.value}; convert needs it to be qualified"):
            in_status(status).convert("me")
    qualified = in_status(LeadStatus.QUALIFIED)
    ids = qualified.convert("rep")
    assert ids == tuple(str(i) for i in conversion_ids(qualified.id))
    assert (qualified.account_id, qualified.contact_id) == ids and qualified.status is LeadStatus.CONVERTED
    with pytest.raises(FailedPrecondition, match="is converted"):
        qualified.convert("rep")


def test_the_converted_event_carries_the_lead_for_sales():
    found = lead(email="Ada@Engines.Example", phone="+44 20 7183 8750", company="Engines", title="CTO",
                 company_size=40, country="GB")
    found.assign("rep-ada", "k1")
    found.contact("me")
    found.qualify("me")
    found.convert("me")
    message = EVENTS.to_message(found.collect_events()[-1])
    assert isinstance(message, events_pb2.LeadConverted)
    assert (message.lead_id, message.owner_id, message.email_domain, message.company_size) == (
        str(found.id), "rep-ada", "engines.example", 40)
    assert (message.account_id, message.contact_id) == tuple(str(i) for i in conversion_ids(found.id))


def test_the_account_link_is_recorded_once_and_only_for_the_leads_contact():
    converted = in_status(LeadStatus.CONVERTED)
    other_account = str(uuid4())
    assert converted.link_account(other_account, converted.contact_id, True)
    assert converted.account_id == other_account and converted.account_linked
    assert not converted.link_account(other_account, converted.contact_id, True)
    with pytest.raises(FailedPrecondition):
        converted.link_account(other_account, str(uuid4()), False)
    with pytest.raises(FailedPrecondition):
        lead().link_account(other_account, str(uuid4()), False)


# -- the application, in memory -----------------------------------------------------------------

BOSS = Principal("boss", frozenset({"sales_manager"}))
ANN = Principal("ann", frozenset({"sales_rep"}))


@pytest.fixture
def app():
    return LeadsApplication(PlatformSettings(store="memory"))


def capture(app, **fields):
    values = dict(name="Ada", email="ada@engines.example", phone=None, company=None, channel="web")
    values.update(fields)
    return app.capture_lead(CaptureLead(**values))[0]


def test_a_capture_matching_an_open_lead_is_marked_a_duplicate_of_the_earliest(app):
    first = capture(app)
    second = capture(app, email="ADA@engines.example")
    by_phone = capture(app, email="other@engines.example", phone="+44 20 7183 8750")
    third = capture(app, email="x@y.example", phone="+442071838750")
    assert first.duplicate_of is None
    assert (second.duplicate_of, second.matched_on) == (str(first.id), "email")
    assert by_phone.duplicate_of is None
    assert (third.duplicate_of, third.matched_on) == (str(by_phone.id), "phone")
    assert app.get_lead(second.id, BOSS).version == 2  # captured and marked in one save
    assert [r.id for r in list_duplicates(app, first.id, BOSS)] == [str(second.id)]


def test_closed_leads_are_not_duplicates(app):
    gone = capture(app)
    app.move_lead(MoveLead(gone.id, "disqualify", reason="spam", caller=BOSS))
    assert capture(app).duplicate_of is None


def test_merge_saves_both_leads_and_keeps_the_rules(app):
    survivor, other = capture(app), capture(app, phone="+44 20 7183 8750", company="Engines")
    app.log_activity(LogActivity(other.id, "call", AT, "hello", caller=BOSS))
    kept, merged = merge_leads(app, MergeLeads(survivor.id, str(other.id), caller=BOSS))
    assert (kept.phone, kept.company, len(kept.activities)) == ("+442071838750", "Engines", 1)
    assert app.get_lead(other.id, BOSS).status is LeadStatus.MERGED
    assert app.get_lead(survivor.id, BOSS).version == kept.version
    for bad, error in [(other.id, FailedPrecondition), (survivor.id, FailedPrecondition),
                       ("nope", InvalidField), (None, InvalidField), (uuid4(), NotFound)]:
        with pytest.raises(error):
            merge_leads(app, MergeLeads(survivor.id, bad, caller=BOSS))


def test_a_rep_merges_only_leads_they_own(app):
    mine, theirs = capture(app), capture(app)
    app.assign_lead(AssignLead(str(mine.id), "ann", "k1"))
    with pytest.raises(NotFound):
        merge_leads(app, MergeLeads(mine.id, theirs.id, caller=ANN))
    app.assign_lead(AssignLead(str(theirs.id), "ann", "k2"))
    merge_leads(app, MergeLeads(mine.id, theirs.id, caller=ANN))


def delivery(message, offset=0) -> Delivery:
    envelope = EventEnvelope(id=str(uuid4()), source="crm/sales", subject=message.contact_id,
                             time=datetime.now(UTC), message=message, context={})
    return Delivery(envelope, "crm.sales.events.v1", 0, offset)


def test_a_contact_added_for_a_converted_lead_links_its_account_once(app):
    converted = capture(app)
    for action in ("contact", "qualify"):
        app.move_lead(MoveLead(converted.id, action, caller=BOSS))
    converted = convert_lead(app, ConvertLead(converted.id, caller=BOSS))
    joined = str(uuid4())
    added = sales_events.ContactAdded(contact_id=converted.contact_id, account_id=joined,
                                      lead_id=str(converted.id), account_reused=True)
    stranger = sales_events.ContactAdded(contact_id=str(uuid4()), account_id=joined, lead_id="lead-x")
    changed = link_accounts(app, [delivery(added), delivery(added, 1), delivery(stranger, 2)])
    assert [c.id for c in changed] == [converted.id] and changed[0].account_id == joined
    app.save(*changed)
    assert link_accounts(app, [delivery(added, 3)]) == []
    assert app.get_lead(converted.id, BOSS).account_id == joined

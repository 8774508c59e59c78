"""Sales events reach crm.sales.events.v1 on the real broker as CloudEvents, from a SQLite
and from a PostgreSQL store, decoded the way a downstream consumer would."""

import threading
from collections import defaultdict
from datetime import timedelta

import pytest

from crm.sales.v1 import events_pb2
from crm_runtime import relay as relay_module
from crm_runtime import tracing
from crm_runtime.auth import Principal
from crm_runtime.cloudevents import stable_event_id
from crm_runtime.events import registry_for
from crm_sales.adapters.messages import EVENTS
from crm_sales.application import (
    AddContact,
    AddProduct,
    AmendContract,
    ChangeAccount,
    ChangeContact,
    DecideAmendment,
    DraftContract,
    DraftQuote,
    OpenAccount,
    OpenOpportunity,
    PublishPriceBook,
    RecordPayment,
    SalesApplication,
    WorkContract,
    WorkQuote,
)
from crm_sales.context import CONTEXT
from tests.kafka_helpers import at_least, ensure_topics, headers, read_all, read_topic, stored_events

pytestmark = pytest.mark.kafka
ANN = Principal("ann", frozenset({"sales_rep"}))
BOSS = Principal("boss", frozenset({"sales_manager"}))


def test_sales_events_are_published_as_cloudevents(any_platform, kafka_bootstrap):
    ensure_topics(kafka_bootstrap, any_platform.topic_prefix)
    topic = f"{any_platform.topic_prefix}crm.sales.events.v1"
    app = SalesApplication(any_platform)
    with tracing.bound(None, "corr-sales"):
        account, _ = app.open_account(OpenAccount(name="Acme", domain="acme.example", tier="smb",
                                                  region="EMEA", caller=ANN))
        contact, _ = app.add_contact(AddContact(account.id, "Ada", "ada@example.com", caller=ANN))
        app.change_account(ChangeAccount(account.id, 1, {"owner_id": "bob", "tier": "strategic"}, caller=BOSS))
        app.change_contact(ChangeContact(contact.id, 1, {"phone": "+44 20 7183 8750"}, caller=BOSS))

    relay = relay_module.for_context(app, CONTEXT.topic, CONTEXT.events.to_message, any_platform)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        read_topic(kafka_bootstrap, topic, at_least(4))
    finally:
        relay.stop()
        thread.join(30)
        relay.close()
    assert relay.position() == app.recorder.max_notification_id()

    registry = registry_for("sales")
    by_subject = defaultdict(list)
    for record in read_all(kafka_bootstrap, topic):
        envelope = registry.decode(record.headers, record.value)
        record_headers = headers(record)
        assert record.key.decode() == envelope.subject == record_headers["ce_subject"]
        assert record_headers["ce_source"] == "crm/sales" and record_headers["ce_specversion"] == "1.0"
        assert record_headers["ce_type"] == envelope.message.DESCRIPTOR.full_name
        assert record_headers["content-type"] == "application/protobuf"
        assert envelope.correlation_id == "corr-sales"
        by_subject[envelope.subject].append((record_headers["ce_type"], envelope))

    opened, changed = by_subject[account.id]
    assert [opened[0], changed[0]] == ["crm.sales.v1.AccountOpened", "crm.sales.v1.AccountChanged"]
    assert [opened[1].id, changed[1].id] == [stable_event_id(account.id, 1), stable_event_id(account.id, 2)]
    assert opened[1].message == events_pb2.AccountOpened(
        account_id=account.id, name="Acme", domain="acme.example", region="EMEA",
        tier=events_pb2.TIER_SMB, owner_id="ann", version=1, opened_by="ann",
        opened_at=opened[1].message.opened_at)
    change = changed[1].message
    assert (list(change.changed_fields), change.owner_id, change.tier, change.domain, change.version,
            change.changed_by) == (["tier", "owner_id"], "bob", events_pb2.TIER_STRATEGIC, "acme.example", 2, "boss")

    added, contact_changed = by_subject[contact.id]
    assert [added[0], contact_changed[0]] == ["crm.sales.v1.ContactAdded", "crm.sales.v1.ContactChanged"]
    assert (added[1].message.account_id, added[1].message.email) == (account.id, "ada@example.com")
    assert (list(contact_changed[1].message.changed_fields), contact_changed[1].message.phone) == \
        (["phone"], "+442071838750")


def test_every_event_type_of_the_topic_is_a_sales_event():
    names = {message.DESCRIPTOR.full_name for message in EVENTS.message_types}
    assert names == {f"crm.sales.v1.{name}" for name in (
        "AccountOpened", "AccountChanged", "ContactAdded", "ContactChanged", "PipelineConfigured",
        "OpportunityOpened", "OpportunityStageChanged", "OpportunityWon", "OpportunityLost", "ProductAdded",
        "PriceBookPublished", "QuoteDrafted", "QuoteSent", "QuoteAccepted", "QuoteRejected", "QuoteRevised",
        "FxRatesSet", "ContractDrafted", "ContractSubmitted", "ContractApproved", "ContractRejected",
        "ContractSigned", "ContractActivated", "PaymentRecorded", "ContractExpired", "ContractTerminated",
        "ContractRenewed", "ContractAmendmentRequested", "ContractAmended", "ContractAmendmentRejected",
        "OrderPlaced", "LoyaltyRuleSet", "LoyaltyPointsEarned", "LoyaltyPointsRedeemed",
        "CommissionPlanSet", "CommissionEarned")}


def test_amendment_events_carry_the_new_dates_and_balances(any_platform, kafka_bootstrap):
    """ContractAmendmentRequested, ContractAmended (applied at once, and approved by a
    manager) and ContractAmendmentRejected reach the topic in order, the amended event with
    the whole schedule, what is paid on each instalment and the new ends_on."""
    ensure_topics(kafka_bootstrap, any_platform.topic_prefix)
    topic = f"{any_platform.topic_prefix}crm.sales.events.v1"
    app = SalesApplication(any_platform, approval_threshold="5000")
    app.add_product(AddProduct("SUP-1", "Support", caller=BOSS))
    book = app.publish_price_book(PublishPriceBook("EUR list", "EUR", [{"sku": "SUP-1", "unit_price": "1000.00"}],
                                                   caller=BOSS))[0]
    account = app.open_account(OpenAccount(name="Acme", caller=ANN))[0]
    today = app.today()
    opportunity = app.open_opportunity(OpenOpportunity("Support", account.id, {"amount": "3000.00", "currency": "EUR"},
                                                       (today + timedelta(days=30)).isoformat(), caller=ANN))[0]
    quote = app.draft_quote(DraftQuote(opportunity.id, book.id, (today + timedelta(days=30)).isoformat(),
                                       [{"sku": "SUP-1", "quantity": "3", "tax_rate": "0"}], caller=ANN))[0]
    app.work_quote(WorkQuote(quote.id, "send", caller=ANN))
    app.work_quote(WorkQuote(quote.id, "accept", caller=ANN))
    first_due = today + timedelta(days=40)
    contract = app.draft_contract(DraftContract(quote.id, today.isoformat(), (today + timedelta(days=365)).isoformat(),
                                                {"instalments": 3, "first_due_on": first_due.isoformat()},
                                                caller=ANN))[0]
    for action in ("submit", "sign", "activate"):
        app.work_contract(WorkContract(contract.id, action, caller=ANN))
    app.record_payment(RecordPayment(contract.id, 1, {"amount": "400.00", "currency": "EUR"}, today.isoformat(),
                                     caller=ANN))
    later = (today + timedelta(days=500)).isoformat()
    app.amend_contract(AmendContract(contract.id, "Extension", ends_on=later, caller=ANN))

    def eur(amount):
        return {"amount": amount, "currency": "EUR"}

    raise_to = [{"instalment": 2, "due_on": (first_due + timedelta(days=60)).isoformat(), "amount": eur("2000.00")},
                {"instalment": 3, "due_on": (first_due + timedelta(days=90)).isoformat(), "amount": eur("3000.00")}]
    app.amend_contract(AmendContract(contract.id, "Upsell", total=eur("6000.00"), payment_schedule=raise_to,
                                     caller=ANN))
    app.decide_amendment(DecideAmendment(contract.id, 2, "reject", comment="Not yet", caller=BOSS))
    app.amend_contract(AmendContract(contract.id, "Upsell again", total=eur("6000.00"), payment_schedule=raise_to,
                                     caller=ANN))
    app.decide_amendment(DecideAmendment(contract.id, 3, "approve", caller=BOSS))

    relay = relay_module.for_context(app, CONTEXT.topic, CONTEXT.events.to_message, any_platform)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        read_topic(kafka_bootstrap, topic, at_least(stored_events(app)))
    finally:
        relay.stop()
        thread.join(30)
        relay.close()
    registry = registry_for("sales")
    messages = [registry.decode(record.headers, record.value).message for record in read_all(kafka_bootstrap, topic)
                if record.key.decode() == contract.id]
    names = [m.DESCRIPTOR.name for m in messages]
    assert names[-8:] == ["ContractActivated", "PaymentRecorded", "ContractAmendmentRequested", "ContractAmended",
                          "ContractAmendmentRequested", "ContractAmendmentRejected", "ContractAmendmentRequested",
                          "ContractAmended"]
    amended = [m for m in messages if isinstance(m, events_pb2.ContractAmended)]
    requested = [m for m in messages if isinstance(m, events_pb2.ContractAmendmentRequested)]
    rejected = [m for m in messages if isinstance(m, events_pb2.ContractAmendmentRejected)]
    assert [(m.amendment, m.approval_required) for m in requested] == [(1, False), (2, True), (3, True)]
    assert requested[1].base_total.amount == "6000.00" and requested[1].approval_threshold.amount == "5000.00"
    assert [i.instalment for i in requested[1].proposed_schedule] == [1, 2, 3]
    assert (rejected[0].amendment, rejected[0].comment, rejected[0].rejected_by) == (2, "Not yet", "boss")
    extension, upsell = amended
    assert (extension.amendment, extension.automatic, extension.previous_ends_on, extension.ends_on) == (
        1, True, (today + timedelta(days=365)).isoformat(), later)
    assert (upsell.amendment, upsell.automatic, upsell.approved_by, upsell.total.amount,
            upsell.previous_total.amount, upsell.status) == (3, False, "boss", "6000.00", "3000.00", "active")
    assert [(i.instalment, i.due_on, i.amount.amount, i.paid.amount, i.outstanding.amount)
            for i in upsell.instalments] == [
        (1, first_due.isoformat(), "1000.00", "400.00", "600.00"),
        (2, raise_to[0]["due_on"], "2000.00", "0.00", "2000.00"),
        (3, raise_to[1]["due_on"], "3000.00", "0.00", "3000.00")]
    assert upsell.outstanding.amount == "5600.00"

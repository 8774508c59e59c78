"""Sales events reach crm.sales.events.v1 on the real broker as CloudEvents, from a SQLite
and from a PostgreSQL store, decoded the way a downstream consumer would."""

import threading
from collections import defaultdict

import pytest

from crm.sales.v1 import events_pb2
from crm_runtime import relay as relay_module
from crm_runtime import tracing
from crm_runtime.auth import Principal
from crm_runtime.cloudevents import stable_event_id
from crm_runtime.events import registry_for
from crm_sales.adapters.messages import EVENTS
from crm_sales.application import AddContact, ChangeAccount, ChangeContact, OpenAccount, SalesApplication
from crm_sales.context import CONTEXT
from tests.kafka_helpers import at_least, ensure_topics, headers, read_all, read_topic

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
        "ContractRenewed", "OrderPlaced", "LoyaltyRuleSet", "LoyaltyPointsEarned", "LoyaltyPointsRedeemed",
        "CommissionPlanSet", "CommissionEarned")}

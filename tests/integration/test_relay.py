"""The outbox relay against the real broker, from a SQLite and from a PostgreSQL store."""

import threading
import time
from collections import defaultdict

import pytest
from aiokafka.errors import KafkaConnectionError

from crm.leads.v1 import events_pb2 as leads_events
from crm_leads.adapters.messages import EVENTS
from crm_leads.application import AssignLead, CaptureLead, LeadsApplication
from crm_runtime import producers, tracing
from crm_runtime import relay as relay_module
from crm_runtime.cloudevents import EventRegistry, stable_event_id
from tests.kafka_helpers import at_least, ensure_topics, headers, read_all, read_topic

pytestmark = pytest.mark.kafka
REGISTRY = EventRegistry.from_modules(leads_events)


def run_relay(app, platform, stop_when):
    relay = relay_module.for_context(app, "leads", EVENTS.to_message, platform)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        stop_when(relay)
    finally:
        relay.stop()
        thread.join(30)
        relay.close()
    return relay


def test_relay_publishes_every_event_in_order_with_cloudevents_headers(any_platform, kafka_bootstrap):
    ensure_topics(kafka_bootstrap, any_platform.topic_prefix)
    app = LeadsApplication(any_platform)
    leads = []
    with tracing.bound(None, "corr-relay"):
        for i in range(60):
            lead, _ = app.capture_lead(CaptureLead(name=f"Lead {i}", email=f"l{i}@example.com", phone=None,
                                       company=None, channel="web"))
            leads.append(lead)
        for lead in leads[::2]:
            app.assign_lead(AssignLead(lead.id, "rep-1", f"k-{lead.id}"))
    total = 90
    topic = f"{any_platform.topic_prefix}crm.leads.events.v1"

    def until_published(relay):
        read_topic(kafka_bootstrap, topic, at_least(total))
        # Later events (written while it runs) are published too.
        extra, _ = app.capture_lead(CaptureLead(name="Late", email="late@example.com", phone=None,
                                    company=None, channel="email"))
        leads.append(extra)
        read_topic(kafka_bootstrap, topic, at_least(total + 1))

    relay = run_relay(app, any_platform, until_published)
    assert relay.position() == app.recorder.max_notification_id()

    records = read_all(kafka_bootstrap, topic)
    assert len(records) == total + 1  # every record the topic holds: no re-sends
    by_key = defaultdict(list)
    for record in records:
        envelope = REGISTRY.decode(record.headers, record.value)
        assert record.key.decode() == envelope.subject
        assert headers(record)["ce_source"] == "crm/leads"
        by_key[envelope.subject].append(envelope)
    for lead in leads:
        events = by_key[str(lead.id)]
        assert [e.id for e in events] == [stable_event_id(lead.id, v) for v in range(1, len(events) + 1)]
        assert isinstance(events[0].message, leads_events.LeadCaptured)
        assert events[0].message.email == lead.email
    assert by_key[str(leads[0].id)][0].correlation_id == "corr-relay"
    assert by_key[str(leads[0].id)][1].message.owner_id == "rep-1"
    # The CloudEvents SDK's own Kafka binding reads every record the same way.
    for record in records:
        sdk_event = sdk_decode(record)
        ours = REGISTRY.decode(record.headers, record.value)
        assert (sdk_event.get_id(), sdk_event.get_source(), sdk_event.get_type(),
                sdk_event.get_subject(), sdk_event.get_time()) == (
            ours.id, ours.source, ours.type, ours.subject, ours.time)
        assert sdk_event.get_specversion() == "1.0"
        assert sdk_event.get_datacontenttype() == "application/protobuf"
        assert sdk_event.get_extension("partitionkey") == ours.subject
        assert sdk_event.get_data() == ours.message.SerializeToString()


class _ProtobufData:
    """The SDK reads the value as opaque bytes; the message type is named by ce_type."""

    def read_data(self, body: bytes, content_type: str | None) -> bytes:
        assert content_type == "application/protobuf"
        return body


def sdk_decode(record):
    from cloudevents.core.bindings import kafka as ce_kafka

    message = ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
    return ce_kafka.from_binary(message, _ProtobufData())


def test_relay_resumes_from_its_position_without_skipping(any_platform, kafka_bootstrap):
    ensure_topics(kafka_bootstrap, any_platform.topic_prefix)
    topic = f"{any_platform.topic_prefix}crm.leads.events.v1"
    app = LeadsApplication(any_platform)
    for i in range(10):
        app.capture_lead(CaptureLead(name=f"A{i}", email=f"a{i}@example.com", phone=None, company=None, channel="web"))
    run_relay(app, any_platform, lambda _: read_topic(kafka_bootstrap, topic, at_least(10)))
    for i in range(5):
        app.capture_lead(CaptureLead(name=f"B{i}", email=f"b{i}@example.com", phone=None, company=None, channel="web"))
    second = run_relay(LeadsApplication(any_platform), any_platform,
                       lambda _: read_topic(kafka_bootstrap, topic, at_least(15)))
    records = read_all(kafka_bootstrap, topic)
    assert len(records) == 15  # nothing re-sent after a clean stop, nothing skipped
    assert second.position() == 15


def test_relay_started_before_the_broker_is_reachable_publishes_once_it_is(sqlite_platform, kafka_bootstrap):
    ensure_topics(kafka_bootstrap, sqlite_platform.topic_prefix)
    topic = f"{sqlite_platform.topic_prefix}crm.leads.events.v1"
    app = LeadsApplication(sqlite_platform)
    app.capture_lead(CaptureLead(name="Early", email="early@example.com", phone=None, company=None, channel="web"))
    attempts = []

    def producer():
        attempts.append(1)
        if len(attempts) == 1:  # the first connection fails, as with the broker still starting
            return producers.BatchProducer("127.0.0.1:1", client_id="test-relay")
        return producers.BatchProducer(kafka_bootstrap, client_id="test-relay")

    outbox = relay_module.OutboxRelay(app, topic, EVENTS.to_message, producer, source="crm/leads")
    batch = app.recorder.select_notifications(start=1, limit=10)
    with pytest.raises(KafkaConnectionError):
        outbox.publish(batch)
    assert outbox.position() == 0  # nothing acknowledged, nothing recorded
    outbox.reset_producer()
    outbox.publish(batch)
    assert outbox.position() == 1 and len(attempts) == 2
    outbox.close()
    assert len(read_topic(kafka_bootstrap, topic, at_least(1))) == 1


def test_relay_on_postgres_wakes_on_each_commit_and_stops_at_once(postgres_platform, kafka_bootstrap):
    """Caught up, the relay sleeps until PostgreSQL notifies a commit: with its safety-net
    look a minute away, a new lead is still published within seconds, and a stop ends the
    wait at once."""
    ensure_topics(kafka_bootstrap, postgres_platform.topic_prefix)
    topic = f"{postgres_platform.topic_prefix}crm.leads.events.v1"
    app = LeadsApplication(postgres_platform)
    relay = relay_module.for_context(app, "leads", EVENTS.to_message, postgres_platform)
    relay.notifications.idle_look = 60.0
    assert relay.notifications.commits.available
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        for i in range(3):
            time.sleep(0.5)  # caught up by now: waiting for the next commit
            app.capture_lead(CaptureLead(name=f"W{i}", email=f"w{i}@example.com", phone=None,
                                         company=None, channel="web"))
            read_topic(kafka_bootstrap, topic, at_least(i + 1), timeout=10)
        time.sleep(0.5)
    finally:
        stopped = time.monotonic()
        relay.stop()
        thread.join(30)
        relay.close()
    assert not thread.is_alive() and time.monotonic() - stopped < 5
    assert relay.position() == app.recorder.max_notification_id()


def test_relay_writes_its_position_once_a_backlog_is_published(sqlite_platform, kafka_bootstrap):
    """While a backlog streams the position is written at most every `position_interval`;
    once caught up it is written at once, and nothing is left unrecorded."""
    ensure_topics(kafka_bootstrap, sqlite_platform.topic_prefix)
    app = LeadsApplication(sqlite_platform)
    for i in range(40):
        app.capture_lead(CaptureLead(name=f"P{i}", email=f"p{i}@example.com", phone=None, company=None, channel="web"))
    relay = relay_module.OutboxRelay(
        app, f"{sqlite_platform.topic_prefix}crm.leads.events.v1", EVENTS.to_message,
        lambda: producers.BatchProducer(kafka_bootstrap, client_id="test-relay"), source="crm/leads",
        batch_size=5, position_interval=3600)
    written = []
    insert = relay.tracking.insert_tracking
    relay.tracking.insert_tracking = lambda tracking: (written.append(tracking.notification_id), insert(tracking))
    relay.run(until=40)
    relay.close()
    assert written == [40]  # eight batches, one write: when the relay caught up
    assert relay.position() == 40

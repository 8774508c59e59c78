"""Garbage on the topic ends in the dead-letter topic, and the consumer keeps going."""

from datetime import UTC, datetime

import httpx
import pytest
from kafka import KafkaProducer

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime.cloudevents import EventEnvelope, encode, stable_event_id
from tests.conftest import bearer
from tests.kafka_helpers import at_least, headers, read_topic
from tests.platform_harness import start_platform, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def captured(lead_id: str) -> tuple[bytes, bytes, list]:
    return encode(EventEnvelope(
        id=stable_event_id(lead_id, 1), source="crm/leads", subject=lead_id,
        time=datetime.now(UTC),
        message=leads_events.LeadCaptured(lead_id=lead_id, name="Valid", email="v@example.com",
                                       channel=leads_events.CHANNEL_EVENT)))


def test_poison_messages_are_dead_lettered_and_consumption_continues(tmp_path, kafka_bootstrap, topic_prefix):
    platform = start_platform(tmp_path, kafka_bootstrap, topic_prefix, ["analytics", "analytics-worker"])
    topic = f"{topic_prefix}crm.leads.events.v1"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        key = b"lead-poison"
        producer.send(topic, key=key, value=b"\x00\xffnot protobuf at all")  # no headers
        k, v, h = captured("lead-poison")
        producer.send(topic, key=key, value=b"\xff\xff\xff\xff", headers=h)  # bad value
        producer.send(topic, key=key, value=v,
                      headers=[(n, b"crm.leads.v1.Nope" if n == "ce_type" else x) for n, x in h])
        producer.send(topic, key=k, value=v, headers=h)  # then a good one, same partition
        producer.flush()

        dead = read_topic(kafka_bootstrap, f"{topic}.dlq", at_least(3))
        reasons = [headers(record)["dlq_reason"] for record in dead]
        assert "missing CloudEvents header" in reasons[0]
        assert "not a valid crm.leads.v1.LeadCaptured" in reasons[1]
        assert "unknown ce_type" in reasons[2]
        assert dead[0].value == b"\x00\xffnot protobuf at all"
        assert headers(dead[0])["dlq_topic"] == topic

        reports = url("analytics") + "/v1/reports/leads"
        report = wait_for(lambda: (r := httpx.get(reports, headers=bearer("analyst")).json())
                          ["captured"] == 1 and r, what="valid event projected after the poison")
        assert report["by_channel"] == {"event": 1}
        platform.check_alive()
    finally:
        producer.close()
        platform.stop()


def test_dead_letters_can_be_replayed_into_their_stream(kafka_bootstrap, topic_prefix):
    from crm_runtime.dead_letters import replay
    from tests.kafka_helpers import ensure_topics, read_all

    ensure_topics(kafka_bootstrap, topic_prefix)
    topic = f"{topic_prefix}crm.leads.events.v1"
    key, value, original = captured("lead-replayed")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(f"{topic}.dlq", key=key, value=value, headers=original + [
        ("dlq_reason", b"handler failed 5 times: OperationalError()"), ("dlq_topic", topic.encode())])
    producer.send(f"{topic}.dlq", key=b"x", value=b"garbage", headers=[
        ("dlq_reason", b"missing CloudEvents header(s): ce_id"), ("dlq_topic", topic.encode())])
    producer.flush()
    producer.close()

    group = f"{topic_prefix}replay"
    assert replay(kafka_bootstrap, f"{topic}.dlq", group=group, only_reason="handler failed") == 1
    records = read_all(kafka_bootstrap, topic)
    assert len(records) == 1 and records[0].value == value
    assert headers(records[0])["ce_type"] == "crm.leads.v1.LeadCaptured"
    assert not any(name.startswith("dlq_") for name in headers(records[0]))
    # The group remembers what it read: a second run sends nothing again.
    assert replay(kafka_bootstrap, f"{topic}.dlq", group=group) == 0

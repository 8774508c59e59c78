"""Garbage on the topic ends in the dead-letter topic, and the consumer keeps going."""

from datetime import datetime, timezone

import httpx
import pytest
from kafka import KafkaProducer

from crm.leads.v1 import leads_pb2
from crm_runtime.cloudevents import EventEnvelope, encode, stable_event_id
from tests.conftest import bearer
from tests.kafka_helpers import at_least, headers, read_topic
from tests.platform_harness import start_platform, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def captured(lead_id: str) -> tuple[bytes, bytes, list]:
    return encode(EventEnvelope(
        id=stable_event_id(lead_id, 1), source="crm/leads", subject=lead_id,
        time=datetime.now(timezone.utc),
        message=leads_pb2.LeadCaptured(lead_id=lead_id, name="Valid", email="v@example.com",
                                       channel=leads_pb2.CHANNEL_EVENT)))


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

        report = wait_for(lambda: (r := httpx.get(url("analytics") + "/v1/reports/leads", headers=bearer("analyst")).json())
                          ["captured"] == 1 and r, what="valid event projected after the poison")
        assert report["by_channel"] == {"event": 1}
        platform.check_alive()
    finally:
        producer.close()
        platform.stop()

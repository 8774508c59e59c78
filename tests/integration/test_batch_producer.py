"""The relay's producer: each call's records reach Kafka in order per key, also when a call
fills more than one record batch per partition and calls follow each other unawaited."""

import uuid

import pytest

from crm_runtime.kafka_admin import create_topics
from crm_runtime.producers import BATCH_BYTES, BatchProducer, RememberedPartitioner
from tests.kafka_helpers import at_least, read_topic

pytestmark = pytest.mark.kafka


def test_calls_keep_their_order_per_key_across_full_record_batches(kafka_bootstrap, topic_prefix):
    topic = f"{topic_prefix}batch-producer"
    create_topics(kafka_bootstrap, [topic], 3)
    keys = [str(uuid.uuid4()).encode() for _ in range(4)]
    value = b"x" * (BATCH_BYTES // 8)  # 8 records fill a record batch
    calls = [[(keys[n % 4], value + f"{call}:{n}".encode(), [("seq", f"{call}:{n}".encode())])
              for n in range(60)] for call in range(3)]
    producer = BatchProducer(kafka_bootstrap, client_id="test-batch-producer")
    try:
        deliveries = [producer.send(topic, records) for records in calls]  # none awaited before the next
        for delivery in deliveries:
            delivery.result(timeout=60)
        assert producer.partitions_for(topic) == {0, 1, 2}
    finally:
        producer.close()
    records = read_topic(kafka_bootstrap, topic, at_least(180))
    assert len(records) == 180
    placement = RememberedPartitioner()
    for key in keys:
        sent = [headers[0][1] for records_ in calls for k, _, headers in records_ if k == key]
        received = [record for record in records if record.key == key]
        assert [dict(record.headers)["seq"] for record in received] == sent
        assert {record.partition for record in received} == {placement.place(key, 3)}

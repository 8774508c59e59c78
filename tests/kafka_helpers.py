"""Reading topics the way a downstream team would: a plain kafka-python consumer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from crm_runtime.kafka_admin import create_topics


def read_topic(bootstrap: str, topic: str, until: Callable[[list[ConsumerRecord]], bool],
               timeout: float = 60.0) -> list[ConsumerRecord]:
    """All records of `topic` from the start, polling until `until(records)` holds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id=f"test-reader-{uuid.uuid4().hex[:6]}")
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None:
            found = consumer.partitions_for_topic(topic)
            if found:
                partitions = [TopicPartition(topic, p) for p in sorted(found)]
            elif time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} does not exist")
            else:
                time.sleep(0.2)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        while True:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            if until(records):
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: condition not met with {len(records)} records")
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, timeout: float = 60.0) -> list[ConsumerRecord]:
    """Every record the topic holds right now."""
    watcher = OffsetWatcher(bootstrap, topic)
    try:
        total = watcher.total()
    finally:
        watcher.close()
    return read_topic(bootstrap, topic, at_least(total), timeout)


def at_least(n: int) -> Callable[[list], bool]:
    return lambda records: len(records) >= n


def distinct_events(n: int) -> Callable[[list], bool]:
    return lambda records: len({dict(r.headers).get("ce_id") for r in records}) >= n


def headers(record: ConsumerRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def ensure_topics(bootstrap: str, prefix: str, partitions: int = 3) -> None:
    from crm_runtime.topics import all_topics
    create_topics(bootstrap, all_topics(prefix), partitions)


class OffsetWatcher:
    """How many records a topic holds, asked repeatedly over one connection."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)

    def total(self) -> int:
        partitions = [TopicPartition(self.topic, p)
                      for p in self.consumer.partitions_for_topic(self.topic) or ()]
        return sum(self.consumer.end_offsets(partitions).values()) if partitions else 0

    def close(self) -> None:
        self.consumer.close()


def stored_events(app) -> int:
    """How many events an application's store holds. Not its last notification id: on
    PostgreSQL a write that lost a race (a repeated idempotency key, a concurrent change)
    still used up an id from the sequence, so ids have gaps that no reader minds."""
    return len(app.recorder.select_notifications(start=1, limit=1_000_000))

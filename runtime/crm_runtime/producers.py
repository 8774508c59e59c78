"""Kafka producers with the platform's delivery settings: acks=all, idempotent, ordered per
partition, keys placed as Kafka's Java client places them.

`BatchProducer` is the relay's: aiokafka, whose record batches are built in C, on an event
loop of its own thread, behind a blocking interface that takes a batch of records and
answers with one future for all of them. `make_producer` is kafka-python's, for tools that
send a few records (the dead-letter replay) and for the benches' baseline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner as AioDefaultPartitioner
from aiokafka.partitioner import murmur2
from kafka import KafkaProducer
from kafka.partitioner import DefaultPartitioner, Partitioner

from crm_runtime.cloudevents import Record

# Connecting waits this long for a first broker, a send for a topic's metadata, and closing
# for what is still unacknowledged: a stopping process cannot cut these waits short, and the
# libraries' defaults (30 s and more) would outlast a supervisor's grace. A failed
# connection is retried by the caller, an unacknowledged record sent again.
CONNECT_TIMEOUT_SECONDS = 3.0
CLOSE_TIMEOUT_SECONDS = 3.0

_DELIVERY = dict(acks="all", enable_idempotence=True, linger_ms=5)
BATCH_BYTES = 256 * 1024


class RememberedPartitioner(Partitioner):
    """Kafka's default placement of a keyed record (murmur2 of the key, as the Java client
    computes it, so a key lands where every client puts it), remembered per partition
    count: an aggregate's events come in runs (a lead's capture, score, assignment), and
    the pure-Python murmur2 costs about 7 µs a record. Kafka numbers partitions 0..n-1, so
    the count decides. Callable as aiokafka's partitioner and as kafka-python's."""

    def __init__(self, remember: int = 100_000):
        self.remember = remember
        self._known: dict[tuple[bytes, int], int] = {}

    def place(self, key: bytes, count: int) -> int:
        known = (key, count)
        found = self._known.get(known)
        if found is None:
            if len(self._known) >= self.remember:
                self._known.clear()
            found = self._known[known] = (murmur2(key) & 0x7FFFFFFF) % count
        return found

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        """aiokafka's convention: `all_partitions` sorted by id."""
        if key is None or not all_partitions:
            return int(AioDefaultPartitioner()(key, all_partitions, available))
        return all_partitions[self.place(key, len(all_partitions))]

    def partition(self, topic: str, key: Any, serialized_key: bytes | None, value: Any,
                  serialized_value: bytes | None, cluster: Any) -> int:
        """kafka-python's convention."""
        partitions = cluster.partitions_for_topic(topic)
        if serialized_key is None or not partitions:
            return int(DefaultPartitioner().partition(topic, key, serialized_key, value, serialized_value, cluster))
        return self.place(serialized_key, len(partitions))


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer with the platform's delivery settings."""
    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        partitioner=RememberedPartitioner(),
        **_DELIVERY,
        # Idempotence keeps order per partition with up to 5 requests in flight.
        max_in_flight_requests_per_connection=5,
        batch_size=BATCH_BYTES,
        retries=2**31 - 1,
        delivery_timeout_ms=120_000,
        bootstrap_timeout_ms=int(CONNECT_TIMEOUT_SECONDS * 1000),
        max_block_ms=int(CONNECT_TIMEOUT_SECONDS * 1000),
        client_id="crm-producer",
    )
    config.update(overrides)
    return KafkaProducer(**config)


def aiokafka_config(bootstrap: str, client_id: str, **overrides: Any) -> dict[str, Any]:
    """aiokafka's settings for the platform's delivery (what `BatchProducer` runs on)."""
    return dict(bootstrap_servers=bootstrap, client_id=client_id, **_DELIVERY, max_batch_size=BATCH_BYTES,
                **overrides)


class BatchProducer:
    """An aiokafka producer on an event loop of its own (a daemon thread), for callers that
    block: `send` queues a batch of records and answers with one future, done when Kafka
    acknowledged every record of the batch or failed with the first failure. Batches are
    queued in the order they are sent, so records keep their order per partition."""

    def __init__(self, bootstrap: str, *, client_id: str, **overrides: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{client_id}-io", daemon=True)
        self._thread.start()
        self._partitioner = RememberedPartitioner()
        config = aiokafka_config(bootstrap, client_id, **{
            "partitioner": self._partitioner, "request_timeout_ms": 30_000, **overrides})
        try:
            self._producer: AIOKafkaProducer = self._run(self._start(config), CONNECT_TIMEOUT_SECONDS + 2)
        except BaseException:
            self._stop_loop()
            raise
        self._order = asyncio.Lock()  # bound to the loop at its first use, in the loop

    def _run(self, coroutine: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @staticmethod
    async def _start(config: dict[str, Any]) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**config)
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_SECONDS)
        except BaseException:
            await producer.stop()
            raise
        return producer

    def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions, waiting (a bounded time) for its metadata."""
        return set(self._run(asyncio.wait_for(self._producer.partitions_for(topic), CONNECT_TIMEOUT_SECONDS),
                             CONNECT_TIMEOUT_SECONDS + 2))

    def send(self, topic: str, records: Sequence[Record]) -> concurrent.futures.Future[None]:
        return asyncio.run_coroutine_threadsafe(self._send(topic, records), self._loop)

    async def _send(self, topic: str, records: Sequence[Record]) -> None:
        # The records go into one record batch per partition, built in C, and each batch to
        # the producer whole: a fraction of the cost of sending them one by one. Every batch
        # of a call is queued before any of the next call's, so none passes another.
        async with self._order:
            partitions = sorted(await self._producer.partitions_for(topic))  # cached once known
            batches: dict[int, Any] = {}
            deliveries = []
            for key, value, headers in records:
                partition = self._partitioner(key, partitions, partitions)
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = self._producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
                    deliveries.append(await self._submit(batch, topic, partition))
                    # An empty batch takes any record (one too large is refused by Kafka).
                    batch = batches[partition] = self._producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=headers)
            for partition, batch in batches.items():
                deliveries.append(await self._submit(batch, topic, partition))
        await asyncio.gather(*deliveries)

    async def _submit(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        batch.close()  # nothing else may join it
        delivery: asyncio.Future[Any] = await self._producer.send_batch(batch, topic, partition=partition)
        return delivery

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Flushes for at most `timeout` seconds, then drops what is left (the caller sends it
        again: nothing unacknowledged was recorded). Raises TimeoutError when it had to."""
        try:
            self._run(asyncio.wait_for(self._producer.stop(), timeout), timeout + 2)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)

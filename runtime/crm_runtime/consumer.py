"""The consumer side of the workers: partitions in parallel, records in batches, each batch
applied in one store transaction together with the partition's new position.

A worker is a faust app (the process, its signals, timers and the dead-letter producer);
each `EventConsumer` reads its topics with an aiokafka consumer of its own, in its own
consumer group (`<app id>.<name>`), as a task of that app.

A `BatchHandler` (a projection, a process application) owns its effects, the ids of the
events it applied (so the same event twice changes nothing) and its position per
partition, all in its own store and written in one transaction. `EventConsumer` feeds it:

- every partition has its own worker task, so partitions are processed concurrently and
  each in order;
- records are taken in batches: whatever was fetched while the partition's previous
  batch was applied and until the consumer's next tick (at most `max_wait`, the same
  moment for all partitions), up to `max_batch`; records at or below the stored position
  are skipped; a record that cannot be decoded goes to `<topic>.dlq` at once; the rest
  is applied in a thread, in one transaction (partitions' batches applied at the same
  time may share it: see `crm_runtime.readstore.Projection`);
- a transient failure (`is_transient`: a store, a peer or a race) is retried with back-off
  until it succeeds; any other failure makes the batch fall back to one event at a time,
  so that only the failing event is retried (`max_attempts`) and then dead-lettered, its
  position recorded past it, and the rest applied;
- when a partition is assigned, the Kafka consumer is moved to the stored position + 1
  (the beginning when the store has none), as Kafka Connect sinks do. The consumer
  group's offsets are only a hint, so a new, switched or restored store replays what it
  lacks by itself, and a rebuild needs no consumer-group surgery.

The consumer group's offsets are committed (every second) only for records whose batch
is committed, for tools that show a group's lag; they are never read back, since the
position in the store decides where a partition resumes. On SIGTERM a worker stops within
`stop_deadline.STOP_DEADLINE_SECONDS` whatever is unreachable: the batch in flight is
neither committed by us nor skipped, and it is seen again after the restart.

Retries use tenacity, one named policy per concern (`retry_transient`,
`retry_faulty_event`, `retry_dead_letter`, `retry_positions`, `retry_consumer_fault`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from faust.app.base import BootStrategy
from prometheus_client import Counter, Gauge, Histogram
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from crm_runtime import logs, retries, stop_deadline, tracing
from crm_runtime.cloudevents import EventEnvelope, EventRegistry, PoisonMessage
from crm_runtime.group_commit import GroupCommit, all_or_each
from crm_runtime.settings import PlatformSettings, ServiceSettings
from crm_runtime.topics import dead_letter_topic

log = logs.get(__name__)

CONSUMED = Counter("crm_consumer_events_total", "Records handled", ["consumer", "topic", "outcome"])
POSITION = Gauge("crm_consumer_position", "Offset of the last record applied", ["consumer", "topic", "partition"])
LAG = Gauge("crm_consumer_lag", "Records of the partition not applied yet", ["consumer", "topic", "partition"])
BATCH_SECONDS = Histogram("crm_consumer_batch_seconds", "Time to apply one batch", ["consumer"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))



# The one "retry, never skip" error of the platform (the dispatcher raises it too).
TransientError = retries.TransientError


def is_transient(exc: BaseException) -> bool:
    """Failures of something outside the event (a store, a peer, a race) that time fixes.

    They are retried until they succeed: dead-lettering them would lose an effect that
    nothing was wrong with. Anything else is a fault of the event or of the code, retried
    a few times and then dead-lettered so the stream goes on.
    """
    from eventsourcing.persistence import InterfaceError, OperationalError
    from sqlalchemy.exc import DisconnectionError
    from sqlalchemy.exc import InterfaceError as SQLInterfaceError
    from sqlalchemy.exc import OperationalError as SQLOperationalError

    from crm_runtime.errors import Conflict

    return isinstance(exc, (TransientError, Conflict, OperationalError, InterfaceError,
                            SQLOperationalError, SQLInterfaceError, DisconnectionError,
                            ConnectionError, TimeoutError, asyncio.TimeoutError))


# --- retry policies (tenacity), one per concern -------------------------------------------

def backoff() -> wait_base:
    """Capped exponential back-off with a little jitter: 0.2 s, 0.4 s, ... 10 s."""
    return wait_exponential(multiplier=0.2, max=10.0) + wait_random(0, 0.05)


def _log_retry(event: str, **context: Any) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(event, error=repr(exc), attempt=state.attempt_number,
                    retry_in=round(state.upcoming_sleep, 3), **context)
    return before_sleep


def retry_transient(**context: Any) -> AsyncRetrying:
    """A store, a peer or a race failed (`is_transient`): again, with back-off, until it
    succeeds. Anything else is raised at once. Cancellation (shutdown) is never retried."""
    return AsyncRetrying(retry=retry_if_exception(is_transient), stop=stop_never, wait=backoff(),
                         reraise=True, before_sleep=_log_retry("consumer.retrying", **context))


def retry_faulty_event(max_attempts: int, **context: Any) -> AsyncRetrying:
    """An event whose effect keeps failing for another reason: `max_attempts` tries in all,
    then the last error is raised (and the event dead-lettered by the caller)."""
    return AsyncRetrying(retry=retry_if_exception_type(Exception), stop=stop_after_attempt(max_attempts),
                         wait=backoff(), reraise=True, before_sleep=_log_retry("consumer.error", **context))


def retry_dead_letter(**context: Any) -> AsyncRetrying:
    """A dead letter must be acknowledged by Kafka before the source moves on: resend until it is."""
    return AsyncRetrying(retry=retry_if_exception_type(Exception), stop=stop_never, wait=backoff(),
                         reraise=True, before_sleep=_log_retry("consumer.dead_letter_retry", **context))


def retry_positions(**context: Any) -> AsyncRetrying:
    """Reading the stored positions when partitions are assigned: nothing can be consumed
    without them, so again until the store answers (bounded by faust's rebalance timeout)."""
    return AsyncRetrying(retry=retry_if_exception_type(Exception), stop=stop_never, wait=backoff(),
                         reraise=True, before_sleep=_log_retry("consumer.positions_retry", **context))


def retry_consumer_fault(**context: Any) -> AsyncRetrying:
    """A failure of the consumer's own code around a batch: nothing may escape the agent
    (faust would move on), so the whole batch is processed again."""
    return AsyncRetrying(retry=retry_if_exception_type(Exception), stop=stop_never, wait=backoff(),
                         reraise=True, before_sleep=_log_retry("consumer.process_failed", **context))


# --- what a handler sees -------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    """One decoded record."""

    envelope: EventEnvelope
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Record:
    """One record as it came from Kafka (what a dead letter carries)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


@runtime_checkable
class BatchHandler(Protocol):
    """A projection or process: effects, event ids and positions in its own store.

    `positions`, `apply` and `advance` are synchronous and called in a thread.
    """

    name: str  # unique per projection/handler: names its processed-events record and its positions

    def positions(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> offset of the last record applied (or passed)."""
        ...

    def apply(self, topic: str, partition: int, deliveries: Sequence[Delivery]) -> None:
        """In ONE store transaction: the effects of the events not seen before, their ids,
        and the partition's position (the last delivery's offset). Raises to fail the batch."""
        ...

    def advance(self, topic: str, partition: int, offset: int) -> None:
        """Records the position alone (past a dead-lettered or undecodable record); never
        moves a position back."""
        ...


# --- the faust app -------------------------------------------------------------------------

class _Boot(BootStrategy):
    """faust hosts the process (signals, timers, the dead-letter producer); its own Kafka
    consumer, fetcher and stream machinery are not started: each `EventConsumer` reads
    its topics with an aiokafka consumer of its own (about a third of a worker's CPU went
    to faust's per-event stream machinery)."""

    enable_kafka_consumer = False


class PlatformApp(faust.App):
    """A faust app whose `EventConsumer`s read Kafka themselves (see `_Boot`)."""

    BootStrategy = _Boot

    def __init__(self, *args: Any, platform: PlatformSettings, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.platform = platform


def make_app(app_id: str, platform: PlatformSettings, **overrides: Any) -> PlatformApp:
    settings: dict[str, Any] = dict(
        broker=f"kafka://{platform.kafka_bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        web_enabled=False,
        topic_replication_factor=1,
        topic_partitions=platform.topic_partitions,
        producer_acks=-1,
    )
    settings.update(overrides)
    name = f"{platform.topic_prefix}{app_id}"
    # faust keeps local state in a folder of its own: under the data folder, not the cwd.
    datadir = (platform.data_dir / "faust" / name).resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    settings.setdefault("datadir", str(datadir))
    return PlatformApp(name, platform=platform, **settings)


# --- the consumer --------------------------------------------------------------------------

def _raw(app: faust.App, *topics: str) -> Any:
    return app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


# How long an idle consumer waits in one fetch (records end the wait at once), and how
# often the consumer group's offsets are committed (a hint only: see EventConsumer).
POLL_SECONDS = 0.5
COMMIT_INTERVAL_SECONDS = 1.0


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: EventConsumer, kafka: AIOKafkaConsumer):
        self.owner = owner
        self.kafka = kafka

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner._revoked(self.kafka, revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.owner._assigned(self.kafka, assigned)


class EventConsumer:
    """Binds one `BatchHandler` to one or more topics: an aiokafka consumer of its own
    (consumer group `<app id>.<name>`), run as a task of the faust app, with one worker
    task per assigned partition.

    A partition's records queue up while its batch is applied; the next batch is whatever
    queued meanwhile and until the consumer's next tick, at most `max_wait` more (20 ms:
    fewer, larger transactions for a few milliseconds of latency; the tick is the same for
    all partitions), up to `max_batch` (a partition's fetching pauses while
    2 × `max_batch`, at least 1,000, are queued). Batches grow with the load.

    A handler that is not a `BatchHandler` is refused: positions live in the handler's
    store, never only in the consumer group.
    """

    def __init__(self, app: faust.App, topics: Sequence[str] | str, registry: EventRegistry,
                 handler: BatchHandler, *, name: str, max_batch: int = 500, max_wait: float = 0.02,
                 max_attempts: int = 5):
        if not isinstance(handler, BatchHandler):
            raise TypeError(f"{handler!r} is not a BatchHandler (positions, apply, advance)")
        if not isinstance(app, PlatformApp):
            raise TypeError("the app must come from crm_runtime.consumer.make_app")
        self.app = app
        self.name = name
        self.topic_names = [topics] if isinstance(topics, str) else list(topics)
        self.registry = registry
        self.handler = handler
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_attempts = max_attempts
        # Records queued per partition before its fetching pauses (memory, not batch size).
        self._pause_at = max(2 * max_batch, 1000)
        self.group_id = f"{app.conf.id}.{name}"
        # (topic, partition) -> last offset applied or passed; None: the store has none.
        self._positions: dict[tuple[str, int], int | None] = {}
        self._dead_letter_topics = {topic: _raw(app, dead_letter_topic(topic)) for topic in self.topic_names}
        self._queued: dict[Any, list[Record]] = {}  # partition -> records fetched, not applied yet
        self._workers: dict[Any, asyncio.Task[None]] = {}  # partition -> the task applying them
        self._done: dict[Any, int] = {}  # partition -> next offset, for the group's commit
        self._kafka: AIOKafkaConsumer | None = None
        app.task(self.run)

    @property
    def topic_name(self) -> str:
        return self.topic_names[0]

    # -- the Kafka side --

    def _new_kafka_consumer(self) -> AIOKafkaConsumer:
        platform: PlatformSettings = self.app.platform
        session_ms = int(platform.consumer_session_timeout_seconds * 1000)
        return AIOKafkaConsumer(
            bootstrap_servers=platform.kafka_bootstrap, group_id=self.group_id, client_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=self.max_batch,
            # A killed worker's partitions move to the survivors after this long, not 60 s.
            session_timeout_ms=session_ms, heartbeat_interval_ms=max(1000, session_ms // 4),
            rebalance_timeout_ms=max(session_ms, 30_000))

    async def run(self) -> None:
        """Reads the topics until cancelled (the worker stopping). Neither a rebalance nor a
        shutdown waits for a batch in flight (it may be stuck retrying a store that is down):
        positions are in the store, so whoever gets the partition next starts from what was
        committed."""
        kafka = await self._start()
        self._kafka = kafka
        committed = time.monotonic()
        try:
            while True:
                fetched = await kafka.getmany(timeout_ms=int(POLL_SECONDS * 1000), max_records=self.max_batch)
                for tp, messages in fetched.items():
                    self._queue(kafka, tp, messages)
                if time.monotonic() - committed >= COMMIT_INTERVAL_SECONDS:
                    committed = time.monotonic()
                    await self._commit(kafka)
        finally:
            self._kafka = None
            await self._stop_workers(list(self._workers))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(kafka.stop(), timeout=2)

    async def _start(self) -> AIOKafkaConsumer:
        """A started consumer, subscribed to the topics; Kafka unreachable: again, with back-off."""
        async for attempt in retry_consumer_fault(consumer=self.name, step="start"):
            with attempt:
                kafka = self._new_kafka_consumer()
                kafka.subscribe(self.topic_names, listener=_Rebalance(self, kafka))
                try:
                    await kafka.start()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(kafka.stop(), timeout=2)
                    raise
                return kafka
        raise AssertionError("unreachable: the start is retried until it succeeds")

    def _queue(self, kafka: AIOKafkaConsumer, tp: Any, messages: Sequence[Any]) -> None:
        if tp not in kafka.assignment():
            return  # revoked since this fetch: the next owner reads them from its position
        queued = self._queued.setdefault(tp, [])
        queued.extend(Record(m.topic, m.partition, m.offset, m.key, m.value, m.headers) for m in messages)
        if len(queued) >= self._pause_at:
            kafka.pause(tp)  # its worker is behind: fetch more once it has taken some
        worker = self._workers.get(tp)
        if worker is None or worker.done():
            self._workers[tp] = asyncio.create_task(self._work(kafka, tp),
                                                    name=f"{self.name}:{tp.topic}:{tp.partition}")

    async def _work(self, kafka: AIOKafkaConsumer, tp: Any) -> None:
        """Applies the partition's queued records, a batch at a time, until none are left."""
        while self._queued.get(tp):
            if self.max_wait and len(self._queued[tp]) < self.max_batch:
                await asyncio.sleep(self._to_next_tick())  # let the batch gather, as a producer lingers
            queued = self._queued[tp]
            batch, self._queued[tp] = queued[:self.max_batch], queued[self.max_batch:]
            if len(self._queued[tp]) < self._pause_at and tp in kafka.paused():
                kafka.resume(tp)
            # Nothing may escape (the partition would stall): retried until done.
            await retry_consumer_fault(consumer=self.name, topic=tp.topic, partition=tp.partition)(
                self.process_batch, tp.topic, tp.partition, batch)
            self._done[tp] = batch[-1].offset + 1
        self._queued.pop(tp, None)

    def _to_next_tick(self) -> float:
        """A partition lingers until the consumer's next tick (one every `max_wait`), the
        same moment for every partition: their batches then reach the handler together,
        and one that applies concurrent batches in one transaction (a Projection, see
        crm_runtime.readstore) gets them together."""
        return self.max_wait - asyncio.get_running_loop().time() % self.max_wait

    async def _commit(self, kafka: AIOKafkaConsumer) -> None:
        """The group's offsets follow the store's positions, for tools that show a group's
        lag; they are never read back (the store decides where a partition resumes)."""
        done, self._done = self._done, {}
        assigned = kafka.assignment()
        mine = {tp: offset for tp, offset in done.items() if tp in assigned}
        if mine:
            try:
                await kafka.commit(mine)
            except Exception as exc:  # noqa: BLE001 - a rebalance under way: the next commit
                log.debug("consumer.commit_skipped", consumer=self.name, error=repr(exc))

    async def _stop_workers(self, partitions: Sequence[Any]) -> None:
        tasks = [task for tp in partitions if (task := self._workers.pop(tp, None)) is not None]
        for tp in partitions:
            self._queued.pop(tp, None)
            self._done.pop(tp, None)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=stop_deadline.STOP_DEADLINE_SECONDS / 2)

    async def _revoked(self, kafka: AIOKafkaConsumer, revoked: Iterable[Any]) -> None:
        """Partitions taken away: their batches in flight are cancelled, not committed by
        us (a store thread already writing finishes; its position makes the next owner skip
        what it applied)."""
        await self._commit(kafka)
        await self._stop_workers(list(revoked))

    async def _assigned(self, kafka: AIOKafkaConsumer, assigned: Iterable[Any]) -> None:
        """Each assigned partition starts after the position its store holds, or at the
        beginning when it holds none, as Kafka Connect sinks do: the consumer group's
        offsets are only a hint, so a new, switched or restored store replays what it lacks
        by itself, and a rebuild needs no consumer-group surgery."""
        targets = await self.stored_targets(assigned)
        beginning = [tp for tp, target in targets.items() if target is None]
        for tp, target in targets.items():
            if target is not None:
                kafka.seek(tp, target)
        if beginning:
            await kafka.seek_to_beginning(*beginning)
        if targets:
            log.info("consumer.seeked_to_stored_positions", consumer=self.name,
                     positions={f"{tp.topic}:{tp.partition}": ("beginning" if target is None else target)
                                for tp, target in sorted(targets.items())})

    async def stored_targets(self, assigned: Iterable[Any]) -> dict[Any, int | None]:
        """For the assigned partitions of this consumer's topics: where to start reading
        (the stored position + 1, or None for the beginning). Reloads the cached positions."""
        mine = [tp for tp in assigned if tp.topic in self.topic_names]
        if not mine:
            return {}
        positions: dict[tuple[str, int], int] = await retry_positions(consumer=self.name)(
            asyncio.to_thread, self.handler.positions)
        targets: dict[Any, int | None] = {}
        for tp in mine:
            position = positions.get((tp.topic, tp.partition))
            self._positions[(tp.topic, tp.partition)] = position
            targets[tp] = None if position is None else position + 1
        return targets

    # -- the batch --

    async def process_batch(self, topic: str, partition: int, records: Sequence[Record]) -> dict[str, int]:
        """Skips what the store has, dead-letters what cannot be decoded, applies the rest.

        Returns the count per outcome. Raises only when cancelled (shutdown, revocation),
        and then nothing of the batch is recorded as done by this call.
        """
        outcomes = {"handled": 0, "skipped": 0, "dead-lettered": 0}
        position = await self._position(topic, partition)
        fresh = [r for r in records if position is None or r.offset > position]
        outcomes["skipped"] = len(records) - len(fresh)
        if not fresh:
            self._count(topic, outcomes)
            return outcomes
        deliveries: list[Delivery] = []
        by_offset: dict[int, Record] = {}
        for record in fresh:
            try:
                envelope = self.registry.decode(record.headers, record.value)
            except PoisonMessage as exc:
                await self.dead_letter(record, exc.reason)
                outcomes["dead-lettered"] += 1
                continue
            deliveries.append(Delivery(envelope, topic, partition, record.offset))
            by_offset[record.offset] = record
        started = time.perf_counter()
        if deliveries:
            handled, dead = await self._apply(topic, partition, deliveries, by_offset)
            outcomes["handled"] += handled
            outcomes["dead-lettered"] += dead
        last = fresh[-1].offset
        passed = self._positions.get((topic, partition))
        if passed is None or passed < last:
            # The batch ended with records that had no effect (undecodable): pass them for good.
            await retry_transient(consumer=self.name, topic=topic, partition=partition)(
                asyncio.to_thread, self.handler.advance, topic, partition, last)
            self._moved(topic, partition, last)
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        self._count(topic, outcomes)
        self._gauge(topic, partition, last)
        return outcomes

    async def _apply(self, topic: str, partition: int, deliveries: list[Delivery],
                     by_offset: Mapping[int, Record]) -> tuple[int, int]:
        try:
            await retry_transient(consumer=self.name, topic=topic, partition=partition,
                                  batch=len(deliveries))(self._call, topic, partition, deliveries)
            self._moved(topic, partition, deliveries[-1].offset)
            return len(deliveries), 0
        except Exception as exc:  # noqa: BLE001 - a fault of an event or the code: find which
            if len(deliveries) > 1:
                log.warning("consumer.batch_failed", consumer=self.name, topic=topic, partition=partition,
                            first_offset=deliveries[0].offset, last_offset=deliveries[-1].offset,
                            error=repr(exc), fallback="one event at a time")
        handled = dead = 0
        for delivery in deliveries:
            if await self._apply_one(delivery, by_offset[delivery.offset]):
                handled += 1
            else:
                dead += 1
        return handled, dead

    async def _apply_one(self, delivery: Delivery, record: Record) -> bool:
        """One event on its own: transient failures until they pass, others `max_attempts`
        times, then the dead letter (and the position past it). True when applied."""
        envelope = delivery.envelope
        context = dict(consumer=self.name, event_id=envelope.id, type=envelope.type,
                       topic=delivery.topic, partition=delivery.partition, offset=delivery.offset)
        transient = retry_transient(**context)
        try:
            with tracing.bound_from_headers(envelope.context):
                await retry_faulty_event(self.max_attempts, **context)(
                    transient, self._call, delivery.topic, delivery.partition, [delivery])
            self._moved(delivery.topic, delivery.partition, delivery.offset)
            return True
        except Exception as exc:  # noqa: BLE001 - given up after max_attempts: dead letter
            log.error("consumer.failed", error=repr(exc), **context)
            await self.dead_letter(record, f"handler failed {self.max_attempts} times: {exc!r}")
            await transient(asyncio.to_thread, self.handler.advance, delivery.topic, delivery.partition,
                            delivery.offset)
            self._moved(delivery.topic, delivery.partition, delivery.offset)
            return False

    async def _call(self, topic: str, partition: int, deliveries: Sequence[Delivery]) -> None:
        await asyncio.to_thread(self.handler.apply, topic, partition, deliveries)

    async def _position(self, topic: str, partition: int) -> int | None:
        key = (topic, partition)
        if key not in self._positions:  # not loaded at assignment (an app not made by make_app)
            positions: dict[tuple[str, int], int] = await retry_positions(consumer=self.name)(
            asyncio.to_thread, self.handler.positions)
            self._positions[key] = positions.get(key)
        return self._positions[key]

    def _moved(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        current = self._positions.get(key)
        if current is None or offset > current:
            self._positions[key] = offset

    def _count(self, topic: str, outcomes: Mapping[str, int]) -> None:
        for outcome, count in outcomes.items():
            if count:
                CONSUMED.labels(self.name, topic, outcome).inc(count)

    def _gauge(self, topic: str, partition: int, last: int) -> None:
        try:
            POSITION.labels(self.name, topic, str(partition)).set(last)
            highwater = self._kafka.highwater(TopicPartition(topic, partition)) if self._kafka else None
            if highwater is not None:
                LAG.labels(self.name, topic, str(partition)).set(max(0, highwater - last - 1))
        except Exception:  # noqa: BLE001 - metrics are best effort
            pass

    # -- dead letters --

    async def dead_letter(self, record: Record, reason: str) -> None:
        original = record.headers.items() if isinstance(record.headers, dict) else (record.headers or ())
        dlq_headers = [(name, v if isinstance(v, bytes) else str(v).encode()) for name, v in original]
        dlq_headers += [
            ("dlq_reason", reason.encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
        ]
        topic = self._dead_letter_topics.get(record.topic) or _raw(self.app, dead_letter_topic(record.topic))

        async def send() -> None:
            await (await topic.send(key=record.key, value=record.value, headers=dlq_headers))

        # Acknowledged before the source offset may move on; Kafka unreachable: wait, resend.
        await retry_dead_letter(consumer=self.name, topic=record.topic, offset=record.offset)(send)
        log.warning("consumer.dead_lettered", consumer=self.name, reason=reason, topic=record.topic,
                    partition=record.partition, offset=record.offset)


# --- eventsourcing applications as batch handlers ------------------------------------------

class EventStoreHandler:
    """A `BatchHandler` whose effects are aggregates of an eventsourcing application.

    `decide(deliveries)` (called in a thread) returns the aggregates the batch changes;
    their new events and the partition's position are recorded in ONE transaction by the
    application's process recorder (tracking name `<name>|<topic>|<partition>`, the
    Kafka offset as tracking id, which must grow). `decide` must be idempotent per event:
    the same event again must find its effect already there (e.g. aggregate ids derived
    from the event's subject), since a relay re-send arrives at a new offset. Within one
    batch, a repeated event id is passed to `decide` once.
    """

    def __init__(self, app: Any, name: str, decide: Callable[[Sequence[Delivery]], Sequence[Any]],
                 *, max_races: int = 10, serialize: bool = False):
        """`serialize`: partitions decide one at a time, for decisions that all move one
        aggregate (a rotation), where concurrent batches would only race and decide again.
        Then the batches of the partitions that queued meanwhile are decided next, all in
        one call of `decide` and one transaction with every partition's position, when the
        store's process recorder can record several (`records_more_tracking`, see
        crm_runtime.postgres_store); else one at a time."""
        from eventsourcing.persistence import ProcessRecorder

        if not isinstance(app.recorder, ProcessRecorder):
            raise TypeError(f"{type(app).__name__} does not record with a process recorder")
        if "|" in name:
            raise ValueError("a handler name cannot contain '|'")
        self.app = app
        self.name = name
        self.decide = decide
        self.max_races = max_races
        self._deciding: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if serialize else contextlib.nullcontext())
        self._together: GroupCommit[_Batch, None] | None = (
            GroupCommit(f"decide.{name}", self._apply_together)
            if serialize and getattr(app.recorder, "records_more_tracking", False) else None)

    def tracking_name(self, topic: str, partition: int) -> str:
        return f"{self.name}|{topic}|{partition}"

    def positions(self) -> dict[tuple[str, int], int]:
        prefix = f"{self.name}|"
        positions: dict[tuple[str, int], int] = {}
        for tracking_name, notification_id in _tracking_rows(self.app.recorder, prefix):
            if not tracking_name.startswith(prefix) or notification_id is None:
                continue
            topic, _, partition = tracking_name[len(prefix):].rpartition("|")
            if topic and partition.isdigit():
                positions[(topic, int(partition))] = int(notification_id)
        return positions

    def apply(self, topic: str, partition: int, deliveries: Sequence[Delivery]) -> None:
        batch = (self.tracking_name(topic, partition), deliveries)
        if self._together is not None:
            self._together.submit(batch)
            return
        with self._deciding:
            self._apply([batch])

    def _apply_together(self, batches: list[_Batch]) -> list[None | BaseException]:
        """The queued partitions' batches in one decision; when that fails, each again on
        its own, so that one partition's faulty event is that partition's alone."""
        return all_or_each(batches, self._apply, lambda batch: self._apply([batch]))

    def _apply(self, batches: Sequence[_Batch]) -> None:
        from eventsourcing.persistence import IntegrityError, Tracking

        from crm_runtime.errors import Conflict

        for _ in range(self.max_races):
            todo, ids, trackings = [], set(), []
            for name, deliveries in batches:
                position = self.app.recorder.max_tracking_id(name)
                for delivery in deliveries:
                    if (position is None or delivery.offset > position) and delivery.envelope.id not in ids:
                        ids.add(delivery.envelope.id)
                        todo.append(delivery)
                if position is None or deliveries[-1].offset > position:
                    trackings.append(Tracking(name, deliveries[-1].offset))
            if not todo:
                return
            aggregates = self.decide(todo)
            try:
                self._save(aggregates, trackings)
                return
            except IntegrityError:
                continue  # another writer moved an aggregate or a position: decide again
        raise Conflict(f"{', '.join(name for name, _ in batches)}: too much contention saving a batch")

    def advance(self, topic: str, partition: int, offset: int) -> None:
        from eventsourcing.persistence import IntegrityError, Tracking

        name = self.tracking_name(topic, partition)
        current = self.app.recorder.max_tracking_id(name)
        if current is not None and current >= offset:
            return
        try:
            self.app.recorder.insert_tracking(Tracking(name, offset))
        except IntegrityError:
            pass  # someone recorded this position (or a later one) first

    def _save(self, aggregates: Sequence[Any], trackings: Sequence[Any]) -> None:
        """`Application.save`, with the tracking records in the same transaction."""
        from eventsourcing.application import ProcessingEvent

        first, more = trackings[0], list(trackings[1:])
        processing: ProcessingEvent[Any] = ProcessingEvent(tracking=first)
        if more:
            processing.saved_kwargs["more_tracking"] = more
        processing.collect_events(*aggregates)
        if not processing.events:
            if more:
                self.app.recorder.insert_events([], tracking=first, more_tracking=more)
            else:
                self.app.recorder.insert_tracking(first)
            return
        recordings = self.app._record(processing)
        self.app._take_snapshots(processing)
        self.app._notify(recordings)


_Batch = tuple[str, Sequence[Delivery]]  # a partition's batch: its tracking name, its deliveries


def _tracking_rows(recorder: Any, prefix: str) -> list[tuple[str, int]]:
    """(name, position) of the tracking records whose name starts with `prefix`. The
    recorder's API reads one name at a time; a handler does not know its partitions."""
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if hasattr(recorder, "tracking_table_name"):  # PostgreSQL
        from psycopg.sql import SQL, Identifier

        statement = SQL("SELECT application_name, notification_id FROM {0}.{1} "
                        "WHERE application_name LIKE %s ESCAPE '\\'").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.tracking_table_name))
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, (like,))
            return [(row["application_name"], row["notification_id"]) for row in cursor.fetchall()]
    with recorder.datastore.transaction(commit=False) as cursor:  # SQLite
        cursor.execute("SELECT application_name, notification_id FROM tracking "
                       "WHERE application_name LIKE ? ESCAPE '\\'", (like,))
        return [(row["application_name"], row["notification_id"]) for row in cursor.fetchall()]


# --- the process ---------------------------------------------------------------------------

def main(settings: ServiceSettings, process: str, build: Callable[[ServiceSettings], faust.App]) -> None:
    """Entry point of a consumer process: logging, metrics, then the faust worker."""
    from crm_runtime import service

    service.configure_logging(settings, process)
    service.serve_metrics(settings.http_host, settings.worker_metrics_port)
    run_worker(build(settings))


class _Worker(faust.Worker):
    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        stop_deadline.arm()
        super()._schedule_shutdown(signal)

    def on_worker_shutdown(self) -> None:
        started = self._starting_fut
        if started is not None and started.done() and not started.cancelled() and started.exception():
            # faust can hang stopping a worker that never started: exit, so that the
            # supervisor (make run, a container runtime) sees the failure and acts on it.
            log.error("consumer.start_failed", error=repr(started.exception()))
            logging.shutdown()
            os._exit(1)
        stop_deadline.arm()
        super().on_worker_shutdown()


def run_worker(app: faust.App) -> None:
    """Runs the faust worker in the foreground until SIGTERM/SIGINT."""
    # Keep the platform's JSON logging: faust would otherwise install its own handlers.
    worker = _Worker(app, quiet=True, override_logging=False, redirect_stdouts=False)
    worker.spinner = None  # a terminal spinner would put escape codes into the JSON log
    worker.execute_from_commandline()

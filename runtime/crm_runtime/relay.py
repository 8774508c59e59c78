"""The outbox relay: publishes an application's notification log to its Kafka topic.

It reads committed events in notification order, a page at a time (caught up, it waits
for the next commit: PostgreSQL's LISTEN/NOTIFY; SQLite: polling), turns each into a
CloudEvents record keyed by aggregate id and sends the batch with an idempotent acks=all
producer (`producers.BatchProducer`). Batches are pipelined: the next one is read, encoded
and sent while Kafka acknowledges the previous ones, and the position recorded is the last
notification id of the newest batch that, with every batch before it, Kafka has fully
acknowledged. A crash anywhere re-sends at
most the unacknowledged batches (with the same ce_id) and never skips an event.
"""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from typing import Any, NamedTuple

from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Tracking, TrackingRecorder
from google.protobuf.message import Message
from prometheus_client import Counter, Gauge
from tenacity import RetryCallState, RetryError

from crm_runtime import logs, retries, stop_deadline
from crm_runtime.cloudevents import EventEnvelope, Record, RecordEncoder, stable_event_id
from crm_runtime.commit_signal import IDLE_LOOK_SECONDS, CommitSignal
from crm_runtime.eventstore import ServiceApplication, trace_context
from crm_runtime.producers import CLOSE_TIMEOUT_SECONDS, BatchProducer
from crm_runtime.settings import PlatformSettings
from crm_runtime.topics import events_topic

log = logs.get(__name__)

PUBLISHED = Counter("crm_relay_published_events_total", "Events the relay published", ["topic"])
POSITION = Gauge("crm_relay_position", "Last notification id acknowledged by Kafka", ["topic"])

# Turns a stored domain event into its protobuf event message, or None for an internal
# event that is not published (its position is still passed).
ToMessage = Callable[[Any], Message | None]


class NotificationSource:
    """Yields batches of notifications after a position, and an empty batch whenever it has
    caught up with the log (then waits for more).

    The log is read a page at a time in the caller's thread. Caught up, it waits for the
    next commit on PostgreSQL (`CommitSignal`, looking again every `idle_look` seconds as a
    safety net) and polls every `poll_interval` elsewhere."""

    def __init__(self, app: Application[Any], batch_size: int, poll_interval: float,
                 name: str = "relay", idle_look: float = IDLE_LOOK_SECONDS):
        self.app = app
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.idle_look = idle_look
        self.commits = CommitSignal(app.recorder, name)

    def batches(self, after: int, stop: threading.Event) -> Iterator[Sequence[Notification]]:
        self.commits.start()  # once: it listens until `close`, across the relay's restarts
        while not stop.is_set():
            self.commits.clear()  # before the read: a commit after it ends the wait below
            batch = self.app.recorder.select_notifications(
                start=after, limit=self.batch_size, inclusive_of_start=False)
            if batch:
                after = batch[-1].id
                yield batch
                continue
            yield ()  # caught up: the relay waits for what it sent meanwhile
            if self.commits.available:
                self.commits.wait_blocking(self.idle_look)
            else:
                stop.wait(self.poll_interval)

    def wake(self) -> None:
        """Ends a wait for the next commit (the relay is stopping)."""
        self.commits.wake()

    def close(self) -> None:
        self.commits.stop()


class _Sent(NamedTuple):
    """A batch handed to the producer: its last notification id, how many records it holds
    and the future of its delivery."""

    last: int
    records: int
    delivery: concurrent.futures.Future[None]


class OutboxRelay:
    def __init__(
        self,
        app: ServiceApplication,
        topic: str,
        to_message: ToMessage,
        producer: BatchProducer | Callable[[], BatchProducer] | None,
        *,
        source: str,
        batch_size: int = 500,
        poll_interval: float = 0.05,
        batches_in_flight: int = 2,
        position_interval: float = 1.0,
    ):
        """`producer` may be a factory: the relay then connects when it first publishes
        and reconnects after a failure, so it can start before the broker is reachable.
        `batches_in_flight`: how many sent batches may wait for their acknowledgements
        while the next one is read and encoded (after a crash they are sent again; 0 waits
        for each batch before reading the next). `position_interval`: while a backlog streams,
        the position is written at most this often (a transaction each time; after a crash
        what Kafka acknowledged since is sent again, with the same ce_id); whenever the relay
        catches up it is written at once."""
        self.app = app
        self.topic = topic
        self.to_message = to_message
        self._producer_factory = producer if callable(producer) else None
        self.producer = None if callable(producer) else producer
        self.source = source
        self.tracking_name = f"relay:{topic}"
        self.tracking: TrackingRecorder = app.tracking_recorder()
        self.notifications = NotificationSource(app, batch_size, poll_interval, name=self.tracking_name)
        self.batches_in_flight = batches_in_flight
        self.stop_event = threading.Event()
        self._encode = RecordEncoder(source)
        self._sent: deque[_Sent] = deque()  # oldest first
        self.acknowledged = 0  # the last position this relay recorded
        self.position_interval = position_interval
        self._unrecorded: int | None = None  # acknowledged by Kafka, not yet recorded
        self._recorded_at = time.monotonic()

    def position(self) -> int:
        return self.tracking.max_tracking_id(self.tracking_name) or 0

    def _decode(self, notification: Notification) -> tuple[Any, Message] | None:
        """The stored domain event and its message, or None for an internal event."""
        # Decode through the application's mapper: with a cipher the stored state is
        # ciphertext, and the mapper is what knows how to read it.
        domain_event = self.app.mapper.to_domain_event(notification)
        message = self.to_message(domain_event)
        return None if message is None else (domain_event, message)

    def envelope(self, notification: Notification) -> EventEnvelope | None:
        decoded = self._decode(notification)
        if decoded is None:
            return None
        domain_event, message = decoded
        aggregate_id = str(domain_event.originator_id)
        return EventEnvelope(
            id=stable_event_id(aggregate_id, domain_event.originator_version),
            source=self.source,
            subject=aggregate_id,
            time=domain_event.timestamp,
            message=message,
            context=trace_context(domain_event),
        )

    def record(self, notification: Notification) -> Record | None:
        """The Kafka record of a notification, `cloudevents.encode(self.envelope(n))` without
        the envelope (this runs once per published event), or None for an internal event."""
        decoded = self._decode(notification)
        if decoded is None:
            return None
        domain_event, message = decoded
        aggregate_id = str(domain_event.originator_id)
        return self._encode(stable_event_id(aggregate_id, domain_event.originator_version),
                            aggregate_id, domain_event.timestamp, message, trace_context(domain_event))

    def connect(self) -> BatchProducer:
        """The producer, connecting first if there is none yet."""
        if self.producer is None:
            assert self._producer_factory is not None, "no producer and no way to make one"
            self.producer = self._producer_factory()
        return self.producer

    def reset_producer(self) -> None:
        """Drops the producer after a failure; the next batch gets a fresh connection."""
        self._sent.clear()  # their outcome no longer matters: run() starts from the position
        if self._producer_factory is not None and self.producer is not None:
            self.producer.close(timeout=CLOSE_TIMEOUT_SECONDS)
            self.producer = None

    def close(self) -> None:
        self.notifications.close()
        # Bounded: with the broker gone a flush would wait out the delivery timeout, and a
        # stopping process must end within seconds (kafka-python may take the timeout twice:
        # once to flush, once for its I/O thread). Unacknowledged events are sent again.
        if self.producer is not None:
            try:
                self.producer.close(timeout=CLOSE_TIMEOUT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - kafka-python raises when it cannot flush
                log.warning("relay.closed_unflushed", topic=self.topic, error=repr(exc),
                            position=self.acknowledged, hint="unacknowledged events are sent again")
            self.producer = None

    def send(self, batch: Sequence[Notification]) -> None:
        """Hands a batch to the producer without waiting for Kafka; `settle` records it."""
        producer = self.connect()
        records = [record for record in map(self.record, batch) if record is not None]
        self._sent.append(_Sent(batch[-1].id, len(records), producer.send(self.topic, records)))

    def settle(self, keep: int = 0) -> None:
        """Waits until at most `keep` sent batches are unacknowledged and records the position:
        the last notification id of the newest batch that Kafka acknowledged in full, with
        every batch before it (with `keep`, only every `position_interval`). Raises the error
        of a batch that failed (nothing after it is recorded; the restart sends it again)."""
        acknowledged, count, failure = None, 0, None
        while self._sent:
            oldest = self._sent[0]
            if len(self._sent) > keep:
                self._wait(oldest.delivery)
            elif not oldest.delivery.done():
                break
            failure = oldest.delivery.exception()
            if failure is not None:
                break
            self._sent.popleft()
            acknowledged, count = oldest.last, count + oldest.records
        if acknowledged is not None:
            self._unrecorded = acknowledged
            PUBLISHED.labels(self.topic).inc(count)
            POSITION.labels(self.topic).set(acknowledged)
            log.debug("relay.published", topic=self.topic, count=count, position=acknowledged)
        if self._unrecorded is not None and (
                keep == 0 or failure is not None
                or time.monotonic() - self._recorded_at >= self.position_interval):
            # One position write for every batch acknowledged since the last one.
            self.tracking.insert_tracking(Tracking(self.tracking_name, self._unrecorded))
            self.acknowledged, self._unrecorded = self._unrecorded, None
            self._recorded_at = time.monotonic()
        if failure is not None:
            raise failure

    def _wait(self, delivery: concurrent.futures.Future[None]) -> None:
        """Waits until the delivery is done, a second at a time, so a stop is not held up by
        a broker that is gone (the batch is simply sent again after the restart)."""
        while not delivery.done():
            try:
                delivery.result(timeout=1.0)
            except TimeoutError:
                if self.stop_event.is_set():
                    raise
            except Exception:  # noqa: BLE001 - a failure is the caller's to report
                return

    def publish(self, batch: Sequence[Notification]) -> None:
        """Sends one batch, waits for every acknowledgement, then records its position."""
        self.send(batch)
        self.settle()

    def run(self, until: int | None = None) -> None:
        """Publishes until stopped or, given `until`, until that position is recorded."""
        start = self.position()
        self.acknowledged = start
        self._sent.clear()  # left by a failed run: this one starts again from the position
        self._unrecorded = None  # acknowledged but unrecorded: sent again, with the same ce_id
        log.info("relay.started", topic=self.topic, position=start)
        with closing(self.notifications.batches(start, self.stop_event)) as batches:  # type: ignore[type-var]
            for batch in batches:
                if batch:
                    self.send(batch)
                # Caught up (an empty batch): wait for everything sent. Otherwise wait only
                # when more batches than allowed are unacknowledged; record what already is.
                self.settle(keep=self.batches_in_flight if batch else 0)
                if until is not None and self.acknowledged >= until:
                    break
        self.settle()  # a clean stop leaves nothing acknowledged unrecorded
        log.info("relay.stopped", topic=self.topic, position=self.acknowledged)

    def stop(self) -> None:
        self.stop_event.set()
        self.notifications.wake()


def for_context(app: ServiceApplication, context: str, to_message: ToMessage,
                platform: PlatformSettings) -> OutboxRelay:
    """The relay of one context's store to crm.<context>.events.v1, configured by settings."""
    return OutboxRelay(
        app, events_topic(context, platform.topic_prefix), to_message,
        lambda: BatchProducer(platform.kafka_bootstrap, client_id="crm-relay"), source=f"crm/{context}",
        batch_size=platform.relay_batch_size, poll_interval=platform.relay_poll_interval_seconds)


def run_forever(relay: OutboxRelay, max_delay: float = 30.0) -> None:
    """Runs the relay until SIGTERM/SIGINT, restarting it after a broker or store error.

    A batch that keeps failing (broker down, or an event the relay cannot encode) is retried
    with growing delays and never skipped: later events wait behind it, in order."""

    def on_signal(signum: int, _frame: object) -> None:
        log.info("relay.signal", signal=signal.Signals(signum).name)
        stop_deadline.arm()
        relay.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def before_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.error("relay.error", topic=relay.topic, error=repr(error), attempt=state.attempt_number,
                  retry_in=state.upcoming_sleep, exc_info=error)
        try:
            relay.reset_producer()
        except Exception:  # noqa: BLE001 - a broken producer may fail to close too
            relay.producer = None

    try:
        for attempt in retries.broker_reconnect(relay.stop_event, before_retry, max_delay):
            with attempt:
                relay.run()  # returns only when stopped
    except RetryError:
        pass  # stopped while waiting to retry
    relay.close()

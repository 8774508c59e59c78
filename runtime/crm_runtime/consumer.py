"""The consumer side, for the faust apps: decode by ce_type, retry, dead-letter, carry on.

A handler receives decoded `EventEnvelope`s with the producer's trace context bound. What
it does must be idempotent per event id (see `readstore.ReadStore.apply_once`): delivery
is at-least-once and the relay may re-send. A record that cannot be decoded, or whose
handler keeps failing, goes to `<topic>.dlq` with the reason in the `dlq_reason` header.
A `TransientError` (a peer down or slow) is retried with back-off until it succeeds, so
the event is neither skipped nor dead-lettered while the peer recovers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from prometheus_client import Counter

from crm_runtime import logs, tracing
from crm_runtime.cloudevents import EventEnvelope, EventRegistry, PoisonMessage
from crm_runtime.settings import PlatformSettings, ServiceSettings
from crm_runtime.topics import dead_letter_topic

log = logs.get(__name__)

CONSUMED = Counter("crm_consumer_events_total", "Events handled", ["consumer", "topic", "outcome"])

Handler = Callable[[EventEnvelope], Awaitable[Any]]


class TransientError(Exception):
    """The effect could not be completed now but will succeed later (retry, never skip)."""


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


def make_app(app_id: str, platform: PlatformSettings, **overrides: Any) -> faust.App:
    settings: dict[str, Any] = dict(
        broker=f"kafka://{platform.kafka_bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        # Exactly-once mode has open rebalance bugs; handlers are idempotent instead.
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        store="memory://",
        web_enabled=False,
        topic_replication_factor=1,
        topic_partitions=platform.topic_partitions,
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        # A killed worker's partitions move to the survivors after this long, not 60 s.
        broker_session_timeout=platform.consumer_session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, platform.consumer_session_timeout_seconds / 4),
    )
    settings.update(overrides)
    name = f"{platform.topic_prefix}{app_id}"
    # faust keeps local state in a folder of its own: under the data folder, not the cwd.
    datadir = (platform.data_dir / "faust" / name).resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    settings.setdefault("datadir", str(datadir))
    return faust.App(name, **settings)


def backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    return min(cap, base * 2 ** min(attempt, 16))


async def _until_it_succeeds(action: Callable[[], Awaitable[Any]], event: str) -> None:
    """Runs `action` again, with back-off, until it completes without raising."""
    attempt = 0
    while True:
        try:
            await action()
            return
        except Exception as exc:  # noqa: BLE001 - logged, then retried
            delay = backoff(attempt)
            attempt += 1
            log.warning(event, error=repr(exc), attempt=attempt, retry_in=delay, exc_info=True)
            await asyncio.sleep(delay)


class EventConsumer:
    """Binds one handler to one topic of a faust app."""

    def __init__(self, app: faust.App, topic: str, registry: EventRegistry, handler: Handler,
                 *, name: str, max_attempts: int = 5):
        self.app = app
        self.name = name
        self.registry = registry
        self.handler = handler
        self.max_attempts = max_attempts
        self.topic_name = topic
        self.topic = app.topic(topic, key_type=bytes, value_type=bytes,
                               key_serializer="raw", value_serializer="raw")
        self.dead_letters = app.topic(dead_letter_topic(topic), key_type=bytes, value_type=bytes,
                                      key_serializer="raw", value_serializer="raw")
        app.agent(self.topic, name=f"{name}-{topic}")(self._agent)

    async def _agent(self, stream) -> None:
        # Nothing may escape: faust acknowledges the in-flight record when an agent raises,
        # which would skip it with no dead letter. So an unexpected failure is retried.
        async for event in stream.events():
            await _until_it_succeeds(
                lambda: self.process(event.key, event.value, event.headers, event.message),
                "consumer.process_failed")

    async def process(self, key: bytes | None, value: bytes | None, headers: Any, message: Any) -> str:
        try:
            envelope = self.registry.decode(headers, value)
        except PoisonMessage as exc:
            await self.dead_letter(key, value, headers, message, exc.reason)
            return "dead-lettered"
        with tracing.bound_from_headers(envelope.context):
            attempt = 0
            while True:
                try:
                    await self.handler(envelope)
                    CONSUMED.labels(self.name, self.topic_name, "handled").inc()
                    return "handled"
                except Exception as exc:  # noqa: BLE001 - classified below
                    transient = is_transient(exc)
                    if not transient and attempt + 1 >= self.max_attempts:
                        log.exception("consumer.failed", event_id=envelope.id, type=envelope.type)
                        await self.dead_letter(key, value, headers, message,
                                               f"handler failed {attempt + 1} times: {exc!r}")
                        return "dead-lettered"
                    delay = backoff(attempt)
                    log.warning("consumer.retrying" if transient else "consumer.error",
                                event_id=envelope.id, type=envelope.type, attempt=attempt + 1,
                                retry_in=delay, error=repr(exc))
                attempt += 1
                await asyncio.sleep(delay)

    async def dead_letter(self, key, value, headers, message, reason: str) -> None:
        original = headers.items() if isinstance(headers, dict) else (headers or ())
        dlq_headers = [(name, v if isinstance(v, bytes) else str(v).encode()) for name, v in original]
        dlq_headers += [
            ("dlq_reason", reason.encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_topic", str(getattr(message, "topic", self.topic_name)).encode()),
            ("dlq_partition", str(getattr(message, "partition", "")).encode()),
            ("dlq_offset", str(getattr(message, "offset", "")).encode()),
        ]

        async def send() -> None:
            await (await self.dead_letters.send(key=key, value=value, headers=dlq_headers))

        # Acknowledged before the source offset may move on; Kafka unreachable: wait, resend.
        await _until_it_succeeds(send, "consumer.dead_letter_retry")
        CONSUMED.labels(self.name, self.topic_name, "dead-lettered").inc()
        log.warning("consumer.dead_lettered", reason=reason, topic=self.topic_name,
                    partition=getattr(message, "partition", None),
                    offset=getattr(message, "offset", None))


def main(settings: ServiceSettings, process: str, build: Callable[[ServiceSettings], faust.App]) -> None:
    """Entry point of a consumer process: logging, metrics, then the faust worker."""
    from crm_runtime import service

    service.configure_logging(settings, process)
    service.serve_metrics(settings.http_host, settings.worker_metrics_port)
    run_worker(build(settings))


class _Worker(faust.Worker):
    def on_worker_shutdown(self) -> None:
        started = self._starting_fut
        if started is not None and started.done() and not started.cancelled() and started.exception():
            # faust can hang stopping a worker that never started: exit, so that the
            # supervisor (make run, a container runtime) sees the failure and acts on it.
            log.error("consumer.start_failed", error=repr(started.exception()))
            logging.shutdown()
            os._exit(1)
        super().on_worker_shutdown()


def run_worker(app: faust.App) -> None:
    """Runs the faust worker in the foreground until SIGTERM/SIGINT."""
    # Keep the platform's JSON logging: faust would otherwise install its own handlers.
    worker = _Worker(app, quiet=True, override_logging=False, redirect_stdouts=False)
    worker.spinner = None  # a terminal spinner would put escape codes into the JSON log
    worker.execute_from_commandline()

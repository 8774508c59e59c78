"""EventStoreHandler: a consumer whose effects are aggregates of an eventsourcing
application keeps its position per partition in the application's own database, written
in the same transaction as the events a batch decided (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import NAMESPACE_URL, uuid5

import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import consumer
from crm_runtime.cloudevents import EventEnvelope, EventRegistry, encode
from crm_runtime.consumer import Delivery, EventStoreHandler
from crm_runtime.eventstore import ServiceApplication
from crm_runtime.settings import PlatformSettings
from tests.queueing import Gate

pytestmark = pytest.mark.postgres
TOPIC = "t.crm.leads.events.v1"


class Tally(Aggregate):
    """The event ids seen per subject, in order."""

    @event("Started")
    def __init__(self, subject: str):
        self.subject = subject
        self.event_ids: list[str] = []

    @event("Counted")
    def count(self, event_id: str) -> None:
        self.event_ids.append(event_id)

    @staticmethod
    def create_id(subject: str):
        return uuid5(NAMESPACE_URL, f"tally/{subject}")


class TallyApplication(ServiceApplication):
    name = "HandlerTest"

    def tally(self, subject: str) -> Tally | None:
        try:
            return self.repository.get(Tally.create_id(subject))
        except AggregateNotFoundError:
            return None


def decider(app: TallyApplication, calls: list):
    def decide(deliveries):
        calls.append([d.offset for d in deliveries])
        touched: dict = {}
        for d in deliveries:
            subject = d.envelope.subject
            tally = touched.get(subject) or app.tally(subject) or Tally(subject)
            if d.envelope.id not in tally.event_ids:  # idempotent per event
                tally.count(d.envelope.id)
            touched[subject] = tally
        return list(touched.values())

    return decide


def delivery(offset: int, subject: str = "lead-1", event_id: str | None = None, partition: int = 0,
             topic: str = TOPIC) -> Delivery:
    envelope = EventEnvelope(id=event_id or f"e-{topic}-{partition}-{offset}", source="crm/test", subject=subject,
                             time=datetime.now(UTC), message=leads_events.LeadCaptured(lead_id=subject))
    return Delivery(envelope, topic, partition, offset)


@pytest.fixture
def app(any_platform: PlatformSettings) -> TallyApplication:
    return TallyApplication(any_platform)


def test_a_batch_and_its_position_are_saved_together(app):
    calls = []
    handler = EventStoreHandler(app, "tally", decider(app, calls))
    batch = [delivery(0, "lead-1"), delivery(1, "lead-2"), delivery(2, "lead-1"),
             delivery(3, "lead-1", f"e-{TOPIC}-0-2")]  # offset 2 again (a relay re-send)
    handler.apply(TOPIC, 0, batch)
    assert calls == [[0, 1, 2]]  # the repeated event id is decided once
    assert app.tally("lead-1").event_ids == [f"e-{TOPIC}-0-0", f"e-{TOPIC}-0-2"]
    assert handler.positions() == {(TOPIC, 0): 3}
    handler.apply(TOPIC, 0, batch)  # a redelivery: nothing to decide
    assert calls == [[0, 1, 2]]
    handler.apply(TOPIC, 0, batch + [delivery(4, "lead-3")])
    assert calls[-1] == [4] and handler.positions() == {(TOPIC, 0): 4}


def test_positions_per_partition_and_per_handler(app):
    relay_tracking = app.tracking_recorder()
    relay_tracking.insert_tracking(Tracking(f"relay:{TOPIC}", 42))  # another user of the table
    a = EventStoreHandler(app, "tally_a", decider(app, []))
    lookalike = EventStoreHandler(app, "tallyxa", decider(app, []))  # "_" is a LIKE wildcard
    a.apply(TOPIC, 0, [delivery(5, partition=0)])
    a.apply(TOPIC, 2, [delivery(0, partition=2), delivery(1, partition=2)])
    a.apply("other.topic", 1, [delivery(9, partition=1, topic="other.topic")])
    lookalike.apply(TOPIC, 0, [delivery(7, "lead-9", "x-7")])
    assert a.positions() == {(TOPIC, 0): 5, (TOPIC, 2): 1, ("other.topic", 1): 9}
    assert lookalike.positions() == {(TOPIC, 0): 7}


def test_advance_passes_a_record_and_never_moves_back(app):
    handler = EventStoreHandler(app, "tally", decider(app, []))
    handler.advance(TOPIC, 1, 3)
    handler.advance(TOPIC, 1, 2)
    handler.advance(TOPIC, 1, 3)
    assert handler.positions() == {(TOPIC, 1): 3}
    calls = []
    handler.decide = decider(app, calls)
    handler.apply(TOPIC, 1, [delivery(2, partition=1), delivery(3, partition=1), delivery(4, partition=1)])
    assert calls == [[4]] and handler.positions() == {(TOPIC, 1): 4}


def test_a_race_saves_nothing_and_the_batch_is_decided_again(app):
    calls = []
    decide = decider(app, calls)
    rival = TallyApplication(app.platform)

    def racing(deliveries):
        aggregates = decide(deliveries)
        if len(calls) == 1:  # another worker saves the same tally first
            rival_tally = Tally("lead-1")
            rival_tally.count("rival")
            rival.save(rival_tally)
        return aggregates

    handler = EventStoreHandler(app, "tally", racing)
    handler.apply(TOPIC, 0, [delivery(0, "lead-1")])
    assert len(calls) == 2  # the first save failed as a whole: no events, no position
    assert app.tally("lead-1").event_ids == ["rival", f"e-{TOPIC}-0-0"]
    assert handler.positions() == {(TOPIC, 0): 0}


def test_the_consumer_applies_batches_through_the_handler(app):
    calls = []
    handler = EventStoreHandler(app, "tally", decider(app, calls))
    faust_app = consumer.make_app("handler-test", PlatformSettings(kafka_bootstrap="127.0.0.1:1"))
    c = consumer.EventConsumer(faust_app, [TOPIC], EventRegistry.from_modules(leads_events), handler, name="tally")
    dead = []

    async def dead_letter(record, reason):
        dead.append(record.offset)

    c.dead_letter = dead_letter

    def record(offset, subject):
        key, value, headers = encode(delivery(offset, subject).envelope)
        return consumer.Record(TOPIC, 0, offset, key, value, headers)

    records = [record(0, "lead-1"), record(1, "lead-2"), consumer.Record(TOPIC, 0, 2, b"k", b"junk", []),
               record(3, "lead-1")]
    assert asyncio.run(c.process_batch(TOPIC, 0, records)) == {"handled": 3, "skipped": 0, "dead-lettered": 1}
    assert calls == [[0, 1, 3]] and dead == [2] and handler.positions() == {(TOPIC, 0): 3}
    assert asyncio.run(c.process_batch(TOPIC, 0, records))["skipped"] == 4


def test_serialized_partitions_queued_meanwhile_are_decided_together(app):
    """A serialized handler (one rotation for all partitions): the batches of partitions
    that queue while one is decided are decided next in one call and saved in one
    transaction with every partition's position; a faulty event fails its own partition
    only, the others are decided again without it."""
    calls: list[list[int]] = []
    decide = decider(app, calls)
    gate = Gate()

    def deciding(deliveries):
        if deliveries[0].envelope.subject == "blocker":
            gate.hold()  # the other partitions queue meanwhile
        if any(d.envelope.subject == "poison" for d in deliveries):
            raise ValueError("a faulty event")
        return decide(deliveries)

    handler = EventStoreHandler(app, "tally", deciding, serialize=True)
    errors: dict[int, BaseException] = {}

    def apply(*deliveries: Delivery):
        def call() -> None:
            try:
                handler.apply(TOPIC, deliveries[0].partition, list(deliveries))
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors[deliveries[0].partition] = exc
        return call

    gate.run(apply(delivery(0, "blocker", partition=2)),
             apply(delivery(0, "a"), delivery(1, "b")), apply(delivery(0, "c", partition=1)))
    assert errors == {}
    assert sorted(map(sorted, calls[1:])) == [[0, 0, 1]]  # both queued partitions, one decision
    assert handler.positions() == {(TOPIC, 0): 1, (TOPIC, 1): 0, (TOPIC, 2): 0}
    assert [app.tally(s).event_ids for s in "abc"] == [[f"e-{TOPIC}-0-0"], [f"e-{TOPIC}-0-1"], [f"e-{TOPIC}-1-0"]]

    gate.run(apply(delivery(1, "blocker", partition=2)),
             apply(delivery(2, "a")), apply(delivery(1, "poison", partition=1)))
    assert list(errors) == [1] and isinstance(errors[1], ValueError)
    assert handler.positions() == {(TOPIC, 0): 2, (TOPIC, 1): 0, (TOPIC, 2): 1}
    assert app.tally("a").event_ids == [f"e-{TOPIC}-0-0", f"e-{TOPIC}-0-2"] and app.tally("poison") is None

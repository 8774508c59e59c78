"""The consumer's batch policy, with an in-memory handler and the dead-letter send recorded
instead of produced (the real paths run against the broker and the stores in
tests/integration/test_batch_consumer.py and test_poison_message.py)."""

import asyncio
from datetime import UTC, datetime

import pytest
from tenacity import wait_none

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import consumer
from crm_runtime.cloudevents import EventEnvelope, EventRegistry, encode
from crm_runtime.settings import PlatformSettings

TOPIC = "crm.leads.events.v1"


class MemoryHandler:
    """A BatchHandler keeping effects, event ids and positions in dicts; `fail(deliveries)`
    may raise to simulate a store or a bug."""

    def __init__(self, name="memory", fail=lambda deliveries: None, positions=None):
        self.name = name
        self.fail = fail
        self.applied: list[str] = []
        self.ids: set[str] = set()
        self.stored = dict(positions or {})
        self.batches: list[int] = []

    def positions(self):
        return dict(self.stored)

    def apply(self, topic, partition, deliveries):
        self.fail(deliveries)
        self.batches.append(len(deliveries))
        for d in deliveries:
            if d.envelope.id not in self.ids:
                self.ids.add(d.envelope.id)
                self.applied.append(d.envelope.id)
        self.advance(topic, partition, deliveries[-1].offset)

    def advance(self, topic, partition, offset):
        key = (topic, partition)
        self.stored[key] = max(offset, self.stored.get(key, -1))


class RecordingConsumer(consumer.EventConsumer):
    def __init__(self, handler, **kwargs):
        app = consumer.make_app("policy-test", PlatformSettings(kafka_bootstrap="127.0.0.1:1"))
        super().__init__(app, [TOPIC], EventRegistry.from_modules(leads_events), handler, name="policy", **kwargs)
        self.dead = []

    async def dead_letter(self, record, reason):
        self.dead.append((record.offset, reason))


def record(offset: int, event_id: str | None = None, partition: int = 0) -> consumer.Record:
    key, value, headers = encode(EventEnvelope(
        id=event_id or f"e-{offset}", source="crm/leads", subject=f"lead-{offset}",
        time=datetime.now(UTC), message=leads_events.LeadCaptured(lead_id=f"lead-{offset}")))
    return consumer.Record(TOPIC, partition, offset, key, value, headers)


def garbage(offset: int) -> consumer.Record:
    return consumer.Record(TOPIC, 0, offset, b"k", b"garbage", [])


def run(c, records, partition=0):
    return asyncio.run(c.process_batch(TOPIC, partition, records))


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(consumer, "backoff", wait_none)


def test_a_batch_is_applied_in_one_call_with_its_position():
    handler = MemoryHandler()
    c = RecordingConsumer(handler)
    outcomes = run(c, [record(0), record(1), record(2, "e-1")])  # e-1 twice
    assert outcomes == {"handled": 3, "skipped": 0, "dead-lettered": 0}
    assert handler.batches == [3] and handler.applied == ["e-0", "e-1"]
    assert handler.stored == {(TOPIC, 0): 2}


def test_records_at_or_below_the_stored_position_are_skipped():
    handler = MemoryHandler(positions={(TOPIC, 0): 4})
    c = RecordingConsumer(handler)
    outcomes = run(c, [record(3), record(4), record(5), record(6)])
    assert outcomes["skipped"] == 2 and handler.applied == ["e-5", "e-6"]
    # The cache follows what was applied: a redelivery of the batch changes nothing.
    assert run(c, [record(5), record(6)])["skipped"] == 2 and handler.batches == [2]


def test_transient_failures_are_retried_until_the_batch_succeeds():
    calls = []

    def fail(deliveries):
        calls.append(len(deliveries))
        if len(calls) < 12:  # far more than max_attempts: transient errors never give up
            raise consumer.TransientError("store unavailable")

    handler = MemoryHandler(fail=fail)
    c = RecordingConsumer(handler, max_attempts=3)
    assert run(c, [record(0), record(1)])["handled"] == 2
    assert calls == [2] * 12 and c.dead == [] and handler.applied == ["e-0", "e-1"]


def test_a_failing_event_is_dead_lettered_and_the_rest_of_its_batch_applied():
    attempts = []

    def fail(deliveries):
        if any(d.envelope.id == "e-1" for d in deliveries):
            attempts.append(len(deliveries))
            raise RuntimeError("bug")

    handler = MemoryHandler(fail=fail)
    c = RecordingConsumer(handler, max_attempts=3)
    outcomes = run(c, [record(0), record(1), record(2)])
    assert outcomes == {"handled": 2, "skipped": 0, "dead-lettered": 1}
    assert attempts == [3, 1, 1, 1]  # the batch once, then the event alone max_attempts times
    assert handler.applied == ["e-0", "e-2"]
    assert c.dead == [(1, "handler failed 3 times: RuntimeError('bug')")]
    assert handler.stored == {(TOPIC, 0): 2}


def test_a_dead_lettered_last_event_still_moves_the_position():
    def fail(deliveries):
        raise RuntimeError("bug")

    handler = MemoryHandler(fail=fail)
    c = RecordingConsumer(handler, max_attempts=2)
    run(c, [record(7)])
    assert c.dead[0][0] == 7 and handler.stored == {(TOPIC, 0): 7}


def test_an_undecodable_record_never_reaches_the_handler():
    handler = MemoryHandler()
    c = RecordingConsumer(handler)
    outcomes = run(c, [record(0), garbage(1)])
    assert outcomes == {"handled": 1, "skipped": 0, "dead-lettered": 1}
    assert "missing CloudEvents header" in c.dead[0][1] and handler.applied == ["e-0"]
    assert handler.stored == {(TOPIC, 0): 1}  # passed for good: a restart does not redo it


def test_shutdown_stops_a_retrying_batch_and_records_nothing():
    def fail(deliveries):
        raise consumer.TransientError("store down")

    handler = MemoryHandler(fail=fail)
    c = RecordingConsumer(handler)

    async def stop_soon():
        task = asyncio.ensure_future(c.process_batch(TOPIC, 0, [record(0)]))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_soon())
    assert handler.stored == {} and handler.applied == [] and c.dead == []


def test_a_handler_that_keeps_no_positions_is_refused():
    async def per_event(envelope):  # the first release's API: positions only in the group
        return envelope

    with pytest.raises(TypeError, match="not a BatchHandler"):
        RecordingConsumer(per_event)


def test_store_and_race_failures_count_as_transient_bugs_do_not():
    from eventsourcing.persistence import OperationalError
    from sqlalchemy.exc import OperationalError as SQLOperationalError

    from crm_runtime.errors import Conflict, InvalidField
    from crm_runtime.readstore import ConcurrentApply

    assert consumer.is_transient(OperationalError("server closed the connection"))
    assert consumer.is_transient(SQLOperationalError("stmt", {}, Exception("database is locked")))
    assert consumer.is_transient(Conflict("rotation moved"))
    assert consumer.is_transient(ConcurrentApply("twin consumer"))
    assert consumer.is_transient(ConnectionRefusedError())
    assert not consumer.is_transient(InvalidField("owner_id", "too long"))
    assert not consumer.is_transient(RuntimeError("bug"))

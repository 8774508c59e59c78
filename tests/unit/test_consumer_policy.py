"""The consumer's retry policy, with the dead-letter send recorded instead of produced
(the real dead-letter path runs against the broker in tests/integration/test_poison_message.py)."""

import asyncio
from datetime import datetime, timezone

import pytest

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import consumer
from crm_runtime.cloudevents import EventEnvelope, EventRegistry, encode
from crm_runtime.settings import PlatformSettings


class RecordingConsumer(consumer.EventConsumer):
    def __init__(self, handler, **kwargs):
        app = consumer.make_app("policy-test", PlatformSettings(kafka_bootstrap="127.0.0.1:1"))
        super().__init__(app, "crm.leads.events.v1", EventRegistry.from_modules(leads_events),
                         handler, name="policy", **kwargs)
        self.dead = []

    async def dead_letter(self, key, value, headers, message, reason):
        self.dead.append(reason)


def record():
    return encode(EventEnvelope(id="e-1", source="crm/leads", subject="lead-1",
                                time=datetime.now(timezone.utc),
                                message=leads_events.LeadCaptured(lead_id="lead-1")))


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(consumer, "backoff", lambda attempt: 0)


def test_transient_failures_are_retried_until_the_effect_succeeds():
    calls = []

    async def handler(envelope):
        calls.append(envelope.id)
        if len(calls) < 12:  # far more than max_attempts: transient errors never give up
            raise consumer.TransientError("leads service unavailable")

    c = RecordingConsumer(handler, max_attempts=3)
    key, value, headers = record()
    assert asyncio.run(c.process(key, value, headers, None)) == "handled"
    assert len(calls) == 12 and c.dead == []


def test_a_handler_that_keeps_failing_is_dead_lettered_after_its_attempts():
    calls = []

    async def handler(envelope):
        calls.append(1)
        raise RuntimeError("bug")

    c = RecordingConsumer(handler, max_attempts=3)
    key, value, headers = record()
    assert asyncio.run(c.process(key, value, headers, None)) == "dead-lettered"
    assert len(calls) == 3 and "handler failed 3 times: RuntimeError('bug')" in c.dead[0]


def test_an_undecodable_record_never_reaches_the_handler():
    async def handler(envelope):
        raise AssertionError("must not be called")

    c = RecordingConsumer(handler)
    assert asyncio.run(c.process(b"k", b"garbage", [], None)) == "dead-lettered"
    assert "missing CloudEvents header" in c.dead[0]


def test_store_and_race_failures_count_as_transient_bugs_do_not():
    from eventsourcing.persistence import OperationalError
    from sqlalchemy.exc import OperationalError as SQLOperationalError

    from crm_runtime.errors import Conflict, InvalidField

    assert consumer.is_transient(OperationalError("server closed the connection"))
    assert consumer.is_transient(SQLOperationalError("stmt", {}, Exception("database is locked")))
    assert consumer.is_transient(Conflict("rotation moved"))
    assert consumer.is_transient(ConnectionRefusedError())
    assert not consumer.is_transient(InvalidField("owner_id", "too long"))
    assert not consumer.is_transient(RuntimeError("bug"))

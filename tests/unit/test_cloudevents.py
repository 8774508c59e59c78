from datetime import UTC, datetime, timedelta, timezone

import pytest

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import tracing
from crm_runtime.cloudevents import EventEnvelope, EventRegistry, PoisonMessage, encode, stable_event_id

REGISTRY = EventRegistry.from_modules(leads_events)


def envelope(**context):
    return EventEnvelope(
        id=stable_event_id("lead-1", 1), source="crm/leads", subject="lead-1",
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        message=leads_events.LeadCaptured(lead_id="lead-1", name="Ada", channel=leads_events.CHANNEL_WEB),
        context=context)


def test_binary_mode_headers_and_protobuf_value():
    key, value, headers = encode(envelope(traceparent=tracing.new_traceparent()))
    names = dict(headers)
    assert key == b"lead-1"
    assert names["ce_type"] == b"crm.leads.v1.LeadCaptured"
    assert names["ce_specversion"] == b"1.0"
    assert names["ce_subject"] == b"lead-1"
    assert names["content-type"] == b"application/protobuf"
    assert names["ce_time"] == b"2026-01-02T03:04:05Z"
    assert "traceparent" in names
    assert leads_events.LeadCaptured.FromString(value).name == "Ada"


def test_round_trip_keeps_attributes_message_and_context():
    original = envelope(correlation_id="c-1")
    _, value, headers = encode(original)
    decoded = REGISTRY.decode(headers, value)
    assert decoded == original
    assert decoded.type == "crm.leads.v1.LeadCaptured"
    assert decoded.correlation_id == "c-1"


def test_event_ids_are_stable_per_aggregate_version():
    assert stable_event_id("a", 1) == stable_event_id("a", 1)
    assert len({stable_event_id("a", 1), stable_event_id("a", 2), stable_event_id("b", 1)}) == 3


def test_decode_accepts_faust_style_header_dicts():
    _, value, headers = encode(envelope())
    assert REGISTRY.decode(dict(headers), value).subject == "lead-1"


@pytest.mark.parametrize("mutate,reason", [
    (lambda h, v: ([], v), "missing CloudEvents header"),
    (lambda h, v: ([(k, b"crm.nope.v1.X" if k == "ce_type" else x) for k, x in h], v), "unknown ce_type"),
    (lambda h, v: (h, b"\xff\xff\xff garbage"), "not a valid crm.leads.v1.LeadCaptured"),
    (lambda h, v: ([(k, b"2.0" if k == "ce_specversion" else x) for k, x in h], v), "ce_specversion"),
    (lambda h, v: ([(k, b"yesterday" if k == "ce_time" else x) for k, x in h], v), "ce_time"),
    (lambda h, v: ([(k, b"\xff" if k == "ce_id" else x) for k, x in h], v), "not UTF-8"),
])
def test_poison_messages_say_why(mutate, reason):
    _, value, headers = encode(envelope())
    bad_headers, bad_value = mutate(headers, value)
    with pytest.raises(PoisonMessage) as caught:
        REGISTRY.decode(bad_headers, bad_value)
    assert reason in caught.value.reason


def test_naive_event_time_is_refused():
    bad = EventEnvelope(id="x", source="s", subject="a", time=datetime(2026, 1, 1),
                        message=leads_events.LeadAssigned())
    with pytest.raises(ValueError):
        encode(bad)


def test_event_ids_are_uuid5_of_aggregate_and_version():
    from uuid import UUID, uuid4, uuid5

    from crm_runtime.cloudevents import EVENT_ID_NAMESPACE

    for aggregate_id in (uuid4(), str(uuid4()), "lead-1", "é/ü"):
        for version in (1, 2, 10**12):
            expected = str(uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}/{version}"))
            assert stable_event_id(aggregate_id, version) == expected
            assert UUID(expected).version == 5


@pytest.mark.parametrize("dt", [
    datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 1, 2, 3, 4, 5),  # naive: taken as UTC, as protobuf does
])
def test_timestamps_match_protobufs_own_conversion(dt):
    from google.protobuf.timestamp_pb2 import Timestamp

    from crm_runtime.cloudevents import timestamp

    expected = Timestamp()
    expected.FromDatetime(dt)
    assert timestamp(dt) == expected

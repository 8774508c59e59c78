"""Every event an aggregate can record is either published or explicitly internal.

An unmapped event would stall a relay (it never skips); this test finds it first. It walks
every declared context's package, so a new aggregate is covered without an edit here.
"""

import importlib
import inspect
import pkgutil

import pytest
from eventsourcing.domain import BaseAggregate

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import context as contexts
from crm_runtime.events import EventMap, UnmappedEvent, aggregate_event_classes


def aggregates_of(context) -> list[type]:
    package_name = context.settings.__module__.rsplit(".", 1)[0]
    package = importlib.import_module(package_name)
    found = {}
    for module_info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseAggregate) and cls.__module__.startswith(package_name + "."):
                found[cls.__qualname__] = cls
    return list(found.values())


CONTEXTS = contexts.discover()


def test_the_platform_declares_its_five_contexts():
    assert [c.name for c in CONTEXTS] == ["leads", "sales", "service-desk", "workflow", "analytics"]


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda c: c.name)
def test_every_aggregate_event_is_published_or_marked_internal(context):
    for aggregate in aggregates_of(context):
        events = list(aggregate_event_classes(aggregate))
        assert events, f"{aggregate.__qualname__} records no events?"
        assert context.events is not None, f"{context.name} has aggregates but no EventMap"
        unmapped = [cls.__qualname__ for cls in events if not context.events.covers(cls)]
        assert not unmapped, f"{context.name}: map these to an events.proto message or mark them internal"


@pytest.mark.parametrize("context", [c for c in CONTEXTS if c.events is not None], ids=lambda c: c.name)
def test_only_event_messages_become_ce_types(context):
    # The events module holds the context's event messages and nothing else.
    assert context.events.events_module.__name__ == f"crm.{context.topic}.v1.events_pb2"
    for message in context.events.message_types:
        assert not message.DESCRIPTOR.name.endswith(("Request", "Response"))


def test_the_aggregate_events_of_a_lead_are_its_recorded_ones():
    from crm_leads.domain import Lead

    assert {cls.__name__ for cls in aggregate_event_classes(Lead)} == {
        "Captured", "Assigned", "Contacted", "Qualified", "Disqualified", "Reopened",
        "ActivityLogged", "Changed", "Scored", "ScoreExplained"}


def test_an_unmapped_event_is_an_error_and_an_internal_one_is_passed():
    from eventsourcing.domain import Aggregate, event

    class Thing(Aggregate):
        @event("Made")
        def __init__(self, name: str):
            self.name = name

        @event("Poked")
        def poke(self) -> None:
            pass

    events = EventMap(leads_events)
    events.internal(Thing.Poked)
    thing = Thing(name="x")
    thing.poke()
    made, poked = thing.collect_events()
    with pytest.raises(UnmappedEvent, match="Made"):
        events.to_message(made)
    assert events.to_message(poked) is None
    with pytest.raises(ValueError, match="twice"):
        events.internal(Thing.Poked)


def test_a_converter_must_produce_an_event_message_of_the_context():
    from eventsourcing.domain import Aggregate, event

    from crm.leads.v1 import leads_pb2

    class Other(Aggregate):
        @event("Made")
        def __init__(self):
            pass

    events = EventMap(leads_events)
    events.publishes(Other.Made)(lambda e: leads_pb2.Lead(id="x"))
    with pytest.raises(UnmappedEvent, match="not an event"):
        events.to_message(Other().collect_events()[0])

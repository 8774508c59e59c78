"""Which domain events a context publishes, and as which protobuf message.

One table per context: `EventMap.publishes(Lead.Captured)` registers the converter of that
event class, `EventMap.internal(...)` marks bookkeeping events that stay in the store. The
relay asks the table; an event class in neither is an `UnmappedEvent`, and the completeness
test (tests/unit/test_event_maps.py) fails on it long before a relay would meet one.

The messages a context publishes live in its `proto/crm/<context>/v1/events.proto`, so a
consumer knows every event type of a topic from the generated `events_pb2` module alone.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar

from google.protobuf.message import Message

from crm_runtime.cloudevents import EventRegistry

E = TypeVar("E")
Converter = Callable[[Any], Message]


class UnmappedEvent(TypeError):
    """A stored event whose class the context's EventMap does not know."""


class EventMap:
    def __init__(self, events_module: ModuleType):
        self.events_module = events_module
        self._converters: dict[type, Converter] = {}
        self._internal: set[type] = set()
        self._message_set = frozenset(self.message_types)  # checked once per published event

    @property
    def message_types(self) -> list[type[Message]]:
        """Every event message of the context (its events.proto), by declaration order."""
        return [getattr(self.events_module, name)
                for name in self.events_module.DESCRIPTOR.message_types_by_name]

    def publishes(self, *event_classes: type) -> Callable[[Callable[[E], Message]], Callable[[E], Message]]:
        """Decorator: `fn(domain_event) -> message` is how these event classes are published."""

        def register(fn: Callable[[E], Message]) -> Callable[[E], Message]:
            for cls in event_classes:
                self._claim(cls)
                self._converters[cls] = fn
            return fn

        return register

    def internal(self, *event_classes: type) -> None:
        """These events stay inside the context's store (their log position is still passed)."""
        for cls in event_classes:
            self._claim(cls)
            self._internal.add(cls)

    def _claim(self, cls: type) -> None:
        if cls in self._converters or cls in self._internal:
            raise ValueError(f"{cls.__qualname__} is mapped twice")

    def covers(self, cls: type) -> bool:
        return cls in self._converters or cls in self._internal

    @property
    def published(self) -> bool:
        return bool(self._converters)

    def to_message(self, domain_event: Any) -> Message | None:
        """The event's message, or None for an internal event."""
        cls = type(domain_event)
        converter = self._converters.get(cls)
        if converter is not None:
            message = converter(domain_event)
            if type(message) not in self._message_set:
                raise UnmappedEvent(f"{cls.__qualname__} converts to {type(message).__name__}, "
                                    f"which is not an event of {self.events_module.__name__}")
            return message
        if cls in self._internal:
            return None
        raise UnmappedEvent(f"{cls.__qualname__} is neither published nor marked internal")


def events_module(context_topic: str) -> ModuleType:
    """The generated `crm.<context>.v1.events_pb2` module."""
    return importlib.import_module(f"crm.{context_topic}.v1.events_pb2")


def registry_for(*context_topics: str) -> EventRegistry:
    """A consumer's decoder: every event type of the given contexts' topics, and nothing else."""
    modules = [events_module(name) for name in context_topics]
    return EventRegistry.from_modules(*modules)


def aggregate_event_classes(aggregate: type) -> Iterator[type]:
    """The event classes an eventsourcing aggregate class can trigger.

    Its `@event` methods and its created event; the generic `Event` base and the default
    `Created`, when another created event replaced it, are not events it records.
    """
    from eventsourcing import domain

    base = getattr(aggregate, "Event", None)
    created = set(getattr(domain, "_created_event_classes", {}).get(aggregate, ()))
    for name, value in vars(aggregate).items():
        if not inspect.isclass(value) or base is None or not issubclass(value, base) or value is base:
            continue
        if name == "Created" and created and value not in created:
            continue
        yield value

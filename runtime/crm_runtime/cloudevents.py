"""Domain events as Kafka records: the CloudEvents Kafka binding, binary mode.

Attributes travel in `ce_*` headers, the value is the protobuf-encoded event and `ce_type`
is its full protobuf message name. Decoding never raises anything but `PoisonMessage`,
whose reason goes into the dead-letter record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha1
from types import ModuleType
from uuid import UUID

from google.protobuf import message as pb_message
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm_runtime import tracing

SPECVERSION = "1.0"
CONTENT_TYPE = "application/protobuf"
# Namespace for event ids: uuid5(namespace, "<aggregate id>/<version>") is the same on every re-send.
EVENT_ID_NAMESPACE = UUID("5d3c7e44-6f37-4c1e-9a7c-2f0a8f3a9b11")

HeadersArg = Mapping[str, bytes | str | None] | Iterable[tuple[str, bytes | str | None]]


class PoisonMessage(Exception):
    """A record that cannot be turned into a known event; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(dt: datetime) -> Timestamp:
    """A protobuf Timestamp of a timezone-aware datetime."""
    if dt.tzinfo is UTC:
        # What FromDatetime computes, without its time tuple: once per published event.
        delta = dt - _EPOCH
        return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def stable_event_id(aggregate_id: UUID | str, version: int) -> str:
    """str(uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}/{version}")), computed without the UUID
    object (it runs once per published event): SHA-1 of namespace and name, then the
    version (5) and RFC 4122 variant bits."""
    digest = bytearray(sha1(_NAMESPACE_BYTES + f"{aggregate_id}/{version}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class EventEnvelope:
    id: str
    source: str
    subject: str
    time: datetime
    message: Message
    context: dict[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return str(self.message.DESCRIPTOR.full_name)

    @property
    def correlation_id(self) -> str | None:
        return self.context.get(tracing.CORRELATION_ID)

    @property
    def traceparent(self) -> str | None:
        return self.context.get(tracing.TRACEPARENT)


Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def encode(envelope: EventEnvelope) -> Record:
    """Returns (key, value, headers) for the record; the key is the aggregate id."""
    return RecordEncoder(envelope.source)(envelope.id, envelope.subject, envelope.time,
                                          envelope.message, envelope.context)


class RecordEncoder:
    """`encode` for the events of one source, without an envelope: the relay calls it once per
    event, so the headers that never change are built once, as bytes, and each message type's
    ce_type once."""

    _SPECVERSION = ("ce_specversion", SPECVERSION.encode())
    _CONTENT_TYPE = ("content-type", CONTENT_TYPE.encode())

    def __init__(self, source: str):
        self._source = ("ce_source", source.encode())
        self._types: dict[type[Message], tuple[str, bytes]] = {}

    def __call__(self, event_id: str, subject: str, time: datetime, message: Message,
                 context: Mapping[str, str]) -> Record:
        if time.tzinfo is not UTC:
            if time.tzinfo is None:
                raise ValueError("event time must be timezone-aware")
            time = time.astimezone(UTC)
        ce_type = self._types.get(type(message))
        if ce_type is None:
            ce_type = self._types[type(message)] = ("ce_type", message.DESCRIPTOR.full_name.encode())
        key = subject.encode()
        # Order as always: the CloudEvents attributes, then the extensions (trace context).
        headers = [
            self._SPECVERSION,
            ("ce_id", event_id.encode()),
            self._source,
            ce_type,
            ("ce_time", time.isoformat().replace("+00:00", "Z").encode()),
            ("ce_subject", key),
            self._CONTENT_TYPE,
        ]
        if context:
            headers += [(name, value.encode()) for name, value in context.items()]
        return key, message.SerializeToString(), headers


def header_dict(headers: HeadersArg | None) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    out: dict[str, str] = {}
    for name, value in items:
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError as exc:
                raise PoisonMessage(f"header {name!r} is not UTF-8") from exc
        out[str(name)] = value or ""
    return out


class EventRegistry:
    """The event types a consumer understands, by full protobuf name."""

    def __init__(self, *message_classes: type[Message]):
        self._types = {cls.DESCRIPTOR.full_name: cls for cls in message_classes}

    @classmethod
    def from_modules(cls, *modules: ModuleType) -> EventRegistry:
        """Every message type declared in the given generated `*_pb2` modules."""
        return cls(*(getattr(module, name) for module in modules
                     for name in module.DESCRIPTOR.message_types_by_name))

    def __contains__(self, ce_type: str) -> bool:
        return ce_type in self._types

    def decode(self, headers: HeadersArg | None, value: bytes | None) -> EventEnvelope:
        attrs = header_dict(headers)
        missing = [name for name in ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject")
                   if not attrs.get(name)]
        if missing:
            raise PoisonMessage(f"missing CloudEvents header(s): {', '.join(missing)}")
        if attrs["ce_specversion"] != SPECVERSION:
            raise PoisonMessage(f"unsupported ce_specversion {attrs['ce_specversion']!r}")
        ce_type = attrs["ce_type"]
        cls = self._types.get(ce_type)
        if cls is None:
            raise PoisonMessage(f"unknown ce_type {ce_type!r}")
        if attrs.get("content-type", CONTENT_TYPE) != CONTENT_TYPE:
            raise PoisonMessage(f"unsupported content-type {attrs['content-type']!r}")
        try:
            message = cls.FromString(value or b"")
        except pb_message.DecodeError as exc:
            raise PoisonMessage(f"value is not a valid {ce_type}: {exc}") from exc
        try:
            time = datetime.fromisoformat(attrs.get("ce_time") or "")
        except ValueError as exc:
            raise PoisonMessage(f"ce_time {attrs.get('ce_time')!r} is not an RFC 3339 time") from exc
        if time.tzinfo is None:
            raise PoisonMessage("ce_time has no timezone")
        context = {k: attrs[k] for k in (tracing.TRACEPARENT, tracing.CORRELATION_ID) if attrs.get(k)}
        return EventEnvelope(
            id=attrs["ce_id"], source=attrs["ce_source"],
            subject=attrs["ce_subject"], time=time, message=message, context=context,
        )

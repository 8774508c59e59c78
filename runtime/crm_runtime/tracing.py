"""Trace context (W3C traceparent) and correlation id for the current unit of work.

Both live in contextvars so that a request handler, the events it stores, and every log
line in between carry them without being passed around. Consumers restore them from the
event headers, so one lead can be followed across services by its correlation id.
"""

from __future__ import annotations

import contextvars
import random
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

import structlog
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
CORRELATION_ID = "correlation_id"
# W3C Trace Context, parsed and written by OpenTelemetry's own propagator.
_PROPAGATOR = TraceContextTextMapPropagator()
# A caller's correlation id is kept only if it is short and plain; otherwise a new one is made.
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")

_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)
_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def _parent_span(traceparent: str | None) -> SpanContext | None:
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({TRACEPARENT: traceparent})
    span = trace.get_current_span(context).get_span_context()
    return span if span.is_valid else None


def _span(trace_id: int | None = None, sampled: bool = True) -> SpanContext:
    # Ids as OpenTelemetry's SDK makes them (random.getrandbits): unique, not secret.
    return SpanContext(trace_id=trace_id or random.getrandbits(128), span_id=random.getrandbits(64),
                       is_remote=False,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT))


def _child_span(parent: str | None) -> SpanContext:
    span = _parent_span(parent)
    return _span() if span is None else _span(span.trace_id, span.trace_flags.sampled)


def _traceparent_of(span: SpanContext) -> str:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(span)))
    return carrier[TRACEPARENT]


def new_traceparent(trace_id: str | None = None, sampled: bool = True) -> str:
    return _traceparent_of(_span(int(trace_id, 16) if trace_id else None, sampled))


def child_traceparent(parent: str | None) -> str:
    """A new span in the parent's trace, or a new trace when the parent is absent or bad."""
    return _traceparent_of(_child_span(parent))


def trace_id(traceparent: str | None) -> str | None:
    span = _parent_span(traceparent)
    return format(span.trace_id, "032x") if span else None


def current() -> dict[str, str]:
    """The context to store with events and send as message headers."""
    values = {}
    if (tp := _traceparent.get()) is not None:
        values[TRACEPARENT] = tp
    if (cid := _correlation_id.get()) is not None:
        values[CORRELATION_ID] = cid
    return values


@contextmanager
def bound(traceparent: str | None = None, correlation_id: str | None = None) -> Iterator[dict[str, str]]:
    """Enter a unit of work: a child span of `traceparent`, the given or a new correlation id."""
    span = _child_span(traceparent)
    tp = _traceparent_of(span)
    cid = correlation_id if correlation_id and _CORRELATION_RE.match(correlation_id) else str(uuid.uuid4())
    tokens = (_traceparent.set(tp), _correlation_id.set(cid))
    with structlog.contextvars.bound_contextvars(correlation_id=cid, trace_id=format(span.trace_id, "032x")):
        try:
            yield {TRACEPARENT: tp, CORRELATION_ID: cid}
        finally:
            _traceparent.reset(tokens[0])
            _correlation_id.reset(tokens[1])


def grpc_metadata() -> list[tuple[str, str]]:
    """The current context as gRPC metadata, for calls to other services."""
    names = {TRACEPARENT: "traceparent", CORRELATION_ID: "x-correlation-id"}
    return [(names[key], value) for key, value in current().items()]


def bound_from_headers(headers: Mapping[str, str]) -> AbstractContextManager[dict[str, str]]:
    return bound(headers.get(TRACEPARENT), headers.get(CORRELATION_ID))

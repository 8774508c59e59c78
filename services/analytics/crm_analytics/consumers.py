"""The analytics projections, fed by the worker: each event applied once (its id recorded
in the same transaction as its effect)."""

from __future__ import annotations

import asyncio

from crm_analytics import lead_projection
from crm_runtime import logs
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.readstore import ReadStore

log = logs.get(__name__)


def lead_report(_settings, store: ReadStore):
    async def project(envelope: EventEnvelope) -> None:
        applied, _ = await asyncio.to_thread(
            store.apply_once, envelope.id, lambda conn: lead_projection.apply(conn, envelope))
        log.info("analytics.projected", event_id=envelope.id, type=envelope.type, applied=applied)

    return project

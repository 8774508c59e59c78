"""Entry point: `python -m crm_analytics.worker`, the faust app projecting lead events."""

from __future__ import annotations

import asyncio

from crm.leads.v1 import leads_pb2
from crm_analytics import lead_projection
from crm_analytics.settings import AnalyticsSettings
from crm_runtime import consumer, logs
from crm_runtime.cloudevents import EventEnvelope, EventRegistry
from crm_runtime.readstore import ReadStore
from crm_runtime.topics import events_topic

log = logs.get(__name__)
APP_ID = "crm-analytics"  # the faust app id, which is also its consumer group


def handler_for(store: ReadStore):
    async def project(envelope: EventEnvelope) -> None:
        applied, _ = await asyncio.to_thread(
            store.apply_once, envelope.id, lambda conn: lead_projection.apply(conn, envelope))
        log.info("analytics.projected", event_id=envelope.id, type=envelope.type, applied=applied)

    return project


def build(settings: AnalyticsSettings):
    platform = settings.platform
    faust_app = consumer.make_app(APP_ID, platform)
    consumer.EventConsumer(faust_app, events_topic("leads", platform.topic_prefix),
                           EventRegistry.from_modules(leads_pb2),
                           handler_for(lead_projection.open_store(platform)), name="analytics")
    return faust_app


def main() -> None:
    consumer.main(AnalyticsSettings(), "analytics-worker", build)


if __name__ == "__main__":
    main()

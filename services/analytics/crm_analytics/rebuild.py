"""`python -m crm_analytics.rebuild`: drop the read models and rebuild them by replay.

Stop the analytics worker first. This drops the projection tables (and the event ids they
recorded) and deletes the worker's consumer group offsets; the worker, started again,
reads every event topic from the start (they keep every record) and arrives at the same
answers.
"""

from __future__ import annotations

from crm_analytics import lead_projection
from crm_analytics.context import CONTEXT
from crm_analytics.settings import AnalyticsSettings
from crm_runtime import logs, service
from crm_runtime.worker import app_id
from crm_runtime.kafka_admin import forget_consumer_group

log = logs.get(__name__)


def rebuild(settings: AnalyticsSettings) -> None:
    platform = settings.platform
    group = f"{platform.topic_prefix}{app_id(CONTEXT)}"
    # Offsets first: if the worker is still running this refuses, and nothing is dropped.
    forget_consumer_group(platform.kafka_bootstrap, group)
    store = lead_projection.open_store(platform)
    store.drop_tables()
    store.create_tables()
    log.info("analytics.rebuild_ready", consumer_group=group,
             hint="start the analytics worker to replay the topics")


def main() -> None:
    settings = AnalyticsSettings()
    service.configure_logging(settings, "analytics-rebuild")
    rebuild(settings)
    print("read models dropped; start the analytics worker to rebuild them by replay")


if __name__ == "__main__":
    main()

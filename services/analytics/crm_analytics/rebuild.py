"""`python -m crm_analytics.rebuild`: empty every read model and rebuild it by replay.

Stop the analytics worker first (this refuses while a member of one of its consumer groups
runs).
Each projection is reset: its tables, its processed-event ids and its positions emptied.
The worker, started again, seeks every partition to the position its store holds (none:
the beginning) and replays the event topics, which keep every record, to the same answers.
The consumer group's offsets are left alone: positions live in the read store.
"""

from __future__ import annotations

from crm_analytics.context import CONTEXT
from crm_analytics.read_models import ReadModels
from crm_analytics.settings import AnalyticsSettings
from crm_runtime import logs, service
from crm_runtime.kafka_admin import running_members
from crm_runtime.worker import consumer_groups

log = logs.get(__name__)


class WorkerRunning(RuntimeError):
    pass


def rebuild(settings: AnalyticsSettings) -> list[str]:
    platform = settings.platform
    for group in consumer_groups(CONTEXT, platform.topic_prefix):
        members = running_members(platform.kafka_bootstrap, group)
        if members:
            raise WorkerRunning(f"consumer group {group} still has running members ({members}): "
                                f"stop the analytics worker first")
    models = ReadModels(platform)
    for projection in models.all:
        projection.reset()
    names = [projection.name for projection in models.all]
    log.info("analytics.rebuild_ready", projections=names, hint="start the analytics worker to replay")
    return names


def main() -> None:
    settings = AnalyticsSettings()
    service.configure_logging(settings, "analytics-rebuild")
    try:
        names = rebuild(settings)
    except WorkerRunning as exc:
        raise SystemExit(str(exc)) from None
    print(f"read models emptied ({', '.join(names)}); start the analytics worker to rebuild them by replay")


if __name__ == "__main__":
    main()

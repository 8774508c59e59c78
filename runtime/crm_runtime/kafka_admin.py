"""Topic creation and broker reachability, with kafka-python's admin client."""

from __future__ import annotations

import threading

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from crm_runtime.topics import all_topics


def create_topics(bootstrap: str, names: list[str], partitions: int) -> list[str]:
    """Creates the missing topics; event topics keep every record forever (replayable)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="crm-topics",
                             request_timeout_ms=30_000)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, num_partitions=partitions, replication_factor=1,
                        topic_configs={"retention.ms": "-1", "retention.bytes": "-1"})
               for name in names if name not in existing]
        if new:
            try:
                admin.create_topics(new, timeout_ms=30_000)
            except TopicAlreadyExistsError:
                pass  # another process created them first
        return [topic.name for topic in new]
    finally:
        admin.close()


def create_platform_topics(bootstrap: str, prefix: str, partitions: int) -> list[str]:
    return create_topics(bootstrap, all_topics(prefix), partitions)


def running_members(bootstrap: str, group_id: str) -> int:
    """How many consumers are members of the group right now (0 when it has none or none
    ever joined): a rebuild refuses to run beside a live consumer."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="crm-replay",
                             request_timeout_ms=30_000)
    try:
        described = admin.describe_groups([group_id]).get(group_id) or {}
    finally:
        admin.close()
    return len(described.get("members") or ())


class KafkaProbe:
    """Answers 'is the broker reachable' for /readyz, reusing one admin connection."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        with self._lock:
            try:
                if self._admin is None:
                    self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                                   client_id="crm-readiness",
                                                   request_timeout_ms=3000,
                                                   bootstrap_timeout_ms=3000)
                self._admin.describe_cluster()
            except Exception:
                if self._admin is not None:
                    self._admin.close()
                self._admin = None
                raise


def main(argv: list[str] | None = None) -> None:
    """`python -m crm_runtime.kafka_admin [TOPIC ...]`: creates the given (default: all) topics."""
    import sys

    from crm_runtime.settings import PlatformSettings

    settings = PlatformSettings()
    names = (argv if argv is not None else sys.argv[1:]) or all_topics(settings.topic_prefix)
    created = create_topics(settings.kafka_bootstrap, names, settings.topic_partitions)
    print(f"topics ready on {settings.kafka_bootstrap}: {len(names)} ({len(created)} created)")


if __name__ == "__main__":
    main()

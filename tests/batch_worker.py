"""A consumer process for the batch-consumer tests: `python -m tests.batch_worker`.

A faust worker (crm_runtime.consumer.main, as the services run theirs) feeding one or more
test projections from the leads topic. A test projection counts each subject's events
and keeps their sequence numbers in arrival order, so order per key, duplicates and
losses all show in its table; it also records the size of every batch it applied.

Settings come from the environment: the CRM_* platform settings (store, data dir, topic
prefix, broker) and
  BATCH_TEST_APP          faust app id (so the consumer group)
  BATCH_TEST_PROJECTIONS  "name:max_batch,..." (default "batched:500")
  BATCH_TEST_FAIL_SUBJECT events of this subject raise ValueError (a poison event)
  BATCH_TEST_STUCK_FILE   while this file exists, events raise TransientError (a store down)
  BATCH_TEST_STUCK_SUBJECT  ... only the events of this subject (default: all)
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import SettingsConfigDict
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, insert, select, update

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime import consumer, logs
from crm_runtime.cloudevents import EventEnvelope, EventRegistry
from crm_runtime.readstore import Projection, make_engine
from crm_runtime.settings import PlatformSettings, ServiceSettings
from crm_runtime.topics import events_topic

log = logs.get(__name__)
STORE_NAME = "batchtest"


class BatchTestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BATCH_TEST_", extra="ignore")

    name: str = "batch-test-worker"
    app: str = "batch-test"
    projections: str = "batched:500"
    fail_subject: str = ""
    stuck_file: str = ""
    stuck_subject: str = ""


class TestProjection(Projection):
    """Per subject: how many events, and their sequence numbers in the order applied."""

    __test__ = False  # not a pytest class

    def __init__(self, engine, name: str, fail_subject: str = "", stuck_file: str = "", stuck_subject: str = ""):
        metadata = MetaData()
        self.subjects = Table(f"{name}_subjects", metadata,
                              Column("subject", String(64), primary_key=True),
                              Column("count", Integer, nullable=False),
                              Column("sequence", Text, nullable=False))
        self.batches = Table(f"{name}_batches", metadata,
                             Column("id", Integer, primary_key=True, autoincrement=True),
                             Column("size", Integer, nullable=False))
        self.fail_subject = fail_subject
        self.stuck_file = Path(stuck_file) if stuck_file else None
        self.stuck_subject = stuck_subject
        super().__init__(engine, name, self.apply_subject, metadata)

    def apply_in(self, conn, topic, partition, deliveries):
        conn.execute(insert(self.batches).values(size=len(deliveries)))
        return super().apply_in(conn, topic, partition, deliveries)

    def apply_subject(self, conn: Connection, envelope: EventEnvelope) -> None:
        if (self.stuck_file is not None and self.stuck_file.exists()
                and self.stuck_subject in ("", envelope.subject)):
            raise consumer.TransientError("the test keeps this store unavailable")
        if envelope.subject == self.fail_subject:
            raise ValueError(f"poison event {envelope.id}")
        seq = envelope.message.name
        t = self.subjects
        row = conn.execute(select(t.c["count"], t.c.sequence).where(t.c.subject == envelope.subject)).first()
        if row is None:
            conn.execute(insert(t).values(subject=envelope.subject, count=1, sequence=seq))
        else:
            conn.execute(update(t).where(t.c.subject == envelope.subject)
                         .values(count=row[0] + 1, sequence=f"{row[1]},{seq}"))
        # A log line per event, on the handler's path (a closed stdout must not matter).
        log.info("batchtest.applied", event_id=envelope.id, subject=envelope.subject, seq=seq)

    def table(self) -> dict[str, tuple[int, str]]:
        with self.engine.connect() as conn:
            return {s: (c, q) for s, c, q in conn.execute(select(self.subjects))}

    def batch_sizes(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(self.batches.c.size).order_by(self.batches.c.id)).scalars())


def open_projection(platform: PlatformSettings, name: str, **kwargs) -> TestProjection:
    return TestProjection(make_engine(platform, STORE_NAME), name, **kwargs)


def build(settings: BatchTestSettings):
    platform = settings.platform
    app = consumer.make_app(settings.app, platform)
    topic = events_topic("leads", platform.topic_prefix)
    registry = EventRegistry.from_modules(leads_events)
    for spec in settings.projections.split(","):
        name, _, max_batch = spec.partition(":")
        projection = open_projection(platform, name, fail_subject=settings.fail_subject,
                                     stuck_file=settings.stuck_file, stuck_subject=settings.stuck_subject)
        consumer.EventConsumer(app, [topic], registry, projection, name=name, max_batch=int(max_batch or 500))
    return app


def main() -> None:
    consumer.main(BatchTestSettings(), "batch-test-worker", build)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

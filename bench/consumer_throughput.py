"""How many events/s a batch consumer sustains, and its latency at a steady rate.

    .venv/bin/python bench/consumer_throughput.py      # starts a private broker (port 29192)
    CRM_KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python bench/consumer_throughput.py
    CRM_BENCH_STORES=sqlite CRM_BENCH_EVENTS=5000 ...   # fewer runs

For each store (SQLite, PostgreSQL: a fresh database, dropped afterwards):

1. backlog: N CloudEvents records (LeadCaptured, keys spread over 3 partitions, 1 in 50 a
   relay re-send of an earlier event) produced with the raw kafka-python producer, then a
   faust consumer (crm_runtime.consumer, in this process) projects them into a lead read
   model (`Projection`: an upsert per lead, the event ids, the positions). Events/s is
   counted from the first batch started to the last committed; the same for a consumer
   taking one event per transaction (max_batch=1, the first release's behaviour) on a
   smaller backlog, as the baseline;
2. latency: records produced at a steady rate (200/s by default, by another process) for
   some seconds while the consumer runs; an event's latency is from its send to the commit
   of its batch.

Each with a projection writing an upsert per event (as the lead report does today) and
with a set-based one (`Projection(apply_events=...)`: one statement per batch).

Figures only, no asserts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import threading
import time
import uuid
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer
from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crm.leads.v1 import events_pb2 as leads_events
from crm_devstack.postgres import fresh_database
from crm_runtime import consumer, logs
from crm_runtime.cloudevents import EventEnvelope, EventRegistry, encode, stable_event_id
from crm_runtime.kafka_admin import create_topics
from crm_runtime.readstore import Projection, make_engine
from crm_runtime.settings import PlatformSettings

REPO = Path(__file__).resolve().parents[1]
N = int(os.environ.get("CRM_BENCH_EVENTS", "20000"))
BASELINE_N = int(os.environ.get("CRM_BENCH_BASELINE_EVENTS", "1000"))
RATE = float(os.environ.get("CRM_BENCH_RATE", "200"))
RATE_SECONDS = float(os.environ.get("CRM_BENCH_RATE_SECONDS", "15"))
PARTITIONS = 3


class LeadProjection(Projection):
    """A lead read model (as analytics keeps one), timing each batch it commits.

    `set_based=False`: an upsert per event (select, then insert or update), as the lead
    report is written today; `True`: one INSERT ... ON CONFLICT DO UPDATE per batch."""

    def __init__(self, engine, name: str, set_based: bool = False):
        metadata = MetaData()
        self.leads = Table(f"{name}_leads", metadata,
                           Column("lead_id", String(64), primary_key=True),
                           Column("channel", String(32)),
                           Column("captured_at", DateTime(timezone=True)))
        if set_based:
            super().__init__(engine, name, metadata=metadata, apply_events=self.upsert_all)
        else:
            super().__init__(engine, name, self.upsert, metadata)
        self.lock = threading.Lock()
        self.first_started: float | None = None
        self.applied = 0
        self.last_committed = 0.0
        self.latencies: list[float] = []  # send -> commit
        self.batch_sizes: list[int] = []

    @staticmethod
    def values(envelope: EventEnvelope) -> dict:
        message = envelope.message
        return dict(channel=leads_events.Channel.Name(message.channel).removeprefix("CHANNEL_").lower(),
                    captured_at=message.captured_at.ToDatetime(tzinfo=UTC))

    def upsert(self, conn: Connection, envelope: EventEnvelope) -> None:
        lead_id, t = envelope.message.lead_id, self.leads
        if conn.execute(select(t.c.lead_id).where(t.c.lead_id == lead_id)).first():
            conn.execute(update(t).where(t.c.lead_id == lead_id).values(**self.values(envelope)))
        else:
            conn.execute(insert(t).values(lead_id=lead_id, **self.values(envelope)))

    def upsert_all(self, conn: Connection, envelopes) -> None:
        rows = {e.message.lead_id: {"lead_id": e.message.lead_id, **self.values(e)} for e in envelopes}  # last wins
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(self.leads).values(list(rows.values()))
        conn.execute(statement.on_conflict_do_update(
            index_elements=[self.leads.c.lead_id],
            set_={"channel": statement.excluded.channel, "captured_at": statement.excluded.captured_at}))

    def apply(self, topic, partition, deliveries):
        with self.lock:
            if self.first_started is None:
                self.first_started = time.perf_counter()
        super().apply(topic, partition, deliveries)
        now, wall = time.perf_counter(), time.time()
        with self.lock:
            self.applied += len(deliveries)
            self.last_committed = now
            self.batch_sizes.append(len(deliveries))
            self.latencies.extend(wall - d.envelope.time.timestamp() for d in deliveries)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(self.leads.c.lead_id)).all())


def records(n: int, start: int = 0, now: bool = False) -> list[tuple[bytes, bytes, list]]:
    out = []
    for i in range(start, start + n):
        lead = f"lead-{i}"
        if i % 50 == 49:  # a relay re-send of an earlier event: same ce_id
            lead = f"lead-{i - 25}"
        out.append(encode(EventEnvelope(
            id=stable_event_id(lead, 1), source="crm/leads", subject=lead,
            time=datetime.now(UTC) if now else datetime(2026, 1, 1, tzinfo=UTC),
            message=leads_events.LeadCaptured(lead_id=lead, name="Bench", channel=leads_events.CHANNEL_WEB))))
    return out


def produce(bootstrap: str, topic: str, batch: list) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in batch]
    producer.flush()
    for future in futures:
        future.get(30)
    producer.close()


def produce_at_rate(bootstrap: str, topic: str, rate: float, seconds: float, start: int) -> int:
    """In a process of its own, as a relay would be (not competing for this one's GIL)."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--produce", bootstrap, topic, str(rate), str(seconds),
                          str(start)], check=True, capture_output=True, text=True, cwd=REPO)
    return int(out.stdout.strip().splitlines()[-1])


def _produce_at_rate(bootstrap: str, topic: str, rate: float, seconds: float, start: int) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    sent, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        due = int(elapsed * rate) + 1
        for k, v, h in records(due - sent, start + sent, now=True):
            producer.send(topic, key=k, value=v, headers=h)
        sent = due
        time.sleep(0.002)
    producer.flush()
    producer.close()
    return sent


async def consume(platform: PlatformSettings, topic: str, projection: LeadProjection, *, max_batch: int,
                  until, timeout: float = 600.0) -> None:
    """Runs a faust app with one consumer until `until()` holds (checked every 50 ms)."""
    app = consumer.make_app(f"bench-{projection.name}", platform)
    consumer.EventConsumer(app, [topic], EventRegistry.from_modules(leads_events), projection,
                           name=projection.name, max_batch=max_batch)
    await app.start()
    try:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{projection.name}: {projection.applied} applied after {timeout}s")
            await asyncio.sleep(0.05)
    finally:
        await app.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def backlog(platform: PlatformSettings, engine, name: str, n: int, *, set_based: bool, max_batch: int) -> str:
    """Events/s projecting a backlog of `n` records, first batch started to last committed."""
    topic = f"{platform.topic_prefix}bench.{name}"
    create_topics(platform.kafka_bootstrap, [topic, f"{topic}.dlq"], PARTITIONS)
    produce(platform.kafka_bootstrap, topic, records(n))
    projection = LeadProjection(engine, name, set_based)
    distinct = len({k for k, _, _ in records(n)})
    asyncio.run(consume(platform, topic, projection, max_batch=max_batch,
                        until=lambda: projection.applied >= n and projection.count() >= distinct))
    seconds = projection.last_committed - projection.first_started
    mean_batch = statistics.mean(projection.batch_sizes)
    return f"{n / seconds:>7,.0f}  ({n} events in {seconds:.1f} s, mean batch {mean_batch:.0f})"


def steady(platform: PlatformSettings, engine, name: str, *, set_based: bool) -> str:
    """Latency, send to commit, of records produced at RATE per second for RATE_SECONDS."""
    topic = f"{platform.topic_prefix}bench.{name}"
    create_topics(platform.kafka_bootstrap, [topic, f"{topic}.dlq"], PARTITIONS)
    projection = LeadProjection(engine, name, set_based)
    sent: list[int] = []

    def producer_thread():
        # One record first, so that the run starts with the consumer assigned and warm.
        produce(platform.kafka_bootstrap, topic, records(1, 10_000_000, now=True))
        while projection.applied < 1:
            time.sleep(0.05)
        with projection.lock:
            projection.latencies.clear()
            projection.batch_sizes.clear()
        sent.append(1 + produce_at_rate(platform.kafka_bootstrap, topic, RATE, RATE_SECONDS, 20_000_000))

    thread = threading.Thread(target=producer_thread, daemon=True)
    thread.start()
    asyncio.run(consume(platform, topic, projection, max_batch=500,
                        until=lambda: bool(sent) and projection.applied >= sent[0]))
    thread.join()
    lat = [x * 1000 for x in projection.latencies]
    return (f"p50 {percentile(lat, 0.50):.0f}, p95 {percentile(lat, 0.95):.0f}, p99 {percentile(lat, 0.99):.0f}, "
            f"max {max(lat):.0f}  ({len(lat)} events, mean batch {statistics.mean(projection.batch_sizes):.1f})")


def bench_store(platform: PlatformSettings) -> dict[str, str]:
    engine = make_engine(platform, "consumerbench")
    figures = {
        "batches, upsert per event  ev/s": backlog(platform, engine, "per_event", N, set_based=False, max_batch=500),
        "batches, set-based upsert  ev/s": backlog(platform, engine, "set_based", N, set_based=True, max_batch=500),
        "one event per transaction  ev/s": backlog(platform, engine, "single", BASELINE_N, set_based=False,
                                                   max_batch=1) + " (baseline: the first release)",
        f"latency ms at {RATE:.0f}/s, per event": steady(platform, engine, "steady_per_event", set_based=False),
        f"latency ms at {RATE:.0f}/s, set-based": steady(platform, engine, "steady_set_based", set_based=True),
    }
    engine.dispose()
    return figures


def main(bootstrap: str) -> None:
    logs.configure("consumer-bench", "WARNING")  # per-event log lines would be measured too
    data = REPO / "build" / "consumer-bench-data"
    shutil.rmtree(data / "stores", ignore_errors=True)
    stores = [s for s in os.environ.get("CRM_BENCH_STORES", "sqlite,postgres").split(",") if s]
    results = {}
    for store in stores:
        platform = PlatformSettings(store=store, data_dir=data / "stores", kafka_bootstrap=bootstrap,
                                    topic_prefix=f"cbench{uuid.uuid4().hex[:6]}.", topic_partitions=PARTITIONS)
        with fresh_database(platform) if store == "postgres" else nullcontext(platform) as platform:
            results[store] = bench_store(platform)
    load = os.getloadavg()
    print(f"\nconsumer throughput (broker {bootstrap}, {PARTITIONS} partitions, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f})")
    for store, figures in results.items():
        print(f"  {store}")
        for name, value in figures.items():
            print(f"    {name:<34} {value}")


def with_private_broker() -> str:
    """Starts a broker of its own (fresh storage under build/); returns its bootstrap."""
    import atexit

    from crm_devstack.kafka_broker import broker_from_env

    os.environ.setdefault("CRM_KAFKA_PORT", "29192")
    data = REPO / "build" / "consumer-bench-data" / "kafka"
    shutil.rmtree(data, ignore_errors=True)
    broker = broker_from_env(REPO / ".cache", data)
    broker.start()
    atexit.register(broker.stop)
    return broker.bootstrap


if __name__ == "__main__":
    if sys.argv[1:2] == ["--produce"]:
        bootstrap_, topic_, rate_, seconds_, start_ = sys.argv[2:7]
        print(_produce_at_rate(bootstrap_, topic_, float(rate_), float(seconds_), int(start_)))
        sys.exit(0)
    main(os.environ.get("CRM_KAFKA_BOOTSTRAP") or with_private_broker())
    sys.stdout.flush()

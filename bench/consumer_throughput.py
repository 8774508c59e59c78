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
2. latency: records produced at a steady rate (200/s by default) for some seconds while
   the consumer runs; the latency of an event is from its send to its batch's commit.

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
from datetime import datetime, timezone
from pathlib import Path

from kafka import KafkaProducer
from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, insert, select, update

from crm.leads.v1 import leads_pb2
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
    """A lead read model (as analytics keeps one), timing each batch it commits."""

    def __init__(self, engine, name: str):
        metadata = MetaData()
        self.leads = Table(f"{name}_leads", metadata,
                           Column("lead_id", String(64), primary_key=True),
                           Column("channel", String(32)),
                           Column("captured_at", DateTime(timezone=True)))
        super().__init__(engine, name, self.upsert, metadata)
        self.lock = threading.Lock()
        self.first_started: float | None = None
        self.applied = 0
        self.last_committed = 0.0
        self.latencies: list[float] = []  # send -> commit
        self.waits: list[float] = []  # send -> its batch handed to the store
        self.apply_seconds: list[float] = []
        self.batch_sizes: list[int] = []

    def upsert(self, conn: Connection, envelope: EventEnvelope) -> None:
        message = envelope.message
        t = self.leads
        values = dict(channel=leads_pb2.Channel.Name(message.channel).removeprefix("CHANNEL_").lower(),
                      captured_at=message.captured_at.ToDatetime(tzinfo=timezone.utc))
        if conn.execute(select(t.c.lead_id).where(t.c.lead_id == message.lead_id)).first():
            conn.execute(update(t).where(t.c.lead_id == message.lead_id).values(**values))
        else:
            conn.execute(insert(t).values(lead_id=message.lead_id, **values))

    def apply(self, topic, partition, deliveries):
        started = time.time()
        with self.lock:
            if self.first_started is None:
                self.first_started = time.perf_counter()
        super().apply(topic, partition, deliveries)
        now, wall = time.perf_counter(), time.time()
        with self.lock:
            self.applied += len(deliveries)
            self.last_committed = now
            self.batch_sizes.append(len(deliveries))
            self.apply_seconds.append(wall - started)
            self.waits.extend(started - d.envelope.time.timestamp() for d in deliveries)
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
            time=datetime.now(timezone.utc) if now else datetime(2026, 1, 1, tzinfo=timezone.utc),
            message=leads_pb2.LeadCaptured(lead_id=lead, name="Bench", channel=leads_pb2.CHANNEL_WEB))))
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
    consumer.EventConsumer(app, [topic], EventRegistry.from_modules(leads_pb2), projection,
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


def bench_store(platform: PlatformSettings) -> dict[str, str]:
    figures: dict[str, str] = {}
    engine = make_engine(platform, "consumerbench")

    # 1. backlog, batches
    topic = f"{platform.topic_prefix}bench.batched"
    create_topics(platform.kafka_bootstrap, [topic, f"{topic}.dlq"], PARTITIONS)
    produce(platform.kafka_bootstrap, topic, records(N))
    batched = LeadProjection(engine, "batched")
    distinct = len({k for k, _, _ in records(N)})
    asyncio.run(consume(platform, topic, batched, max_batch=500,
                        until=lambda: batched.applied >= N and batched.count() >= distinct))
    seconds = batched.last_committed - batched.first_started
    figures["batched events/s"] = f"{N / seconds:,.0f}  ({N} events in {seconds:.2f} s, " \
                                  f"mean batch {statistics.mean(batched.batch_sizes):.0f})"

    # 1b. the same, one event per transaction
    topic1 = f"{platform.topic_prefix}bench.single"
    create_topics(platform.kafka_bootstrap, [topic1, f"{topic1}.dlq"], PARTITIONS)
    produce(platform.kafka_bootstrap, topic1, records(BASELINE_N))
    single = LeadProjection(engine, "single")
    asyncio.run(consume(platform, topic1, single, max_batch=1, until=lambda: single.applied >= BASELINE_N))
    seconds1 = single.last_committed - single.first_started
    figures["one per transaction events/s"] = f"{BASELINE_N / seconds1:,.0f}  ({BASELINE_N} events, baseline)"

    # 2. latency at a steady rate
    topic2 = f"{platform.topic_prefix}bench.latency"
    create_topics(platform.kafka_bootstrap, [topic2, f"{topic2}.dlq"], PARTITIONS)
    steady = LeadProjection(engine, "steady")
    sent: list[int] = []

    def producer_thread():
        # One record first, so that the run starts with the consumer assigned and warm.
        produce(platform.kafka_bootstrap, topic2, records(1, 10_000_000, now=True))
        while steady.applied < 1:
            time.sleep(0.05)
        with steady.lock:
            steady.latencies.clear()
        sent.append(1 + produce_at_rate(platform.kafka_bootstrap, topic2, RATE, RATE_SECONDS, 20_000_000))

    thread = threading.Thread(target=producer_thread, daemon=True)
    thread.start()
    asyncio.run(consume(platform, topic2, steady, max_batch=500,
                        until=lambda: bool(sent) and steady.applied >= sent[0]))
    thread.join()
    lat = [x * 1000 for x in steady.latencies]
    waits = [x * 1000 for x in steady.waits[-len(lat):]]
    figures[f"latency at {RATE:.0f}/s (ms)"] = (f"p50 {percentile(lat, 0.50):.0f}, p95 {percentile(lat, 0.95):.0f}, "
                                               f"p99 {percentile(lat, 0.99):.0f}, max {max(lat):.0f}  "
                                               f"({len(lat)} events over {RATE_SECONDS:.0f} s, send to commit)")
    figures["  of which until applied (ms)"] = (f"p50 {percentile(waits, 0.50):.0f}, p99 {percentile(waits, 0.99):.0f}; "
                                               f"mean batch {statistics.mean(steady.batch_sizes):.1f}, "
                                               f"apply p50 {percentile(steady.apply_seconds, 0.5) * 1000:.0f} ms")
    engine.dispose()
    return figures


def fresh_postgres(platform: PlatformSettings):
    import psycopg

    dbname = f"crm_bench_{uuid.uuid4().hex[:8]}"
    dsn = dict(host=platform.postgres_host, port=platform.postgres_port, dbname=platform.postgres_dbname,
               user=platform.postgres_user, password=platform.postgres_password.get_secret_value())
    with psycopg.connect(**dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')

    def drop():
        with psycopg.connect(**dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    return platform.model_copy(update={"postgres_dbname": dbname}), drop


def main(bootstrap: str) -> None:
    logs.configure("consumer-bench", "WARNING")  # per-event log lines would be measured too
    data = REPO / "build" / "consumer-bench-data"
    shutil.rmtree(data / "stores", ignore_errors=True)
    stores = [s for s in os.environ.get("CRM_BENCH_STORES", "sqlite,postgres").split(",") if s]
    results = {}
    for store in stores:
        platform = PlatformSettings(store=store, data_dir=data / "stores", kafka_bootstrap=bootstrap,
                                    topic_prefix=f"cbench{uuid.uuid4().hex[:6]}.", topic_partitions=PARTITIONS)
        cleanup = None
        if store == "postgres":
            platform, cleanup = fresh_postgres(platform)
        try:
            results[store] = bench_store(platform)
        finally:
            if cleanup:
                cleanup()
    load = os.getloadavg()
    print(f"\nconsumer throughput (broker {bootstrap}, {PARTITIONS} partitions, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f})")
    for store, figures in results.items():
        print(f"  {store}")
        for name, value in figures.items():
            print(f"    {name:<32} {value}")


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

"""Throughput of the write and publish paths, each against its baseline, in one run.

    make bench                      # starts a private broker, SQLite stores
    CRM_BENCH_STORE=postgres make bench

Prints events/s for: raw eventsourcing saves (baseline), the lead capture path in process
(validation + aggregate + save) and over HTTP (the leads service as its own process), a
raw kafka-python producer (baseline), the outbox relay (read log, decode, encode
CloudEvents, produce acks=all, record position) and, for reference, a raw aiokafka
producer (the relay's client, used one record at a time); those three in
CRM_BENCH_ROUNDS rounds.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

from aiokafka import AIOKafkaProducer
from eventsourcing.domain import Aggregate, event
from kafka import KafkaProducer

from crm_devstack.postgres import fresh_database
from crm_leads.adapters.messages import EVENTS
from crm_leads.application import CaptureLead, LeadsApplication
from crm_runtime import logs, producers
from crm_runtime import relay as relay_module
from crm_runtime.eventstore import ServiceApplication
from crm_runtime.kafka_admin import create_topics
from crm_runtime.settings import PlatformSettings
from crm_runtime.topics import all_topics

N = int(os.environ.get("CRM_BENCH_EVENTS", "5000"))
# The relay and its baseline are measured in alternating rounds: on a shared machine one
# pass of each moves by a third from run to run, the median of the ratios much less.
ROUNDS = int(os.environ.get("CRM_BENCH_ROUNDS", "5"))


class Note(Aggregate):
    @event("Written")
    def __init__(self, id: uuid.UUID, text: str):  # noqa: A002
        self.text = text


class RawApplication(ServiceApplication):
    name = "BenchRaw"


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_raw_saves(platform: PlatformSettings) -> float:
    app = RawApplication(platform)
    return rate(N, timed(lambda: [app.save(Note(id=uuid.uuid4(), text=f"note {i}")) for i in range(N)]))


def bench_capture(platform: PlatformSettings) -> float:
    app = LeadsApplication(platform)

    def capture_all():
        for i in range(N):
            app.capture_lead(CaptureLead(name=f"Bench Lead {i}", email=f"bench{i}@example.com",
                             phone="+44 20 7183 8750", company="Bench", channel="web"))

    return rate(N, timed(capture_all))


def bench_relay(platform: PlatformSettings) -> tuple[float, list]:
    """Publishes the events of the N captured leads; returns records/s and the records it sent
    (for the baseline)."""
    app = LeadsApplication(platform)
    relay = relay_module.for_context(app, "leads", EVENTS.to_message, platform)
    last = app.recorder.max_notification_id()
    # Connected, with the topic's partitions known, before the clock starts: the raw
    # producer's warm-up record does the same for its topic.
    relay.connect().partitions_for(relay.topic)

    def publish_backlog():
        # The relay's own loop, as a relay process runs it, until it has recorded the last
        # position: every event acknowledged by Kafka.
        relay.run(until=last)

    seconds = timed(publish_backlog)
    relay.close()
    assert relay.position() == last, "the relay stopped before publishing the backlog"
    # The rate counts records published, not leads: a capture may store more than one event
    # (a duplicate flag beside the capture). The baseline sends exactly these records.
    sent = [record for n in app.recorder.select_notifications(start=1, limit=last)
            if (record := relay.record(n)) is not None]
    app.close()  # one application per round: its store connections go with it
    return rate(len(sent), seconds), sent


def bench_raw_producer(bootstrap: str, topic: str, records: list) -> float:
    producer = producers.make_producer(bootstrap, client_id="bench-raw")
    producer.send(topic, b"warm-up").get(30)

    def send_all():
        futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in records]
        producer.flush()
        for future in futures:
            future.get(0)

    seconds = timed(send_all)
    producer.close()
    return rate(len(records), seconds)


def bench_raw_aiokafka(bootstrap: str, topic: str, records: list) -> float:
    """The relay's own client used plainly: one `send` per record, then every delivery."""

    async def run() -> float:
        producer = AIOKafkaProducer(**producers.aiokafka_config(bootstrap, "bench-raw-aiokafka"))
        await producer.start()
        try:
            await (await producer.send(topic, b"warm-up"))
            started = time.perf_counter()
            deliveries = [await producer.send(topic, value, key=key, headers=headers)
                          for key, value, headers in records]
            await asyncio.gather(*deliveries)
            return rate(len(records), time.perf_counter() - started)
        finally:
            await producer.stop()

    return asyncio.run(run())


def bench_publish(platform: PlatformSettings, bootstrap: str) -> list[tuple[float, float, float]]:
    """The relay, then the raw producers on the records it sent, in ROUNDS rounds, each on
    topics of its own (so the relay starts from position 0 every time): (relay, raw
    kafka-python, raw aiokafka) rates."""
    rounds = []
    for i in range(ROUNDS):
        round_platform = platform.model_copy(update={"topic_prefix": f"{platform.topic_prefix}r{i}."})
        relay_rate, records = bench_relay(round_platform)
        raw = bench_raw_producer(bootstrap, f"{round_platform.topic_prefix}crm.sales.events.v1", records)
        raw_aiokafka = bench_raw_aiokafka(bootstrap, f"{round_platform.topic_prefix}crm.servicedesk.events.v1", records)
        rounds.append((relay_rate, raw, raw_aiokafka))
    return rounds


def bench_http_capture(platform: PlatformSettings, count: int, clients: int = 4) -> float:
    """POST /v1/leads against the leads service running as its own process (uvicorn, auth,
    validation, store), from `clients` keep-alive connections."""
    import httpx

    from crm_devstack.processes import SPECS, Platform
    from crm_runtime.auth import TokenCodec

    secret = "bench-secret-0123456789-0123456789-abcdef"
    env = {"CRM_LEADS_HTTP_PORT": "27001", "CRM_LEADS_GRPC_PORT": "27051", "CRM_LOG_LEVEL": "WARNING",
           "CRM_AUTH_SECRET": secret, "CRM_STORE": platform.store,
           "CRM_DATA_DIR": str(platform.data_dir.parent / "http-stores"),
           "CRM_POSTGRES_DBNAME": platform.postgres_dbname,
           "CRM_KAFKA_BOOTSTRAP": platform.kafka_bootstrap}
    service = Platform(env=env, specs=[spec for spec in SPECS if spec.name == "leads"],
                       log_dir=platform.data_dir.parent / "logs")
    service.start_all()
    try:
        service.wait_ready()
        headers = {"Authorization": f"Bearer {TokenCodec(secret).issue('bench', ['sales_rep'])}"}

        def post_range(start: int) -> None:
            with httpx.Client(base_url="http://127.0.0.1:27001", headers=headers, timeout=30) as http:
                for i in range(start, count, clients):
                    http.post("/v1/leads", json={
                        "name": f"HTTP Lead {i}", "email": f"http{i}@example.com",
                        "phone": "+44 20 7183 8750", "company": "Bench", "channel": "web",
                    }).raise_for_status()

        threads = [threading.Thread(target=post_range, args=(n,)) for n in range(clients)]
        seconds = timed(lambda: ([t.start() for t in threads], [t.join() for t in threads]))
        return rate(count, seconds)
    finally:
        service.stop()


def main() -> None:
    logs.configure("bench", "WARNING")  # per-event log lines would be measured too
    bootstrap = os.environ.get("CRM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    store = os.environ.get("CRM_BENCH_STORE", "sqlite")
    data = Path(os.environ.get("CRM_BENCH_DATA") or tempfile.mkdtemp()) / "stores"
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    platform = PlatformSettings(store=store, data_dir=data, topic_prefix=prefix,
                                kafka_bootstrap=bootstrap)
    # On PostgreSQL, a database of the run's own: what earlier runs (or a dev stack) left
    # in the shared one would change the work measured, and must not be touched.
    with fresh_database(platform) if store == "postgres" else nullcontext(platform) as platform:
        report(platform, store, bootstrap)


def report(platform: PlatformSettings, store: str, bootstrap: str) -> None:
    prefix = platform.topic_prefix
    create_topics(bootstrap, [name for i in range(ROUNDS) for name in all_topics(f"{prefix}r{i}.")],
                  platform.topic_partitions)  # a set for each round of bench_publish
    # Warm the broker connection path once so the first figure is not a connection cost.
    KafkaProducer(bootstrap_servers=bootstrap).close()

    raw_saves = bench_raw_saves(platform)
    capture = bench_capture(platform)
    rounds = bench_publish(platform, bootstrap)
    relay_rate, raw_producer, raw_aiokafka = sorted(rounds, key=lambda r: r[0] / r[1])[len(rounds) // 2]
    http_capture = bench_http_capture(platform, min(N, 2000))

    print(f"\nthroughput, {N} saves or captures each (the relay and its baseline: every event the"
          f" captures stored), store={store}, broker {bootstrap}")
    print(f"{'path':<34}{'events/s':>12}{'ratio':>10}  baseline")
    print(f"{'raw eventsourcing save':<34}{raw_saves:>12,.0f}{1:>10.2f}  (baseline)")
    print(f"{'lead capture (validate+save)':<34}{capture:>12,.0f}{capture / raw_saves:>10.2f}  raw eventsourcing save")
    print(f"{'lead capture over HTTP (4 conns)':<34}{http_capture:>12,.0f}"
          f"{http_capture / raw_saves:>10.2f}  raw eventsourcing save")
    print(f"{'raw kafka-python producer':<34}{raw_producer:>12,.0f}{1:>10.2f}  (baseline)")
    print(f"{'outbox relay (store -> Kafka)':<34}{relay_rate:>12,.0f}"
          f"{relay_rate / raw_producer:>10.2f}  raw kafka-python producer")
    print(f"{'raw aiokafka producer':<34}{raw_aiokafka:>12,.0f}{raw_aiokafka / raw_producer:>10.2f}"
          "  raw kafka-python producer (the relay's client, one send per record)")
    print(f"relay and raw producers: the round with the median ratio to kafka-python of {len(rounds)}; every round:")
    for relay_round, raw_round, aiokafka_round in rounds:
        print(f"{'':<4}relay {relay_round:>8,.0f}/s  raw kafka-python {raw_round:>8,.0f}/s  "
              f"ratio {relay_round / raw_round:.2f}  raw aiokafka {aiokafka_round:>8,.0f}/s  "
              f"ratio {relay_round / aiokafka_round:.2f}")


if __name__ == "__main__":
    main()

"""Batch consumers against the real broker and the real stores (SQLite and PostgreSQL).

A worker process (tests/batch_worker.py, run the way the services run theirs) feeds test
projections; the tests produce records with a plain kafka-python producer and read the
projection's tables, the dead-letter topic and the consumer group from outside.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime.cloudevents import EventEnvelope, encode, stable_event_id
from crm_runtime.settings import PlatformSettings
from tests.batch_worker import open_projection
from tests.kafka_helpers import ensure_topics, headers, read_topic
from tests.platform_harness import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
REPO = Path(__file__).resolve().parents[2]


def lead_event(subject: str, seq: int, event_id: str | None = None) -> tuple[bytes, bytes, list]:
    return encode(EventEnvelope(
        id=event_id or stable_event_id(subject, seq), source="crm/test", subject=subject,
        time=datetime.now(UTC), message=leads_events.LeadCaptured(lead_id=subject, name=str(seq))))


class Worker:
    """The test consumer as its own process."""

    def __init__(self, platform: PlatformSettings, log_dir: Path, app: str, **env: str):
        self.platform = platform
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CRM_KAFKA_BOOTSTRAP": platform.kafka_bootstrap,
            "CRM_TOPIC_PREFIX": platform.topic_prefix,
            "CRM_STORE": platform.store,
            "CRM_DATA_DIR": str(platform.data_dir),
            "CRM_POSTGRES_DBNAME": platform.postgres_dbname,
            "CRM_POSTGRES_HOST": platform.postgres_host,
            "CRM_POSTGRES_PORT": str(platform.postgres_port),
            "CRM_CONSUMER_SESSION_TIMEOUT_SECONDS": "6",
            "BATCH_TEST_APP": app,
            **{f"BATCH_TEST_{k.upper()}": v for k, v in env.items()},
        }
        self.proc: subprocess.Popen | None = None

    def start(self, stdout=None) -> subprocess.Popen:
        log_dir = self.log_path.parent
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.batch_worker"], cwd=REPO, env=self.env,
                stdout=out if stdout is None else stdout, stderr=out, start_new_session=True)
        return self.proc

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"worker exited:\n{self.log()[-4000:]}"

    def terminate(self, within: float = 10.0) -> float:
        """SIGTERM; returns the seconds the process took to exit (fails beyond `within`)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"worker still running {within}s after SIGTERM:\n{self.log()[-4000:]}")
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def workers(tmp_path):
    started: list[Worker] = []

    def make(platform: PlatformSettings, app: str = "batch-test", **env: str) -> Worker:
        worker = Worker(platform, tmp_path / "logs", app, **env)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.kill()


@pytest.fixture
def topic(any_platform: PlatformSettings) -> str:
    ensure_topics(any_platform.kafka_bootstrap, any_platform.topic_prefix)
    return f"{any_platform.topic_prefix}crm.leads.events.v1"


@pytest.fixture
def producer(any_platform):
    producer = KafkaProducer(bootstrap_servers=any_platform.kafka_bootstrap, acks="all", linger_ms=5)
    yield producer
    producer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def group_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp.partition: meta.offset for tp, meta in admin.list_group_offsets(group).get(group, {}).items()
                if tp.topic == topic and meta.offset >= 0}
    finally:
        admin.close()


def expected_table(subjects: list[str], count: int) -> dict[str, tuple[int, str]]:
    return {s: (count, ",".join(str(i) for i in range(1, count + 1))) for s in subjects}


def produce_history(producer: KafkaProducer, topic: str, subjects: list[str], count: int,
                    partition_of=lambda i: i % 2) -> None:
    """`count` events per subject, the subjects interleaved; a subject's partition is fixed.
    Every 7th event is sent twice in a row, and every subject's 3rd event again at the end
    (same ce_id: a relay re-send)."""
    n = 0
    for seq in range(1, count + 1):
        for i, subject in enumerate(subjects):
            key, value, hdrs = lead_event(subject, seq)
            for _ in range(2 if n % 7 == 0 else 1):
                producer.send(topic, key=key, value=value, headers=hdrs, partition=partition_of(i))
            n += 1
    for i, subject in enumerate(subjects):
        key, value, hdrs = lead_event(subject, 3)
        producer.send(topic, key=key, value=value, headers=hdrs, partition=partition_of(i))
    producer.flush()


def test_batches_project_what_one_event_at_a_time_projects(any_platform, topic, producer, workers):
    subjects = [f"lead-{i}" for i in range(8)]
    produce_history(producer, topic, subjects, 40)  # a backlog, so batches fill up
    worker = workers(any_platform, projections="batched:500,single:1")
    worker.start()
    batched = open_projection(any_platform, "batched")
    single = open_projection(any_platform, "single")
    expected = expected_table(subjects, 40)
    ends = end_offsets(any_platform.kafka_bootstrap, topic)
    last = {(topic, p): end - 1 for p, end in ends.items() if end}

    def done():
        worker.alive()
        return (batched.table() == expected and single.table() == expected
                and batched.positions() == last and single.positions() == last)

    wait_for(done, timeout=120, what="both projections caught up")
    assert max(batched.batch_sizes()) > 1, "the batched projection applied one event at a time"
    assert set(single.batch_sizes()) == {1}
    # Two partitions interleaved, each in order; duplicates changed nothing.
    assert sorted(p for (_, p) in last) == [0, 1]

    # More events while it runs are applied with low latency, still in order.
    started = time.monotonic()
    for i, subject in enumerate(subjects):
        key, value, hdrs = lead_event(subject, 41)
        producer.send(topic, key=key, value=value, headers=hdrs, partition=i % 2)
    producer.flush()
    wait_for(lambda: batched.table() == expected_table(subjects, 41), timeout=30, interval=0.05,
             what="live events applied")
    assert time.monotonic() - started < 5
    assert worker.terminate() < 10


def test_a_new_store_replays_the_topic_whatever_the_consumer_group_says(
        any_platform, topic, producer, workers, tmp_path, request):
    subjects = [f"lead-{i}" for i in range(6)]
    produce_history(producer, topic, subjects, 10, partition_of=lambda i: i % 3)
    ends = end_offsets(any_platform.kafka_bootstrap, topic)
    first = workers(any_platform)
    first.start()
    projection = open_projection(any_platform, "batched")
    wait_for(lambda: first.alive() or projection.table() == expected_table(subjects, 10), timeout=120,
             what="first store caught up")
    group = f"{any_platform.topic_prefix}batch-test.batched"  # <worker app id>.<consumer name>
    # The consumer group has committed everything: a store that trusted it would get nothing.
    wait_for(lambda: group_offsets(any_platform.kafka_bootstrap, group, topic) == ends, timeout=30,
             what="group offsets at the end")
    first.terminate()

    # A new, empty store (a fresh database or file) under the same consumer group.
    other = new_store(any_platform, tmp_path, request)
    second = workers(other)
    second.start()
    replayed = open_projection(other, "batched")
    wait_for(lambda: second.alive() or replayed.table() == expected_table(subjects, 10), timeout=120,
             what="the new store replayed the topic")
    assert replayed.positions() == {(topic, p): end - 1 for p, end in ends.items() if end}
    second.terminate()

    # A rebuild is a reset of the projection: no consumer-group surgery, the worker replays.
    replayed.reset()
    assert replayed.table() == {} and replayed.positions() == {}
    third = workers(other)
    third.start()
    wait_for(lambda: third.alive() or replayed.table() == expected_table(subjects, 10), timeout=120,
             what="the rebuilt store replayed the topic")
    third.terminate()


def new_store(platform: PlatformSettings, tmp_path: Path, request) -> PlatformSettings:
    if platform.store == "sqlite":
        return platform.model_copy(update={"data_dir": tmp_path / "other-store"})
    import psycopg

    admin_dsn = (f"host={platform.postgres_host} port={platform.postgres_port} dbname=crm "
                 f"user={platform.postgres_user} password={platform.postgres_password.get_secret_value()}")
    dbname = f"crm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')

    def drop():
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    request.addfinalizer(drop)
    return platform.model_copy(update={"postgres_dbname": dbname})


def test_a_poison_event_in_a_batch_is_dead_lettered_and_the_rest_applied(any_platform, topic, producer, workers):
    good = []
    for seq in range(1, 61):
        if seq == 20:
            producer.send(topic, key=b"x", value=b"\x00garbage", partition=0)  # undecodable
        if seq == 35:
            key, value, hdrs = lead_event("poison", 1)
            producer.send(topic, key=key, value=value, headers=hdrs, partition=0)
        key, value, hdrs = lead_event("lead-a", seq)
        producer.send(topic, key=key, value=value, headers=hdrs, partition=0)
        good.append(seq)
    producer.flush()
    # Batches of at most 20: the poison's batch falls back to one event at a time, the others not.
    worker = workers(any_platform, fail_subject="poison", projections="batched:20")
    worker.start()
    projection = open_projection(any_platform, "batched")
    wait_for(lambda: worker.alive() or projection.table() == expected_table(["lead-a"], 60), timeout=120,
             what="the good events applied")
    dead = read_topic(any_platform.kafka_bootstrap, f"{topic}.dlq", lambda records: len(records) >= 2)
    reasons = {headers(r)["dlq_offset"]: headers(r)["dlq_reason"] for r in dead}
    assert len(dead) == 2, reasons
    assert "missing CloudEvents header" in reasons["19"]
    assert reasons["35"] == "handler failed 5 times: ValueError('poison event " + stable_event_id("poison", 1) + "')"
    assert {headers(r)["dlq_consumer"] for r in dead} == {"batched"}
    sizes = projection.batch_sizes()
    assert max(sizes) > 1 and max(sizes) <= 20 and 1 in sizes, sizes
    # The position is past everything, the poison included: a restart does not redo it.
    assert projection.positions() == {(topic, 0): 61}
    worker.terminate()
    worker.start()
    key, value, hdrs = lead_event("lead-a", 61)
    producer.send(topic, key=key, value=value, headers=hdrs, partition=0)
    producer.flush()
    wait_for(lambda: worker.alive() or projection.table() == expected_table(["lead-a"], 61), timeout=60,
             what="the restarted worker applied the next event")
    assert len(read_topic(any_platform.kafka_bootstrap, f"{topic}.dlq", lambda r: len(r) >= 2)) == 2
    worker.terminate()


def test_sigterm_stops_a_worker_stuck_on_a_transient_failure_and_the_event_is_applied_after_restart(
        any_platform, topic, producer, workers, tmp_path):
    stuck = tmp_path / "store-down"
    stuck.touch()
    worker = workers(any_platform, stuck_file=str(stuck), stuck_subject="lead-stuck")
    worker.start()
    for subject, partition in (("lead-stuck", 1), ("lead-free", 0)):
        key, value, hdrs = lead_event(subject, 1)
        producer.send(topic, key=key, value=value, headers=hdrs, partition=partition)
    producer.flush()
    projection = open_projection(any_platform, "batched")
    # Partition 1 waits behind its event; partition 0 goes on meanwhile.
    wait_for(lambda: worker.alive() or projection.table() == {"lead-free": (1, "1")}, timeout=60,
             what="the other partition applied")
    wait_for(lambda: worker.alive() or worker.log().count("consumer.retrying") >= 3, timeout=60,
             what="the worker retrying the event")
    assert worker.terminate(within=10) < 10

    assert projection.table() == {"lead-free": (1, "1")} and projection.positions() == {(topic, 0): 0}
    stuck.unlink()
    worker.start()
    wait_for(lambda: worker.alive() or projection.table() == {"lead-free": (1, "1"), "lead-stuck": (1, "1")},
             timeout=60, what="the event applied after the restart")
    assert projection.positions() == {(topic, 0): 0, (topic, 1): 0}
    assert "consumer.dead_lettered" not in worker.log()
    worker.terminate()


def test_a_worker_whose_stdout_is_a_closed_pipe_loses_no_event(any_platform, topic, producer, workers):
    if any_platform.store == "postgres":
        pytest.skip("the log path does not depend on the store; SQLite covers it")
    worker = workers(any_platform)
    proc = worker.start(stdout=subprocess.PIPE)
    proc.stdout.close()  # nobody reads the JSON log lines any more: every write is EPIPE
    subjects = [f"lead-{i}" for i in range(5)]
    produce_history(producer, topic, subjects, 30, partition_of=lambda i: i % 3)
    projection = open_projection(any_platform, "batched")
    wait_for(lambda: worker.alive() or projection.table() == expected_table(subjects, 30), timeout=120,
             what="every event applied")
    dead = read_topic_now(any_platform.kafka_bootstrap, f"{topic}.dlq")
    assert dead == [], [headers(r)["dlq_reason"] for r in dead]
    worker.alive()
    worker.terminate()


def read_topic_now(bootstrap: str, topic: str) -> list:
    total = sum(end_offsets(bootstrap, topic).values())
    return read_topic(bootstrap, topic, lambda records: len(records) >= total) if total else []


class FreezableProxy:
    """A TCP proxy to PostgreSQL that can stop answering (a store that hangs, connections
    open, nothing coming back)."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_sigterm_stops_a_worker_whose_store_hangs(any_platform, topic, producer, workers):
    if any_platform.store == "sqlite":
        pytest.skip("a hanging server needs a network store")
    proxy = FreezableProxy(any_platform.postgres_host, any_platform.postgres_port)
    try:
        via_proxy = any_platform.model_copy(update={"postgres_port": proxy.port})
        worker = workers(via_proxy)
        worker.start()
        projection = open_projection(any_platform, "batched")
        key, value, hdrs = lead_event("lead-h", 1)
        producer.send(topic, key=key, value=value, headers=hdrs, partition=0)
        producer.flush()
        wait_for(lambda: worker.alive() or projection.table() == {"lead-h": (1, "1")}, timeout=60,
                 what="the first event applied")
        proxy.frozen.set()  # from now on the store never answers
        for seq in (2, 3):
            key, value, hdrs = lead_event("lead-h", seq)
            producer.send(topic, key=key, value=value, headers=hdrs, partition=0)
        producer.flush()
        time.sleep(3)  # the batch is in flight, its thread waiting on the store
        assert worker.terminate(within=10) < 10
    finally:
        proxy.close()
    assert projection.table() == {"lead-h": (1, "1")}
    restarted = workers(any_platform)
    restarted.start()
    wait_for(lambda: restarted.alive() or projection.table() == {"lead-h": (3, "1,2,3")}, timeout=60,
             what="the events in flight applied once after the restart")
    restarted.terminate()

"""Steady load on the running platform: leads captured over HTTP at a fixed rate, each timed
from its 201 to its `LeadAssigned` on the topic and to being counted by the analytics report.

    make bench                        # runs this after throughput.py, private broker, SQLite
    CRM_BENCH_STORE=postgres make bench
    CRM_BENCH_RATES=50,200 CRM_BENCH_SECONDS=10 make bench

It starts the processes the flow needs (leads, its relay, the workflow worker and
dispatcher, the analytics worker and API) as `make run` would, then, per rate: captures
for CRM_BENCH_SECONDS (default 20) with an async HTTP client, reads crm.leads.events.v1
with a plain kafka-python consumer (a downstream team's view), and polls the report.
Printed per rate: the rate achieved, p50/p99 from sending a capture to its 201 (the
leads API's own answer time: the decision and report times start at the 201), p50/p99
from the 201 to the decision and to the report, whether the lag grew (p99 of the last
quarter against the first), and the consumers' events/s; then the CPU each process spent
per lead (the platform's, PostgreSQL's and the broker's) and how busy the machine's cores
were.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import httpx
import psutil
from kafka import KafkaConsumer, TopicPartition

from crm.leads.v1 import events_pb2 as leads_events
from crm_devstack.postgres import fresh_database
from crm_devstack.processes import Platform, http_url, port_env
from crm_runtime.auth import TokenCodec
from crm_runtime.cloudevents import EventRegistry
from crm_runtime.kafka_admin import create_topics
from crm_runtime.settings import PlatformSettings
from crm_runtime.topics import all_topics

RATES = [int(r) for r in os.environ.get("CRM_BENCH_RATES", "50,200,500").split(",")]
SECONDS = float(os.environ.get("CRM_BENCH_SECONDS", "20"))
SECRET = "bench-secret-0123456789-0123456789-abcdef"
PROCESSES = ["leads", "leads-relay", "workflow-worker", "workflow-dispatcher", "analytics",
             "analytics-worker"]
REGISTRY = EventRegistry.from_modules(leads_events)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class AssignedWatcher:
    """Arrival time of each subject's first event of `ce_type` (by default a lead's
    LeadAssigned), read from the topic as it is written."""

    def __init__(self, bootstrap: str, topic: str, ce_type: bytes = b"crm.leads.v1.LeadAssigned"):
        self.ce_type = ce_type
        self.arrived: dict[str, float] = {}
        self.stop = threading.Event()
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                      enable_auto_commit=False, fetch_max_wait_ms=10)
        partitions = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic))]
        self.consumer.assign(partitions)
        self.consumer.seek_to_end(*partitions)
        for partition in partitions:
            self.consumer.position(partition)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=50).values():
                now = time.monotonic()
                for record in records:
                    if dict(record.headers).get("ce_type") == self.ce_type:
                        self.arrived.setdefault(record.key.decode(), now)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.consumer.close()


class ReportWatcher:
    """Times at which the report's `captured` count went up, polled every 20 ms."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                try:
                    count = client.get(self.url, headers=self.headers).json()["captured"]
                    self.samples.append((time.monotonic(), count))
                except httpx.HTTPError:
                    pass
                self.stop.wait(0.02)

    def time_reaching(self, count: int) -> float | None:
        for at, seen in self.samples:
            if seen >= count:
                return at
        return None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


class Posted(NamedTuple):
    created: list[tuple[str, float]]  # (id, time of its 201), in the order the answers came
    started: float  # the first request sent
    ended: float  # the last answer received
    answer_times: list[float]  # per created record: from sending its request to its 201


def lead_body(i: int) -> dict[str, Any]:
    return {"name": f"Load {i}", "email": f"load-{uuid.uuid4().hex[:12]}@example.com", "channel": "web"}


async def _post_at(rate: int, seconds: float, url: str, path: str, body_of: Callable[[int], dict[str, Any]],
                   token: str) -> Posted:
    """POSTs `body_of(i)` to `path` `rate` times a second for `seconds`; returns the created
    records' ids and times of their 201, when the first request was sent and the last answer
    came, and how long each 201 took."""
    done: list[tuple[str, float]] = []
    answer_times: list[float] = []
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(base_url=url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30),
                                     headers={"Authorization": f"Bearer {token}"}) as client:
        async def one(i: int) -> None:
            sent = time.monotonic()
            async with client.post(path, json=body_of(i)) as response:
                if response.status == 201:
                    created = await response.json()
                    answered = time.monotonic()
                    done.append((created["id"], answered))
                    answer_times.append(answered - sent)

        tasks = []
        started = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*tasks, return_exceptions=True)
    return Posted(done, started, time.monotonic(), answer_times)


def _load_process(args: tuple[Any, ...], results: Any) -> None:
    results.send(asyncio.run(_post_at(*args)))


def post_at(rate: int, seconds: float, url: str, path: str, body_of: Callable[[int], dict[str, Any]],
            token: str) -> Posted:
    """`_post_at` in a process of its own, so that the client's own work (and the watchers'
    threads here) neither slows the requests down nor delays the timestamps of their 201s;
    time.monotonic() is the same clock in every process of the machine. `body_of` is a
    module-level function (the process is spawned)."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(
        target=_load_process, args=((rate, seconds, url, path, body_of, token), sender), daemon=True)
    process.start()
    done = receiver.recv()
    process.join(10)
    return done  # type: ignore[no-any-return]


def run_rate(rate: int, platform: Platform, bootstrap: str, prefix: str, token: str) -> dict:
    leads_url = http_url(platform.spec("leads"), platform.env)
    report_url = http_url(platform.spec("analytics"), platform.env) + "/v1/reports/leads"
    with httpx.Client() as client:
        before = client.get(report_url, headers={"Authorization": f"Bearer {token}"}).json()["captured"]
    assigned = AssignedWatcher(bootstrap, f"{prefix}crm.leads.events.v1")
    report = ReportWatcher(report_url, token)
    try:
        cpu_before, cpu_since = cpu_seconds(platform), time.monotonic()
        posted = post_at(rate, SECONDS, leads_url, "/v1/leads", lead_body, token)
        captured, started, ended = posted.created, posted.started, posted.ended
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                len([1 for lead_id, _ in captured if lead_id in assigned.arrived]) < len(captured)
                or report.time_reaching(before + len(captured)) is None):
            time.sleep(0.1)
        settled = time.monotonic()
        cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_seconds(platform).items()}
        busy = cpu.pop("busy") / (psutil.cpu_count() or 1) / max(1e-9, settled - cpu_since)
    finally:
        assigned.close()
        report.close()
    to_decision = [assigned.arrived[lead_id] - at for lead_id, at in captured if lead_id in assigned.arrived]
    captured_in_order = sorted(captured, key=lambda item: item[1])
    to_report = []
    for n, (_, at) in enumerate(captured_in_order, start=1):
        counted = report.time_reaching(before + n)
        if counted is not None:
            to_report.append(max(0.0, counted - at))
    quarter = max(1, len(to_decision) // 4)
    last_counted = report.time_reaching(before + len(captured)) or settled
    return {
        "rate": rate, "achieved": len(captured) / max(1e-9, ended - started), "captured": len(captured),
        "assigned": len(to_decision),
        "answer_p50": percentile(posted.answer_times, 50), "answer_p99": percentile(posted.answer_times, 99),
        "decision_p50": percentile(to_decision, 50),
        "decision_p99": percentile(to_decision, 99), "report_p50": percentile(to_report, 50),
        "report_p99": percentile(to_report, 99),
        "lag_grew": percentile(to_decision[-quarter:], 99) > 2 * percentile(to_decision[:quarter], 99) + 0.05,
        # Each lead is two events on the topic (captured, assigned) for the analytics worker.
        "analytics_events_per_s": 2 * len(captured) / max(1e-9, last_counted - started),
        # CPU each process spent per lead (ms), from the first capture until all settled.
        "cpu_ms_per_lead": {name: 1000 * seconds / max(1, len(captured)) for name, seconds in cpu.items()},
        "machine_busy": busy,  # of all cores, from the first capture until all settled
    }


def cpu_seconds(platform: Platform) -> dict[str, float]:
    """User plus system CPU time so far of each process of the platform, of the machine's
    PostgreSQL server and Kafka broker (all their processes), and of the machine's cores
    ("busy", to tell how saturated the machine was)."""
    seconds: dict[str, float] = {}
    for name, proc in platform.procs.items():
        try:
            times = psutil.Process(proc.pid).cpu_times()
            seconds[name] = times.user + times.system
        except psutil.Error:
            pass
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        name = proc.info["name"] or ""
        cmdline = " ".join(proc.info["cmdline"] or [])
        outside = ("postgres" if name.startswith("postgres")
                   else "kafka broker" if name == "java" and "kafka" in cmdline.lower() else None)
        if outside and proc.info["cpu_times"] is not None:
            times = proc.info["cpu_times"]
            seconds[outside] = seconds.get(outside, 0.0) + times.user + times.system
    machine = psutil.cpu_times()
    seconds["busy"] = sum(getattr(machine, field, 0.0)
                          for field in ("user", "nice", "system", "irq", "softirq", "steal"))
    return seconds


def main() -> None:
    bootstrap = os.environ["CRM_KAFKA_BOOTSTRAP"]
    store = os.environ.get("CRM_BENCH_STORE", "sqlite")
    prefix = f"load{uuid.uuid4().hex[:6]}."
    create_topics(bootstrap, all_topics(prefix), 3)
    data = Path(os.environ.get("CRM_BENCH_DATA") or tempfile.mkdtemp()) / f"steady-{prefix}"
    env = {**port_env(25_000, -25_000), "CRM_KAFKA_BOOTSTRAP": bootstrap, "CRM_TOPIC_PREFIX": prefix,
           "CRM_DATA_DIR": str(data / "stores"), "CRM_STORE": store, "CRM_AUTH_SECRET": SECRET,
           "CRM_LOG_LEVEL": "WARNING"}
    with fresh_database(PlatformSettings(store="postgres")) if store == "postgres" else nullcontext() as fresh:
        if fresh is not None:  # an empty database: figures that do not depend on earlier runs
            env["CRM_POSTGRES_DBNAME"] = fresh.postgres_dbname
        run_all(env, data, store, bootstrap, prefix)


def run_all(env: dict[str, str], data: Path, store: str, bootstrap: str, prefix: str) -> None:
    platform = Platform(env=env, log_dir=data / "logs", specs=[
        spec for spec in Platform(env={}).specs if spec.name in PROCESSES])
    token = TokenCodec(SECRET).issue("bench", ["admin"], ttl_seconds=3600)
    print(f"\nsteady load on the platform ({store}; {SECONDS:.0f} s per rate; "
          f"processes: {', '.join(PROCESSES)})", flush=True)
    try:
        platform.start_all()
        platform.wait_ready()
        run_rate(20, platform, bootstrap, prefix, token)  # warm-up, not reported
        print(f"{'leads/s':>8} {'achieved':>9} {'201 p50/p99 ms':>16} {'to decision p50/p99 ms':>24} "
              f"{'to report p50/p99 ms':>22} {'lag grew':>9} {'analytics ev/s':>15}")
        for rate in RATES:
            r = run_rate(rate, platform, bootstrap, prefix, token)
            print(f"{rate:>8} {r['achieved']:>9.0f} "
                  f"{r['answer_p50'] * 1000:>7.0f} / {r['answer_p99'] * 1000:<6.0f} "
                  f"{r['decision_p50'] * 1000:>11.0f} / {r['decision_p99'] * 1000:<10.0f} "
                  f"{r['report_p50'] * 1000:>9.0f} / {r['report_p99'] * 1000:<10.0f} "
                  f"{'yes' if r['lag_grew'] else 'no':>9} {r['analytics_events_per_s']:>15.0f}"
                  + ("" if r["assigned"] == r["captured"] else
                     f"   ({r['captured'] - r['assigned']} not assigned within 60 s)"), flush=True)
            print("         CPU ms per lead: " + ", ".join(
                f"{name} {ms:.1f}" for name, ms in sorted(r["cpu_ms_per_lead"].items()))
                + f"; cores {r['machine_busy']:.0%} busy", flush=True)
    finally:
        platform.stop()


if __name__ == "__main__":
    main()

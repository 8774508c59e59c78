"""Ticket and timer figures: due-time computations, ticket opened to assigned under steady
load, and how late durable SLA timers fire with 10,000 of them pending.

    make bench BENCH=tickets_timers.py      # also part of `make bench`
    CRM_BENCH_STORE=postgres make bench BENCH=tickets_timers.py
    CRM_BENCH_TICKET_RATES=20,50 CRM_BENCH_SECONDS=20 CRM_BENCH_TIMERS=10000 make bench BENCH=tickets_timers.py

1. Due-time computations per second, in process: `crm_runtime.business_time.due` on a
   Europe/Berlin calendar with a lunch break every weekday and ten holidays, from random
   starts over a year, for durations from 30 minutes to five days of business time.
2. It starts the service desk, its relay, the workflow API, worker and dispatcher as
   `make run` would, registers 10 agents in a least-loaded group, and opens tickets over
   HTTP at each of CRM_BENCH_TICKET_RATES a second for CRM_BENCH_SECONDS (from a process of its own,
   as steady_load.py captures leads). Each ticket is timed from its 201 to its
   `TicketAssigned` on crm.servicedesk.events.v1, read by a plain kafka-python consumer:
   the relay, the workflow's routing decision, the dispatcher's `AssignTicket` (several
   at once as `AssignTickets`), the service desk's command and its relay again. On
   PostgreSQL the platform gets an empty database of its own (as steady_load.py).
3. Timers: CRM_BENCH_TIMERS pending timers (8 per ticket) are written into the workflow
   store through the tickets consumer's own decision path (`WorkflowApplication.apply_tickets`
   with ticket facts: scheduled exactly as from `TicketOpened`), due at random instants
   over a 20 s window; the worker process fires them. Lateness is the time of each
   `Timer.Fired` event (when the firer fired it; its commit follows in the same call) minus
   its due time. Then as many again, all due at one instant: timers fired per second is
   their number over the time from that instant to the last one fired. The dispatcher is
   stopped first, so the escalations of these made-up tickets are not sent anywhere.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
import uuid
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from steady_load import AssignedWatcher, percentile, post_at  # the sibling script's helpers

from crm_devstack.postgres import fresh_database
from crm_devstack.processes import Platform, http_url, port_env
from crm_runtime.auth import TokenCodec
from crm_runtime.business_time import Calendar, due
from crm_runtime.kafka_admin import create_topics
from crm_runtime.settings import PlatformSettings
from crm_runtime.topics import all_topics

RATES = [int(r) for r in os.environ.get("CRM_BENCH_TICKET_RATES", "20,50").split(",")]
SECONDS = float(os.environ.get("CRM_BENCH_SECONDS", "20"))
TIMERS = int(os.environ.get("CRM_BENCH_TIMERS", "10000"))
DUE_COMPUTATIONS = int(os.environ.get("CRM_BENCH_DUES", "20000"))
PORT_OFFSET = int(os.environ.get("CRM_BENCH_PORT_OFFSET", "26000"))
SECRET = "bench-secret-0123456789-0123456789-abcdef"
PROCESSES = ["service-desk", "service-desk-relay", "workflow", "workflow-worker", "workflow-dispatcher"]
AGENTS = [f"agent-{n:02d}" for n in range(10)]
TIMERS_PER_TICKET = 8  # warning, breach, two escalations; first response and resolution
WINDOW = 20.0  # seconds over which the spread timers fall due
BERLIN = {"time_zone": "Europe/Berlin",
          "hours": {day: [["08:00", "12:00"], ["13:00", "17:30"]] for day in ("mon", "tue", "wed", "thu", "fri")},
          "holidays": ["2026-01-01", "2026-04-03", "2026-04-06", "2026-05-01", "2026-05-14", "2026-05-25",
                       "2026-10-03", "2026-12-24", "2026-12-25", "2026-12-26"]}


# -- 1. due times -------------------------------------------------------------------------------

def bench_due(count: int) -> float:
    calendar = Calendar.parse(BERLIN)
    chance = random.Random(7)
    year = datetime(2026, 1, 1, tzinfo=UTC)
    cases = [(year + timedelta(seconds=chance.uniform(0, 365 * 86400)),
              timedelta(minutes=chance.choice((30, 60, 240, 480, 960, 2400)))) for _ in range(count)]
    started = time.perf_counter()
    for start, duration in cases:
        due(calendar, start, duration)
    return count / (time.perf_counter() - started)


# -- 2. ticket opened to assigned --------------------------------------------------------------

def ticket_body(i: int) -> dict[str, Any]:
    return {"subject": f"Load {i}", "channel": "email", "priority": "normal", "group": "support",
            "requester": {"email": f"load-{uuid.uuid4().hex[:12]}@example.com"}}


def bench_assignment(platform: Platform, bootstrap: str, prefix: str, token: str, rate: int,
                     seconds: float) -> dict[str, Any]:
    desk_url = http_url(platform.spec("service-desk"), platform.env)
    assigned = AssignedWatcher(bootstrap, f"{prefix}crm.servicedesk.events.v1",
                               b"crm.servicedesk.v1.TicketAssigned")
    try:
        posted = post_at(rate, seconds, desk_url, "/v1/tickets", ticket_body, token)
        opened, started, ended = posted.created, posted.started, posted.ended
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(ticket_id not in assigned.arrived for ticket_id, _ in opened):
            time.sleep(0.1)
    finally:
        assigned.close()
    waits = [assigned.arrived[ticket_id] - at for ticket_id, at in opened if ticket_id in assigned.arrived]
    return {"achieved": len(opened) / max(1e-9, ended - started), "opened": len(opened), "assigned": len(waits),
            "p50": percentile(waits, 50), "p99": percentile(waits, 99)}


# -- 3. timers ----------------------------------------------------------------------------------

def _facts(times: list[tuple[datetime, datetime, datetime, datetime, timedelta]]) -> list[Any]:
    from crm_workflow.sla_timers import SlaState, TargetClock
    from crm_workflow.tickets import TicketFact

    facts = []
    for i, (first_warn, first_due, resolution_warn, resolution_due, step) in enumerate(times):
        ticket_id = f"bench-{uuid.uuid4()}"
        sla = SlaState(ticket_id, TargetClock(due=first_due, warn_at=first_warn),
                       TargetClock(due=resolution_due, warn_at=resolution_warn),
                       escalation_steps=(timedelta(0), step))
        facts.append(TicketFact(ticket_id=ticket_id, version=1, status="new", group="", assignee_id="",
                                category="", tags=(), sla=sla, cause_event_id=f"bench-{i}", opened=True))
    return facts


def _pending_before(app: Any, until: datetime) -> int:
    from crm_workflow.desk import TimerState
    from crm_workflow.views import timers

    with app.views.read() as conn:
        return int(conn.execute(select(func.count()).select_from(timers).where(
            timers.c.state == TimerState.PENDING, timers.c.fire_at <= until)).scalar() or 0)


def _fired_since(app: Any, after: int) -> list[tuple[datetime, datetime]]:
    """(due, fired) of every timer fired in the store after notification `after`."""
    from crm_workflow.desk import Timer

    fired = []
    position = after
    while True:
        notifications = app.recorder.select_notifications(start=position + 1, limit=1000)
        if not notifications:
            return fired
        for notification in notifications:
            position = notification.id
            if notification.topic.endswith("Timer.Fired"):
                event = app.mapper.to_domain_event(notification)
                if isinstance(event, Timer.Fired) and event.subject_id.startswith("bench-"):
                    fired.append((event.fire_at, event.timestamp))


def run_timers(app: Any, times: list[tuple[datetime, datetime, datetime, datetime, timedelta]],
               last_due: datetime) -> tuple[list[float], float, float]:
    """Writes the timers, waits until the worker fired them all; returns the lateness of each
    (seconds), how long the writing took, and the instant (epoch seconds) the last one fired."""
    position = app.recorder.max_notification_id() or 0
    started = time.perf_counter()
    facts = _facts(times)
    for first in range(0, len(facts), 250):
        app.apply_tickets(facts[first:first + 250])
    written = time.perf_counter() - started
    app.views.catch_up()  # the index has them all pending (the worker's firing step catches it up too)
    deadline = time.monotonic() + 300
    while _pending_before(app, last_due + timedelta(seconds=5)) and time.monotonic() < deadline:
        time.sleep(0.25)
    fired = _fired_since(app, position)
    lateness = [(fired_at - due_at).total_seconds() for due_at, fired_at in fired]
    last = max((fired_at for _, fired_at in fired), default=last_due)
    return lateness, written, last.timestamp()


def bench_timers(platform_settings: PlatformSettings, count: int) -> dict[str, Any]:
    from crm_workflow.application import WorkflowApplication

    app = WorkflowApplication(platform_settings, [])
    tickets = max(1, count // TIMERS_PER_TICKET)
    chance = random.Random(11)
    # Spread: every timer due somewhere in a window that opens once they are all written.
    opens = datetime.now(UTC) + timedelta(seconds=8 + tickets / 500)
    spread = []
    for _ in range(tickets):
        a, b, c, d = sorted(chance.uniform(0, WINDOW - 1) for _ in range(4))
        spread.append((opens + timedelta(seconds=a), opens + timedelta(seconds=b), opens + timedelta(seconds=c),
                       opens + timedelta(seconds=d), timedelta(seconds=chance.uniform(0.001, 1))))
    late, written, _ = run_timers(app, spread, opens + timedelta(seconds=WINDOW))
    if datetime.now(UTC) > opens and written > 8 + tickets / 500:
        print(f"  (writing the timers took {written:.1f} s: some fell due before all were written)")
    # Burst: as many again, all due at one instant.
    at = datetime.now(UTC) + timedelta(seconds=8 + tickets / 500)
    tiny = timedelta(microseconds=1)
    burst_times = [(at, at + tiny, at, at + tiny, tiny) for _ in range(tickets)]
    burst_late, _, last = run_timers(app, burst_times, at + 3 * tiny)
    return {"pending": tickets * TIMERS_PER_TICKET, "fired": len(late), "written_s": written,
            "p50": percentile(late, 50), "p99": percentile(late, 99), "max": max(late, default=float("nan")),
            "burst_fired": len(burst_late), "burst_per_s": len(burst_late) / max(1e-9, last - at.timestamp()),
            "burst_p50": percentile(burst_late, 50), "burst_p99": percentile(burst_late, 99)}


def main() -> None:
    logging.disable(logging.INFO)  # the in-process application's log lines
    bootstrap = os.environ["CRM_KAFKA_BOOTSTRAP"]
    store = os.environ.get("CRM_BENCH_STORE", "sqlite")
    prefix = f"tix{uuid.uuid4().hex[:6]}."
    create_topics(bootstrap, all_topics(prefix), 3)
    data = Path(os.environ.get("CRM_BENCH_DATA") or tempfile.mkdtemp()) / f"tickets-{prefix}"
    env = {**port_env(PORT_OFFSET, -PORT_OFFSET), "CRM_KAFKA_BOOTSTRAP": bootstrap, "CRM_TOPIC_PREFIX": prefix,
           "CRM_DATA_DIR": str(data / "stores"), "CRM_STORE": store, "CRM_AUTH_SECRET": SECRET,
           "CRM_LOG_LEVEL": "WARNING"}
    with fresh_database(PlatformSettings(store="postgres")) if store == "postgres" else nullcontext() as fresh:
        extra = {}
        if fresh is not None:  # an empty database: figures that do not depend on earlier runs
            env["CRM_POSTGRES_DBNAME"] = extra["postgres_dbname"] = fresh.postgres_dbname
        settings = PlatformSettings(store=store, data_dir=data / "stores", topic_prefix=prefix,
                                    kafka_bootstrap=bootstrap, **extra)
        run_all(env, data, store, bootstrap, prefix, settings)


def run_all(env: dict[str, str], data: Path, store: str, bootstrap: str, prefix: str,
            settings: PlatformSettings) -> None:
    print(f"\ntickets and timers ({store})", flush=True)
    print(f"  due-time computations  {bench_due(DUE_COMPUTATIONS):>10,.0f} /s   "
          f"(business_time.due, Europe/Berlin with a lunch break and 10 holidays, {DUE_COMPUTATIONS:,} cases)",
          flush=True)

    platform = Platform(env=env, log_dir=data / "logs", specs=[
        spec for spec in Platform(env={}).specs if spec.name in PROCESSES])
    token = TokenCodec(SECRET).issue("bench", ["admin"], ttl_seconds=3600)
    try:
        platform.start_all()
        platform.wait_ready()
        workflow = http_url(platform.spec("workflow"), platform.env)
        with httpx.Client(base_url=workflow, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
            client.put("/v1/routing/groups/support", json={"strategy": "least_loaded"}).raise_for_status()
            for agent in AGENTS:
                client.put(f"/v1/agents/{agent}", json={"groups": ["support"], "capacity": 1000}).raise_for_status()
        bench_assignment(platform, bootstrap, prefix, token, 5, 2)  # warm-up, not reported
        for rate in RATES:
            r = bench_assignment(platform, bootstrap, prefix, token, rate, SECONDS)
            print(f"  ticket opened → TicketAssigned on the topic: {r['achieved']:.0f} tickets/s over {SECONDS:.0f} s, "
                  f"p50 {r['p50'] * 1000:.0f} ms, p99 {r['p99'] * 1000:.0f} ms"
                  + ("" if r["assigned"] == r["opened"] else
                     f"   ({r['opened'] - r['assigned']} of {r['opened']} not assigned within 60 s)"), flush=True)

        platform.kill("workflow-dispatcher", 15)  # SIGTERM: the made-up tickets' escalations go nowhere
        t = bench_timers(settings, TIMERS)
        print(f"  timers: {t['pending']:,} pending, due over {WINDOW:.0f} s (written in {t['written_s']:.1f} s): "
              f"{t['fired']:,} fired, late p50 {t['p50'] * 1000:.0f} ms, p99 {t['p99'] * 1000:.0f} ms, "
              f"max {t['max'] * 1000:.0f} ms", flush=True)
        print(f"  timers: {t['burst_fired']:,} due at one instant: {t['burst_per_s']:,.0f} fired/s "
              f"(late p50 {t['burst_p50']:.1f} s, p99 {t['burst_p99']:.1f} s)", flush=True)
    finally:
        platform.stop()


if __name__ == "__main__":
    main()

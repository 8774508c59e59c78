"""kill -9 the workflow worker (which consumes the ticket events and fires the timers: the
timer process) and its dispatcher while 1,000 SLA timers are pending and tickets keep
flowing in, and again while the timers are firing: after the restarts every timer fires
exactly once, every ticket is routed and assigned once and reaches escalation level 2."""

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from crm.servicedesk.v1 import events_pb2 as desk_events_pb2
from crm.workflow.v1 import events_pb2
from crm_runtime.cloudevents import EventRegistry
from tests.conftest import bearer
from tests.kafka_helpers import OffsetWatcher, read_all
from tests.platform_harness import start_platform, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
REGISTRY = EventRegistry.from_modules(events_pb2, desk_events_pb2)
ADMIN = bearer("admin", subject="root")
AGENT = bearer("agent", subject="ann", groups=("support",))
TIMERS_PER_TICKET = 8  # warning, breach, 2 escalations; first response and resolution
FIRST = 125  # opened before the first kill: 1,000 timers pending
FLOWING_PER_SECOND = 4  # then tickets keep coming, through both kills
# The first timer (a first response's warning, at 50 % of 45 s) is due 22.5 s after its
# ticket opened: the first kill comes before it, with every timer of the first tickets
# scheduled and none fired (on a busy machine, opening and routing them takes up to ~15 s).
FIRST_RESPONSE, RESOLUTION = 45, 50
FIRST_DUE = FIRST_RESPONSE / 2


def test_each_timer_fires_once_across_worker_and_dispatcher_crashes(tmp_path, kafka_bootstrap, topic_prefix):
    platform = start_platform(tmp_path, kafka_bootstrap, topic_prefix,
                              ["service-desk", "service-desk-relay", "workflow", "workflow-worker",
                               "workflow-dispatcher", "workflow-relay"])
    desk, workflow = httpx.Client(base_url=url("service-desk")), httpx.Client(base_url=url("workflow"))
    topic = f"{topic_prefix}crm.workflow.events.v1"
    on_topic = OffsetWatcher(kafka_bootstrap, topic)
    ids: list[str] = []
    lock, flowing = threading.Lock(), threading.Event()

    def open_ticket(i: int) -> str:
        with httpx.Client(base_url=url("service-desk"), timeout=30) as client:
            response = client.post("/v1/tickets", headers=AGENT, json={
                "subject": f"T{i}", "channel": "email", "priority": "urgent",
                "requester": {"email": f"c{i}@example.com"}, "group": "support"})
        assert response.status_code == 201, response.text
        with lock:
            ids.append(response.json()["id"])
        return response.json()["id"]  # type: ignore[no-any-return]

    def flow() -> None:
        i = FIRST
        while flowing.is_set():
            started = time.monotonic()
            open_ticket(i)
            i += 1
            time.sleep(max(0.0, 1 / FLOWING_PER_SECOND - (time.monotonic() - started)))

    def restart_worker_and_dispatcher() -> None:
        platform.kill("workflow-worker")
        platform.kill("workflow-dispatcher")
        platform.start("workflow-worker")
        platform.start("workflow-dispatcher")

    try:
        for agent in ("ann", "bob", "cy"):
            workflow.put(f"/v1/agents/{agent}", headers=ADMIN, json={"groups": ["support"], "capacity": 200})
        assert desk.put("/v1/sla-policies/default", headers=ADMIN, json={
            "calendar_id": "default", "warn_at_percent": 50, "escalation_steps": ["PT0S", "PT2S"],
            "targets": {p: {"first_response": f"PT{FIRST_RESPONSE}S", "resolution": f"PT{RESOLUTION}S"}
                        for p in ("urgent", "high", "normal", "low")}}).status_code in (200, 201)

        first_opened = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(open_ticket, range(FIRST)))
        flowing.set()
        flower = threading.Thread(target=flow, daemon=True)
        flower.start()
        first_ids = set(ids)

        def first_routed() -> bool:
            messages = (REGISTRY.decode(r.headers, r.value).message for r in read_all(kafka_bootstrap, topic))
            return first_ids <= {m.ticket_id for m in messages if isinstance(m, events_pb2.TicketRouted)}

        # Every first ticket routed (its timers are scheduled in the routing's transaction),
        # none of their timers due yet: 1,000 pending. Kill while tickets keep coming.
        wait_for(first_routed, interval=0.1, what="the first tickets routed")
        took = time.monotonic() - first_opened
        assert took < FIRST_DUE - 1, f"the first timers fell due before the kill ({took:.1f} s to route them)"
        restart_worker_and_dispatcher()

        # Again while they fire (and the escalations are being delivered).
        wait_for(lambda: on_topic.total() >= len(ids) + FIRST * 3, timeout=120, interval=0.05,
                 what="timers firing")
        restart_worker_and_dispatcher()
        time.sleep(2)  # a few more tickets into the restarted worker
        flowing.clear()
        flower.join(timeout=30)
        total = len(ids)
        assert total >= FIRST + 20, total

        def escalated() -> bool:
            levels, cursor = [], None
            while True:
                page = desk.get("/v1/tickets", headers=ADMIN, params={"limit": 200, **({"cursor": cursor}
                                                                                       if cursor else {})}).json()
                levels += [t["escalation_level"] for t in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    return len(levels) == total and all(level == 2 for level in levels)

        wait_for(escalated, timeout=120, interval=1, what="every ticket at escalation level 2")

        def all_fired():
            envelopes = {}
            for record in read_all(kafka_bootstrap, topic):
                envelope = REGISTRY.decode(record.headers, record.value)
                envelopes[envelope.id] = envelope  # a relay re-send repeats its ce_id
            named = [e for e in envelopes.values() if hasattr(e.message, "timer_name")]
            return envelopes if len({e.message.timer_name for e in named}) == total * TIMERS_PER_TICKET else None

        envelopes = wait_for(all_fired, timeout=120, interval=1, what="every timer fired")
        per_timer = Counter(e.message.timer_name for e in envelopes.values() if hasattr(e.message, "timer_name"))
        assert set(per_timer.values()) == {1}, [name for name, n in per_timer.items() if n > 1][:5]
        routed = Counter(e.message.ticket_id for e in envelopes.values()
                         if isinstance(e.message, events_pb2.TicketRouted))
        assert routed == dict.fromkeys(ids, 1)
        # The service desk recorded one assignment per ticket: no command was applied twice.
        desk_envelopes = {e.id: e for e in (REGISTRY.decode(r.headers, r.value) for r in
                                            read_all(kafka_bootstrap, f"{topic_prefix}crm.servicedesk.events.v1"))}
        assigned = Counter(e.message.ticket.ticket_id for e in desk_envelopes.values()
                           if isinstance(e.message, desk_events_pb2.TicketAssigned))
        assert assigned == dict.fromkeys(ids, 1)
        platform.check_alive()
    finally:
        flowing.clear()
        on_topic.close()
        desk.close()
        workflow.close()
        platform.stop()

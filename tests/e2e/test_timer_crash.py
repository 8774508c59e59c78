"""kill -9 the workflow worker (which consumes the ticket events and fires the timers) and
its dispatcher while hundreds of SLA timers are pending and firing: after the restart every
timer fires exactly once, every ticket is routed once and reaches escalation level 2."""

from collections import Counter

import httpx
import pytest

from crm.workflow.v1 import events_pb2
from crm_runtime.cloudevents import EventRegistry
from tests.conftest import bearer
from tests.kafka_helpers import OffsetWatcher, read_all
from tests.platform_harness import start_platform, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
REGISTRY = EventRegistry.from_modules(events_pb2)
ADMIN = bearer("admin", subject="root")
TICKETS = 60
TIMERS_PER_TICKET = 8  # warning, breach, 2 escalations; first response and resolution


def test_each_timer_fires_once_across_a_worker_and_dispatcher_crash(tmp_path, kafka_bootstrap, topic_prefix):
    platform = start_platform(tmp_path, kafka_bootstrap, topic_prefix,
                              ["service-desk", "service-desk-relay", "workflow", "workflow-worker",
                               "workflow-dispatcher", "workflow-relay"])
    desk, workflow = httpx.Client(base_url=url("service-desk")), httpx.Client(base_url=url("workflow"))
    topic = f"{topic_prefix}crm.workflow.events.v1"
    on_topic = OffsetWatcher(kafka_bootstrap, topic)
    try:
        for agent in ("ann", "bob", "cy"):
            workflow.put(f"/v1/agents/{agent}", headers=ADMIN, json={"groups": ["support"], "capacity": 100})
        assert desk.put("/v1/sla-policies/default", headers=ADMIN, json={
            "calendar_id": "default", "warn_at_percent": 50, "escalation_steps": ["PT0S", "PT2S"],
            "targets": {p: {"first_response": "PT10S", "resolution": "PT20S"}
                        for p in ("urgent", "high", "normal", "low")}}).status_code in (200, 201)
        agent = bearer("agent", subject="ann")
        ids = [desk.post("/v1/tickets", headers=agent, json={
            "subject": f"T{i}", "channel": "email", "priority": "urgent",
            "requester": {"email": f"c{i}@example.com"}, "group": "support"}).json()["id"] for i in range(TICKETS)]
        # The first warnings fire: kill both while the rest are pending or firing.
        progress = wait_for(lambda: (n := on_topic.total()) >= TICKETS + 5 and n, interval=0.05,
                            what="timers firing")
        assert progress < TICKETS + TICKETS * TIMERS_PER_TICKET // 2, "most timers fired before the kill"
        platform.kill("workflow-worker")
        platform.kill("workflow-dispatcher")
        platform.start("workflow-worker")
        platform.start("workflow-dispatcher")

        def escalated():
            levels = [desk.get(f"/v1/tickets/{i}", headers=agent).json()["escalation_level"] for i in ids]
            return all(level == 2 for level in levels)

        wait_for(escalated, timeout=120, interval=1, what="every ticket at escalation level 2")

        def all_fired():
            envelopes = {}
            for record in read_all(kafka_bootstrap, topic):
                envelope = REGISTRY.decode(record.headers, record.value)
                envelopes[envelope.id] = envelope  # a relay re-send repeats its ce_id
            named = [e for e in envelopes.values() if hasattr(e.message, "timer_name")]
            return envelopes if len({e.message.timer_name for e in named}) == TICKETS * TIMERS_PER_TICKET else None

        envelopes = wait_for(all_fired, timeout=120, interval=1, what="every timer fired")
        per_timer = Counter(e.message.timer_name for e in envelopes.values() if hasattr(e.message, "timer_name"))
        assert set(per_timer.values()) == {1}, [name for name, n in per_timer.items() if n > 1][:5]
        routed = Counter(e.message.ticket_id for e in envelopes.values()
                         if isinstance(e.message, events_pb2.TicketRouted))
        assert routed == dict.fromkeys(ids, 1)
        platform.check_alive()
    finally:
        on_topic.close()
        desk.close()
        workflow.close()
        platform.stop()

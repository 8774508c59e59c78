"""End to end over the real broker: the service desk and the workflow as processes. A ticket
on a 24x7 calendar with a seconds-long SLA is routed (AssignTicket through the dispatcher),
warned, breached and escalated to level 2, each timer firing once and within a second of
its time, then solved; a second ticket answered in time has its first-response timers
cancelled; the workflow's events are read from its topic with a real consumer. Once with
every store on SQLite and once on PostgreSQL (one variable switches every service's store)."""

from collections import Counter
from datetime import datetime

import grpc
import httpx
import pytest

from crm.workflow.v1 import events_pb2, workflow_pb2, workflow_pb2_grpc
from crm_runtime.cloudevents import EventRegistry
from tests.conftest import bearer, grpc_auth
from tests.kafka_helpers import read_all
from tests.platform_harness import grpc_target, start_platform, store_env, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
REGISTRY = EventRegistry.from_modules(events_pb2)
ADMIN = bearer("admin", subject="root")
PROCESSES = ["service-desk", "service-desk-relay", "workflow", "workflow-worker", "workflow-dispatcher",
             "workflow-relay"]


@pytest.fixture(params=["sqlite", "postgres"])
def platform(request, tmp_path, kafka_bootstrap, topic_prefix):
    env = store_env(request)
    running = start_platform(tmp_path, kafka_bootstrap, topic_prefix, PROCESSES, extra_env=env)
    yield running
    running.stop()


def test_a_ticket_is_routed_warned_breached_escalated_and_its_timers_fire_once(platform, kafka_bootstrap,
                                                                                topic_prefix):
    desk, workflow = httpx.Client(base_url=url("service-desk")), httpx.Client(base_url=url("workflow"))
    try:
        for agent in ("ann", "bob"):
            assert workflow.put(f"/v1/agents/{agent}", headers=ADMIN,
                                json={"groups": ["support"], "capacity": 5}).status_code == 200
        assert workflow.put("/v1/routing/groups/support", headers=ADMIN,
                            json={"strategy": "least_loaded"}).json()["members"] == ["ann", "bob"]
        # The default calendar is 24x7 UTC; seconds-long targets for urgent tickets.
        policy = desk.put("/v1/sla-policies/default", headers=ADMIN, json={
            "calendar_id": "default", "warn_at_percent": 50, "escalation_steps": ["PT0S", "PT3S"],
            "targets": {"urgent": {"first_response": "PT4S", "resolution": "PT8S"},
                        **{p: {"first_response": "PT30S", "resolution": "PT60S"} for p in ("high", "normal", "low")}}})
        assert policy.status_code in (200, 201), policy.text
        agent = bearer("agent", subject="ann", groups=("support",))  # sees the support group's tickets
        gateway = bearer("service", subject="service:mail-gateway")  # tickets come in by mail
        hot = desk.post("/v1/tickets", headers=gateway, json={
            "subject": "Printer on fire", "channel": "email", "priority": "urgent",
            "requester": {"email": "ada@example.com"}, "group": "support"}).json()
        calm = desk.post("/v1/tickets", headers=gateway, json={
            "subject": "Toner", "channel": "web", "priority": "normal",
            "requester": {"email": "bo@example.com"}, "group": "support"}).json()

        def ticket(ticket_id):
            return desk.get(f"/v1/tickets/{ticket_id}", headers=agent).json()

        # Both are routed: least loaded, one each.
        assignees = wait_for(lambda: (a := {ticket(t["id"])["assignee_id"] for t in (hot, calm)}) - {None} == a
                             and a, what="both tickets assigned")
        assert assignees == {"ann", "bob"}
        elsewhere = bearer("agent", subject="cy", groups=("billing",))
        assert desk.get(f"/v1/tickets/{hot['id']}", headers=elsewhere).status_code == 404
        assert desk.get("/v1/tickets", headers=elsewhere).json()["items"] == []
        # The second ticket gets its first response: its first-response timers are cancelled.
        calm_agent = ticket(calm["id"])["assignee_id"]
        # A token without groups: the agent sees the ticket because it is assigned to them.
        answered = desk.post(f"/v1/tickets/{calm['id']}/comments", headers=bearer("agent", subject=calm_agent),
                             json={"body": "On it", "public": True, "author_id": calm_agent})
        assert answered.json()["first_response"] is not None, answered.text

        def timers(ticket_id):
            return {row["name"].split("/", 1)[1]: row for row in
                    workflow.get("/v1/timers", params={"subject_id": ticket_id}, headers=ADMIN).json()["items"]}

        wait_for(lambda: timers(calm["id"]).get("first_response/breach", {}).get("state") == "cancelled",
                 what="the answered ticket's first-response timers cancelled")
        calm_timers = timers(calm["id"])
        assert {name for name, row in calm_timers.items() if row["state"] == "pending"} == {
            "resolution/warning", "resolution/breach", "resolution/escalation/1", "resolution/escalation/2"}
        assert all(row["state"] == "cancelled" for name, row in calm_timers.items()
                   if name.startswith("first_response/"))

        # The urgent ticket: warned, breached, escalated to level 2 by its timers.
        wait_for(lambda: ticket(hot["id"])["escalation_level"] == 2, timeout=60, what="escalation level 2")
        assert desk.post(f"/v1/tickets/{hot['id']}/status", headers=agent,
                         json={"status": "solved"}).status_code == 200
        wait_for(lambda: all(row["state"] != "pending" for row in timers(hot["id"]).values()),
                 what="no timer of the solved ticket pending")
        hot_timers = timers(hot["id"])
        fired = {name: row for name, row in hot_timers.items() if row["state"] == "fired"}
        assert {"first_response/warning", "first_response/breach", "first_response/escalation/1",
                "first_response/escalation/2"} <= set(fired)
        for name, row in fired.items():
            late = (datetime.fromisoformat(row["fired_at"]) - datetime.fromisoformat(row["fire_at"])).total_seconds()
            assert 0 <= late < 1.0, f"{name} fired {late:.2f}s late"

        # gRPC answers the same timers.
        with grpc.insecure_channel(grpc_target("workflow")) as channel:
            answer = workflow_pb2_grpc.WorkflowServiceStub(channel).ListTimers(
                workflow_pb2.ListTimersRequest(subject_id=hot["id"]), metadata=grpc_auth("admin"))
        assert {t.name for t in answer.timers} == {row["name"] for row in hot_timers.values()}

        # The workflow's topic: the routing decisions and one event per fired timer.
        topic = f"{topic_prefix}crm.workflow.events.v1"

        def published():
            envelopes = [REGISTRY.decode(r.headers, r.value) for r in read_all(kafka_bootstrap, topic)]
            names = [e.message.timer_name for e in envelopes if hasattr(e.message, "timer_name")]
            return envelopes if len(set(names)) >= len(fired) else None

        envelopes = wait_for(published, what="the fired timers on the workflow topic")
        distinct = {e.id: e for e in envelopes}.values()  # a relay re-send repeats its ce_id
        per_timer = Counter(e.message.timer_name for e in distinct if hasattr(e.message, "timer_name"))
        assert set(per_timer) == {row["name"] for row in fired.values()}
        assert set(per_timer.values()) == {1}
        routed = [e.message for e in distinct if isinstance(e.message, events_pb2.TicketRouted)]
        assert sorted(m.ticket_id for m in routed) == sorted([hot["id"], calm["id"]])
        escalations = sorted(m.level for m in (e.message for e in distinct)
                             if isinstance(m, events_pb2.SlaEscalationReached) and m.ticket_id == hot["id"]
                             and m.target == events_pb2.SLA_TARGET_KIND_FIRST_RESPONSE)
        assert escalations == [1, 2]
        # The agents' loads: the solved ticket is no longer open work.
        loads = {a["id"]: a["load"] for a in workflow.get("/v1/agents", headers=ADMIN).json()["items"]}
        assert sorted(loads.values()) == [0, 1]
        platform.check_alive()
    finally:
        desk.close()
        workflow.close()

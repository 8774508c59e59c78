"""The workflow's ticket side, over an in-memory store: agents and groups, routing decisions
saved as commands, open loads kept from ticket events, the queue drained when capacity
frees, and SLA timers scheduled, moved, cancelled and fired once."""

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import events_pb2 as sd_events
from crm.servicedesk.v1 import types_pb2
from crm.workflow.v1 import events_pb2
from crm_runtime.business_time import ManualClock
from crm_runtime.errors import InvalidField
from crm_runtime.settings import PlatformSettings
from crm_workflow.adapters.messages import COMMANDS, EVENTS
from crm_workflow.adapters.servicedesk import fact_of
from crm_workflow.application import WorkflowApplication
from crm_workflow.desk import Timer, TimerState
from crm_workflow.firing import TimerFirer
from crm_workflow.sla_timers import SlaState, TargetClock
from crm_workflow.tickets import TicketFact

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def app(clock):
    return WorkflowApplication(PlatformSettings(store="memory"), ["rep"], clock=clock)


def fact(ticket_id, version, status="new", group="support", assignee="", category="", tags=(), sla=None,
         opened=None):
    return TicketFact(ticket_id=ticket_id, version=version, status=status, group=group, assignee_id=assignee,
                      category=category, tags=tuple(tags), sla=sla or SlaState(ticket_id, TargetClock(None),
                                                                               TargetClock(None)),
                      cause_event_id=f"evt-{ticket_id}-{version}", opened=version == 1 if opened is None else opened)


def commands(app):
    found = []
    for notification in app.recorder.select_notifications(start=1, limit=10_000):
        command = COMMANDS.command_for(app.mapper.to_domain_event(notification))
        if command is not None:
            found.append(command)
    return found


def test_an_agent_is_parsed_and_refused_by_field(app):
    agent = app.put_agent("ann", {"groups": ["Support"], "skills": ["billing"], "capacity": 2})
    assert agent.to_dict()["groups"] == ["support"] and agent.load == 0
    assert app.get_group("support").members == ["ann"]
    with pytest.raises(InvalidField) as refused:
        app.put_agent("bob", {"capacity": -1})
    assert refused.value.field == "capacity"
    with pytest.raises(InvalidField):
        app.put_group("support", {"strategy": "random"})


def test_an_opened_ticket_is_routed_once_and_the_decision_is_the_assign_command(app):
    app.put_agent("ann", {"groups": ["support"]})
    app.put_agent("bob", {"groups": ["support"]})
    app.apply_tickets([fact("t1", 1), fact("t2", 1)])
    app.apply_tickets([fact("t1", 1)])  # a re-send changes nothing
    sent = commands(app)
    assert [(c.request.ticket_id, c.request.assignee_id) for c in sent] == [("t1", "ann"), ("t2", "bob")]
    assert sent[0].method == "/crm.servicedesk.v1.ServiceDeskService/AssignTicket"
    assert sent[0].target == "service-desk" and sent[0].idempotency_key == "workflow/ticket/t1/routing/1"
    published = [EVENTS.to_message(app.mapper.to_domain_event(n))
                 for n in app.recorder.select_notifications(start=1, limit=1000)]
    routed = [m for m in published if isinstance(m, events_pb2.TicketRouted)]
    assert [(m.ticket_id, m.agent_id, m.group) for m in routed] == [("t1", "ann", "support"), ("t2", "bob", "support")]
    assert routed[0].strategy == events_pb2.ROUTING_STRATEGY_ROUND_ROBIN
    assert app.get_agent("ann").open_tickets == ["t1"]


def test_least_loaded_counts_only_open_work(app):
    app.put_group("support", {"strategy": "least_loaded"})
    for agent in ("ann", "bob"):
        app.put_agent(agent, {"groups": ["support"]})
    app.apply_tickets([fact("t1", 1), fact("t2", 1), fact("t3", 1)])  # ann, bob, ann
    assert app.get_agent("ann").load == 2
    # ann's two tickets: one solved, one pending; neither counts.
    app.apply_tickets([fact("t1", 2, status="solved", assignee="ann"),
                       fact("t3", 2, status="pending", assignee="ann")])
    assert app.get_agent("ann").load == 0 and app.get_agent("bob").load == 1
    app.apply_tickets([fact("t4", 1)])
    assert app.get_ticket_work("t4").assignee_id == "ann"


def test_nobody_eligible_queues_and_freed_capacity_drains_the_queue(app):
    app.put_agent("ann", {"groups": ["support"], "capacity": 1})
    app.put_agent("bob", {"groups": ["support"], "on_shift": False})
    app.apply_tickets([fact("t1", 1), fact("t2", 1), fact("t3", 1)])
    assert app.get_group("support").to_dict()["queue"] == ["t2", "t3"]
    assert app.get_ticket_work("t2").queued
    # ann solves t1: her capacity frees and the oldest queued ticket goes to her.
    app.apply_tickets([fact("t1", 2, status="solved", assignee="ann")])
    assert app.get_ticket_work("t2").assignee_id == "ann"
    assert app.get_group("support").to_dict()["queue"] == ["t3"]
    # bob comes on shift: he takes t3.
    app.put_agent("bob", {"groups": ["support"], "on_shift": True})
    assert app.get_ticket_work("t3").assignee_id == "bob"
    assert app.get_group("support").queue == []
    assert [c.request.assignee_id for c in commands(app)] == ["ann", "ann", "bob"]


def test_a_queued_ticket_solved_leaves_the_queue(app):
    app.apply_tickets([fact("t1", 1)])
    assert app.get_group("support").to_dict()["queue"] == ["t1"]
    app.apply_tickets([fact("t1", 2, status="solved")])
    assert app.get_group("support").queue == []
    app.put_agent("ann", {"groups": ["support"]})
    assert commands(app) == []


def sla(ticket_id, first_due=None, res_due=None, first_met=False, paused=False):
    def clock(due, met=False, paused=False):
        return TargetClock(due=due, warn_at=due - timedelta(minutes=15) if due else None, met=met, paused=paused)
    return SlaState(ticket_id, clock(first_due, met=first_met), clock(None if paused else res_due, paused=paused),
                    escalation_steps=(timedelta(0), timedelta(hours=2)))


def pending_timers(app, ticket_id):
    return {row.name.split("/", 1)[1]: row.fire_at for row in app.timers_of(ticket_id) if row.state == "pending"}


def test_timers_follow_the_sla_and_fire_once(app, clock):
    fr, res = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    app.apply_tickets([fact("t1", 1, group="", sla=sla("t1", fr, res))])
    assert pending_timers(app, "t1") == {
        "first_response/warning": fr - timedelta(minutes=15), "first_response/breach": fr,
        "first_response/escalation/1": fr, "first_response/escalation/2": fr + timedelta(hours=2),
        "resolution/warning": res - timedelta(minutes=15), "resolution/breach": res,
        "resolution/escalation/1": res, "resolution/escalation/2": res + timedelta(hours=2)}
    firer = TimerFirer(app)
    assert firer.step() == 0
    clock.set(fr)
    assert firer.step() == 3  # warning, breach and level 1 of the first response
    assert firer.step() == 0
    fired = app.get_timer("t1/first_response/escalation/1")
    assert fired.state == TimerState.FIRED
    escalations = [c for c in commands(app) if c.method.endswith("EscalateTicket")]
    assert [(c.request.ticket_id, c.request.level) for c in escalations] == [("t1", 1)]
    # The first response comes: its timers are cancelled; a paused resolution cancels its own.
    app.apply_tickets([fact("t1", 2, group="", sla=sla("t1", fr, res, first_met=True))])
    assert set(pending_timers(app, "t1")) == {"resolution/warning", "resolution/breach",
                                              "resolution/escalation/1", "resolution/escalation/2"}
    app.apply_tickets([fact("t1", 3, group="", sla=sla("t1", fr, res, first_met=True, paused=True))])
    assert pending_timers(app, "t1") == {}
    # Resumed later: moved, not duplicated.
    later = res + timedelta(hours=1)
    app.apply_tickets([fact("t1", 4, group="", sla=sla("t1", fr, later, first_met=True))])
    assert pending_timers(app, "t1")["resolution/breach"] == later
    rows = {row.name: row for row in app.timers_of("t1")}
    assert rows["t1/first_response/escalation/1"].state == "fired"
    assert len(rows) == 8


def test_firing_publishes_warning_breach_and_escalation(app, clock):
    due = T0 + timedelta(minutes=1)
    app.apply_tickets([fact("t1", 1, group="", sla=sla("t1", due, due + timedelta(hours=1)))])
    clock.advance(timedelta(hours=3))
    TimerFirer(app).step()
    messages = [EVENTS.to_message(app.mapper.to_domain_event(n))
                for n in app.recorder.select_notifications(start=1, limit=1000)]
    kinds = [type(m).__name__ for m in messages if m is not None]
    assert kinds.count("SlaWarningReached") == 2 and kinds.count("SlaBreached") == 2
    escalated = [m for m in messages if isinstance(m, events_pb2.SlaEscalationReached)]
    assert sorted((m.target, m.level) for m in escalated) == [
        (events_pb2.SLA_TARGET_KIND_FIRST_RESPONSE, 1), (events_pb2.SLA_TARGET_KIND_FIRST_RESPONSE, 2),
        (events_pb2.SLA_TARGET_KIND_RESOLUTION, 1)]


def test_a_timer_fires_once_even_when_two_firers_race(app, clock):
    app.apply_tickets([fact("t1", 1, group="", sla=sla("t1", T0 + timedelta(minutes=1), T0 + timedelta(hours=1)))])
    clock.advance(timedelta(minutes=30))
    first, second = TimerFirer(app), TimerFirer(app)
    assert first.step() + second.step() == 3
    assert sum(1 for n in app.recorder.select_notifications(start=1, limit=1000)
               if isinstance(app.mapper.to_domain_event(n), Timer.Fired)) == 3


def ts(at):
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def test_a_service_desk_event_maps_to_the_ticket_fact():
    due = T0 + timedelta(hours=1)
    ticket = types_pb2.TicketState(
        ticket_id="t1", version=3, status=types_pb2.TICKET_STATUS_PENDING, group="support", category="billing",
        tags=["vip"], assignee_id="ann",
        sla=types_pb2.Sla(escalation_steps=[Duration(seconds=0), Duration(seconds=7200)],
                          first_response=types_pb2.SlaTarget(state=types_pb2.SLA_TARGET_STATE_RUNNING,
                                                             due=ts(due), warn_at=ts(due - timedelta(minutes=15))),
                          resolution=types_pb2.SlaTarget(state=types_pb2.SLA_TARGET_STATE_PAUSED, due=ts(due))))
    got = fact_of(sd_events.TicketStatusChanged(ticket=ticket), "evt-1")
    assert (got.ticket_id, got.version, got.status, got.group, got.assignee_id) == (
        "t1", 3, "pending", "support", "ann")
    assert got.sla.first_response == TargetClock(due=due, warn_at=due - timedelta(minutes=15))
    assert got.sla.resolution.paused and got.sla.resolution.due is None
    assert got.sla.escalation_steps == (timedelta(0), timedelta(hours=2))
    assert not got.opened and fact_of(sd_events.TicketOpened(ticket=ticket), "e").opened
    assert fact_of(sd_events.CalendarChanged(calendar_id="x"), "e") is None


def test_loads_and_timers_are_durable_state_in_the_store(tmp_path, clock):
    platform = PlatformSettings(data_dir=tmp_path)
    app = WorkflowApplication(platform, ["rep"], clock=clock)
    app.put_agent("ann", {"groups": ["support"], "capacity": 3})
    app.apply_tickets([fact("t1", 1, sla=sla("t1", T0 + timedelta(hours=1), T0 + timedelta(hours=2)))])
    restarted = WorkflowApplication(platform, ["rep"], clock=clock)
    assert restarted.get_agent("ann").open_tickets == ["t1"]
    assert len(restarted.timers_of("t1")) == 8
    clock.advance(timedelta(hours=5))
    assert TimerFirer(restarted).step() == 8
    assert TimerFirer(app).step() == 0


def test_a_routing_group_read_back_from_its_snapshot_routes_like_the_one_replayed(tmp_path, clock):
    """RoutingGroup is snapshotted every 200 events: a restarted worker reads it from the
    snapshot, whose state is JSON. The strategy must come back as the strategy."""
    from crm_workflow.desk import RoutingGroup
    from crm_workflow.routing import RoutingStrategy

    platform = PlatformSettings(data_dir=tmp_path)
    app = WorkflowApplication(platform, ["rep"], clock=clock)
    app.put_group("support", {"strategy": "least_loaded"})
    for agent in ("ann", "bob"):
        app.put_agent(agent, {"groups": ["support"], "capacity": 500})
    group_id = RoutingGroup.id_for("support")
    app.apply_tickets([fact(f"t{i}", 1) for i in range(210)])  # past the snapshot interval
    assert list(app.snapshots.get(group_id, desc=True, limit=1)), "no snapshot was taken"

    restarted = WorkflowApplication(platform, ["rep"], clock=clock)
    group = restarted.get_group("support")
    assert group.strategy is RoutingStrategy.LEAST_LOADED and group.to_dict()["strategy"] == "least_loaded"
    restarted.apply_tickets([fact("t-after", 1)])
    assert restarted.get_ticket_work("t-after").assignee_id in ("ann", "bob")
    assert not restarted.get_group("support").use(RoutingStrategy.LEAST_LOADED)  # no change: no event

    # A snapshot written by version 1 of the aggregate (the strategy as its name under `strategy`).
    old = dict(next(iter(restarted.snapshots.get(group_id, desc=True, limit=1))).state)
    old.pop("class_version")
    old["strategy"] = old.pop("strategy_name")
    RoutingGroup.upcast_v1_v2(old)
    assert old["strategy_name"] == "least_loaded"


def test_timers_due_together_fire_in_one_transaction_and_a_lost_race_falls_back_to_one_each(app, clock):
    fr, res = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    app.apply_tickets([fact("t1", 1, group="", sla=sla("t1", fr, res))])
    clock.set(fr)
    app.views.catch_up()
    ids = [row.id for row in app.views.due_timers(fr, 10)]
    assert len(ids) == 3  # warning, breach and level 1 of the first response
    stored = app.recorder.max_notification_id()
    assert TimerFirer(app).step() == 3
    fired = app.recorder.select_notifications(start=stored + 1, limit=10)
    assert [type(app.mapper.to_domain_event(n)).__name__ for n in fired] == ["Fired"] * 3

    # Another firer fires one of a chunk between this firer's read and its save: the chunk's
    # save fails as a whole, and the others fire one by one; each timer fires once.
    clock.set(res)
    app.views.catch_up()
    due = [row.id for row in app.views.due_timers(res, 10)]
    assert len(due) == 4  # the resolution's warning, breach, level 1; the first response's level 2
    firer, rival = TimerFirer(app), TimerFirer(app)
    read = firer._due

    def raced(timer_ids, now):
        timers = read(timer_ids, now)
        if len(timer_ids) > 1:
            assert rival._fire([timer_ids[1]], now) == 1
        return timers

    firer._due = raced
    assert firer.step() == 3
    rows = {row.id: row.state for row in app.timers_of("t1")}
    assert all(rows[timer_id] == "fired" for timer_id in due)
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(start=1, limit=1000)]
    fired_names = [e.name for e in events if type(e).__name__ == "Fired"]
    assert len(fired_names) == len(set(fired_names)) == 7

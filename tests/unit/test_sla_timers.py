"""The SLA timers a ticket's state needs, and how the pending ones follow its changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_workflow.sla_timers import SlaState, Target, TargetClock, TimerKey, TimerKind, plan, reconcile

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
FR, RES = Target.FIRST_RESPONSE, Target.RESOLUTION
WARN, BREACH, ESC = TimerKind.WARNING, TimerKind.BREACH, TimerKind.ESCALATION


def state(first=TargetClock(T0 + H, warn_at=T0 + 0.75 * H), resolution=TargetClock(T0 + 4 * H, warn_at=T0 + 3 * H),
          steps=(timedelta(0), 2 * H)) -> SlaState:
    return SlaState("t-1", first, resolution, steps)


def key(target, kind, level=0) -> TimerKey:
    return TimerKey("t-1", target, kind, level)


def test_an_open_ticket_gets_a_warning_a_breach_and_each_escalation_per_target():
    assert plan(state()) == {
        key(FR, WARN): T0 + 0.75 * H, key(FR, BREACH): T0 + H,
        key(FR, ESC, 1): T0 + H, key(FR, ESC, 2): T0 + 3 * H,
        key(RES, WARN): T0 + 3 * H, key(RES, BREACH): T0 + 4 * H,
        key(RES, ESC, 1): T0 + 4 * H, key(RES, ESC, 2): T0 + 6 * H,
    }
    assert key(RES, ESC, 2).name == "t-1/resolution/escalation/2" and key(FR, WARN).name == "t-1/first_response/warning"


def test_met_and_paused_targets_need_no_timers():
    responded = state(first=TargetClock(T0 + H, warn_at=T0, met=True))
    assert {k.target for k in plan(responded)} == {RES}
    paused = state(resolution=TargetClock(None, paused=True))
    assert {k.target for k in plan(paused)} == {FR}
    solved = state(first=TargetClock(T0 + H, met=True), resolution=TargetClock(T0 + 4 * H, met=True))
    assert plan(solved) == {}


def test_a_warning_at_or_after_the_due_time_is_left_out():
    late = state(first=TargetClock(T0 + H, warn_at=T0 + H), steps=())
    assert key(FR, WARN) not in plan(late) and plan(late)[key(FR, BREACH)] == T0 + H


def test_first_response_cancels_its_timers_and_leaves_the_others():
    pending = plan(state())
    changes = reconcile(pending, plan(state(first=TargetClock(T0 + H, met=True))))
    assert changes.schedule == {}
    assert changes.cancel == sorted([key(FR, WARN), key(FR, BREACH), key(FR, ESC, 1), key(FR, ESC, 2)])


def test_a_moved_due_time_moves_the_timers_instead_of_adding_more():
    pending = plan(state())
    later = plan(state(resolution=TargetClock(T0 + 8 * H, warn_at=T0 + 6 * H)))
    changes = reconcile(pending, later)
    assert changes.cancel == []
    assert changes.schedule == {key(RES, WARN): T0 + 6 * H, key(RES, BREACH): T0 + 8 * H,
                                key(RES, ESC, 1): T0 + 8 * H, key(RES, ESC, 2): T0 + 10 * H}


def test_pausing_cancels_the_resolution_timers_and_resuming_schedules_them_again():
    pending = plan(state())
    paused = plan(state(resolution=TargetClock(None, paused=True)))
    assert {k.target for k in reconcile(pending, paused).cancel} == {RES}
    resumed = reconcile(paused, plan(state(resolution=TargetClock(T0 + 5 * H, warn_at=T0 + 4 * H))))
    assert resumed.cancel == [] and resumed.schedule[key(RES, BREACH)] == T0 + 5 * H


def test_a_fired_timer_is_never_scheduled_again_and_the_same_plan_changes_nothing():
    pending = plan(state())
    assert reconcile(pending, pending) == reconcile({}, {})
    fired = [key(FR, WARN), key(FR, BREACH), key(FR, ESC, 1)]
    left = {k: at for k, at in pending.items() if k not in fired}
    moved = plan(state(first=TargetClock(T0 + 2 * H, warn_at=T0 + 1.5 * H)))
    changes = reconcile(left, moved, fired=fired)
    assert set(changes.schedule) == {key(FR, ESC, 2)} and changes.schedule[key(FR, ESC, 2)] == T0 + 4 * H

"""The service desk's pure rules: the ticket state machine, SLA policy matching and parsing,
and due times recomputed by pauses, priority changes, solves and reopens."""

from datetime import UTC, datetime, timedelta

import pytest

from crm_runtime.business_time import Calendar, ManualClock, elapsed
from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.settings import PlatformSettings
from crm_servicedesk.domain import TRANSITIONS, Ticket, TicketStatus, ticket_id_for, validate_ticket
from crm_servicedesk.sla import (
    DEFAULT_POLICY,
    Priority,
    SlaPolicy,
    TargetState,
    choose_policy,
)

S = TicketStatus
BERLIN = Calendar.parse({"time_zone": "Europe/Berlin",
                         "hours": {day: [["09:00", "12:00"], ["13:00", "17:00"]]
                                   for day in ("mon", "tue", "wed", "thu", "fri")},
                         "holidays": ["2026-03-10"]})
TARGETS = {"urgent": {"first_response": "PT1H", "resolution": "PT4H"},
           "high": {"first_response": "PT2H", "resolution": "PT8H"},
           "normal": {"first_response": "PT4H", "resolution": "PT16H"},
           "low": {"first_response": "PT8H", "resolution": "PT40H"}}
GOLD = SlaPolicy.parse("gold", {"calendar_id": "berlin", "targets": TARGETS,
                                "applies_to": {"account_tier": ["enterprise"]},
                                "warn_at_percent": 50, "escalation_steps": ["PT0S", "PT2H"]})
FRIDAY_4PM = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # 16:00 in Berlin


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ticket(priority="urgent", policy=GOLD, calendar=BERLIN, at=FRIDAY_4PM) -> Ticket:
    details = validate_ticket("Printer on fire", "It smokes.", "email", priority, "ada@example.com",
                              account_tier="enterprise")
    return Ticket.open(details, ticket_id_for(None), policy, calendar, at, by="ann")


# -- the state machine -------------------------------------------------------------------------

def test_the_lifecycle_table():
    assert TRANSITIONS[S.NEW] == {S.OPEN, S.PENDING, S.ON_HOLD, S.SOLVED}
    assert TRANSITIONS[S.SOLVED] == {S.CLOSED, S.REOPENED}
    assert TRANSITIONS[S.CLOSED] == set()
    assert S.REOPENED not in TRANSITIONS[S.OPEN] and S.CLOSED not in TRANSITIONS[S.OPEN]
    assert all(status not in targets for status, targets in TRANSITIONS.items() if status != S.REOPENED)


@pytest.mark.parametrize("path", [
    [S.OPEN, S.PENDING, S.OPEN, S.SOLVED, S.CLOSED],
    [S.OPEN, S.ON_HOLD, S.PENDING, S.SOLVED, S.REOPENED, S.OPEN, S.SOLVED],
    [S.SOLVED, S.REOPENED, S.PENDING, S.SOLVED, S.CLOSED],
])
def test_legal_paths_record_one_event_each(path):
    t = ticket()
    t.collect_events()
    for step, status in enumerate(path):
        t.move(status, "ann", FRIDAY_4PM + timedelta(minutes=step + 1))
        assert t.status == status
    names = [type(e).__name__ for e in t.collect_events()]
    expected = {S.SOLVED: "Solved", S.CLOSED: "Closed", S.REOPENED: "Reopened"}
    assert names == [expected.get(s, "StatusChanged") for s in path]


@pytest.mark.parametrize("before,target", [
    ([], S.CLOSED), ([], S.REOPENED), ([], S.NEW), ([S.OPEN], S.OPEN), ([S.OPEN], S.REOPENED),
    ([S.SOLVED], S.OPEN), ([S.SOLVED], S.PENDING), ([S.SOLVED, S.CLOSED], S.REOPENED),
    ([S.SOLVED, S.CLOSED], S.OPEN)])
def test_illegal_moves_name_the_status_and_record_nothing(before, target):
    t = ticket()
    for status in before:
        t.move(status, "ann", FRIDAY_4PM)
    t.collect_events()
    with pytest.raises(FailedPrecondition, match=f"is {t.status.value};"):
        t.move(target, "ann", FRIDAY_4PM)
    assert t.collect_events() == []


def test_a_closed_ticket_takes_no_comment_priority_or_assignment():
    t = ticket()
    t.move(S.SOLVED, "ann", FRIDAY_4PM)
    t.move(S.CLOSED, "ann", FRIDAY_4PM)
    with pytest.raises(FailedPrecondition, match="closed"):
        t.comment("c", "hello", True, "ann", True, "ann", FRIDAY_4PM)
    with pytest.raises(FailedPrecondition, match="closed"):
        t.change_priority(Priority.LOW, "ann", FRIDAY_4PM)
    with pytest.raises(FailedPrecondition, match="closed"):
        t.assign("bob", "k1", FRIDAY_4PM)
    assert t.escalate(1, "e1", "resolution", FRIDAY_4PM) is False  # a late timer: nothing


@pytest.mark.parametrize("fields,name", [
    ({"subject": " "}, "subject"), ({"channel": "fax"}, "channel"), ({"priority": "asap"}, "priority"),
    ({"requester_email": None}, "requester"), ({"requester_email": "nope"}, "email"),
    ({"tags": ["ok", "not ok"]}, "tags[1]"), ({"group": "Billing Team"}, "group"),
    ({"description": "a\x00b"}, "description")])
def test_bad_tickets_name_the_field(fields, name):
    base = {"subject": "Help", "description": "", "channel": "web", "priority": "normal",
            "requester_email": "ada@example.com"}
    with pytest.raises(InvalidField) as caught:
        validate_ticket(**{**base, **fields})
    assert caught.value.field == name


# -- policies ----------------------------------------------------------------------------------

def policy(policy_id, tiers=(), categories=()):
    return SlaPolicy.parse(policy_id, {"targets": TARGETS, "applies_to": {"account_tier": list(tiers),
                                                                          "category": list(categories)}})


def test_the_most_specific_matching_policy_applies_ties_by_id():
    policies = [policy("tier", tiers=["enterprise"]), policy("cat", categories=["billing"]),
                policy("both", ["enterprise"], ["billing"]), policy("a-tier", tiers=["enterprise"]),
                policy("smb", tiers=["smb"])]
    assert choose_policy(policies, "enterprise", "billing").id == "both"
    assert choose_policy(policies, "enterprise", "hardware").id == "a-tier"  # ties: smallest id
    assert choose_policy(policies, "smb", "billing").id == "cat"  # one criterion each: c < s
    assert choose_policy(policies, None, "billing").id == "cat"
    assert choose_policy(policies, "strategic", None) is DEFAULT_POLICY
    redefined = policy("default")
    assert choose_policy([redefined], None, None) is redefined


def test_the_default_policy():
    assert DEFAULT_POLICY.targets[Priority.URGENT].first_response == timedelta(hours=1)
    assert DEFAULT_POLICY.targets[Priority.LOW].resolution == timedelta(days=7)
    assert DEFAULT_POLICY.warn_at_percent == 75
    assert DEFAULT_POLICY.escalation_steps == (timedelta(0), timedelta(hours=2))
    with pytest.raises(InvalidField, match="applies_to"):
        policy("default", tiers=["smb"])


@pytest.mark.parametrize("change,name", [
    ({"targets": {**TARGETS, "urgent": {"first_response": "PT1H"}}}, "targets.urgent.resolution"),
    ({"targets": {k: v for k, v in TARGETS.items() if k != "low"}}, "targets.low"),
    ({"targets": {**TARGETS, "asap": TARGETS["low"]}}, "targets.asap"),
    ({"targets": {**TARGETS, "high": {"first_response": "PT9H", "resolution": "PT8H"}}}, "targets.high.resolution"),
    ({"targets": {**TARGETS, "high": {"first_response": "P1M", "resolution": "PT8H"}}},
     "targets.high.first_response"),
    ({"warn_at_percent": 0}, "warn_at_percent"), ({"warn_at_percent": 101}, "warn_at_percent"),
    ({"escalation_steps": ["PT2H", "PT1H"]}, "escalation_steps[1]"),
    ({"escalation_steps": ["soon"]}, "escalation_steps[0]"),
    ({"applies_to": {"region": ["emea"]}}, "applies_to.region"),
    ({"calendar_id": "Not A Slug"}, "calendar_id"), ({"colour": "red"}, "colour")])
def test_bad_policies_name_the_field(change, name):
    with pytest.raises(InvalidField) as caught:
        SlaPolicy.parse("p", {"targets": TARGETS, **change})
    assert caught.value.field == name


def test_a_policy_round_trips():
    assert SlaPolicy.parse(GOLD.id, GOLD.to_dict()) == GOLD


# -- the clocks --------------------------------------------------------------------------------

def test_opening_sets_both_clocks_on_the_calendar():
    t = ticket()
    sla = t.sla
    assert sla.policy_id == "gold" and not sla.paused
    # Friday 16:00 Berlin: 1 h is 17:00 Friday; 4 h is Monday 12:00 (09-12 counts 3 h).
    assert sla.first_response.due == utc(2026, 3, 6, 16)
    assert sla.resolution.due == utc(2026, 3, 9, 11)
    assert sla.first_response.warn_at == utc(2026, 3, 6, 15, 30)  # 50 %
    assert sla.resolution.escalate_at == (utc(2026, 3, 9, 11), utc(2026, 3, 9, 13))  # due +0, +2 h
    assert sla.first_response.state == sla.resolution.state == TargetState.RUNNING


def test_pending_pauses_and_resuming_moves_resolution_due_by_the_business_time_paused():
    t = ticket()
    before = t.sla.resolution.due
    t.move(S.PENDING, "ann", FRIDAY_4PM + timedelta(minutes=30))
    assert t.sla.paused and t.sla.resolution.state == TargetState.PAUSED
    assert t.sla.resolution.due is None and t.sla.resolution.escalate_at == ()
    assert t.sla.first_response.due == utc(2026, 3, 6, 16)  # never paused
    resumed = utc(2026, 3, 9, 9)  # Monday 10:00 Berlin
    t.move(S.OPEN, "ann", resumed)
    assert not t.sla.paused and t.sla.resolution.state == TargetState.RUNNING
    # Paused Friday 16:30 to Monday 10:00: 30 min Friday + 1 h Monday of business time, so
    # 3.5 h remain from Monday 10:00: 10-12 and 13-14:30 Berlin (the lunch break does not count).
    assert before == utc(2026, 3, 9, 11)
    assert t.sla.resolution.due == utc(2026, 3, 9, 13, 30)
    assert elapsed(BERLIN, FRIDAY_4PM, t.sla.resolution.due, [(FRIDAY_4PM + timedelta(minutes=30), resumed)]) \
        == timedelta(hours=4)


def test_a_pause_after_the_due_time_keeps_the_breach():
    t = ticket()
    late = utc(2026, 3, 9, 12)
    t.move(S.PENDING, "ann", late)
    assert t.sla.resolution.state == TargetState.PAUSED and t.sla.resolution.due == utc(2026, 3, 9, 11)
    assert t.sla.resolution.breached(late)


def test_a_priority_change_recomputes_from_the_opening():
    t = ticket(priority="low")
    # 40 h of 7-hour days from Friday 16:00, skipping the holiday on Tuesday 10 March:
    # Fri 1, Mon 7, Wed 7, Thu 7, Fri 7, Mon 7, then 4 h on Tuesday 17th: 14:00 Berlin.
    assert t.sla.resolution.due == utc(2026, 3, 17, 13)
    assert t.change_priority(Priority.HIGH, "ann", FRIDAY_4PM + timedelta(minutes=5))
    assert t.sla.first_response.due == utc(2026, 3, 9, 9)  # 2 h: Friday 1 h + Monday 1 h
    assert t.sla.resolution.due == utc(2026, 3, 9, 16)  # 8 h: ends at Monday's closing time
    assert t.change_priority(Priority.HIGH, "ann", FRIDAY_4PM) is False


def test_priority_change_while_paused_keeps_the_pause():
    t = ticket(priority="low")
    t.move(S.PENDING, "ann", FRIDAY_4PM + timedelta(minutes=30))
    t.change_priority(Priority.URGENT, "ann", FRIDAY_4PM + timedelta(hours=1))
    assert t.sla.paused and t.sla.resolution.due is None
    t.move(S.OPEN, "ann", utc(2026, 3, 9, 8))  # Monday 09:00 Berlin: 3.5 h left
    assert t.sla.resolution.due == utc(2026, 3, 9, 12, 30)


def test_first_public_agent_comment_is_the_first_response():
    t = ticket()
    t.collect_events()
    assert not t.comment("c1", "internal note", False, "ann", True, "ann", FRIDAY_4PM)
    assert not t.comment("c2", "customer writes", True, "gateway", False, "svc", FRIDAY_4PM)
    assert t.comment("c3", "We are on it", True, "ann", True, "ann", FRIDAY_4PM + timedelta(minutes=20))
    assert not t.comment("c4", "Still on it", True, "ann", True, "ann", FRIDAY_4PM + timedelta(minutes=40))
    assert not t.comment("c3", "repeat", True, "ann", True, "ann", FRIDAY_4PM)  # same id: nothing
    names = [type(e).__name__ for e in t.collect_events()]
    assert names == ["CommentAdded", "CommentAdded", "CommentAdded", "FirstResponded", "CommentAdded"]
    first = t.sla.first_response
    assert first.state == TargetState.MET and first.met_at == FRIDAY_4PM + timedelta(minutes=20)
    assert not first.breached(FRIDAY_4PM + timedelta(days=5))


def test_solving_meets_resolution_stops_first_response_and_reopening_resumes():
    t = ticket()
    solved = FRIDAY_4PM + timedelta(minutes=30)
    t.move(S.SOLVED, "ann", solved)
    assert t.sla.resolution.state == TargetState.MET and t.sla.resolution.met_at == solved
    assert t.sla.resolution.due == utc(2026, 3, 9, 11)  # the due time it had
    assert t.sla.first_response.state == TargetState.STOPPED
    reopened = utc(2026, 3, 9, 8)  # Monday 09:00 Berlin
    t.move(S.REOPENED, "ann", reopened)
    assert t.sla.resolution.state == TargetState.RUNNING
    # 30 min counted before the solve; the solved time does not count: 3.5 h from Monday 09:00.
    assert t.sla.resolution.due == utc(2026, 3, 9, 12, 30)
    assert t.sla.first_response.state == TargetState.RUNNING


def test_assign_and_escalate_are_idempotent_and_the_level_only_rises():
    t = ticket()
    t.collect_events()
    assert t.assign("bob", "k1", FRIDAY_4PM) and t.assignee_id == "bob"
    assert not t.assign("carol", "k1", FRIDAY_4PM) and t.assignee_id == "bob"
    assert t.escalate(1, "e1", "resolution", FRIDAY_4PM) and t.escalation_level == 1
    assert not t.escalate(2, "e1", "resolution", FRIDAY_4PM)  # same key
    assert not t.escalate(1, "e2", "first_response", FRIDAY_4PM)  # not above
    assert t.escalate(2, "e3", "resolution", FRIDAY_4PM) and t.escalation_level == 2
    assert [type(e).__name__ for e in t.collect_events()] == ["Assigned", "Escalated", "Escalated"]
    with pytest.raises(InvalidField, match="level"):
        t.escalate(0, "e4", None, FRIDAY_4PM)


def test_every_event_carries_the_state_after_it():
    t = ticket()
    t.move(S.PENDING, "ann", FRIDAY_4PM + timedelta(minutes=1))
    t.assign("bob", "k", FRIDAY_4PM + timedelta(minutes=2))
    for event in t.collect_events():
        assert event.snapshot["sla"]["policy_id"] == "gold"
        assert event.snapshot["sla"]["warn_at_percent"] == 50
    assert event.snapshot["assignee_id"] == "bob" and event.snapshot["sla"]["paused"] is True


def test_the_application_takes_its_clock():
    from crm_runtime.auth import Principal
    from crm_servicedesk.application import OpenTicket, ServiceDeskApplication

    clock = ManualClock(FRIDAY_4PM)
    app = ServiceDeskApplication(PlatformSettings(store="memory"), clock)
    agent = Principal("ann", frozenset({"agent"}))
    opened, created = app.open_ticket(OpenTicket("Help", channel="web", priority="urgent",
                                                 requester_email="ada@example.com", caller=agent))
    assert created and opened.opened_at == FRIDAY_4PM
    assert opened.sla.first_response.due == FRIDAY_4PM + timedelta(hours=1)  # the default 24x7 policy
    clock.advance(timedelta(hours=2))
    assert app.get_ticket(opened.id, agent).sla.first_response.breached(clock.now())

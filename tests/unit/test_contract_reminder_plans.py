"""Contract reminders: the pure rule (which reminders, when; a date already past), and the
workflow's unit of work over an in-memory store (scheduled from ContractActivated, once
per event however often it comes, cancelled by a full payment and by the contract's end,
fired once with the event that says what is due)."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.sales.v1 import events_pb2 as sales_events
from crm.sales.v1 import values_pb2
from crm.workflow.v1 import events_pb2
from crm_runtime.business_time import ManualClock
from crm_runtime.settings import PlatformSettings
from crm_workflow.adapters.messages import COMMANDS, EVENTS, reminder_fired
from crm_workflow.adapters.sales import fact_of
from crm_workflow.application import WorkflowApplication
from crm_workflow.contract_reminders import (
    ContractState,
    ContractStatus,
    Instalment,
    ReminderKey,
    ReminderSettings,
    ReminderTarget,
    plan,
)
from crm_workflow.contracts import ContractChange, ContractFact
from crm_workflow.desk import Timer, TimerState
from crm_workflow.firing import TimerFirer

ACTIVATED_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
SETTINGS = ReminderSettings(instalment_days=7, renewal_days=30)
INSTALMENTS = (Instalment(1, date(2026, 3, 5), "400.00"), Instalment(2, date(2026, 4, 30), "300.00"),
               Instalment(3, date(2026, 5, 31), "300.00"))


def state(status=ContractStatus.ACTIVE, paid=(), instalments=INSTALMENTS, ends_on=date(2026, 12, 31),
          activated_on=ACTIVATED_AT.date()):
    return ContractState(contract_id="c-1", status=status, account_id="a-1", owner_id="ann", currency="EUR",
                         total="1000.00", ends_on=ends_on, activated_on=activated_on, activated_at=ACTIVATED_AT,
                         instalments=tuple(instalments), paid=frozenset(paid))


def key(level=0):
    return ReminderKey("c-1", ReminderTarget.INSTALMENT if level else ReminderTarget.RENEWAL, level)


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T00:00:00+00:00")


# -- the rule ----------------------------------------------------------------------------------

def test_an_active_contract_is_reminded_days_before_each_instalment_and_before_it_ends():
    assert plan(state(), SETTINGS) == {
        key(1): ACTIVATED_AT,  # due in three days: its reminder day passed, so at the activation
        key(2): at("2026-04-23"), key(3): at("2026-05-24"),
        key(): at("2026-12-01")}
    assert key(2).name == "c-1/instalment/2/reminder" and key().name == "c-1/renewal/reminder"


def test_the_days_before_are_settings():
    planned = plan(state(), ReminderSettings(instalment_days=0, renewal_days=90))
    assert planned[key(2)] == at("2026-04-30") and planned[key()] == at("2026-10-02")


def test_an_instalment_due_before_the_activation_has_no_reminder_and_one_due_that_day_fires_at_once():
    early = (Instalment(1, date(2026, 3, 1), "500.00"), Instalment(2, date(2026, 3, 2), "500.00"))
    assert plan(state(instalments=early), SETTINGS) == {key(2): ACTIVATED_AT, key(): at("2026-12-01")}
    # A contract ending within the renewal window is reminded at once.
    assert plan(state(ends_on=date(2026, 3, 20)), SETTINGS)[key()] == ACTIVATED_AT


def test_paid_instalments_and_ended_contracts():
    assert set(plan(state(paid={1, 3}), SETTINGS)) == {key(2), key()}
    # Expired or renewed: the renewal is moot, unpaid money is still due.
    for ended in (ContractStatus.EXPIRED, ContractStatus.RENEWED):
        assert set(plan(state(status=ended, paid={1}), SETTINGS)) == {key(2), key(3)}
    assert plan(state(status=ContractStatus.TERMINATED), SETTINGS) == {}
    assert plan(state(status=ContractStatus.SIGNED), SETTINGS) == {}  # a payment heard before the activation


def test_the_state_survives_its_json():
    assert ContractState.from_json(state(paid={2}).to_json()) == state(paid={2})
    revised = replace(state(), revisions={"instalment/2": 2, "renewal": 1}, since={"renewal": ACTIVATED_AT})
    assert ContractState.from_json(revised.to_json()) == revised
    # A state stored before amendments existed reads as never revised.
    older = {key: value for key, value in state().to_json().items() if key not in ("revisions", "since")}
    assert ContractState.from_json(older) == state()


# -- sales' events as facts ------------------------------------------------------------------------

def eur(amount: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency_code="EUR")


def activated_message(contract_id="c-1", version=5) -> sales_events.ContractActivated:
    when = Timestamp()
    when.FromDatetime(ACTIVATED_AT)
    return sales_events.ContractActivated(
        contract_id=contract_id, account_id="a-1", owner_id="ann", total=eur("1000.00"), activated_on="2026-03-02",
        starts_on="2026-03-01", ends_on="2026-12-31", version=version, activated_at=when,
        instalments=[values_pb2.Instalment(instalment=i.number, due_on=i.due_on.isoformat(), amount=eur(i.amount))
                     for i in INSTALMENTS])


def paid_message(instalment, outstanding, version) -> sales_events.PaymentRecorded:
    return sales_events.PaymentRecorded(contract_id="c-1", account_id="a-1", owner_id="ann", instalment=instalment,
                                        amount=eur("100.00"), instalment_outstanding=eur(outstanding),
                                        contract_outstanding=eur("1.00"), version=version)


def test_sales_events_become_facts():
    fact = fact_of(activated_message(), "e-5")
    assert (fact.change, fact.version, fact.cause_event_id, fact.currency, fact.total) == (
        ContractChange.ACTIVATED, 5, "e-5", "EUR", "1000.00")
    assert fact.instalments == INSTALMENTS and fact.activated_at == ACTIVATED_AT
    assert fact.ends_on == date(2026, 12, 31) and fact.activated_on == date(2026, 3, 2)
    assert fact_of(paid_message(2, "0.00", 6), "e-6").instalment == 2
    part = fact_of(paid_message(2, "50.00", 6), "e-6")  # a part payment: what is still owed
    assert (part.change, part.instalment, part.outstanding) == (ContractChange.PART_PAID, 2, "50.00")
    ended = fact_of(sales_events.ContractTerminated(contract_id="c-1", version=7), "e-7")
    assert (ended.change, ended.version) == (ContractChange.TERMINATED, 7)
    assert fact_of(sales_events.ContractSigned(contract_id="c-1"), "e-4") is None


# -- the unit of work over a store -----------------------------------------------------------------

@pytest.fixture
def clock():
    return ManualClock(ACTIVATED_AT)


@pytest.fixture
def app(clock):
    return WorkflowApplication(PlatformSettings(store="memory"), ["rep"], clock=clock)


def apply(app, *facts):
    changed, reminders = app.plan_contracts(facts, SETTINGS)
    if changed:
        app.save(*changed)
    return reminders.outcome


def timers(app):
    return {row.name.split("/", 1)[1]: row for row in app.timers_of("c-1")}


def published(app):
    return [EVENTS.to_message(app.mapper.to_domain_event(n)) for n in app.recorder.select_notifications(
        start=1, limit=10_000)]


def test_an_activation_schedules_once_however_often_it_comes(app):
    outcome = apply(app, fact_of(activated_message(), "e-5"))
    assert sorted(outcome.scheduled) == ["c-1/instalment/1/reminder", "c-1/instalment/2/reminder",
                                         "c-1/instalment/3/reminder", "c-1/renewal/reminder"]
    before = app.recorder.max_notification_id()
    assert apply(app, fact_of(activated_message(), "e-5")).scheduled == []  # a re-send
    assert app.recorder.max_notification_id() == before
    rows = timers(app)
    assert {name: (row.state, row.fire_at, row.kind, row.level) for name, row in rows.items()} == {
        "instalment/1/reminder": ("pending", ACTIVATED_AT, "reminder", 1),
        "instalment/2/reminder": ("pending", at("2026-04-23"), "reminder", 2),
        "instalment/3/reminder": ("pending", at("2026-05-24"), "reminder", 3),
        "renewal/reminder": ("pending", at("2026-12-01"), "reminder", 0)}
    assert published(app) == [None] * len(published(app))  # the watch and the scheduling are internal


def test_reminders_fire_once_and_say_what_is_due(app, clock):
    apply(app, fact_of(activated_message(), "e-5"))
    firer = TimerFirer(app)
    assert firer.step() == 1  # instalment 1, at once
    clock.advance(timedelta(days=52))  # 2026-04-23 10:15
    assert firer.step() == 1 and firer.step() == 0
    due = [m for m in published(app) if isinstance(m, events_pb2.InstalmentReminderDue)]
    assert [(m.contract_id, m.account_id, m.owner_id, m.instalment, m.due_on, m.amount.amount,
             m.amount.currency_code) for m in due] == [
        ("c-1", "a-1", "ann", 1, "2026-03-05", "400.00", "EUR"),
        ("c-1", "a-1", "ann", 2, "2026-04-30", "300.00", "EUR")]
    assert due[1].timer_name == "c-1/instalment/2/reminder"
    assert due[1].fire_at.ToDatetime(tzinfo=UTC) == at("2026-04-23")
    assert due[1].fired_at.ToDatetime(tzinfo=UTC) == clock.now()
    clock.advance(timedelta(days=300))
    assert firer.step() == 2
    renewal = [m for m in published(app) if isinstance(m, events_pb2.ContractRenewalDue)]
    assert [(m.contract_id, m.ends_on, m.total.amount, m.timer_name) for m in renewal] == [
        ("c-1", "2026-12-31", "1000.00", "c-1/renewal/reminder")]
    # Reminders are events, never commands.
    assert not [c for n in app.recorder.select_notifications(start=1, limit=1000)
                if (c := COMMANDS.command_for(app.mapper.to_domain_event(n))) is not None]


def test_a_full_payment_cancels_its_reminder_and_a_part_payment_re_plans_it_with_what_is_owed(app, clock):
    apply(app, fact_of(activated_message(), "e-5"))
    apply(app, fact_of(paid_message(2, "200.00", 6), "e-6"), fact_of(paid_message(3, "0.00", 7), "e-7"))
    apply(app, fact_of(paid_message(2, "100.00", 8), "e-8"))  # a second part payment
    rows = timers(app)
    assert {name: (row.state, row.fire_at) for name, row in rows.items() if "/2/" in name or "/3/" in name} == {
        "instalment/2/reminder": ("cancelled", at("2026-04-23")),
        "instalment/2/reminder/r1": ("cancelled", at("2026-04-23")),
        "instalment/2/reminder/r2": ("pending", at("2026-04-23")),  # the same time, the new figure
        "instalment/3/reminder": ("cancelled", at("2026-05-24"))}
    assert app.get_timer("c-1/instalment/2/reminder/r2").payload["outstanding"] == "100.00"
    clock.advance(timedelta(days=90))
    TimerFirer(app).step()
    assert timers(app)["instalment/3/reminder"].state == "cancelled"
    due = [m for m in published(app) if isinstance(m, events_pb2.InstalmentReminderDue)]
    assert [(m.instalment, m.amount.amount, m.outstanding.amount, m.timer_name) for m in due] == [
        (1, "400.00", "400.00", "c-1/instalment/1/reminder"), (2, "300.00", "100.00", "c-1/instalment/2/reminder/r2")]
    # A part payment after its reminder fired sends nothing again.
    assert apply(app, fact_of(paid_message(2, "50.00", 9), "e-9")).scheduled == []


def test_a_reminder_scheduled_before_the_outstanding_field_says_its_amount(app):
    apply(app, fact_of(activated_message(), "e-5"))
    TimerFirer(app).step()
    fired = next(m for m in published(app) if isinstance(m, events_pb2.InstalmentReminderDue))
    assert fired.outstanding == fired.amount
    event = app.mapper.to_domain_event(list(app.recorder.select_notifications(start=1, limit=100))[-1])
    event.payload.pop("outstanding")
    assert reminder_fired(event).outstanding.amount == "400.00"


def test_the_end_of_a_contract_cancels_what_is_no_longer_due(app):
    apply(app, fact_of(activated_message(), "e-5"))
    TimerFirer(app).step()  # instalment 1 fired
    apply(app, fact_of(sales_events.ContractRenewed(contract_id="c-1", version=6), "e-6"))
    rows = timers(app)
    assert rows["renewal/reminder"].state == "cancelled" and rows["instalment/2/reminder"].state == "pending"
    apply(app, fact_of(sales_events.ContractTerminated(contract_id="c-1", version=7), "e-7"))
    assert {name: row.state for name, row in timers(app).items()} == {
        "instalment/1/reminder": "fired", "instalment/2/reminder": "cancelled",
        "instalment/3/reminder": "cancelled", "renewal/reminder": "cancelled"}
    # An older event arriving late changes nothing.
    assert apply(app, fact_of(activated_message(version=5), "e-5")).scheduled == []


def test_a_payment_before_the_activation_is_remembered_and_an_unknown_contract_ending_is_ignored(app):
    apply(app, fact_of(paid_message(1, "0.00", 4), "e-4"))
    assert timers(app) == {}
    apply(app, fact_of(activated_message(), "e-5"))
    assert "instalment/1/reminder" not in timers(app) and len(timers(app)) == 3
    assert apply(app, ContractFact("c-9", 3, ContractChange.EXPIRED, "e-9")).scheduled == []
    assert app.recorder.max_notification_id() == len(list(app.recorder.select_notifications(start=1, limit=100)))


def test_a_reminder_timer_keeps_its_payload_in_the_store(app):
    apply(app, fact_of(activated_message(), "e-5"))
    timer = app.get_timer("c-1/instalment/2/reminder")
    assert timer.state == TimerState.PENDING and timer.payload == {
        "contract_id": "c-1", "account_id": "a-1", "owner_id": "ann", "currency": "EUR", "instalment": 2,
        "due_on": "2026-04-30", "amount": "300.00", "outstanding": "300.00"}
    assert app.find(Timer, Timer.id_for(key(2))) is not None


# -- amendments re-plan what changed --------------------------------------------------------------

AMENDED_AT = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)


def amended_message(instalments, ends_on="2027-03-31", total="1200.00", version=6, paid_in_full=(),
                    when=AMENDED_AT) -> sales_events.ContractAmended:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return sales_events.ContractAmended(
        contract_id="c-1", account_id="a-1", owner_id="ann", amendment=1, total=eur(total), ends_on=ends_on,
        previous_ends_on="2026-12-31", starts_on="2026-03-01", version=version, amended_at=stamp,
        amended_on=when.date().isoformat(), status="active", automatic=True,
        instalments=[values_pb2.InstalmentBalance(
            instalment=number, due_on=due_on, amount=eur(amount),
            paid=eur(amount if number in paid_in_full else "0.00"),
            outstanding=eur("0.00" if number in paid_in_full else amount))
            for number, due_on, amount in instalments])


def test_an_amendment_becomes_a_fact_with_the_new_schedule():
    fact = fact_of(amended_message([(1, "2026-03-05", "400.00"), (2, "2026-06-30", "800.00")], paid_in_full={1}),
                   "e-6")
    assert (fact.change, fact.version, fact.ends_on, fact.total, fact.amended_at) == (
        ContractChange.AMENDED, 6, date(2027, 3, 31), "1200.00", AMENDED_AT)
    assert fact.instalments == (Instalment(1, date(2026, 3, 5), "400.00"), Instalment(2, date(2026, 6, 30), "800.00"))
    assert fact.paid_in_full == frozenset({1})
    assert fact_of(sales_events.ContractAmendmentRequested(contract_id="c-1", version=6), "e-6") is None


def test_an_amendment_cancels_and_re_plans_the_reminders_it_changes(app, clock):
    apply(app, fact_of(activated_message(), "e-5"))
    assert TimerFirer(app).step() == 1  # instalment 1, due 2026-03-05, reminded at the activation
    clock.advance(AMENDED_AT - clock.now())
    outcome = apply(app, fact_of(amended_message([
        (1, "2026-03-05", "400.00"),  # unchanged (and reminded already)
        (2, "2026-06-30", "300.00"),  # moved
        (3, "2026-05-31", "300.00"),  # unchanged
        (4, "2026-07-31", "200.00")]), "e-6"))  # new
    assert sorted(outcome.cancelled) == ["c-1/instalment/2/reminder", "c-1/renewal/reminder"]
    assert sorted(outcome.scheduled) == ["c-1/instalment/2/reminder/r1", "c-1/instalment/4/reminder",
                                         "c-1/renewal/reminder/r1"]
    assert {name: (row.state, row.fire_at) for name, row in timers(app).items()} == {
        "instalment/1/reminder": ("fired", ACTIVATED_AT),
        "instalment/2/reminder": ("cancelled", at("2026-04-23")),
        "instalment/2/reminder/r1": ("pending", at("2026-06-23")),
        "instalment/3/reminder": ("pending", at("2026-05-24")),
        "instalment/4/reminder": ("pending", at("2026-07-24")),
        "renewal/reminder": ("cancelled", at("2026-12-01")),
        "renewal/reminder/r1": ("pending", at("2027-03-01"))}
    assert app.get_timer("c-1/renewal/reminder/r1").payload["ends_on"] == "2027-03-31"
    # The amendment delivered again changes nothing.
    before = app.recorder.max_notification_id()
    assert apply(app, fact_of(amended_message([(1, "2026-03-05", "400.00")]), "e-6")).scheduled == []
    assert app.recorder.max_notification_id() == before

    # A second amendment drops instalment 4, moves 3 to a day already past (overdue: no
    # reminder) and pays 2 in full: each pending reminder of theirs is cancelled.
    later = AMENDED_AT + timedelta(days=1)
    apply(app, fact_of(amended_message([(1, "2026-03-05", "400.00"), (2, "2026-06-30", "300.00"),
                                        (3, "2026-03-09", "500.00")], version=7, paid_in_full={2}, when=later),
                       "e-7"))
    rows = {name: row.state for name, row in timers(app).items()}
    assert (rows["instalment/2/reminder/r1"], rows["instalment/3/reminder"], rows["instalment/4/reminder"]) == (
        "cancelled", "cancelled", "cancelled")
    assert "instalment/3/reminder/r1" not in rows and rows["renewal/reminder/r1"] == "pending"

    clock.advance(timedelta(days=400))
    assert TimerFirer(app).step() == 1  # the renewal reminder for the new ends_on only
    renewal = [m for m in published(app) if isinstance(m, events_pb2.ContractRenewalDue)]
    assert [(m.ends_on, m.total.amount, m.timer_name) for m in renewal] == [
        ("2027-03-31", "1200.00", "c-1/renewal/reminder/r1")]


def test_a_moved_due_date_gets_a_reminder_again_once_the_first_has_fired(app, clock):
    apply(app, fact_of(activated_message(), "e-5"))
    TimerFirer(app).step()  # instalment 1 reminded
    clock.advance(AMENDED_AT - clock.now())
    apply(app, fact_of(amended_message([(1, "2026-04-15", "400.00"), (2, "2026-04-30", "300.00"),
                                        (3, "2026-05-31", "300.00")], ends_on="2026-12-31", total="1000.00"), "e-6"))
    rows = timers(app)
    assert (rows["instalment/1/reminder"].state, rows["instalment/1/reminder/r1"].state) == ("fired", "pending")
    assert rows["instalment/1/reminder/r1"].fire_at == at("2026-04-08")
    assert "renewal/reminder/r1" not in rows  # ends_on and total unchanged
    clock.advance(timedelta(days=30))
    TimerFirer(app).step()
    due = [m for m in published(app) if isinstance(m, events_pb2.InstalmentReminderDue)]
    assert [(m.instalment, m.due_on, m.timer_name) for m in due] == [
        (1, "2026-03-05", "c-1/instalment/1/reminder"), (1, "2026-04-15", "c-1/instalment/1/reminder/r1")]


def test_an_amendment_before_the_activation_is_carried_by_the_activation(app):
    assert apply(app, fact_of(amended_message([(1, "2026-06-30", "1000.00")]), "e-4")).scheduled == []
    assert timers(app) == {}

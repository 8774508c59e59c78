"""The workflow's contracts consumer on SQLite and PostgreSQL: sales' contract events become
reminder timers saved with the partition's position in one transaction; an event delivered
again (a relay re-send at a new offset, a redelivered batch) changes nothing; the firing
step fires each reminder once from the store, also from a second application (a restarted
or second worker)."""

from datetime import UTC, datetime, timedelta

from crm.workflow.v1 import events_pb2
from crm_runtime.business_time import ManualClock
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.consumer import Delivery
from crm_workflow.adapters.messages import EVENTS
from crm_workflow.application import WorkflowApplication
from crm_workflow.consumers import contract_events
from crm_workflow.firing import TimerFirer
from crm_workflow.settings import WorkflowSettings
from tests.unit.test_contract_reminder_plans import ACTIVATED_AT, activated_message, amended_message, paid_message

TOPIC = "t.crm.sales.events.v1"


def delivery(offset, message, version) -> Delivery:
    envelope = EventEnvelope(id=f"sales-c-1-{version}", source="crm/sales", subject="c-1", time=ACTIVATED_AT,
                             message=message)
    return Delivery(envelope, TOPIC, 0, offset)


def reminders_published(app) -> list:
    messages = [EVENTS.to_message(app.mapper.to_domain_event(n))
                for n in app.recorder.select_notifications(start=1, limit=10_000)]
    return [m for m in messages if isinstance(m, events_pb2.InstalmentReminderDue | events_pb2.ContractRenewalDue)]


def test_contract_events_schedule_reminders_once_and_they_fire_once(any_platform):
    clock = ManualClock(ACTIVATED_AT)
    app = WorkflowApplication(any_platform, ["rep"], clock=clock)
    handler = contract_events(WorkflowSettings(instalment_reminder_days=7, renewal_reminder_days=30), app)
    activated = delivery(0, activated_message(), 5)
    handler.apply(TOPIC, 0, [activated, delivery(1, activated_message(), 5)])  # the same event twice in a batch
    assert handler.positions() == {(TOPIC, 0): 1}
    names = {row.name: row.state for row in app.timers_of("c-1")}
    assert names == {"c-1/instalment/1/reminder": "pending", "c-1/instalment/2/reminder": "pending",
                     "c-1/instalment/3/reminder": "pending", "c-1/renewal/reminder": "pending"}
    stored = app.recorder.max_notification_id()
    handler.apply(TOPIC, 0, [activated, delivery(1, activated_message(), 5)])  # the batch redelivered
    handler.apply(TOPIC, 0, [delivery(2, activated_message(), 5)])  # a relay re-send at a new offset
    assert app.recorder.max_notification_id() == stored and handler.positions() == {(TOPIC, 0): 2}

    # Instalment 3 is paid in full: its reminder is cancelled, with the position.
    handler.apply(TOPIC, 0, [delivery(3, paid_message(3, "0.00", 6), 6)])
    assert {row.name: row.state for row in app.timers_of("c-1")}["c-1/instalment/3/reminder"] == "cancelled"

    # A second worker's firing step fires what is due once: instalment 1 at once, 2 at its day.
    second = WorkflowApplication(any_platform, ["rep"], clock=clock)
    assert TimerFirer(app).step() == 1 and TimerFirer(second).step() == 0
    clock.advance(timedelta(days=60))
    assert TimerFirer(second).step() == 1 and TimerFirer(app).step() == 0
    assert [(m.instalment, m.due_on) for m in reminders_published(app)] == [(1, "2026-03-05"), (2, "2026-04-30")]
    # The activation delivered again after the firing schedules nothing again.
    handler.apply(TOPIC, 0, [delivery(4, activated_message(), 5)])
    assert TimerFirer(app).step() == 0
    assert clock.now() < datetime(2026, 12, 1, tzinfo=UTC)


def test_an_amendment_re_plans_the_reminders_in_the_consumers_transaction(any_platform):
    clock = ManualClock(ACTIVATED_AT)
    app = WorkflowApplication(any_platform, ["rep"], clock=clock)
    handler = contract_events(WorkflowSettings(instalment_reminder_days=7, renewal_reminder_days=30), app)
    handler.apply(TOPIC, 0, [delivery(0, activated_message(), 5)])
    moved = amended_message([(1, "2026-03-05", "400.00"), (2, "2026-06-30", "300.00"), (3, "2026-05-31", "300.00")],
                            ends_on="2027-03-31", total="1000.00")
    handler.apply(TOPIC, 0, [delivery(1, moved, 6), delivery(2, moved, 6)])  # twice: applied once
    assert handler.positions() == {(TOPIC, 0): 2}
    states = {row.name: (row.state, row.fire_at) for row in app.timers_of("c-1")}
    assert states["c-1/instalment/2/reminder"][0] == "cancelled"
    assert states["c-1/instalment/2/reminder/r1"] == ("pending", datetime(2026, 6, 23, tzinfo=UTC))
    assert states["c-1/renewal/reminder/r1"] == ("pending", datetime(2027, 3, 1, tzinfo=UTC))
    clock.advance(timedelta(days=120))  # 2026-06-30: instalments 1, 2 (moved) and 3 are due
    assert TimerFirer(app).step() == 3
    assert sorted((m.instalment, m.due_on, m.timer_name.rsplit("/", 1)[-1]) for m in reminders_published(app)) == [
        (1, "2026-03-05", "reminder"), (2, "2026-06-30", "r1"), (3, "2026-05-31", "reminder")]

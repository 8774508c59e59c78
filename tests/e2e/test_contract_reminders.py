"""End to end over the real broker: a contract activated over sales' HTTP API reaches
crm.sales.events.v1 (ContractActivated, read by a real consumer); the workflow worker, a
process, schedules its reminders in the workflow store; a firing step in this test, over
the same store with a clock the test moves (the worker's own step runs on the wall clock,
for which nothing is due), fires the first instalment's reminder; the workflow relay, a
process, publishes InstalmentReminderDue on crm.workflow.events.v1 exactly once. A full
payment and the termination then cancel the rest, so nothing else ever fires."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from crm.sales.v1 import events_pb2 as sales_events
from crm.workflow.v1 import events_pb2
from crm_runtime.business_time import ManualClock
from crm_runtime.cloudevents import EventRegistry
from crm_runtime.settings import PlatformSettings
from crm_workflow.application import WorkflowApplication
from crm_workflow.firing import TimerFirer
from tests.conftest import bearer
from tests.kafka_helpers import read_all
from tests.platform_harness import start_platform, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
WORKFLOW = EventRegistry.from_modules(events_pb2)
SALES = EventRegistry.from_modules(sales_events)
ANN = bearer("sales_rep", subject="ann")
BOSS = bearer("sales_manager", subject="boss")
PROCESSES = ["sales", "sales-relay", "workflow-worker", "workflow-relay"]


def ok(response, status=200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def test_an_activated_contract_is_reminded_once_from_the_workflow_topic(tmp_path, kafka_bootstrap, topic_prefix):
    platform = start_platform(tmp_path, kafka_bootstrap, topic_prefix, PROCESSES)
    sales = httpx.Client(base_url=url("sales"), headers=ANN)
    # The workflow store the worker writes, opened here with a clock the test moves.
    now = datetime.now(UTC)
    clock = ManualClock(now)
    workflow = WorkflowApplication(PlatformSettings(store="sqlite", data_dir=tmp_path / "stores",
                                                    topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap),
                                   ["rep"], clock=clock)
    try:
        today = now.date()
        account = ok(sales.post("/v1/accounts", json={"name": "Acme"}), 201)
        opportunity = ok(sales.post("/v1/opportunities", json={
            "name": "Acme support", "account_id": account["id"], "amount": {"amount": "1200.00", "currency": "EUR"},
            "expected_close_on": (today + timedelta(days=30)).isoformat()}), 201)
        ok(sales.post("/v1/products", headers=BOSS, json={"sku": "SUP-1", "name": "Support year"}), 201)
        book = ok(sales.post("/v1/price-books", headers=BOSS, json={
            "name": "EUR list", "currency": "EUR", "entries": [{"sku": "SUP-1", "unit_price": "1200.00"}]}), 201)
        quote = ok(sales.post("/v1/quotes", json={
            "opportunity_id": opportunity["id"], "price_book_id": book["id"],
            "valid_until": (today + timedelta(days=30)).isoformat(),
            "lines": [{"sku": "SUP-1", "quantity": "1", "tax_rate": "0"}]}), 201)
        ok(sales.post(f"/v1/quotes/{quote['id']}/send"))
        ok(sales.post(f"/v1/quotes/{quote['id']}/accept"))
        first_due = today + timedelta(days=20)
        contract = ok(sales.post("/v1/contracts", json={
            "quote_id": quote["id"], "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=120)).isoformat(),
            "payment_terms": {"instalments": 2, "first_due_on": first_due.isoformat(), "every_months": 1}}), 201)
        contract_id = contract["id"]
        for action in ("submit", "sign", "activate"):  # below the approval threshold: approved at once
            ok(sales.post(f"/v1/contracts/{contract_id}/{action}"))

        def activated():
            for record in read_all(kafka_bootstrap, f"{topic_prefix}crm.sales.events.v1"):
                message = SALES.decode(record.headers, record.value).message
                if isinstance(message, sales_events.ContractActivated) and message.contract_id == contract_id:
                    return message
            return None

        assert [i.instalment for i in wait_for(activated, what="ContractActivated on the sales topic").instalments] \
            == [1, 2]

        def timers():
            return {row.name.split("/", 1)[1]: row for row in workflow.timers_of(contract_id)}

        scheduled = wait_for(lambda: len(t := timers()) == 3 and t, what="the worker scheduling the reminders")
        assert {name: row.state for name, row in scheduled.items()} == {
            "instalment/1/reminder": "pending", "instalment/2/reminder": "pending", "renewal/reminder": "pending"}
        due_at = scheduled["instalment/1/reminder"].fire_at
        assert due_at == datetime.combine(first_due - timedelta(days=7), datetime.min.time(), tzinfo=UTC)

        firer = TimerFirer(workflow)
        assert firer.step() == 0  # nothing is due yet
        clock.advance(due_at - now + timedelta(minutes=1))
        assert firer.step() == 1 and firer.step() == 0

        topic = f"{topic_prefix}crm.workflow.events.v1"

        def reminders():
            envelopes = {}
            for record in read_all(kafka_bootstrap, topic):
                envelope = WORKFLOW.decode(record.headers, record.value)
                envelopes[envelope.id] = envelope  # a relay re-send repeats its ce_id
            found = [e.message for e in envelopes.values()
                     if isinstance(e.message, events_pb2.InstalmentReminderDue | events_pb2.ContractRenewalDue)]
            return found or None

        published = wait_for(reminders, what="InstalmentReminderDue on the workflow topic")
        assert [(m.contract_id, m.account_id, m.owner_id, m.instalment, m.due_on, m.amount.amount,
                 m.amount.currency_code) for m in published] == [
            (contract_id, account["id"], "ann", 1, first_due.isoformat(), "600.00", "EUR")]

        # Instalment 2 paid in full, then the contract terminated: nothing else is pending.
        ok(sales.post(f"/v1/contracts/{contract_id}/payments", json={
            "instalment": 2, "amount": {"amount": "600.00", "currency": "EUR"}, "paid_on": today.isoformat()}))
        ok(sales.post(f"/v1/contracts/{contract_id}/terminate", json={"reason": "Moved to a partner"}))
        wait_for(lambda: {name: row.state for name, row in timers().items()} == {
            "instalment/1/reminder": "fired", "instalment/2/reminder": "cancelled",
            "renewal/reminder": "cancelled"}, what="the remaining reminders cancelled")
        clock.advance(timedelta(days=365))
        assert firer.step() == 0
        platform.check_alive()
        final = Counter(m.timer_name for m in reminders())
        assert final == {f"{contract_id}/instalment/1/reminder": 1}
    finally:
        sales.close()
        platform.stop()

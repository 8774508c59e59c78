"""Lead conversion, the sales side, over the real broker: `LeadConverted` records put on
crm.leads.events.v1 as the leads relay would (CloudEvents, key = lead id, stable ce_id),
each delivered twice, are consumed by the sales worker process (`python -m crm_runtime
sales worker`); the accounts and contacts answer over the sales HTTP API, and the sales
relay publishes `ContactAdded` with the lead id on crm.sales.events.v1. SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from uuid import NAMESPACE_URL, uuid5

import httpx
import pytest
from kafka import KafkaProducer, TopicPartition

from crm.leads.v1 import events_pb2 as leads_events
from crm.sales.v1 import events_pb2 as sales_events
from crm_runtime.cloudevents import EventEnvelope, encode, stable_event_id
from crm_runtime.email_domains import email_domain_of
from crm_runtime.events import registry_for
from crm_runtime.topics import events_topic
from tests.conftest import bearer
from tests.kafka_helpers import OffsetWatcher, read_all
from tests.platform_harness import start_platform, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
BOSS = bearer("sales_manager", subject="boss")


def converted(lead: str, name: str, email: str, company: str = "", owner: str = "rep-ada"
              ) -> leads_events.LeadConverted:
    return leads_events.LeadConverted(
        lead_id=lead, account_id=str(uuid5(NAMESPACE_URL, f"test-account/{lead}")),
        contact_id=str(uuid5(NAMESPACE_URL, f"test-contact/{lead}")), name=name, email=email,
        phone="+44 20 7183 8750", company=company, title="Director", industry="Machinery",
        company_size=40, country="GB", owner_id=owner, email_domain=email_domain_of(email) or "")


@pytest.fixture
def platform(any_platform, tmp_path, kafka_bootstrap):
    env = {"CRM_STORE": any_platform.store}
    if any_platform.store == "postgres":
        env["CRM_POSTGRES_DBNAME"] = any_platform.postgres_dbname
    running = start_platform(tmp_path, kafka_bootstrap, any_platform.topic_prefix,
                             names=["sales", "sales-relay", "sales-worker"], extra_env=env)
    yield running
    running.stop()


class LeadsTopic:
    """Publishes LeadConverted records the way the leads relay does."""

    def __init__(self, bootstrap: str, prefix: str):
        self.topic = events_topic("leads", prefix)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)

    def publish(self, *messages: leads_events.LeadConverted, times: int = 2) -> None:
        for _ in range(times):  # every record delivered again: a relay re-send, same ce_id
            for message in messages:
                envelope = EventEnvelope(id=stable_event_id(message.lead_id, 7), source="crm/leads",
                                         subject=message.lead_id, time=datetime.now(UTC), message=message,
                                         context={"correlation_id": f"convert-{message.lead_id}"})
                key, value, headers = encode(envelope)
                self.producer.send(self.topic, key=key, value=value, headers=headers)
        self.producer.flush(30)

    def close(self) -> None:
        self.producer.close(5)


def worker_caught_up(platform, bootstrap: str, topic: str) -> bool:
    """The sales worker's position (its metrics) is the last record of every partition."""
    watcher = OffsetWatcher(bootstrap, topic)
    try:
        ends = watcher.consumer.end_offsets([TopicPartition(topic, p) for p in
                                             watcher.consumer.partitions_for_topic(topic) or ()])
    finally:
        watcher.close()
    metrics = httpx.get(f"http://127.0.0.1:{platform.env['CRM_SALES_WORKER_METRICS_PORT']}/metrics", timeout=5).text
    positions = {}
    for line in metrics.splitlines():
        if line.startswith("crm_consumer_position{") and f'topic="{topic}"' in line:
            partition = int(line.split('partition="')[1].split('"')[0])
            positions[partition] = float(line.rsplit(" ", 1)[1])
    return all(positions.get(tp.partition) == end - 1 for tp, end in ends.items() if end > 0)


def listed(client: httpx.Client, what: str, **params) -> list[dict]:
    response = client.get(f"{url('sales')}/v1/{what}", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_converted_leads_become_accounts_and_contacts_exactly_once(platform, any_platform, kafka_bootstrap):
    prefix = any_platform.topic_prefix
    leads = LeadsTopic(kafka_bootstrap, prefix)
    client = httpx.Client(timeout=10, headers=BOSS)
    ada = converted("lead-ada", "Ada Lovelace", "ada@engines.example", "Analytical Engines")
    charles = converted("lead-charles", "Charles Babbage", "charles@Engines.Example", "Engines UK", owner="rep-bob")
    grace = converted("lead-grace", "Grace Hopper", "grace@gmail.com", owner="")
    hedy = converted("lead-hedy", "Hedy Lamarr", "hedy@gmail.com", "Frequency Hopping")
    # Two leads of one new domain together: whichever is decided first opens the account.
    twins = [converted(f"lead-twin-{n}", f"Twin {n}", f"twin{n}@twins.example", "Twins") for n in (1, 2)]
    try:
        leads.publish(ada)
        first = wait_for(lambda: client.get(f"{url('sales')}/v1/accounts/{ada.account_id}").json().get("id"),
                         timeout=120, what="the account of the first converted lead")
        assert first == ada.account_id
        leads.publish(ada, charles, grace, hedy, *twins)
        wait_for(lambda: len(listed(client, "contacts")) >= 6, timeout=90, what="six contacts")
        leads.publish(ada, charles, times=1)  # a third delivery, after they were applied
        wait_for(lambda: worker_caught_up(platform, kafka_bootstrap, leads.topic), timeout=60,
                 what="the sales worker at the end of the leads topic")

        owner_view = httpx.Client(timeout=10, headers=bearer("sales_rep", subject="rep-ada"))
        account = owner_view.get(f"{url('sales')}/v1/accounts/{ada.account_id}")
        assert account.status_code == 200, account.text
        assert {k: account.json()[k] for k in ("name", "domain", "industry", "region", "owner_id")} == {
            "name": "Analytical Engines", "domain": "engines.example", "industry": "Machinery",
            "region": "GB", "owner_id": "rep-ada"}
        # Charles joined Ada's account: the account his conversion named was never opened.
        assert client.get(f"{url('sales')}/v1/accounts/{charles.account_id}").status_code == 404

        # The sales relay publishes what the worker decided; read with a real consumer.
        registry = registry_for("sales")
        sales_topic = events_topic("sales", prefix)

        def sales_events_now() -> list:
            return [registry.decode(r.headers, r.value).message for r in read_all(kafka_bootstrap, sales_topic)]

        published = wait_for(lambda: (lambda ms: ms if sum(isinstance(m, sales_events.ContactAdded)
                                                           for m in ms) >= 6 else None)(sales_events_now()),
                             timeout=60, what="six ContactAdded on the sales topic")
        accounts = listed(client, "accounts")
        contacts = listed(client, "contacts")
    finally:
        leads.close()

    # Exactly once: one account per company domain, one per free-mail lead, one contact per lead.
    assert len(contacts) == 6 and len({c["id"] for c in contacts}) == 6
    by_domain = Counter(a["domain"] for a in accounts)
    assert by_domain == {"engines.example": 1, "twins.example": 1, None: 2}, accounts
    by_email = {c["email"]: c for c in contacts}
    assert by_email["charles@engines.example"]["account_id"] == ada.account_id
    twin_accounts = {by_email[f"twin{n}@twins.example"]["account_id"] for n in (1, 2)}
    assert len(twin_accounts) == 1 and twin_accounts <= {t.account_id for t in twins}
    # gmail.com leads: an account each, named after the company or the person, no domain.
    free = {a["id"]: a for a in accounts if a["domain"] is None}
    assert set(free) == {grace.account_id, hedy.account_id}
    assert (free[grace.account_id]["name"], free[grace.account_id]["owner_id"]) == ("Grace Hopper", "unassigned")
    assert free[hedy.account_id]["name"] == "Frequency Hopping"

    added = {m.lead_id: m for m in published if isinstance(m, sales_events.ContactAdded)}
    assert len([m for m in published if isinstance(m, sales_events.ContactAdded)]) == 6  # none twice
    assert set(added) == {"lead-ada", "lead-charles", "lead-grace", "lead-hedy", "lead-twin-1", "lead-twin-2"}
    assert (added["lead-ada"].account_id, added["lead-ada"].account_reused) == (ada.account_id, False)
    assert (added["lead-charles"].account_id, added["lead-charles"].account_reused) == (ada.account_id, True)
    assert added["lead-charles"].contact_id == charles.contact_id
    assert (added["lead-grace"].account_id, added["lead-grace"].account_reused) == (grace.account_id, False)
    assert sorted(m.account_reused for k, m in added.items() if k.startswith("lead-twin")) == [False, True]
    opened = [m for m in published if isinstance(m, sales_events.AccountOpened)]
    assert len(opened) == 4 and {m.opened_by for m in opened} == {"service:sales"}


def test_a_conversion_with_an_opportunity_delivered_twice_opens_one_of_each(platform, any_platform,
                                                                            kafka_bootstrap):
    from crm.common.v1 import money_pb2
    from crm_sales.conversion import opportunity_id_for_lead

    prefix = any_platform.topic_prefix
    leads = LeadsTopic(kafka_bootstrap, prefix)
    client = httpx.Client(timeout=10, headers=BOSS)
    lead = converted("lead-deal", "Edsger Dijkstra", "edsger@structured.example", "Structured Programs")
    lead.opportunity_name = "Structured Programs: 50 seats"
    lead.opportunity_amount.CopyFrom(money_pb2.Money(amount="42000.00", currency_code="EUR"))
    lead.converted_at.FromDatetime(datetime(2025, 4, 1, 9, tzinfo=UTC))
    opportunity_id = str(opportunity_id_for_lead("lead-deal"))
    try:
        leads.publish(lead)  # twice, same ce_id
        wait_for(lambda: client.get(f"{url('sales')}/v1/opportunities/{opportunity_id}").status_code == 200,
                 timeout=120, what="the converted lead's opportunity")
        leads.publish(lead, times=1)  # once more, after it was applied
        wait_for(lambda: worker_caught_up(platform, kafka_bootstrap, leads.topic), timeout=60,
                 what="the sales worker at the end of the leads topic")
        opportunity = client.get(f"{url('sales')}/v1/opportunities/{opportunity_id}").json()
        registry = registry_for("sales")
        sales_topic = events_topic("sales", prefix)

        def published() -> list:
            return [registry.decode(r.headers, r.value).message for r in read_all(kafka_bootstrap, sales_topic)]

        messages = wait_for(lambda: (lambda ms: ms if any(isinstance(m, sales_events.OpportunityOpened)
                                                          for m in ms) else None)(published()),
                            timeout=60, what="OpportunityOpened on the sales topic")
    finally:
        leads.close()
    assert [a["id"] for a in listed(client, "accounts")] == [lead.account_id]
    assert [c["id"] for c in listed(client, "contacts")] == [lead.contact_id]
    assert [o["id"] for o in listed(client, "opportunities")] == [opportunity_id]
    assert (opportunity["name"], opportunity["account_id"], opportunity["owner_id"], opportunity["stage"]) == (
        "Structured Programs: 50 seats", lead.account_id, "rep-ada", "prospecting")
    assert (opportunity["amount"], opportunity["expected_close_on"]) == (
        {"amount": "42000.00", "currency": "EUR"}, "2025-05-01")
    opened = [m for m in messages if isinstance(m, sales_events.OpportunityOpened)]
    assert [(m.opportunity_id, m.opened_by) for m in opened] == [(opportunity_id, "service:sales")]
    assert sum(isinstance(m, sales_events.AccountOpened) for m in messages) == 1
    assert sum(isinstance(m, sales_events.ContactAdded) for m in messages) == 1

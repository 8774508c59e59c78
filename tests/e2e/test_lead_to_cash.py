"""Lead to cash through the processes the sales context declares (`sales`, `sales-relay`,
`sales-worker`) on the real broker, over HTTP and gRPC: a `LeadConverted` with an
opportunity (delivered twice) -> quote -> accepted, winning it (order, loyalty points,
commissions) -> a contract above the approval threshold approved by a manager -> signed ->
activated -> a payment; the events read back from crm.sales.events.v1 by a kafka-python
consumer, in order per record. SQLite and PostgreSQL."""

from datetime import UTC, date, datetime, timedelta
from uuid import NAMESPACE_URL, uuid5

import grpc
import httpx
import pytest
from kafka import KafkaProducer

from crm.common.v1 import money_pb2
from crm.leads.v1 import events_pb2 as leads_events
from crm.sales.v1 import events_pb2, sales_pb2, sales_pb2_grpc, values_pb2
from crm_runtime.cloudevents import EventEnvelope, encode, stable_event_id
from crm_runtime.events import registry_for
from crm_runtime.topics import events_topic
from crm_sales.conversion import opportunity_id_for_lead
from crm_sales.orders import order_id_for
from tests.conftest import bearer, grpc_auth
from tests.kafka_helpers import headers, read_topic
from tests.platform_harness import grpc_target, start_platform, store_env, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
BOSS = bearer("sales_manager", subject="boss")
ADA = bearer("sales_rep", subject="rep-ada")
BOSS_RPC = grpc_auth("sales_manager", subject="boss")
ADA_RPC = grpc_auth("sales_rep", subject="rep-ada")


@pytest.fixture(params=["sqlite", "postgres"])
def platform(request, tmp_path, kafka_bootstrap, topic_prefix):
    env = store_env(request)
    running = start_platform(tmp_path, kafka_bootstrap, topic_prefix,
                             names=["sales", "sales-relay", "sales-worker"], extra_env=env)
    yield running
    running.stop()


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def publish_conversion(bootstrap: str, prefix: str, message: leads_events.LeadConverted) -> None:
    """As the leads relay would, twice (a re-send: the same ce_id)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        for _ in range(2):
            envelope = EventEnvelope(id=stable_event_id(message.lead_id, 9), source="crm/leads",
                                     subject=message.lead_id, time=datetime.now(UTC), message=message,
                                     context={"correlation_id": "lead-to-cash"})
            key, value, record_headers = encode(envelope)
            producer.send(events_topic("leads", prefix), key=key, value=value, headers=record_headers)
        producer.flush(30)
    finally:
        producer.close(5)


def test_a_converted_lead_becomes_a_contract_an_order_points_and_commission(platform, kafka_bootstrap,
                                                                             topic_prefix):
    sales = url("sales")
    boss = httpx.Client(timeout=10, headers=BOSS)
    ada = httpx.Client(timeout=10, headers=ADA)
    today = datetime.now(UTC).date()

    # The catalogue, the loyalty rule (HTTP) and the commission plan (gRPC): a manager's.
    ok(boss.post(f"{sales}/v1/products", json={"sku": "WID-1", "name": "Widget", "family": "hardware"}), 201)
    ok(boss.post(f"{sales}/v1/products", json={"sku": "SVC", "name": "Support", "family": "services"}), 201)
    book = ok(boss.post(f"{sales}/v1/price-books", json={"name": "EUR list", "currency": "EUR", "entries": [
        {"sku": "WID-1", "unit_price": "1000.00"}, {"sku": "SVC", "unit_price": "500.00"}]}), 201)
    ok(boss.put(f"{sales}/v1/loyalty-rule", json={"points_per_unit": "1", "tier_multipliers": {"strategic": "2"}}))
    with grpc.insecure_channel(grpc_target("sales")) as channel:
        stub = sales_pb2_grpc.SalesServiceStub(channel)
        plan = stub.SetCommissionPlan(sales_pb2.SetCommissionPlanRequest(rules=[
            values_pb2.CommissionRule(percent="2"),
            values_pb2.CommissionRule(family="services", percent="5"),
            values_pb2.CommissionRule(family="hardware", percent="4", tiers=[values_pb2.CommissionTier(
                attainment_from=money_pb2.Money(amount="100000.00", currency_code="EUR"), percent="6")])]),
            metadata=BOSS_RPC, timeout=10)
        assert (plan.plan.version, len(plan.plan.rules)) == (1, 3)

    # A converted lead naming an opportunity, delivered twice: one account, contact, opportunity.
    lead = leads_events.LeadConverted(
        lead_id="lead-l2c", account_id=str(uuid5(NAMESPACE_URL, "l2c-account")),
        contact_id=str(uuid5(NAMESPACE_URL, "l2c-contact")), name="Ada Lovelace", email="ada@engines.example",
        company="Analytical Engines", country="GB", owner_id="rep-ada", email_domain="engines.example",
        opportunity_name="Engines: 100 widgets", opportunity_amount=money_pb2.Money(amount="101000.00",
                                                                                     currency_code="EUR"))
    lead.converted_at.FromDatetime(datetime.now(UTC))
    publish_conversion(kafka_bootstrap, topic_prefix, lead)
    opportunity_id = str(opportunity_id_for_lead("lead-l2c"))
    opportunity = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
        ada.get(f"{sales}/v1/opportunities/{opportunity_id}")), timeout=120, what="the lead's opportunity")
    assert (opportunity["account_id"], opportunity["owner_id"]) == (lead.account_id, "rep-ada")

    # The rep quotes over HTTP, sends over gRPC, accepts over HTTP winning the deal.
    valid_until = (today + timedelta(days=30)).isoformat()
    quote = ok(ada.post(f"{sales}/v1/quotes", json={
        "opportunity_id": opportunity_id, "price_book_id": book["id"], "valid_until": valid_until,
        "lines": [{"sku": "WID-1", "quantity": "100", "tax_rate": "0.20"},
                  {"sku": "SVC", "quantity": "2", "tax_rate": "0"}]}), 201)
    assert quote["totals"]["net"] == {"amount": "101000.00", "currency": "EUR"}
    assert quote["totals"]["gross"] == {"amount": "121000.00", "currency": "EUR"}
    with grpc.insecure_channel(grpc_target("sales")) as channel:
        stub = sales_pb2_grpc.SalesServiceStub(channel)
        sent = stub.SendQuote(sales_pb2.SendQuoteRequest(quote_id=quote["id"]), metadata=ADA_RPC, timeout=10)
        assert sent.quote.status == "sent"
    ok(ada.post(f"{sales}/v1/quotes/{quote['id']}/accept", json={"win_opportunity": True}))

    # The order, the points and the commissions were saved with the win.
    order_id = str(order_id_for(opportunity_id))
    order = ok(ada.get(f"{sales}/v1/orders/{order_id}"))
    assert (order["account_id"], order["quote_id"], order["base_net"]["amount"]) == (
        lead.account_id, quote["id"], "101000.00")
    assert [(line["sku"], line["family"]) for line in order["lines"]] == [("WID-1", "hardware"),
                                                                        ("SVC", "services")]
    loyalty = ok(ada.get(f"{sales}/v1/accounts/{lead.account_id}/loyalty"))
    assert (loyalty["balance"], loyalty["ledger"][0]["reference"]) == (101000, order_id)
    commissions = ok(ada.get(f"{sales}/v1/commissions"))
    assert commissions["attainment"] == {"amount": "101000.00", "currency": "EUR"}
    assert [(c["family"], c["percent"], c["amount"]["amount"]) for c in commissions["items"]] == [
        ("hardware", "6", "6000.00"), ("services", "5", "50.00")]

    # A contract above the threshold: submitted by the rep, approved by a manager only.
    with grpc.insecure_channel(grpc_target("sales")) as channel:
        stub = sales_pb2_grpc.SalesServiceStub(channel)
        created = stub.CreateContract(sales_pb2.CreateContractRequest(
            quote_id=quote["id"], starts_on=today.isoformat(), ends_on=(today + timedelta(days=365)).isoformat(),
            payment_terms=values_pb2.PaymentTerms(instalments=3, first_due_on=today.isoformat(), every_months=4),
            request_id="contract-1"), metadata=ADA_RPC, timeout=10)
        contract = created.contract
        assert created.created and contract.status == "draft"
        assert [i.amount.amount for i in contract.payment_schedule] == ["40333.34", "40333.33", "40333.33"]
    path = f"{sales}/v1/contracts/{contract.id}"
    submitted = ok(ada.post(f"{path}/submit"))
    assert (submitted["status"], submitted["approval_required"]) == ("pending_approval", True)
    denied = ada.post(f"{path}/approve", json={"comment": "my own"})
    assert denied.status_code == 403, denied.text
    with grpc.insecure_channel(grpc_target("sales")) as channel:
        stub = sales_pb2_grpc.SalesServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ApproveContract(sales_pb2.ApproveContractRequest(contract_id=contract.id), metadata=ADA_RPC,
                                 timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        approved = stub.ApproveContract(sales_pb2.ApproveContractRequest(contract_id=contract.id, comment="Go"),
                                        metadata=BOSS_RPC, timeout=10)
        assert (approved.contract.status, approved.contract.approved_by) == ("approved", "boss")
    assert ok(ada.post(f"{path}/sign"))["status"] == "signed"
    with grpc.insecure_channel(grpc_target("sales")) as channel:
        stub = sales_pb2_grpc.SalesServiceStub(channel)
        active = stub.ActivateContract(sales_pb2.ActivateContractRequest(contract_id=contract.id),
                                       metadata=ADA_RPC, timeout=10)
        assert active.contract.status == "active"
    too_much = ada.post(f"{path}/payments", json={"instalment": 1, "amount": {"amount": "40333.35",
                                                                             "currency": "EUR"},
                                                  "paid_on": today.isoformat()})
    assert too_much.status_code == 409, too_much.text
    paid = ok(ada.post(f"{path}/payments", json={"instalment": 1, "amount": {"amount": "40333.34",
                                                                            "currency": "EUR"},
                                                 "paid_on": today.isoformat()}))
    assert paid["outstanding"] == {"amount": "80666.66", "currency": "EUR"}

    # Every event on crm.sales.events.v1, in order per record, read by a plain consumer.
    registry = registry_for("sales")
    topic = events_topic("sales", topic_prefix)
    records = read_topic(kafka_bootstrap, topic, lambda rs: any(
        headers(r)["ce_type"] == "crm.sales.v1.PaymentRecorded" for r in rs), timeout=90)
    by_subject: dict[str, list[str]] = {}
    messages: dict[str, list] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        kind = headers(record)["ce_type"].rsplit(".", 1)[1]
        by_subject.setdefault(headers(record)["ce_subject"], []).append(kind)
        messages.setdefault(kind, []).append(registry.decode(record.headers, record.value).message)
    assert by_subject[opportunity_id] == ["OpportunityOpened", "OpportunityWon"]
    assert by_subject[quote["id"]] == ["QuoteDrafted", "QuoteSent", "QuoteAccepted"]
    assert by_subject[contract.id] == ["ContractDrafted", "ContractSubmitted", "ContractApproved", "ContractSigned",
                                       "ContractActivated", "PaymentRecorded"]
    assert by_subject[order_id] == ["OrderPlaced"]
    placed = messages["OrderPlaced"][0]
    assert (placed.account_id, placed.opportunity_id, len(placed.lines)) == (lead.account_id, opportunity_id, 2)
    (earned,) = messages["LoyaltyPointsEarned"]
    assert (earned.account_id, earned.order_id, earned.points) == (lead.account_id, order_id, 101000)
    assert [(c.owner_id, c.family, c.amount.amount) for c in messages["CommissionEarned"]] == [
        ("rep-ada", "hardware", "6000.00"), ("rep-ada", "services", "50.00")]
    activated = messages["ContractActivated"][0]
    due = [date.fromisoformat(i.due_on) for i in activated.instalments]
    assert due == sorted(due) and len(due) == 3 and activated.ends_on == (today + timedelta(days=365)).isoformat()
    submitted_event = messages["ContractSubmitted"][0]
    assert (submitted_event.approval_required, submitted_event.base_total.amount) == (True, "121000.00")
    assert messages["ContractApproved"][0].approved_by == "boss"
    assert len(messages["OpportunityOpened"]) == 1 and len(messages["AccountOpened"]) == 1
    assert events_pb2.OrderPlaced.DESCRIPTOR.full_name == "crm.sales.v1.OrderPlaced"

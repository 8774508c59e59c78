"""Opportunities, the catalogue and quotes over HTTP on SQLite and PostgreSQL: a deal from
account to accepted quote priced to the cent, its events on crm.sales.events.v1 read by a
plain kafka-python consumer, and bad input answered with problem+json and nothing stored."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from crm.sales.v1 import events_pb2
from crm_runtime import http
from crm_runtime import relay as relay_module
from crm_runtime.events import registry_for
from crm_sales.adapters.http import routers
from crm_sales.application import SalesApplication
from crm_sales.context import CONTEXT
from tests.conftest import TOKENS, bearer
from tests.kafka_helpers import at_least, ensure_topics, headers, read_all, read_topic, stored_events

PROBLEM = "application/problem+json"
ANN = bearer("sales_rep", subject="ann")
BOB = bearer("sales_rep", subject="bob")
BOSS = bearer("sales_manager", subject="boss")
NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
LINES = [{"sku": "WID-1", "quantity": "3", "discount": {"percent": "10"}, "tax_rate": "0.20"},
         {"sku": "HRS", "quantity": "2.5", "discount": {"amount": "5.00"}, "tax_rate": "0.19"}]


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sales(any_platform, clock):
    return SalesApplication(any_platform, clock=clock)


@pytest.fixture
def client(sales):
    api = http.create_app("sales", "1", checks={"store": sales.check_store}, tokens=TOKENS)
    for router in routers(sales):
        api.include_router(router)
    with TestClient(api, headers=ANN) as test_client:
        yield test_client


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    return body


def stored(sales) -> int:
    return stored_events(sales)


def set_up_deal(client) -> tuple[dict, dict, dict, dict]:
    """An account and opportunity of ann's, two products and a EUR and a USD price book."""
    account = ok(client.post("/v1/accounts", json={"name": "Acme", "domain": "acme.example"}), 201)
    opportunity = ok(client.post("/v1/opportunities", headers={"Idempotency-Key": "deal-1"}, json={
        "name": "Acme widgets", "account_id": account["id"], "amount": {"amount": "5000.00", "currency": "EUR"},
        "expected_close_on": "2025-06-30", "stage": "qualification"}), 201)
    ok(client.post("/v1/products", headers=BOSS, json={"sku": "WID-1", "name": "Widget", "family": "hardware"}), 201)
    ok(client.post("/v1/products", headers=BOSS, json={
        "sku": "HRS", "name": "Consulting hour", "family": "services", "decimal_quantities": True}), 201)
    eur = ok(client.post("/v1/price-books", headers=BOSS, json={
        "name": "EUR list", "currency": "EUR",
        "entries": [{"sku": "WID-1", "unit_price": {"amount": "19.99", "currency": "EUR"}},
                    {"sku": "HRS", "unit_price": "120.00"}]}), 201)
    usd = ok(client.post("/v1/price-books", headers=BOSS, json={
        "name": "USD list", "currency": "USD", "entries": [{"sku": "WID-1", "unit_price": "21.50"}]}), 201)
    return account, opportunity, eur, usd


def test_a_deal_from_opportunity_to_accepted_quote_reaches_the_topic(client, sales, any_platform, kafka_bootstrap):
    account, opportunity, eur, _ = set_up_deal(client)
    assert (opportunity["stage"], opportunity["probability"], opportunity["owner_id"]) == ("qualification", 20, "ann")
    assert opportunity["amount"] == {"amount": "5000.00", "currency": "EUR"}
    path = f"/v1/opportunities/{opportunity['id']}"
    moved = ok(client.post(f"{path}/stage", json={"stage": "proposal"}, headers={"If-Match": '"1"'}))
    assert (moved["stage"], moved["probability"], moved["version"]) == ("proposal", 50, 2)
    assert [(e["from_stage"], e["stage"], e["by"]) for e in moved["stage_history"]] == \
        [(None, "qualification", "ann"), ("qualification", "proposal", "ann")]

    created = client.post("/v1/quotes", headers={"Idempotency-Key": "q-1"}, json={
        "opportunity_id": opportunity["id"], "price_book_id": eur["id"], "valid_until": "2025-03-31",
        "lines": LINES})
    quote = ok(created, 201)
    assert created.headers["Location"] == f"/v1/quotes/{quote['id']}" and created.headers["ETag"] == '"1"'
    assert [(line["unit_price"]["amount"], line["net"]["amount"], line["tax"]["amount"], line["gross"]["amount"])
            for line in quote["lines"]] == [("19.99", "53.97", "10.79", "64.76"), ("120.00", "295.00", "56.05",
                                                                                   "351.05")]
    assert quote["lines"][1]["discount"] == {"percent": None, "amount": {"amount": "5.00", "currency": "EUR"}}
    assert quote["totals"] == {"net": {"amount": "348.97", "currency": "EUR"},
                               "tax": {"amount": "66.84", "currency": "EUR"},
                               "gross": {"amount": "415.81", "currency": "EUR"}}
    assert (quote["status"], quote["number"], quote["owner_id"]) == ("draft", 1, "ann")
    assert ok(client.post("/v1/quotes", headers={"Idempotency-Key": "q-1"}, json={
        "opportunity_id": opportunity["id"], "price_book_id": eur["id"], "valid_until": "2025-03-31",
        "lines": LINES}))["id"] == quote["id"]

    assert ok(client.post(f"/v1/quotes/{quote['id']}/send"))["status"] == "sent"
    accepted = ok(client.post(f"/v1/quotes/{quote['id']}/accept", json={"win_opportunity": True},
                              headers={"If-Match": '"2"'}))
    assert accepted["status"] == "accepted"
    won = ok(client.get(path))
    assert (won["status"], won["stage"], won["probability"], won["closed_on"], won["won_quote_id"]) == \
        ("won", "closed_won", 100, "2025-03-10", quote["id"])
    assert won["amount"] == {"amount": "348.97", "currency": "EUR"}
    listed = ok(client.get("/v1/opportunities", params={"close_month": "2025-06", "stage": "closed_won"}))
    assert [o["id"] for o in listed["items"]] == [opportunity["id"]]

    # The events, published by the relay and read by a plain kafka-python consumer.
    ensure_topics(kafka_bootstrap, any_platform.topic_prefix)
    topic = f"{any_platform.topic_prefix}crm.sales.events.v1"
    relay = relay_module.for_context(sales, CONTEXT.topic, CONTEXT.events.to_message, any_platform)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        # Every stored event but the three internal ones of the win (the account's loyalty
        # ledger opened, the owner's quarter started and counting the deal) is published.
        read_topic(kafka_bootstrap, topic, at_least(stored(sales) - 3))
    finally:
        relay.stop()
        thread.join(30)
        relay.close()
    registry = registry_for("sales")
    by_subject: dict[str, list] = {}
    for record in read_all(kafka_bootstrap, topic):
        envelope = registry.decode(record.headers, record.value)
        assert headers(record)["ce_subject"] == record.key.decode()
        by_subject.setdefault(envelope.subject, []).append(envelope.message)
    deal = by_subject[opportunity["id"]]
    assert [type(m).__name__ for m in deal] == ["OpportunityOpened", "OpportunityStageChanged", "OpportunityWon"]
    assert deal[0].amount.amount == "5000.00" and deal[0].amount.currency_code == "EUR"
    assert (deal[0].stage, deal[0].probability, deal[0].expected_close_on) == ("qualification", 20, "2025-06-30")
    assert (deal[1].from_stage, deal[1].stage, deal[1].probability) == ("qualification", "proposal", 50)
    assert (deal[2].amount.amount, deal[2].closed_on, deal[2].quote_id, deal[2].from_stage, deal[2].account_id) == \
        ("348.97", "2025-03-10", quote["id"], "proposal", account["id"])
    quote_events = by_subject[quote["id"]]
    assert [type(m).__name__ for m in quote_events] == ["QuoteDrafted", "QuoteSent", "QuoteAccepted"]
    drafted = quote_events[0]
    assert [(line.sku, line.net.amount, line.tax.amount, line.gross.amount) for line in drafted.lines] == \
        [("WID-1", "53.97", "10.79", "64.76"), ("HRS", "295.00", "56.05", "351.05")]
    assert drafted.lines[0].discount.percent == "10" and drafted.lines[1].discount.amount.amount == "5.00"
    assert (drafted.totals.gross.amount, drafted.valid_until, drafted.number) == ("415.81", "2025-03-31", 1)
    assert quote_events[2].opportunity_won and quote_events[2].accepted_on == "2025-03-10"
    book = by_subject[eur["id"]][0]
    assert isinstance(book, events_pb2.PriceBookPublished)
    assert [(e.sku, e.unit_price.amount, e.unit_price.currency_code) for e in book.entries] == \
        [("WID-1", "19.99", "EUR"), ("HRS", "120.00", "EUR")]
    # Winning with the accepted quote placed the order and credited the account's points.
    (placed,) = [m for m in sum(by_subject.values(), []) if isinstance(m, events_pb2.OrderPlaced)]
    assert (placed.opportunity_id, placed.quote_id, placed.account_id, placed.totals.net.amount) == (
        opportunity["id"], quote["id"], account["id"], "348.97")
    (earned,) = [m for m in sum(by_subject.values(), []) if isinstance(m, events_pb2.LoyaltyPointsEarned)]
    assert (earned.account_id, earned.points) == (account["id"], 348)
    product = next(m for m in sum(by_subject.values(), []) if isinstance(m, events_pb2.ProductAdded)
                   and m.sku == "HRS")
    assert product.decimal_quantities and product.family == "services"


def test_bad_input_is_a_problem_and_stores_nothing(client, sales):
    _, opportunity, eur, usd = set_up_deal(client)
    path = f"/v1/opportunities/{opportunity['id']}"
    quote = ok(client.post("/v1/quotes", json={"opportunity_id": opportunity["id"], "price_book_id": eur["id"],
                                               "valid_until": "2025-03-31", "lines": LINES}), 201)
    before = stored(sales)

    def refused(response, status: int, field: str | None = None, says: str = "") -> dict:
        problem = problem_of(response, status)
        if field is not None:
            assert problem["errors"][0]["field"] == field, problem
        assert says in problem["detail"], problem
        return problem

    refused(client.post(f"{path}/stage", json={"stage": "haggling"}), 422, "stage", "not a stage of the pipeline")
    refused(client.post(f"{path}/stage", json={"stage": "proposal"}, headers={"If-Match": '"7"'}), 409,
            says="version 1, not 7")
    refused(client.post("/v1/opportunities", json={
        "name": "X", "account_id": opportunity["account_id"], "amount": {"amount": 10, "currency": "EUR"},
        "expected_close_on": "2025-06-30"}), 422, "amount.amount")
    refused(client.post("/v1/opportunities", json={
        "name": "X", "account_id": opportunity["account_id"], "amount": {"amount": "10.00", "currency": "EUR"},
        "expected_close_on": "2025-06-30", "stage": "closed_won"}), 422, "stage")
    refused(client.post("/v1/opportunities", headers=BOB, json={
        "name": "X", "account_id": opportunity["account_id"], "amount": {"amount": "10.00", "currency": "EUR"},
        "expected_close_on": "2025-06-30"}), 422, "account_id")

    def new_quote(book=eur, **line):
        return client.post("/v1/quotes", json={"opportunity_id": opportunity["id"], "price_book_id": book["id"],
                                               "valid_until": "2025-03-31", "lines": [{**LINES[0], **line}]})

    refused(new_quote(sku="GONE"), 422, "lines[0].sku", "not in the price book")
    refused(new_quote(discount={"percent": "100.5"}), 422, "lines[0].discount.percent")
    refused(new_quote(discount={"amount": "99.00"}), 422, "lines[0].discount.amount", "never negative")
    refused(new_quote(quantity="0"), 422, "lines[0].quantity")
    refused(new_quote(quantity=1.5), 422)  # a JSON number is never a decimal
    refused(new_quote(book=usd), 422, "price_book_id", "is in USD")
    refused(client.post(f"/v1/quotes/{quote['id']}/accept"), 409, says="is draft; accept needs it to be sent")
    refused(client.post(f"/v1/quotes/{quote['id']}/send", headers={"If-Match": '"3"'}), 409, says="not 3")
    refused(client.post("/v1/products", headers=BOSS, json={"sku": "WID-1", "name": "Again"}), 409,
            says="WID-1 exists")
    refused(client.post("/v1/products", json={"sku": "NEW-1", "name": "By a rep"}), 403)
    refused(client.put("/v1/pipeline", json={"stages": [{"name": "a", "probability": 5}]}), 403)
    refused(client.put("/v1/pipeline", headers=BOSS, json={"stages": [{"name": "a", "probability": 5}]}), 422,
            "stages")
    refused(client.post("/v1/price-books", headers=BOSS, json={
        "name": "Bad", "currency": "EUR", "entries": [{"sku": "NOPE", "unit_price": "1.00"}]}), 422, "entries[0].sku")
    refused(client.post("/v1/price-books", headers=BOSS, json={
        "name": "Bad", "currency": "EUR", "entries": [{"sku": "WID-1", "unit_price": {"amount": "1.00",
                                                                                       "currency": "USD"}}]}),
            422, "entries[0].unit_price.currency")
    refused(client.get("/v1/opportunities", params={"close_month": "June"}), 422, "close_month")
    refused(client.get(path, headers=BOB), 404)
    assert stored(sales) == before

    # Out of a final state.
    ok(client.post(f"{path}/lose", json={"reason": "Went with a competitor"}))
    before = stored(sales)
    for command, body in [("stage", {"stage": "proposal"}), ("win", None), ("lose", {"reason": "again"})]:
        refused(client.post(f"{path}/{command}", json=body), 409, says="is lost (closed_lost)")
    refused(client.post("/v1/quotes", json={"opportunity_id": opportunity["id"], "price_book_id": eur["id"],
                                            "valid_until": "2025-03-31", "lines": LINES}), 409, says="is lost")
    assert stored(sales) == before


def test_an_expired_quote_cannot_be_accepted_and_a_revision_supersedes_it(client, sales, clock):
    _, opportunity, eur, _ = set_up_deal(client)
    quote = ok(client.post("/v1/quotes", json={"opportunity_id": opportunity["id"], "price_book_id": eur["id"],
                                               "valid_until": "2025-03-11", "lines": LINES}), 201)
    ok(client.post(f"/v1/quotes/{quote['id']}/send"))
    clock.now = NOW + timedelta(days=2)
    before = stored(sales)
    problem = problem_of(client.post(f"/v1/quotes/{quote['id']}/accept", json={"win_opportunity": True}), 409)
    assert "is expired (valid until 2025-03-11)" in problem["detail"]
    assert stored(sales) == before
    assert ok(client.get(f"/v1/quotes/{quote['id']}"))["status"] == "expired"
    assert ok(client.get(f"/v1/opportunities/{opportunity['id']}"))["status"] == "open"

    revised = client.post(f"/v1/quotes/{quote['id']}/revise", json={"lines": LINES[:1], "valid_until": "2025-04-30"})
    second = ok(revised, 201)
    assert revised.headers["Location"] == f"/v1/quotes/{second['id']}"
    assert (second["number"], second["previous_quote_id"], second["status"]) == (2, quote["id"], "draft")
    assert second["totals"]["gross"] == {"amount": "64.76", "currency": "EUR"}
    first = ok(client.get(f"/v1/quotes/{quote['id']}"))
    assert (first["status"], first["next_quote_id"]) == ("superseded", second["id"])
    ok(client.post(f"/v1/quotes/{second['id']}/send"))
    rejected = ok(client.post(f"/v1/quotes/{second['id']}/reject", json={"reason": "Too expensive"}))
    assert rejected["status"] == "rejected"


def test_pipeline_configuration_and_lists(client):
    default = client.get("/v1/pipeline")
    assert default.headers["ETag"] == '"0"'
    assert [(s["name"], s["probability"], s["final"]) for s in ok(default)["stages"]][:2] == \
        [("prospecting", 10, False), ("qualification", 20, False)]
    stages = [{"name": "discovery", "probability": 15}, {"name": "closed_won", "probability": 100},
              {"name": "closed_lost", "probability": 0}]
    configured = client.put("/v1/pipeline", headers=BOSS, json={"stages": stages})
    assert ok(configured)["version"] == 1 and configured.headers["ETag"] == '"1"'
    problem_of(client.put("/v1/pipeline", headers={**BOSS, "If-Match": '"5"'}, json={"stages": stages}), 409)
    account = ok(client.post("/v1/accounts", json={"name": "Acme"}), 201)
    for month in ("01", "02", "03"):
        ok(client.post("/v1/opportunities", json={
            "name": f"Deal {month}", "account_id": account["id"], "amount": {"amount": "100", "currency": "JPY"},
            "expected_close_on": f"2025-{month}-10"}), 201)
    page = ok(client.get("/v1/opportunities", params={"limit": 2}))
    assert [o["name"] for o in page["items"]] == ["Deal 01", "Deal 02"]
    assert [o["stage"] for o in page["items"]] == ["discovery", "discovery"]
    rest = ok(client.get("/v1/opportunities", params={"limit": 2, "cursor": page["next_cursor"]}))
    assert [o["name"] for o in rest["items"]] == ["Deal 03"] and rest["next_cursor"] is None
    assert rest["items"][0]["amount"] == {"amount": "100", "currency": "JPY"}
    assert not ok(client.get("/v1/opportunities", headers=BOB))["items"]

    for sku in ("B-2", "A-1", "C-3"):
        ok(client.post("/v1/products", headers=BOSS, json={"sku": sku, "name": sku, "active": sku != "C-3"}), 201)
    assert [p["sku"] for p in ok(client.get("/v1/products"))["items"]] == ["A-1", "B-2", "C-3"]
    assert [p["sku"] for p in ok(client.get("/v1/products", params={"active": "false"}))["items"]] == ["C-3"]
    book = ok(client.post("/v1/price-books", headers=BOSS, json={
        "name": "Yen", "currency": "JPY", "entries": [{"sku": "A-1", "unit_price": "1200"}]}), 201)
    listed = ok(client.get("/v1/price-books", params={"currency": "JPY"}))["items"]
    assert [(b["id"], b["entries"], b["entry_count"]) for b in listed] == [(book["id"], None, 1)]
    assert ok(client.get(f"/v1/price-books/{book['id']}"))["entries"] == [
        {"sku": "A-1", "unit_price": {"amount": "1200", "currency": "JPY"}}]


def test_quote_and_contract_lists_filter_page_and_narrow_to_the_caller(client, clock):
    _, opportunity, eur, _ = set_up_deal(client)

    def quote(valid_until, *actions):
        made = ok(client.post("/v1/quotes", json={"opportunity_id": opportunity["id"], "price_book_id": eur["id"],
                                                  "valid_until": valid_until, "lines": LINES}), 201)
        for action in actions:
            made = ok(client.post(f"/v1/quotes/{made['id']}/{action}"))
        return made

    accepted = quote("2025-04-30", "send", "accept")
    lapsing = quote("2025-03-12", "send")
    drafted = quote("2025-03-20")
    page = ok(client.get("/v1/quotes", params={"limit": 2}))
    assert [q["id"] for q in page["items"]] == [lapsing["id"], drafted["id"]]
    assert page["items"][0]["lines"][0]["net"] == {"amount": "53.97", "currency": "EUR"}
    rest = ok(client.get("/v1/quotes", params={"limit": 2, "cursor": page["next_cursor"]}))
    assert [q["id"] for q in rest["items"]] == [accepted["id"]] and rest["next_cursor"] is None
    assert [q["id"] for q in ok(client.get("/v1/quotes", params={
        "status": "sent", "valid_until_before": "2025-03-15", "opportunity_id": opportunity["id"]}))["items"]] == [
        lapsing["id"]]
    assert ok(client.get("/v1/quotes", headers=BOB))["items"] == []
    assert len(ok(client.get("/v1/quotes", headers=BOSS, params={"owner_id": "ann"}))["items"]) == 3
    clock.now = NOW + timedelta(days=3)  # 2025-03-13: the sent quote lapsed
    expired = ok(client.get("/v1/quotes", params={"status": "expired"}))["items"]
    assert [(q["id"], q["status"]) for q in expired] == [(lapsing["id"], "expired")]
    assert problem_of(client.get("/v1/quotes", params={"status": "lapsed"}), 422)["detail"].startswith("status:")
    problem_of(client.get("/v1/quotes", params={"valid_until_after": "13/03/2025"}), 422)

    contract = ok(client.post("/v1/contracts", json={
        "quote_id": accepted["id"], "starts_on": "2025-04-01", "ends_on": "2026-03-31",
        "payment_terms": {"instalments": 4, "first_due_on": "2025-04-30", "every_months": 3}}), 201)
    ok(client.post(f"/v1/contracts/{contract['id']}/submit"))
    ok(client.post(f"/v1/contracts/{contract['id']}/sign"))
    renewals = ok(client.get("/v1/contracts", params={"status": "signed", "ends_before": "2026-04-01",
                                                      "account_id": opportunity["account_id"]}))
    assert [(c["id"], len(c["payment_schedule"])) for c in renewals["items"]] == [(contract["id"], 4)]
    assert ok(client.get("/v1/contracts", params={"ends_after": "2026-03-31"}))["items"] == []
    assert ok(client.get("/v1/contracts", headers=BOB))["items"] == []
    assert [c["id"] for c in ok(client.get("/v1/contracts", headers=BOSS, params={"owner_id": "ann"}))["items"]] == [
        contract["id"]]
    assert problem_of(client.get("/v1/contracts", params={"status": "ended"}), 422)["detail"].startswith("status:")
    assert problem_of(client.get("/v1/contracts", params={"cursor": page["next_cursor"]}), 422)[
        "detail"].startswith("cursor:")


def test_contract_amendments_over_http(client, sales):
    """An extension applied at once, a raise above the threshold approved by a manager,
    and bad amendments answered with problem+json naming the problem, nothing stored."""
    _, opportunity, eur, _ = set_up_deal(client)
    quote = ok(client.post("/v1/quotes", json={"opportunity_id": opportunity["id"], "price_book_id": eur["id"],
                                               "valid_until": "2025-04-30", "lines": LINES}), 201)
    ok(client.post(f"/v1/quotes/{quote['id']}/send"))
    ok(client.post(f"/v1/quotes/{quote['id']}/accept"))
    contract = ok(client.post("/v1/contracts", json={  # 415.81 EUR: 103.96, 103.95, 103.95, 103.95
        "quote_id": quote["id"], "starts_on": "2025-04-01", "ends_on": "2026-03-31",
        "payment_terms": {"instalments": 4, "first_due_on": "2025-04-30", "every_months": 3}}), 201)
    path = f"/v1/contracts/{contract['id']}"
    extension = {"reason": "Customer asked for six more months", "ends_on": "2026-09-30"}
    detail = problem_of(client.post(f"{path}/amendments", json=extension), 409)["detail"]
    assert "is draft; amending it needs it to be signed or active" in detail
    for action in ("submit", "sign", "activate"):
        ok(client.post(f"{path}/{action}"))
    paid = ok(client.post(f"{path}/payments", json={
        "instalment": 1, "amount": {"amount": "103.96", "currency": "EUR"}, "paid_on": "2025-03-10"}))

    def item(number, due_on, amount):
        return {"instalment": number, "due_on": due_on, "amount": {"amount": amount, "currency": "EUR"}}

    before = stored(sales)
    detail = problem_of(client.post(f"{path}/amendments", json={"reason": "Reschedule", "payment_schedule": [
        item(2, "2025-08-31", "100.00"), item(3, "2025-11-30", "103.95"), item(4, "2026-02-28", "103.95")]}),
        422)["detail"]
    assert detail.startswith("payment_schedule: the instalments sum to 411.86 EUR, not the total 415.81 EUR")
    detail = problem_of(client.post(f"{path}/amendments", json={"reason": "Reschedule", "payment_schedule": [
        item(1, "2025-05-31", "103.96")]}), 409)["detail"]
    assert "instalment 1 has 103.96 EUR paid against it" in detail
    assert problem_of(client.post(f"{path}/amendments", json={"ends_on": "2026-09-30"}), 422)
    assert problem_of(client.post(f"{path}/amendments", json={"reason": "x", "ends_on": "2026-09-30"},
                                  headers={"If-Match": '"1"'}), 409)
    assert stored(sales) == before

    done = client.post(f"{path}/amendments", json=extension,
                       headers={"Idempotency-Key": "ext-1", "If-Match": f'"{paid["version"]}"'})
    amended = ok(done, 201)
    assert done.headers["ETag"] == f'"{amended["contract"]["version"]}"'
    entry = amended["amendment"]
    assert (entry["number"], entry["status"], entry["previous_ends_on"], entry["ends_on"], entry["decided_by"],
            entry["payment_schedule"]) == (1, "applied", "2026-03-31", "2026-09-30", None, None)
    assert (amended["contract"]["ends_on"], amended["contract"]["status"]) == ("2026-09-30", "active")
    again = ok(client.post(f"{path}/amendments", json=extension, headers={"Idempotency-Key": "ext-1"}), 200)
    assert again["amendment"]["number"] == 1 and stored(sales) == before + 2
    # The index follows the new ends_on.
    assert [c["id"] for c in ok(client.get("/v1/contracts", params={"ends_after": "2026-09-29"}))["items"]] == [
        contract["id"]]

    upsell = {"reason": "Upsell", "total": {"amount": "100311.86", "currency": "EUR"}, "payment_schedule": [
        item(2, "2025-07-30", "100000.00"), item(3, "2025-10-30", "103.95"), item(4, "2026-01-30", "103.95")]}
    pending = ok(client.post(f"{path}/amendments", json=upsell), 201)
    assert (pending["amendment"]["status"], pending["amendment"]["approval_required"],
            pending["amendment"]["base_total"], pending["contract"]["total"]["amount"]) == (
        "pending_approval", True, {"amount": "100311.86", "currency": "EUR"}, "415.81")
    problem_of(client.post(f"{path}/amendments/2/approve"), 403)
    problem_of(client.post(f"{path}/amendments/9/approve", headers=BOSS), 404)
    problem_of(client.post(f"{path}/amendments/2/reject", headers=BOSS, json={"comment": " "}), 422)
    assert "pending approval" in problem_of(client.post(f"{path}/amendments", json=extension | {
        "ends_on": "2026-12-31"}), 409)["detail"]
    approved = ok(client.post(f"{path}/amendments/2/approve", headers=BOSS, json={"comment": "Signed upsell"}))
    assert (approved["amendment"]["status"], approved["amendment"]["decided_by"],
            approved["amendment"]["comment"]) == ("applied", "boss", "Signed upsell")
    contract_now = approved["contract"]
    assert contract_now["total"] == {"amount": "100311.86", "currency": "EUR"}
    assert [(i["instalment"], i["due_on"], i["amount"]["amount"], i["paid"]["amount"])
            for i in contract_now["payment_schedule"]] == [
        (1, "2025-04-30", "103.96", "103.96"), (2, "2025-07-30", "100000.00", "0.00"),
        (3, "2025-10-30", "103.95", "0.00"), (4, "2026-01-30", "103.95", "0.00")]
    assert [(a["number"], a["status"]) for a in ok(client.get(path))["amendments"]] == [
        (1, "applied"), (2, "applied")]


def test_orders_list_filter_page_and_narrow_to_the_caller(client, clock):
    account, opportunity, eur, _ = set_up_deal(client)

    def won_deal(name, headers=ANN, account_id=account["id"]):
        deal = ok(client.post("/v1/opportunities", headers=headers, json={
            "name": name, "account_id": account_id, "amount": {"amount": "100.00", "currency": "EUR"},
            "expected_close_on": "2025-06-30"}), 201)
        quote = ok(client.post("/v1/quotes", headers=headers, json={
            "opportunity_id": deal["id"], "price_book_id": eur["id"], "valid_until": "2025-04-30",
            "lines": LINES[:1]}), 201)
        ok(client.post(f"/v1/quotes/{quote['id']}/send", headers=headers))
        return ok(client.post(f"/v1/quotes/{quote['id']}/accept", headers=headers, json={"win_opportunity": True}))

    won_deal("First")
    clock.now = NOW + timedelta(days=1)
    won_deal("Second")
    bobs = ok(client.post("/v1/accounts", headers=BOB, json={"name": "Bob's"}), 201)
    won_deal("Bob's deal", headers=BOB, account_id=bobs["id"])
    page = ok(client.get("/v1/orders", params={"limit": 1}))
    assert len(page["items"]) == 1 and page["items"][0]["placed_on"] == "2025-03-10"
    assert page["items"][0]["status"] == "placed" and page["items"][0]["lines"][0]["sku"] == "WID-1"
    rest = ok(client.get("/v1/orders", params={"limit": 1, "cursor": page["next_cursor"]}))
    assert [o["placed_on"] for o in rest["items"]] == ["2025-03-11"] and rest["next_cursor"] is None
    assert [o["placed_on"] for o in ok(client.get("/v1/orders", params={
        "placed_after": "2025-03-10", "placed_before": "2025-03-12", "status": "placed",
        "account_id": account["id"]}))["items"]] == ["2025-03-11"]
    assert len(ok(client.get("/v1/orders", headers=BOSS))["items"]) == 3
    assert [o["owner_id"] for o in ok(client.get("/v1/orders", headers=BOSS, params={"owner_id": "bob"}))[
        "items"]] == ["bob"]
    assert ok(client.get("/v1/orders", params={"owner_id": "bob"}))["items"] == []  # a rep sees their own
    assert problem_of(client.get("/v1/orders", params={"status": "shipped"}), 422)["detail"].startswith("status:")
    assert problem_of(client.get("/v1/orders", params={"placed_after": "10/03/2025"}), 422)[
        "detail"].startswith("placed_after:")
    assert problem_of(client.get("/v1/orders", params={"cursor": "bogus"}), 422)["detail"].startswith("cursor:")

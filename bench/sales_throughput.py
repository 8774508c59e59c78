"""Sales figures: quote pricing and the contract lifecycle.

    make bench BENCH=sales_throughput.py      # also part of `make bench`
    CRM_BENCH_STORE=postgres make bench BENCH=sales_throughput.py

Prints, for quotes of 20 lines: pricing alone (crm_sales.pricing.price_quote, no store),
drafting in process (price from the book, validate, save), drafting over HTTP (the sales
service as its own process, 4 keep-alive connections) and over gRPC (CreateQuote against
the same process, 4 concurrent callers, each on its own channel); and contract lifecycle
commands per second in process (draft, submit, sign, activate, record a payment: 5
commands each).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from crm_devstack.postgres import fresh_database
from crm_runtime import logs
from crm_runtime.auth import Principal
from crm_runtime.money import Money
from crm_runtime.settings import PlatformSettings
from crm_sales.application import (
    AddProduct,
    DraftContract,
    DraftQuote,
    OpenAccount,
    OpenOpportunity,
    PublishPriceBook,
    RecordPayment,
    SalesApplication,
    WorkContract,
    WorkQuote,
)
from crm_sales.pricing import parse_lines, price_quote

QUOTES = int(os.environ.get("CRM_BENCH_QUOTES", "1000"))
CONTRACTS = int(os.environ.get("CRM_BENCH_CONTRACTS", "300"))
LINES = 20
REP = Principal("bench-rep", frozenset({"sales_rep"}))
BOSS = Principal("bench-boss", frozenset({"sales_manager"}))
SKUS = [f"SKU-{n:02d}" for n in range(LINES)]
TERMS = {"instalments": 4, "first_due_on": "2030-01-31", "every_months": 3}


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def quote_lines() -> list[dict]:
    return [{"sku": sku, "quantity": str(n + 1), "discount": {"percent": "7.5"} if n % 2 else {"amount": "1.25"},
             "tax_rate": "0.19"} for n, sku in enumerate(SKUS)]


def bench_pricing(count: int) -> float:
    prices = {sku: Money.of(f"{10 + n}.99", "EUR") for n, sku in enumerate(SKUS)}
    started = time.perf_counter()
    for _ in range(count):
        price_quote(parse_lines(quote_lines(), "EUR"), prices, "EUR")
    return rate(count, time.perf_counter() - started)


def set_up(app: SalesApplication) -> tuple[str, str]:
    """A catalogue of 20 products in a EUR book, an account and an open opportunity."""
    for sku in SKUS:
        app.add_product(AddProduct(sku, f"Product {sku}", "hardware", caller=BOSS))
    book = app.publish_price_book(PublishPriceBook("Bench EUR", "EUR", [
        {"sku": sku, "unit_price": f"{10 + n}.99"} for n, sku in enumerate(SKUS)], caller=BOSS))[0]
    account = app.open_account(OpenAccount(name="Bench Co", caller=REP))[0]
    opportunity = app.open_opportunity(OpenOpportunity(
        "Bench deal", account.id, {"amount": "1000.00", "currency": "EUR"}, "2030-06-30", caller=REP))[0]
    return opportunity.id, book.id


def bench_draft_in_process(app: SalesApplication, opportunity_id: str, book_id: str, count: int) -> float:
    valid_until = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    lines = quote_lines()
    started = time.perf_counter()
    for _ in range(count):
        app.draft_quote(DraftQuote(opportunity_id, book_id, valid_until, lines, caller=REP))
    return rate(count, time.perf_counter() - started)


def bench_contracts(app: SalesApplication, opportunity_id: str, book_id: str, count: int) -> float:
    valid_until = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    quote = app.draft_quote(DraftQuote(opportunity_id, book_id, valid_until, quote_lines(), caller=REP))[0]
    app.work_quote(WorkQuote(quote.id, "send", caller=REP))
    app.work_quote(WorkQuote(quote.id, "accept", caller=REP))
    today = date.today().isoformat()
    started = time.perf_counter()
    for _ in range(count):
        contract = app.draft_contract(DraftContract(quote.id, today, "2034-12-31", TERMS, caller=REP))[0]
        app.work_contract(WorkContract(contract.id, "submit", caller=REP))
        app.work_contract(WorkContract(contract.id, "sign", caller=REP))
        app.work_contract(WorkContract(contract.id, "activate", caller=REP))
        first = contract.payment_schedule[0].amount
        app.record_payment(RecordPayment(contract.id, 1, first.to_json(), today, caller=REP))
    return rate(count * 5, time.perf_counter() - started)


def bench_service(platform: PlatformSettings, count: int, clients: int = 4) -> tuple[float, float]:
    """POST /v1/quotes (20 lines), then the same quotes by gRPC CreateQuote, against the
    sales service as its own process: (HTTP quotes/s, gRPC quotes/s)."""
    import httpx

    from crm_devstack.processes import SPECS, Platform
    from crm_runtime.auth import TokenCodec

    secret = "bench-secret-0123456789-0123456789-abcdef"
    env = {"CRM_SALES_HTTP_PORT": "27002", "CRM_SALES_GRPC_PORT": "27052", "CRM_LOG_LEVEL": "WARNING",
           "CRM_AUTH_SECRET": secret, "CRM_STORE": platform.store,
           "CRM_DATA_DIR": str(platform.data_dir.parent / "sales-http-stores"),
           "CRM_POSTGRES_DBNAME": platform.postgres_dbname, "CRM_KAFKA_BOOTSTRAP": platform.kafka_bootstrap}
    service = Platform(env=env, specs=[spec for spec in SPECS if spec.name == "sales"],
                       log_dir=platform.data_dir.parent / "logs")
    service.start_all()
    try:
        service.wait_ready()
        codec = TokenCodec(secret)
        rep = {"Authorization": f"Bearer {codec.issue('bench-rep', ['sales_rep'])}"}
        boss = {"Authorization": f"Bearer {codec.issue('bench-boss', ['sales_manager'])}"}
        base = "http://127.0.0.1:27002"
        with httpx.Client(base_url=base, timeout=30) as http:
            for sku in SKUS:
                http.post("/v1/products", headers=boss, json={"sku": f"H{sku}", "name": sku})
            book = http.post("/v1/price-books", headers=boss, json={
                "name": f"HTTP {uuid.uuid4().hex[:6]}", "currency": "EUR",
                "entries": [{"sku": f"H{sku}", "unit_price": f"{10 + n}.99"} for n, sku in enumerate(SKUS)]})
            book.raise_for_status()
            account = http.post("/v1/accounts", headers=rep, json={"name": "HTTP Bench"}).json()
            opportunity = http.post("/v1/opportunities", headers=rep, json={
                "name": "HTTP deal", "account_id": account["id"], "amount": {"amount": "1.00", "currency": "EUR"},
                "expected_close_on": "2030-06-30"}).json()
        body = {"opportunity_id": opportunity["id"], "price_book_id": book.json()["id"],
                "valid_until": (datetime.now(UTC).date() + timedelta(days=30)).isoformat(),
                "lines": [{**line, "sku": f"H{line['sku']}"} for line in quote_lines()]}

        def post_range(start: int) -> None:
            with httpx.Client(base_url=base, headers=rep, timeout=30) as http:
                for _ in range(start, count, clients):
                    http.post("/v1/quotes", json=body).raise_for_status()

        over_http = run_clients(post_range, clients, count)
        over_grpc = bench_grpc("127.0.0.1:27052", rep["Authorization"], body, count, clients)
        return over_http, over_grpc
    finally:
        service.stop()


def run_clients(work, clients: int, count: int) -> float:
    """`work(n)` in `clients` threads at once; the rate of `count` calls over their wall time."""
    failures: list[BaseException] = []

    def guarded(start: int) -> None:
        try:
            work(start)
        except BaseException as error:  # noqa: BLE001 - reported after the join
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return rate(count, time.perf_counter() - started)


def bench_grpc(target: str, authorization: str, body: dict, count: int, clients: int) -> float:
    """CreateQuote (20 lines) by `clients` concurrent callers, each on its own channel."""
    import grpc

    from crm.common.v1 import money_pb2
    from crm.sales.v1 import sales_pb2, sales_pb2_grpc, values_pb2

    def discount(line: dict) -> values_pb2.Discount:
        given = line["discount"]
        if "percent" in given:
            return values_pb2.Discount(percent=given["percent"])
        return values_pb2.Discount(amount=money_pb2.Money(amount=given["amount"], currency_code="EUR"))

    request = sales_pb2.CreateQuoteRequest(
        opportunity_id=body["opportunity_id"], price_book_id=body["price_book_id"], valid_until=body["valid_until"],
        lines=[values_pb2.QuoteLineInput(sku=line["sku"], quantity=line["quantity"], tax_rate=line["tax_rate"],
                                         discount=discount(line)) for line in body["lines"]])
    metadata = [("authorization", authorization)]

    def call_range(start: int) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = sales_pb2_grpc.SalesServiceStub(channel)
            for _ in range(start, count, clients):
                stub.CreateQuote(request, metadata=metadata, timeout=30)

    return run_clients(call_range, clients, count)


def main() -> None:
    logs.configure("bench", "WARNING")
    store = os.environ.get("CRM_BENCH_STORE", "sqlite")
    data = Path(os.environ.get("CRM_BENCH_DATA") or tempfile.mkdtemp()) / "sales-stores"
    platform = PlatformSettings(store=store, data_dir=data, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
                                kafka_bootstrap=os.environ.get("CRM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    # On PostgreSQL, a database of the run's own (see crm_devstack.postgres).
    with fresh_database(platform) if store == "postgres" else nullcontext(platform) as platform:
        report(platform, store)


def report(platform: PlatformSettings, store: str) -> None:
    pricing = bench_pricing(QUOTES)
    app = SalesApplication(platform)
    opportunity_id, book_id = set_up(app)
    drafted = bench_draft_in_process(app, opportunity_id, book_id, QUOTES)
    lifecycle = bench_contracts(app, opportunity_id, book_id, CONTRACTS)
    over_http, over_grpc = bench_service(platform, min(QUOTES, 1000))
    print(f"\nsales, store={store}: quotes of {LINES} lines ({QUOTES} each), contracts ({CONTRACTS} x 5 commands)")
    print(f"{'path':<44}{'per s':>10}")
    print(f"{'quote pricing alone (price_quote)':<44}{pricing:>10,.0f}  quotes")
    print(f"{'quote drafted in process (price + save)':<44}{drafted:>10,.0f}  quotes")
    print(f"{'quote drafted over HTTP (4 conns)':<44}{over_http:>10,.0f}  quotes")
    print(f"{'quote drafted over gRPC (4 callers)':<44}{over_grpc:>10,.0f}  quotes")
    print(f"{'contract lifecycle in process':<44}{lifecycle:>10,.0f}  commands")


if __name__ == "__main__":
    main()

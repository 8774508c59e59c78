"""Opportunities, the catalogue and quotes through crm.sales.v1.SalesService against an
in-process grpc.aio server, on SQLite and PostgreSQL: the same semantics as HTTP, refusals
as status codes, and nothing stored by a refused call."""

from datetime import UTC, datetime

import grpc

from crm.common.v1 import money_pb2
from crm.sales.v1 import sales_pb2, sales_pb2_grpc, values_pb2
from crm_sales.adapters.grpc import registrations
from crm_sales.application import SalesApplication
from tests.conftest import grpc_auth
from tests.grpc_harness import refused, serve_and_call

ANN = grpc_auth("sales_rep", subject="ann")
BOB = grpc_auth("sales_rep", subject="bob")
BOSS = grpc_auth("sales_manager", subject="boss")
NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)


def eur(amount: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency_code="EUR")


LINES = [values_pb2.QuoteLineInput(sku="WID-1", quantity="3", tax_rate="0.20",
                                   discount=values_pb2.Discount(percent="10")),
         values_pb2.QuoteLineInput(sku="HRS", quantity="2.5", tax_rate="0.19",
                                   discount=values_pb2.Discount(amount=eur("5.00")))]


def run(app: SalesApplication, address: str, scenario) -> None:
    serve_and_call(registrations(app), sales_pb2_grpc.SalesServiceStub, address, scenario)


def test_a_deal_over_grpc(any_platform, address):
    app = SalesApplication(any_platform, clock=lambda: NOW)

    def stored() -> int:
        return app.recorder.max_notification_id() or 0

    async def scenario(stub):
        pipeline = (await stub.GetPipeline(sales_pb2.GetPipelineRequest(), metadata=ANN)).pipeline
        assert pipeline.version == 0 and [s.name for s in pipeline.stages][-2:] == ["closed_won", "closed_lost"]
        await refused(stub.UpdatePipeline(sales_pb2.UpdatePipelineRequest(stages=pipeline.stages), metadata=ANN),
                      grpc.StatusCode.PERMISSION_DENIED)

        account = (await stub.CreateAccount(sales_pb2.CreateAccountRequest(name="Acme"), metadata=ANN)).account
        created = await stub.CreateOpportunity(sales_pb2.CreateOpportunityRequest(
            name="Acme widgets", account_id=account.id, amount=eur("5000.00"), expected_close_on="2025-06-30",
            request_id="deal-1"), metadata=ANN)
        opportunity = created.opportunity
        assert created.created and (opportunity.stage, opportunity.probability, opportunity.status) == \
            ("prospecting", 10, "open")
        assert opportunity.amount == eur("5000.00") and opportunity.stage_history[0].changed_by == "ann"
        product = await stub.CreateProduct(sales_pb2.CreateProductRequest(
            sku="WID-1", name="Widget", family="hardware"), metadata=BOSS)
        assert product.created and product.product.active
        await stub.CreateProduct(sales_pb2.CreateProductRequest(
            sku="HRS", name="Hours", decimal_quantities=True), metadata=BOSS)
        book = (await stub.CreatePriceBook(sales_pb2.CreatePriceBookRequest(
            name="EUR list", currency_code="EUR",
            entries=[values_pb2.PriceBookEntry(sku="WID-1", unit_price=eur("19.99")),
                     values_pb2.PriceBookEntry(sku="HRS", unit_price=eur("120.00"))]), metadata=BOSS)).price_book
        usd = (await stub.CreatePriceBook(sales_pb2.CreatePriceBookRequest(
            name="USD list", currency_code="USD",
            entries=[values_pb2.PriceBookEntry(sku="WID-1", unit_price=money_pb2.Money(
                amount="21.50", currency_code="USD"))]), metadata=BOSS)).price_book

        before = stored()
        detail = await refused(stub.MoveOpportunityStage(sales_pb2.MoveOpportunityStageRequest(
            opportunity_id=opportunity.id, stage="haggling"), metadata=ANN), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("stage:")
        await refused(stub.MoveOpportunityStage(sales_pb2.MoveOpportunityStageRequest(
            opportunity_id=opportunity.id, stage="proposal", expected_version=9), metadata=ANN),
            grpc.StatusCode.ABORTED)
        await refused(stub.CreateProduct(sales_pb2.CreateProductRequest(sku="WID-1", name="Again"), metadata=BOSS),
                      grpc.StatusCode.ALREADY_EXISTS)
        await refused(stub.GetOpportunity(sales_pb2.GetOpportunityRequest(opportunity_id=opportunity.id),
                                          metadata=BOB), grpc.StatusCode.NOT_FOUND)

        def quote_request(price_book_id=book.id, lines=LINES):
            return sales_pb2.CreateQuoteRequest(opportunity_id=opportunity.id, price_book_id=price_book_id,
                                                valid_until="2025-03-31", lines=lines)

        detail = await refused(stub.CreateQuote(quote_request(lines=[values_pb2.QuoteLineInput(
            sku="GONE", quantity="1", tax_rate="0")]), metadata=ANN), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("lines[0].sku:")
        detail = await refused(stub.CreateQuote(quote_request(lines=[values_pb2.QuoteLineInput(
            sku="WID-1", quantity="1", tax_rate="0", discount=values_pb2.Discount(percent="150"))]), metadata=ANN),
            grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("lines[0].discount.percent:")
        detail = await refused(stub.CreateQuote(quote_request(lines=[values_pb2.QuoteLineInput(
            sku="WID-1", quantity="1", tax_rate="0", discount=values_pb2.Discount(amount=money_pb2.Money(
                amount="1.00", currency_code="USD")))]), metadata=ANN), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("lines[0].discount.amount.currency:")
        detail = await refused(stub.CreateQuote(quote_request(price_book_id=usd.id), metadata=ANN),
                               grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("price_book_id:") and "USD" in detail
        assert stored() == before

        moved = (await stub.MoveOpportunityStage(sales_pb2.MoveOpportunityStageRequest(
            opportunity_id=opportunity.id, stage="negotiation", expected_version=1), metadata=ANN)).opportunity
        assert (moved.stage, moved.probability, len(moved.stage_history)) == ("negotiation", 75, 2)

        quote = (await stub.CreateQuote(quote_request(), metadata=ANN)).quote
        assert [(line.net.amount, line.tax.amount, line.gross.amount) for line in quote.lines] == \
            [("53.97", "10.79", "64.76"), ("295.00", "56.05", "351.05")]
        assert quote.lines[1].discount.amount == eur("5.00")
        assert (quote.totals.net, quote.totals.tax, quote.totals.gross) == (eur("348.97"), eur("66.84"),
                                                                           eur("415.81"))
        await refused(stub.AcceptQuote(sales_pb2.AcceptQuoteRequest(quote_id=quote.id), metadata=ANN),
                      grpc.StatusCode.FAILED_PRECONDITION)
        sent = (await stub.SendQuote(sales_pb2.SendQuoteRequest(quote_id=quote.id), metadata=ANN)).quote
        assert sent.status == "sent"
        revised = await stub.ReviseQuote(sales_pb2.ReviseQuoteRequest(quote_id=quote.id, lines=LINES[:1]),
                                         metadata=ANN)
        assert (revised.quote.number, revised.quote.previous_quote_id, revised.previous.status) == \
            (2, quote.id, "superseded")
        second = revised.quote
        await stub.SendQuote(sales_pb2.SendQuoteRequest(quote_id=second.id), metadata=ANN)
        accepted = await stub.AcceptQuote(sales_pb2.AcceptQuoteRequest(
            quote_id=second.id, win_opportunity=True, expected_version=2), metadata=ANN)
        assert accepted.quote.status == "accepted"
        won = accepted.opportunity
        assert (won.status, won.amount, won.won_quote_id, won.closed_on) == \
            ("won", eur("53.97"), second.id, "2025-03-10")

        before = stored()
        detail = await refused(stub.LoseOpportunity(sales_pb2.LoseOpportunityRequest(
            opportunity_id=opportunity.id, reason="late"), metadata=ANN), grpc.StatusCode.FAILED_PRECONDITION)
        assert "is won" in detail
        await refused(stub.WinOpportunity(sales_pb2.WinOpportunityRequest(opportunity_id=opportunity.id),
                                          metadata=ANN), grpc.StatusCode.FAILED_PRECONDITION)
        assert stored() == before

        listed = await stub.ListOpportunities(sales_pb2.ListOpportunitiesRequest(
            close_month="2025-06", stage="closed_won"), metadata=ANN)
        assert [o.id for o in listed.opportunities] == [opportunity.id]
        await refused(stub.ListOpportunities(sales_pb2.ListOpportunitiesRequest(page_token="bogus"), metadata=ANN),
                      grpc.StatusCode.INVALID_ARGUMENT)
        quotes = await stub.ListQuotes(sales_pb2.ListQuotesRequest(opportunity_id=opportunity.id), metadata=ANN)
        assert {(q.id, q.status) for q in quotes.quotes} == {(quote.id, "superseded"), (second.id, "accepted")}
        superseded = await stub.ListQuotes(sales_pb2.ListQuotesRequest(status="superseded", page_size=5),
                                           metadata=BOSS)
        assert [q.id for q in superseded.quotes] == [quote.id] and not superseded.next_page_token
        assert not (await stub.ListQuotes(sales_pb2.ListQuotesRequest(), metadata=BOB)).quotes
        detail = await refused(stub.ListQuotes(sales_pb2.ListQuotesRequest(status="lapsed"), metadata=ANN),
                               grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("status:")
        detail = await refused(stub.ListQuotes(sales_pb2.ListQuotesRequest(page_token="bogus"), metadata=ANN),
                               grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("page_token:")
        contract = (await stub.CreateContract(sales_pb2.CreateContractRequest(
            quote_id=second.id, starts_on="2025-04-01", ends_on="2026-03-31",
            payment_terms=values_pb2.PaymentTerms(instalments=2, first_due_on="2025-04-30", every_months=6)),
            metadata=ANN)).contract
        contracts = await stub.ListContracts(sales_pb2.ListContractsRequest(
            status="draft", ends_before="2026-04-01", account_id=account.id), metadata=ANN)
        assert [(c.id, len(c.payment_schedule)) for c in contracts.contracts] == [(contract.id, 2)]
        assert not (await stub.ListContracts(sales_pb2.ListContractsRequest(ends_after="2026-03-31"),
                                             metadata=ANN)).contracts
        assert not (await stub.ListContracts(sales_pb2.ListContractsRequest(), metadata=BOB)).contracts
        detail = await refused(stub.ListContracts(sales_pb2.ListContractsRequest(ends_before="soon"), metadata=ANN),
                               grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("ends_before:")
        products = await stub.ListProducts(sales_pb2.ListProductsRequest(page_size=1), metadata=ANN)
        assert [p.sku for p in products.products] == ["HRS"] and products.next_page_token
        books = await stub.ListPriceBooks(sales_pb2.ListPriceBooksRequest(currency_code="EUR"), metadata=ANN)
        assert [(b.id, b.entry_count, len(b.entries)) for b in books.price_books] == [(book.id, 2, 0)]
        got = (await stub.GetPriceBook(sales_pb2.GetPriceBookRequest(price_book_id=book.id), metadata=ANN))
        assert [e.unit_price.amount for e in got.price_book.entries] == ["19.99", "120.00"]

        configured = await stub.UpdatePipeline(sales_pb2.UpdatePipelineRequest(
            stages=[values_pb2.PipelineStage(name="discovery", probability=15),
                    values_pb2.PipelineStage(name="closed_won", probability=100),
                    values_pb2.PipelineStage(name="closed_lost", probability=0)], expected_version=0), metadata=BOSS)
        assert configured.pipeline.version == 1 and configured.pipeline.stages[0].name == "discovery"

    run(app, address, scenario)


def test_contract_amendments_and_order_lists_over_grpc(any_platform, address):
    app = SalesApplication(any_platform, clock=lambda: NOW)

    async def scenario(stub):
        account = (await stub.CreateAccount(sales_pb2.CreateAccountRequest(name="Acme"), metadata=ANN)).account
        opportunity = (await stub.CreateOpportunity(sales_pb2.CreateOpportunityRequest(
            name="Acme widgets", account_id=account.id, amount=eur("5000.00"), expected_close_on="2025-06-30"),
            metadata=ANN)).opportunity
        await stub.CreateProduct(sales_pb2.CreateProductRequest(sku="WID-1", name="Widget"), metadata=BOSS)
        await stub.CreateProduct(sales_pb2.CreateProductRequest(sku="HRS", name="Hours", decimal_quantities=True),
                                 metadata=BOSS)
        book = (await stub.CreatePriceBook(sales_pb2.CreatePriceBookRequest(
            name="EUR list", currency_code="EUR",
            entries=[values_pb2.PriceBookEntry(sku="WID-1", unit_price=eur("19.99")),
                     values_pb2.PriceBookEntry(sku="HRS", unit_price=eur("120.00"))]), metadata=BOSS)).price_book
        quote = (await stub.CreateQuote(sales_pb2.CreateQuoteRequest(
            opportunity_id=opportunity.id, price_book_id=book.id, valid_until="2025-03-31", lines=LINES),
            metadata=ANN)).quote  # gross 415.81 EUR
        await stub.SendQuote(sales_pb2.SendQuoteRequest(quote_id=quote.id), metadata=ANN)
        await stub.AcceptQuote(sales_pb2.AcceptQuoteRequest(quote_id=quote.id, win_opportunity=True), metadata=ANN)
        orders = (await stub.ListOrders(sales_pb2.ListOrdersRequest(account_id=account.id, status="placed"),
                                        metadata=ANN))
        assert [(o.opportunity_id, o.status, o.placed_on) for o in orders.orders] == [
            (opportunity.id, "placed", "2025-03-10")] and not orders.next_page_token
        assert not (await stub.ListOrders(sales_pb2.ListOrdersRequest(), metadata=BOB)).orders
        assert not (await stub.ListOrders(sales_pb2.ListOrdersRequest(placed_after="2025-03-10"), metadata=BOSS)).orders
        await refused(stub.ListOrders(sales_pb2.ListOrdersRequest(page_token="bogus"), metadata=ANN),
                      grpc.StatusCode.INVALID_ARGUMENT)
        contract = (await stub.CreateContract(sales_pb2.CreateContractRequest(
            quote_id=quote.id, starts_on="2025-04-01", ends_on="2026-03-31",
            payment_terms=values_pb2.PaymentTerms(instalments=2, first_due_on="2025-04-30", every_months=6)),
            metadata=ANN)).contract  # 207.91, 207.90

        def amend(**fields):
            return stub.AmendContract(sales_pb2.AmendContractRequest(contract_id=contract.id, **fields), metadata=ANN)

        detail = await refused(amend(reason="Later", ends_on="2026-06-30"), grpc.StatusCode.FAILED_PRECONDITION)
        assert "is draft; amending it needs it to be signed or active" in detail
        await stub.SubmitContract(sales_pb2.SubmitContractRequest(contract_id=contract.id), metadata=ANN)
        await stub.SignContract(sales_pb2.SignContractRequest(contract_id=contract.id), metadata=ANN)
        stored = app.recorder.max_notification_id()
        detail = await refused(amend(reason="Split", payment_schedule=[
            values_pb2.Instalment(instalment=1, due_on="2025-04-30", amount=eur("200.00")),
            values_pb2.Instalment(instalment=2, due_on="2025-10-30", amount=eur("200.00"))]),
            grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("payment_schedule: the instalments sum to 400.00 EUR")
        await refused(amend(ends_on="2026-06-30"), grpc.StatusCode.INVALID_ARGUMENT)  # no reason
        assert app.recorder.max_notification_id() == stored

        three = [values_pb2.Instalment(instalment=1, due_on="2025-04-30", amount=eur("100.00")),
                 values_pb2.Instalment(instalment=2, due_on="2025-07-30", amount=eur("100.00")),
                 values_pb2.Instalment(instalment=3, due_on="2025-10-30", amount=eur("215.81"))]
        done = await amend(reason="Three instalments", payment_schedule=three, ends_on="2026-06-30", request_id="a-1")
        assert (done.created, done.amendment.number, done.amendment.status, done.contract.ends_on) == (
            True, 1, "applied", "2026-06-30")
        assert [(i.instalment, i.amount.amount) for i in done.contract.payment_schedule] == [
            (1, "100.00"), (2, "100.00"), (3, "215.81")]
        again = await amend(reason="Three instalments", payment_schedule=three, ends_on="2026-06-30",
                            request_id="a-1")
        assert (again.created, again.amendment.number) == (False, 1)

        raised = await amend(reason="Upsell", total=eur("100315.81"), payment_schedule=[
            three[0], three[1], values_pb2.Instalment(instalment=3, due_on="2025-10-30", amount=eur("100115.81"))])
        assert (raised.amendment.status, raised.amendment.base_total) == ("pending_approval", eur("100315.81"))
        await refused(stub.ApproveContractAmendment(sales_pb2.ApproveContractAmendmentRequest(
            contract_id=contract.id, amendment=2), metadata=ANN), grpc.StatusCode.PERMISSION_DENIED)
        await refused(stub.RejectContractAmendment(sales_pb2.RejectContractAmendmentRequest(
            contract_id=contract.id, amendment=3, comment="No"), metadata=BOSS), grpc.StatusCode.NOT_FOUND)
        rejected = await stub.RejectContractAmendment(sales_pb2.RejectContractAmendmentRequest(
            contract_id=contract.id, amendment=2, comment="Not this quarter"), metadata=BOSS)
        assert (rejected.amendment.status, rejected.amendment.decided_by, rejected.contract.total) == (
            "rejected", "boss", eur("415.81"))
        await refused(stub.ApproveContractAmendment(sales_pb2.ApproveContractAmendmentRequest(
            contract_id=contract.id, amendment=2), metadata=BOSS), grpc.StatusCode.FAILED_PRECONDITION)
        got = (await stub.GetContract(sales_pb2.GetContractRequest(contract_id=contract.id), metadata=ANN)).contract
        assert [(a.number, a.status, len(a.payment_schedule)) for a in got.amendments] == [
            (1, "applied", 3), (2, "rejected", 3)]

    run(app, address, scenario)

"""Pipeline, opportunities, products, price books and quotes: the aggregates' rules and the
application's commands on eventsourcing's in-memory store (transitions, stage history,
final states, pricing from a book, quote lifecycle, expiry, revisions, visibility)."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

import crm_sales.permissions  # noqa: F401 - declares the resources the roles act on
from crm_runtime.auth import PermissionDenied, Principal
from crm_runtime.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidField, NotFound
from crm_runtime.money import Money
from crm_runtime.settings import PlatformSettings
from crm_sales.application import (
    AddProduct,
    ConfigurePipeline,
    DraftQuote,
    ListOpportunities,
    ListPriceBooks,
    ListProducts,
    OpenAccount,
    OpenOpportunity,
    PublishPriceBook,
    ReviseQuote,
    SalesApplication,
    WorkOpportunity,
    WorkQuote,
)
from crm_sales.opportunities import Opportunity, OpportunityDetails
from crm_sales.pipeline import DEFAULT_PIPELINE
from crm_sales.quotes import Quote, QuoteStatus

MEMORY = PlatformSettings(store="memory")
ANN = Principal("ann", frozenset({"sales_rep"}))
BOB = Principal("bob", frozenset({"sales_rep"}))
BOSS = Principal("boss", frozenset({"sales_manager"}))
ANALYST = Principal("ada", frozenset({"analyst"}))
TODAY = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
EUR = {"amount": "10000.00", "currency": "EUR"}


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock(TODAY)


@pytest.fixture
def sales(clock):
    return SalesApplication(MEMORY, clock=clock)


@pytest.fixture
def account(sales):
    return sales.open_account(OpenAccount(name="Acme", caller=ANN))[0]


def open_opportunity(sales, account, caller=ANN, **fields):
    values = {"name": "Acme renewal", "account_id": account.id, "amount": EUR,
              "expected_close_on": "2025-06-30", **fields}
    return sales.open_opportunity(OpenOpportunity(caller=caller, **values))[0]


def work(sales, opportunity, action, caller=ANN, **fields):
    return sales.work_opportunity(WorkOpportunity(opportunity.id, action, caller=caller, **fields))


@pytest.fixture
def catalogue(sales):
    """Two products (one sold by the hour) in a EUR book and a USD book."""
    sales.add_product(AddProduct("WID-1", "Widget", "hardware", caller=BOSS))
    sales.add_product(AddProduct("HRS", "Consulting hour", "services", decimal_quantities=True, caller=BOSS))
    sales.add_product(AddProduct("OLD", "Retired", "hardware", active=False, caller=BOSS))
    eur = sales.publish_price_book(PublishPriceBook("EUR list", "EUR", [
        {"sku": "WID-1", "unit_price": "19.99"},
        {"sku": "HRS", "unit_price": {"amount": "120.00", "currency": "EUR"}}], caller=BOSS))[0]
    usd = sales.publish_price_book(PublishPriceBook("USD list", "USD", [
        {"sku": "WID-1", "unit_price": "21.50"}], caller=BOSS))[0]
    return eur, usd


LINES = [{"sku": "WID-1", "quantity": "3", "discount": {"percent": "10"}, "tax_rate": "0.20"},
         {"sku": "HRS", "quantity": "2.5", "discount": {"amount": "5.00"}, "tax_rate": "0.19"}]


def draft(sales, opportunity, book, caller=ANN, lines=LINES, valid_until="2025-03-31", **fields):
    return sales.draft_quote(DraftQuote(opportunity.id, book.id, valid_until, lines, caller=caller, **fields))[0]


def quote_command(sales, quote, action, caller=ANN, **fields):
    return sales.work_quote(WorkQuote(quote.id, action, caller=caller, **fields))


def stored(sales) -> int:
    return sales.recorder.max_notification_id() or 0


# -- the pipeline --------------------------------------------------------------------------

def test_the_default_pipeline_until_a_manager_configures_one(sales):
    record = sales.get_pipeline()
    assert (record.pipeline, record.version) == (DEFAULT_PIPELINE, 0)
    stages = [{"name": "discovery", "probability": 15}, {"name": "demo", "probability": 40},
              {"name": "closed_won", "probability": 100}, {"name": "closed_lost", "probability": 0}]
    with pytest.raises(Conflict, match="version 0, not 3"):
        sales.configure_pipeline(ConfigurePipeline(stages, expected_version=3, caller=BOSS))
    configured = sales.configure_pipeline(ConfigurePipeline(stages, expected_version=0, caller=BOSS))
    assert (configured.pipeline.names, configured.version) == (("discovery", "demo", "closed_won", "closed_lost"), 1)
    assert sales.configure_pipeline(ConfigurePipeline(stages, caller=BOSS)).version == 1  # unchanged: no event
    with pytest.raises(InvalidField, match="closed_lost"):
        sales.configure_pipeline(ConfigurePipeline(stages[:3], caller=BOSS))
    with pytest.raises(InvalidField) as caught:
        sales.configure_pipeline(ConfigurePipeline([{"name": "Demo", "probability": 5}, *stages[2:]], caller=BOSS))
    assert caught.value.field == "stages[0].name"
    assert sales.get_pipeline().version == 1


# -- opportunities ------------------------------------------------------------------------

def test_an_opportunity_moves_through_stages_with_its_history(sales, account, clock):
    opportunity = open_opportunity(sales, account)
    assert (opportunity.stage, opportunity.probability, opportunity.status, opportunity.owner_id) == \
        ("prospecting", 10, "open", "ann")
    assert opportunity.amount == Money.of("10000.00", "EUR")
    clock.now += timedelta(days=1)
    moved = work(sales, opportunity, "stage", stage="proposal")
    assert (moved.stage, moved.probability, moved.version) == ("proposal", 50, 2)
    assert work(sales, opportunity, "stage", stage="proposal").version == 2  # already there: nothing recorded
    moved = work(sales, opportunity, "stage", stage="qualification", caller=BOSS)  # backwards is allowed
    history = [(entry.from_stage, entry.stage, entry.by) for entry in moved.stage_history]
    assert history == [(None, "prospecting", "ann"), ("prospecting", "proposal", "ann"),
                       ("proposal", "qualification", "boss")]
    times = [entry.at for entry in moved.stage_history]
    assert times == sorted(times) and times[0] == moved.created_at and times[-1] == moved.updated_at


def test_won_and_lost_are_final_and_a_stage_must_be_in_the_pipeline(sales, account):
    opportunity = open_opportunity(sales, account, stage="negotiation")
    with pytest.raises(InvalidField) as caught:
        work(sales, opportunity, "stage", stage="haggling")
    assert caught.value.field == "stage" and "not a stage of the pipeline" in caught.value.message
    with pytest.raises(InvalidField, match="needs a reason"):
        work(sales, opportunity, "stage", stage="closed_lost")
    with pytest.raises(InvalidField, match="reason: is required"):
        work(sales, opportunity, "lose", reason=" ")
    before = stored(sales)
    won = work(sales, opportunity, "win")
    assert (won.status, won.stage, won.probability, won.closed_on) == ("won", "closed_won", 100, "2025-03-10")
    for action, fields in [("stage", {"stage": "proposal"}), ("win", {}), ("lose", {"reason": "late"})]:
        with pytest.raises(FailedPrecondition, match="is won .closed_won.*won and lost are final"):
            work(sales, opportunity, action, **fields)
    # The win, and the owner's quarter started and counting the deal (crm_sales.earnings).
    assert stored(sales) == before + 3

    lost = work(sales, open_opportunity(sales, account), "lose", reason="Chose a competitor")
    assert (lost.status, lost.lost_reason, lost.probability) == ("lost", "Chose a competitor", 0)
    with pytest.raises(FailedPrecondition, match="is lost"):
        work(sales, lost, "win")


def test_opening_refuses_bad_input_and_nothing_is_stored(sales, account):
    before = stored(sales)
    for fields, field in [({"stage": "closed_won"}, "stage"), ({"stage": "nope"}, "stage"),
                          ({"amount": {"amount": 10, "currency": "EUR"}}, "amount.amount"),
                          ({"amount": {"amount": "1.005", "currency": "EUR"}}, "amount.amount"),
                          ({"amount": {"amount": "-1.00", "currency": "EUR"}}, "amount.amount"),
                          ({"amount": {"amount": "1.00", "currency": "eur"}}, "amount.currency"),
                          ({"expected_close_on": "30/06/2025"}, "expected_close_on"),
                          ({"name": ""}, "name"), ({"account_id": "nope"}, "account_id")]:
        with pytest.raises(InvalidField) as caught:
            open_opportunity(sales, account, **fields)
        assert caught.value.field == field, fields
    with pytest.raises(InvalidField, match="account_id"):  # bob cannot see ann's account
        open_opportunity(sales, account, caller=BOB)
    with pytest.raises(PermissionDenied):
        open_opportunity(sales, account, owner_id="bob")
    assert stored(sales) == before
    assert open_opportunity(sales, account, caller=BOSS, owner_id="bob").owner_id == "bob"


def test_stale_versions_and_idempotency_keys(sales, account):
    opportunity = open_opportunity(sales, account, request_key="o-1")
    assert open_opportunity(sales, account, request_key="o-1").id == opportunity.id
    with pytest.raises(Conflict, match="Idempotency-Key"):
        open_opportunity(sales, account, request_key="o-1", name="Another")
    with pytest.raises(Conflict, match="version 1, not 4"):
        work(sales, opportunity, "stage", stage="proposal", expected_version=4)
    assert work(sales, opportunity, "stage", stage="proposal", expected_version=1).version == 2


def test_a_rep_sees_their_own_opportunities_and_lists_filter_and_page(sales, account):
    mine = [open_opportunity(sales, account, name=f"Deal {i}", expected_close_on=f"2025-0{i}-15")
            for i in range(1, 6)]
    theirs = open_opportunity(sales, account, caller=BOSS, owner_id="bob", expected_close_on="2025-02-01")
    with pytest.raises(NotFound):
        sales.get_opportunity(theirs.id, Principal("carl", frozenset({"sales_rep"})))
    with pytest.raises(NotFound):
        sales.get_opportunity(mine[0].id, BOB)
    with pytest.raises(NotFound):
        work(sales, mine[0], "win", caller=BOB)
    assert sales.get_opportunity(theirs.id, BOB).owner_id == "bob"

    seen, cursor = [], None
    while True:
        page = sales.list_opportunities(ListOpportunities(limit=2, cursor=cursor, caller=ANN))
        seen += [o.name for o in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"Deal {i}" for i in range(1, 6)]  # by expected close date; not bob's
    everything = sales.list_opportunities(ListOpportunities(caller=BOSS)).items
    assert [o.expected_close_on for o in everything][:3] == ["2025-01-15", "2025-02-01", "2025-02-15"]
    feb = sales.list_opportunities(ListOpportunities(close_month="2025-02", caller=BOSS)).items
    assert {o.id for o in feb} == {mine[1].id, theirs.id}
    work(sales, mine[2], "stage", stage="proposal")
    assert [o.id for o in sales.list_opportunities(ListOpportunities(stage="proposal", caller=ANALYST)).items] == \
        [mine[2].id]
    assert [o.id for o in sales.list_opportunities(ListOpportunities(owner_id="bob", caller=BOSS)).items] == \
        [theirs.id]
    assert not sales.list_opportunities(ListOpportunities(owner_id="bob", caller=ANN)).items
    assert len(sales.list_opportunities(ListOpportunities(account_id=account.id, caller=BOSS)).items) == 6
    for request, field in [(ListOpportunities(close_month="2025-13"), "close_month"),
                           (ListOpportunities(stage="haggling"), "stage"),
                           (ListOpportunities(cursor="bogus"), "cursor"),
                           (ListOpportunities(limit=0), "limit")]:
        with pytest.raises(InvalidField) as caught:
            sales.list_opportunities(request)
        assert caught.value.field == field


def test_the_probability_shown_is_the_active_pipelines(sales, account):
    opportunity = open_opportunity(sales, account, stage="proposal")
    stages = [{"name": "proposal", "probability": 60}, {"name": "closed_won", "probability": 100},
              {"name": "closed_lost", "probability": 0}]
    sales.configure_pipeline(ConfigurePipeline(stages, caller=BOSS))
    assert sales.get_opportunity(opportunity.id).probability == 60
    with pytest.raises(InvalidField, match="prospecting"):
        open_opportunity(sales, account, stage="prospecting")  # no longer a stage
    assert open_opportunity(sales, account).stage == "proposal"  # the first open stage


def test_the_opportunity_aggregate_replays_its_history():
    details = OpportunityDetails("Deal", "a", Money.of("5.00", "EUR"), "2025-01-01", "ann", "prospecting")
    opportunity = Opportunity.open(details, DEFAULT_PIPELINE, uuid4(), "ann")
    opportunity.move_to(DEFAULT_PIPELINE, "proposal", "ann")
    opportunity.win(date(2025, 1, 2), "boss", Money.of("4.50", "EUR"), "q-1")
    events = opportunity.collect_events()
    copy = None
    for domain_event in events:
        copy = domain_event.mutate(copy)
    assert copy.stage_history == opportunity.stage_history and copy.amount == Money.of("4.50", "EUR")
    assert all(entry["at"] for entry in copy.stage_history)
    with pytest.raises(InvalidField, match="USD"):
        Opportunity.open(details, DEFAULT_PIPELINE, uuid4(), "ann").win(
            date(2025, 1, 2), "boss", Money.of("1.00", "USD"))


# -- products and price books -------------------------------------------------------------

def test_a_sku_names_one_product(sales):
    product, created = sales.add_product(AddProduct("WID-1", "Widget", "hardware", request_key="p-1", caller=BOSS))
    assert created and (product.active, product.decimal_quantities) == (True, False)
    again, created_again = sales.add_product(AddProduct("WID-1", "Widget", "hardware", request_key="p-1",
                                                        caller=BOSS))
    assert not created_again and again.id == product.id
    with pytest.raises(AlreadyExists, match="WID-1 exists"):
        sales.add_product(AddProduct("WID-1", "Widget", "hardware", caller=BOSS))
    with pytest.raises(AlreadyExists):
        sales.add_product(AddProduct("WID-1", "Other", request_key="p-1", caller=BOSS))
    for fields, field in [({"sku": "has space"}, "sku"), ({"sku": ""}, "sku"), ({"name": None}, "name"),
                          ({"active": "yes"}, "active")]:
        with pytest.raises(InvalidField) as caught:
            sales.add_product(AddProduct(**{"sku": "X-1", "name": "X", **fields}))
        assert caught.value.field == field
    sales.add_product(AddProduct("A-1", "A", "services", active=False))
    assert [p.sku for p in sales.list_products(ListProducts()).items] == ["A-1", "WID-1"]
    assert [p.sku for p in sales.list_products(ListProducts(active=True)).items] == ["WID-1"]
    assert [p.sku for p in sales.list_products(ListProducts(family="services")).items] == ["A-1"]
    first = sales.list_products(ListProducts(limit=1))
    assert [p.sku for p in sales.list_products(ListProducts(cursor=first.next_cursor)).items] == ["WID-1"]


def test_price_books_hold_active_products_in_their_currency(sales, catalogue):
    eur, usd = catalogue
    assert eur.entries == [("WID-1", Money.of("19.99", "EUR")), ("HRS", Money.of("120.00", "EUR"))]
    before = stored(sales)
    for entries, field in [([{"sku": "NOPE", "unit_price": "1.00"}], "entries[0].sku"),
                           ([{"sku": "WID-1", "unit_price": "1.00"}, {"sku": "OLD", "unit_price": "1.00"}],
                            "entries[1].sku"),
                           ([{"sku": "WID-1", "unit_price": {"amount": "1.00", "currency": "USD"}}],
                            "entries[0].unit_price.currency"),
                           ([{"sku": "WID-1", "unit_price": "1.001"}], "entries[0].unit_price.amount"),
                           ([{"sku": "WID-1", "unit_price": "1"}, {"sku": "WID-1", "unit_price": "2"}],
                            "entries[1].sku"),
                           ([], "entries")]:
        with pytest.raises(InvalidField) as caught:
            sales.publish_price_book(PublishPriceBook("Bad", "EUR", entries, caller=BOSS))
        assert caught.value.field == field, entries
    with pytest.raises(InvalidField) as caught:
        sales.publish_price_book(PublishPriceBook("Bad", "XAU", [{"sku": "WID-1", "unit_price": "1"}]))
    assert caught.value.field == "currency"
    assert stored(sales) == before
    assert [b.name for b in sales.list_price_books(ListPriceBooks()).items] == ["EUR list", "USD list"]
    assert [b.name for b in sales.list_price_books(ListPriceBooks(currency="USD")).items] == ["USD list"]
    assert sales.get_price_book(usd.id).entries == [("WID-1", Money.of("21.50", "USD"))]


# -- quotes ------------------------------------------------------------------------------

def test_a_quote_is_priced_to_the_cent_from_the_book(sales, account, catalogue):
    eur, _ = catalogue
    quote = draft(sales, open_opportunity(sales, account), eur)
    first, second = quote.lines
    # 3 x 19.99 = 59.97, less 10% = 53.973 -> 53.97; tax 20% 10.794 -> 10.79
    assert (first.unit_price, first.net, first.tax, first.gross) == (
        Money.of("19.99", "EUR"), Money.of("53.97", "EUR"), Money.of("10.79", "EUR"), Money.of("64.76", "EUR"))
    assert (first.list_amount, first.discount_amount) == (Money.of("59.97", "EUR"), Money.of("6.00", "EUR"))
    # 2.5 hours x 120.00 = 300.00, less 5.00 = 295.00; tax 19% = 56.05
    assert (second.net, second.tax, second.gross) == (
        Money.of("295.00", "EUR"), Money.of("56.05", "EUR"), Money.of("351.05", "EUR"))
    assert quote.totals == {"net": Money.of("348.97", "EUR"), "tax": Money.of("66.84", "EUR"),
                            "gross": Money.of("415.81", "EUR")}
    assert (quote.status, quote.number, quote.currency, quote.owner_id) == ("draft", 1, "EUR", "ann")


def test_bad_quotes_name_the_line_and_store_nothing(sales, account, catalogue):
    eur, usd = catalogue
    opportunity = open_opportunity(sales, account)
    before = stored(sales)
    line = LINES[0]
    for lines, field in [([{**line, "sku": "GONE"}], "lines[0].sku"),
                         ([LINES[1], {**line, "discount": {"percent": "101"}}], "lines[1].discount.percent"),
                         ([{**line, "discount": {"amount": "60.00"}}], "lines[0].discount.amount"),
                         ([{**line, "discount": {"amount": {"amount": "1.00", "currency": "USD"}}}],
                          "lines[0].discount.amount.currency"),
                         ([{**line, "quantity": "-1"}], "lines[0].quantity"),
                         ([{**line, "quantity": "1.5"}], "lines[0].quantity"),  # widgets come whole
                         ([{**line, "tax_rate": "-0.1"}], "lines[0].tax_rate"),
                         ([], "lines")]:
        with pytest.raises(InvalidField) as caught:
            draft(sales, opportunity, eur, lines=lines)
        assert caught.value.field == field, lines
    with pytest.raises(InvalidField) as caught:
        draft(sales, opportunity, usd, lines=[line])
    assert caught.value.field == "price_book_id" and "USD" in caught.value.message
    with pytest.raises(InvalidField, match="valid_until"):
        draft(sales, opportunity, eur, valid_until="2025-03-09")
    with pytest.raises(InvalidField, match="opportunity_id"):
        draft(sales, opportunity, eur, caller=BOB)
    assert stored(sales) == before


def test_send_accept_and_win_in_one_transaction(sales, account, catalogue):
    eur, _ = catalogue
    opportunity = open_opportunity(sales, account)
    quote = draft(sales, opportunity, eur)
    with pytest.raises(FailedPrecondition, match="is draft; accept needs it to be sent"):
        quote_command(sales, quote, "accept")
    sent = quote_command(sales, quote, "send").quote
    assert sent.status == "sent"
    with pytest.raises(FailedPrecondition, match="is sent; send needs it to be draft"):
        quote_command(sales, quote, "send")
    with pytest.raises(PermissionDenied):
        quote_command(sales, quote, "accept", caller=Principal("svc", frozenset({"analyst"})),
                      win_opportunity=True)
    with pytest.raises(Conflict):
        quote_command(sales, quote, "accept", expected_version=1, win_opportunity=True)
    result = quote_command(sales, quote, "accept", win_opportunity=True)
    assert result.quote.status == "accepted"
    won = result.opportunity
    assert (won.status, won.won_quote_id, won.amount) == ("won", quote.id, Money.of("348.97", "EUR"))
    assert sales.get_opportunity(opportunity.id).status == "won"
    with pytest.raises(FailedPrecondition, match="accepted"):
        quote_command(sales, quote, "reject")
    # A quote of a won opportunity cannot be drafted, sent or accepted.
    with pytest.raises(FailedPrecondition, match="is won"):
        draft(sales, opportunity, eur)


def test_accepting_a_quote_of_a_closed_opportunity_stores_nothing(sales, account, catalogue):
    eur, _ = catalogue
    opportunity = open_opportunity(sales, account)
    quote = draft(sales, opportunity, eur)
    quote_command(sales, quote, "send")
    work(sales, opportunity, "lose", reason="No budget")
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="is lost"):
        quote_command(sales, quote, "accept", win_opportunity=True)
    assert stored(sales) == before
    assert sales.get_quote(quote.id).status == "sent"


def test_a_quote_past_valid_until_shows_expired_and_cannot_be_accepted(sales, account, catalogue, clock):
    eur, _ = catalogue
    quote = draft(sales, open_opportunity(sales, account), eur, valid_until="2025-03-11")
    quote_command(sales, quote, "send")
    clock.now = datetime(2025, 3, 11, 23, 59, tzinfo=UTC)
    assert sales.get_quote(quote.id).status == "sent"  # the last valid day
    clock.now = datetime(2025, 3, 12, 0, 0, tzinfo=UTC)
    assert sales.get_quote(quote.id).status == "expired"
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match=r"is expired \(valid until 2025-03-11\); accept needs it"):
        quote_command(sales, quote, "accept", win_opportunity=True)
    assert stored(sales) == before
    assert quote_command(sales, quote, "reject", reason="Too late").quote.status == "rejected"


def test_revising_makes_the_next_version_and_supersedes_the_previous(sales, account, catalogue, clock):
    eur, _ = catalogue
    opportunity = open_opportunity(sales, account)
    first = draft(sales, opportunity, eur, valid_until="2025-03-11")
    quote_command(sales, first, "send")
    clock.now = datetime(2025, 3, 20, tzinfo=UTC)  # expired
    with pytest.raises(InvalidField, match="valid_until: 2025-03-11 is in the past"):
        sales.revise_quote(ReviseQuote(first.id, LINES[:1]))
    revision = sales.revise_quote(ReviseQuote(first.id, LINES[:1], valid_until="2025-04-30", request_key="r-1",
                                              caller=ANN))
    second, previous = revision.quote, revision.previous
    assert (second.number, second.previous_quote_id, second.status, second.valid_until) == \
        (2, first.id, "draft", "2025-04-30")
    assert second.totals["net"] == Money.of("53.97", "EUR")
    assert (previous.status, previous.next_quote_id) == ("superseded", second.id)
    repeat = sales.revise_quote(ReviseQuote(first.id, LINES[:1], valid_until="2025-04-30", request_key="r-1",
                                            caller=ANN))
    assert not repeat.created and repeat.quote.id == second.id
    before = stored(sales)
    for command in (ReviseQuote(first.id, LINES, valid_until="2025-04-30", caller=ANN),
                    WorkQuote(first.id, "send", caller=ANN)):
        with pytest.raises(FailedPrecondition, match="is superseded"):
            (sales.revise_quote if isinstance(command, ReviseQuote) else sales.work_quote)(command)
    assert stored(sales) == before
    third = sales.revise_quote(ReviseQuote(second.id, LINES, caller=ANN)).quote
    assert (third.number, third.valid_until) == (3, "2025-04-30")


def test_quotes_belong_to_the_opportunity_owner(sales, account, catalogue):
    eur, _ = catalogue
    quote = draft(sales, open_opportunity(sales, account), eur, request_key="q-1")
    assert draft(sales, open_opportunity(sales, account), eur, request_key="q-2").id != quote.id
    with pytest.raises(NotFound):
        sales.get_quote(quote.id, BOB)
    with pytest.raises(NotFound):
        quote_command(sales, quote, "send", caller=BOB)
    assert sales.get_quote(quote.id, BOSS).id == quote.id


def test_the_quote_aggregate_keeps_its_status_rules():
    from crm_sales.pricing import parse_lines, price_quote

    priced = price_quote(parse_lines(LINES[:1], "EUR"), {"WID-1": Money.of("19.99", "EUR")}, "EUR")
    quote = Quote.draft(uuid4(), "o", "a", "ann", "b", "2025-01-31", priced, "ann")
    assert quote.status_on(date(2025, 1, 31)) == QuoteStatus.DRAFT
    assert quote.status_on(date(2025, 2, 1)) == QuoteStatus.EXPIRED
    with pytest.raises(FailedPrecondition, match="is expired"):
        quote.send(date(2025, 2, 1), "ann")
    quote.send(date(2025, 1, 2), "ann")
    quote.reject(date(2025, 1, 3), None, "ann")
    with pytest.raises(FailedPrecondition, match="is rejected; revise"):
        quote.check_revisable(date(2025, 1, 3))
    assert [type(e).__name__ for e in quote.collect_events()] == ["Drafted", "Sent", "Rejected"]

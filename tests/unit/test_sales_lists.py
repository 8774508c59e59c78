"""Quote and contract lists on eventsourcing's in-memory store: filters, the status as the
date shows it (expired), record visibility, cursor pages, bad requests naming the field,
and an index rebuilt (or opened without the new tables) giving the same answer."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from crm_runtime.errors import InvalidField
from crm_sales.application import DraftQuote, ListContracts, ListQuotes, OpenAccount, WorkQuote
from crm_sales.views import contracts, quotes
from tests.unit import test_sales_contracts as contracts_suite
from tests.unit.test_sales_contracts import ANN, BOB, BOSS, accepted_quote, act, active_contract, contract_for

# The contracts suite's fixtures: a sales application on the in-memory store, its clock, ann's account.
clock, sales, account = contracts_suite.clock, contracts_suite.sales, contracts_suite.account

LINES = [{"sku": "WID-1", "quantity": "1", "tax_rate": "0"}]


def quote_for(sales, account, valid_until, send=False, caller=ANN):
    accepted = accepted_quote(sales, account, caller=caller)  # an opportunity and a book
    quote = sales.draft_quote(DraftQuote(accepted.quote.opportunity_id, accepted.quote.price_book_id, valid_until,
                                         LINES, caller=caller))[0]
    if send:
        quote = sales.work_quote(WorkQuote(quote.id, "send", caller=caller)).quote
    return quote


def ids(page):
    return [item.id for item in page.items]


def test_quotes_list_by_valid_until_with_filters_and_the_status_the_date_shows(sales, account, clock):
    accepted = accepted_quote(sales, account).quote  # valid until 2025-05-31, accepted
    soon = quote_for(sales, account, "2025-05-12", send=True)
    later = quote_for(sales, account, "2025-05-20")
    bobs = quote_for(sales, sales.open_account(OpenAccount(name="Bob's", caller=BOB))[0], "2025-05-11", caller=BOB)
    listed = sales.list_quotes(ListQuotes(caller=ANN))
    # ann's quotes (two per helper call: the accepted one and the new one), by valid_until
    assert [q.valid_until for q in listed.items] == sorted(q.valid_until for q in listed.items)
    assert {soon.id, later.id, accepted.id} <= set(ids(listed)) and bobs.id not in ids(listed)
    assert bobs.id in ids(sales.list_quotes(ListQuotes(caller=BOSS)))
    assert ids(sales.list_quotes(ListQuotes(owner_id="bob", caller=ANN))) == []
    of_deal = sales.list_quotes(ListQuotes(opportunity_id=soon.opportunity_id, caller=ANN)).items
    assert [(q.id, q.status) for q in of_deal][0] == (soon.id, "sent") and len(of_deal) == 2
    assert set(ids(sales.list_quotes(ListQuotes(status="sent", caller=ANN)))) == {soon.id}
    assert set(ids(sales.list_quotes(ListQuotes(status="draft", caller=ANN)))) == {later.id}
    assert ids(sales.list_quotes(ListQuotes(valid_until_after="2025-05-12", valid_until_before="2025-05-31",
                                            caller=ANN))) == [later.id]

    clock.now = datetime(2025, 5, 15, 9, tzinfo=UTC)  # soon lapsed: it shows expired
    assert ids(sales.list_quotes(ListQuotes(status="sent", caller=ANN))) == []
    expired = sales.list_quotes(ListQuotes(status="expired", caller=ANN))
    assert ids(expired) == [soon.id] and expired.items[0].status == "expired"
    assert set(ids(sales.list_quotes(ListQuotes(status="expired", caller=BOSS)))) == {soon.id, bobs.id}
    assert set(ids(sales.list_quotes(ListQuotes(status="draft", caller=ANN)))) == {later.id}


def test_quote_pages_follow_the_cursor(sales, account):
    made = [quote_for(sales, account, f"2025-05-{day}") for day in (20, 25, 20)]
    seen, cursor = [], None
    while True:
        page = sales.list_quotes(ListQuotes(limit=2, cursor=cursor, status="draft", caller=ANN))
        seen += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(q.id for q in made) and len(seen) == 3
    assert [q.valid_until for q in sales.list_quotes(ListQuotes(status="draft", caller=ANN)).items] == [
        "2025-05-20", "2025-05-20", "2025-05-25"]


def test_contracts_list_by_end_with_renewal_filters_and_visibility(sales, account, clock):
    year = active_contract(sales, account, ends_on="2025-12-31")
    long = active_contract(sales, account, ends_on="2026-05-31")
    draft = contract_for(sales, accepted_quote(sales, account).quote, ends_on="2025-09-30")
    ended = contract_for(sales, accepted_quote(sales, account).quote, ends_on="2026-06-30")
    act(sales, ended, "terminate", reason="No budget")
    listed = sales.list_contracts(ListContracts(caller=ANN))
    assert ids(listed) == [draft.id, year.id, long.id, ended.id]  # by ends_on
    assert listed.items[0].payment_schedule  # the whole record
    assert ids(sales.list_contracts(ListContracts(caller=BOB))) == []
    assert ids(sales.list_contracts(ListContracts(status="active", ends_before="2026-01-01", caller=ANN))) == [
        year.id]
    assert ids(sales.list_contracts(ListContracts(ends_after="2025-12-31", caller=BOSS))) == [long.id, ended.id]
    assert ids(sales.list_contracts(ListContracts(status="terminated", caller=ANN))) == [ended.id]
    assert ids(sales.list_contracts(ListContracts(account_id=str(account.id), status="draft", caller=ANN))) == [
        draft.id]
    assert ids(sales.list_contracts(ListContracts(owner_id="ann", caller=BOSS))) == ids(listed)

    clock.now = datetime(2026, 1, 2, 9, tzinfo=UTC)  # the first active contract ended: it shows expired
    assert ids(sales.list_contracts(ListContracts(status="active", caller=ANN))) == [long.id]
    assert ids(sales.list_contracts(ListContracts(status="expired", caller=ANN))) == [year.id]
    act(sales, year, "expire", caller=BOSS)  # recorded: still listed as expired
    assert ids(sales.list_contracts(ListContracts(status="expired", caller=ANN))) == [year.id]
    page = sales.list_contracts(ListContracts(limit=2, caller=ANN))
    rest = sales.list_contracts(ListContracts(limit=2, cursor=page.next_cursor, caller=ANN))
    assert ids(page) + ids(rest) == ids(listed) and rest.next_cursor is None


@pytest.mark.parametrize(("lister", "request_", "field"), [
    ("list_quotes", ListQuotes(status="lapsed"), "status"),
    ("list_quotes", ListQuotes(valid_until_before="31/05/2025"), "valid_until_before"),
    ("list_quotes", ListQuotes(valid_until_after="2025-02-30"), "valid_until_after"),
    ("list_quotes", ListQuotes(opportunity_id="nope"), "opportunity_id"),
    ("list_quotes", ListQuotes(limit=0), "limit"),
    ("list_quotes", ListQuotes(cursor="garbage"), "cursor"),
    ("list_contracts", ListContracts(status="ended"), "status"),
    ("list_contracts", ListContracts(ends_before="tomorrow"), "ends_before"),
    ("list_contracts", ListContracts(account_id="x"), "account_id"),
    ("list_contracts", ListContracts(limit=201), "limit"),
])
def test_bad_list_requests_name_the_field(sales, lister, request_, field):
    with pytest.raises(InvalidField) as caught:
        getattr(sales, lister)(request_)
    assert caught.value.field == field


def test_a_quote_cursor_is_refused_by_the_contract_list(sales, account):
    for day in (20, 21):
        quote_for(sales, account, f"2025-05-{day}")
    cursor = sales.list_quotes(ListQuotes(limit=1, caller=ANN)).next_cursor
    with pytest.raises(InvalidField, match="cursor"):
        sales.list_contracts(ListContracts(cursor=cursor, caller=ANN))


def test_the_index_rebuilds_and_an_index_without_the_new_tables_is_rebuilt_when_opened(sales, account):
    active_contract(sales, account)
    quote_for(sales, account, "2025-05-20", send=True)
    before = (sales.list_quotes(ListQuotes(caller=BOSS)), sales.list_contracts(ListContracts(caller=BOSS)))
    sales.views.rebuild()
    assert (sales.list_quotes(ListQuotes(caller=BOSS)), sales.list_contracts(ListContracts(caller=BOSS))) == before
    # An index built by a release without these tables: its position is past their events.
    with sales.views.engine.begin() as conn:
        for table in (quotes, contracts):
            conn.execute(text(f"DROP TABLE {table.name}"))
    sales.views.create_tables()
    assert (sales.list_quotes(ListQuotes(caller=BOSS)), sales.list_contracts(ListContracts(caller=BOSS))) == before

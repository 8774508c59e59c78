"""The FX table, contracts, orders, loyalty and commissions: the aggregates' rules and the
application's commands on eventsourcing's in-memory store (every contract transition,
approval by role and the refusal of one's own contract, thresholds through FX, payments,
loyalty never below zero, commission tiers by quarter-to-date attainment)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

import crm_sales.permissions  # noqa: F401 - declares the resources the roles act on
from crm_runtime.auth import PermissionDenied, Principal
from crm_runtime.errors import Conflict, FailedPrecondition, InvalidField, NotFound
from crm_runtime.money import CurrencyMismatch, Money
from crm_runtime.settings import PlatformSettings
from crm_sales.application import (
    AddProduct,
    DraftContract,
    DraftQuote,
    ListCommissions,
    OpenAccount,
    OpenOpportunity,
    PublishPriceBook,
    RecordPayment,
    RedeemPoints,
    RenewContract,
    SalesApplication,
    SetCommissionPlan,
    SetFxRates,
    SetLoyaltyRule,
    WorkContract,
    WorkOpportunity,
    WorkQuote,
)
from crm_sales.contracts import Contract, ContractStatus
from crm_sales.earnings import period_of, quarter_id_for
from crm_sales.fx import Rates, parse_rates
from crm_sales.orders import LoyaltyAccount, Order, order_id_for
from crm_sales.payment_schedule import PaymentTerms

MEMORY = PlatformSettings(store="memory")
ANN = Principal("ann", frozenset({"sales_rep"}))
BOB = Principal("bob", frozenset({"sales_rep"}))
BOSS = Principal("boss", frozenset({"sales_manager"}))
CHIEF = Principal("chief", frozenset({"admin"}))
SERVICE = Principal("service:workflow", frozenset({"service"}))
TODAY = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
TERMS = {"instalments": 3, "first_due_on": "2025-06-30", "every_months": 1}


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
    app = SalesApplication(MEMORY, clock=clock)
    app.add_product(AddProduct("WID-1", "Widget", "hardware", caller=BOSS))
    app.add_product(AddProduct("SVC", "Support year", "services", caller=BOSS))
    return app


@pytest.fixture
def account(sales):
    return sales.open_account(OpenAccount(name="Acme", tier="strategic", caller=ANN))[0]


def book(sales, currency="EUR", widget="1000.00", service="500.00"):
    return sales.publish_price_book(PublishPriceBook(f"{currency} list", currency, [
        {"sku": "WID-1", "unit_price": widget}, {"sku": "SVC", "unit_price": service}], caller=BOSS))[0]


def accepted_quote(sales, account, currency="EUR", widgets="3", services="2", win=False, caller=ANN, **prices):
    opportunity = sales.open_opportunity(OpenOpportunity(
        "Deal", account.id, {"amount": "1.00", "currency": currency}, "2025-06-30", caller=caller))[0]
    lines = [{"sku": "WID-1", "quantity": widgets, "tax_rate": "0.20"},
             {"sku": "SVC", "quantity": services, "tax_rate": "0"}]
    quote = sales.draft_quote(DraftQuote(opportunity.id, book(sales, currency, **prices).id, "2025-05-31", lines,
                                         caller=caller))[0]
    sales.work_quote(WorkQuote(quote.id, "send", caller=caller))
    return sales.work_quote(WorkQuote(quote.id, "accept", win_opportunity=win, caller=caller))


def contract_for(sales, quote, caller=ANN, terms=TERMS, **fields):
    values = {"starts_on": "2025-06-01", "ends_on": "2026-05-31", "payment_terms": terms, **fields}
    return sales.draft_contract(DraftContract(quote.id, caller=caller, **values))[0]


def act(sales, contract, action, caller=ANN, **fields):
    return sales.work_contract(WorkContract(contract.id, action, caller=caller, **fields))


def stored(sales) -> int:
    return sales.recorder.max_notification_id() or 0


def events_of(sales, aggregate_id) -> list:
    return list(sales.events.get(UUID(str(aggregate_id))))


# -- the FX table ----------------------------------------------------------------------------

def test_fx_rates_answer_the_latest_rate_on_or_before_a_date(sales):
    assert sales.get_fx_rates("2025-01-01").rates == []
    sales.set_fx_rates(SetFxRates("EUR", [{"currency": "USD", "rate": "1.10", "on": "2025-01-01"},
                                          {"currency": "USD", "rate": "1.20", "on": "2025-03-01"},
                                          {"currency": "JPY", "rate": "160", "on": "2025-02-01"}], caller=BOSS))
    on_feb = sales.get_fx_rates("2025-02-15")
    assert [(r.currency, r.rate, r.on.isoformat()) for r in on_feb.rates] == [
        ("JPY", Decimal(160), "2025-02-01"), ("USD", Decimal("1.10"), "2025-01-01")]
    assert [r.currency for r in sales.get_fx_rates("2025-01-15").rates] == ["USD"]
    # A later PUT replaces a currency's rate on the same date and keeps the others.
    record = sales.set_fx_rates(SetFxRates("EUR", [{"currency": "USD", "rate": "1.25", "on": "2025-03-01"}],
                                           caller=BOSS))
    assert record.version == 2
    assert sales.fx_rates().rate_on("USD", date(2025, 12, 1)) == Decimal("1.25")
    assert sales.fx_rates().rate_on("USD", date(2025, 2, 1)) == Decimal("1.10")


def test_fx_conversion_divides_by_the_rate_rounding_half_even_once():
    rates = Rates.of("EUR", {"USD": [["2025-01-01", "1.0850"]], "JPY": [["2025-01-01", "160"]]})
    assert rates.to_base(Money.of("108.50", "USD"), date(2025, 1, 2)) == Money.of("100.00", "EUR")
    assert rates.to_base(Money.of("1", "JPY"), date(2025, 1, 2)) == Money.of("0.01", "EUR")  # 0.00625
    assert rates.to_base(Money.of("2", "JPY"), date(2025, 1, 2)) == Money.of("0.01", "EUR")  # 0.0125: even
    assert rates.to_base(Money.of("12.34", "EUR"), date(2000, 1, 1)) == Money.of("12.34", "EUR")
    with pytest.raises(FailedPrecondition, match="no USD rate on or before 2024-12-31"):
        rates.to_base(Money.of("1.00", "USD"), date(2024, 12, 31))
    with pytest.raises(FailedPrecondition, match="no GBP rate"):
        rates.to_base(Money.of("1.00", "GBP"), date(2025, 6, 1))


@pytest.mark.parametrize(("rates", "field"), [
    ([{"currency": "EUR", "rate": "1", "on": "2025-01-01"}], "rates[0].currency"),
    ([{"currency": "USD", "rate": "0", "on": "2025-01-01"}], "rates[0].rate"),
    ([{"currency": "USD", "rate": 1.1, "on": "2025-01-01"}], "rates[0].rate"),
    ([{"currency": "USD", "rate": "1.1", "on": "2025-13-01"}], "rates[0].on"),
    ([{"currency": "usd", "rate": "1.1", "on": "2025-01-01"}], "rates[0].currency"),
    ([{"currency": "USD", "rate": "1.1", "on": "2025-01-01"}] * 2, "rates[1]"),
    ([], "rates"),
])
def test_bad_rates_are_refused_naming_the_field(rates, field):
    with pytest.raises(InvalidField) as caught:
        parse_rates("EUR", rates)
    assert caught.value.field == field


def test_only_the_configured_base_and_a_manager_set_rates(sales):
    before = stored(sales)
    with pytest.raises(CurrencyMismatch):
        sales.set_fx_rates(SetFxRates("USD", [{"currency": "EUR", "rate": "0.9", "on": "2025-01-01"}], caller=BOSS))
    assert stored(sales) == before


# -- contracts: drafting ----------------------------------------------------------------------

def test_a_contract_from_an_accepted_quote_has_a_schedule_summing_to_the_gross_total(sales, account):
    quote = accepted_quote(sales, account).quote  # 3 x 1000 + 20% tax, 2 x 500: gross 4600.00
    contract = contract_for(sales, quote, terms={"instalments": 3, "first_due_on": "2025-01-31",
                                                 "every_months": 1})
    assert contract.status == "draft"
    assert contract.total == Money.of("4600.00", "EUR")
    assert [(i.due_on, str(i.amount.amount)) for i in contract.payment_schedule] == [
        ("2025-01-31", "1533.34"), ("2025-02-28", "1533.33"), ("2025-03-31", "1533.33")]
    assert sum(i.amount.amount for i in contract.payment_schedule) == contract.total.amount
    assert (contract.account_id, contract.owner_id, contract.quote_id) == (account.id, "ann", quote.id)


def test_a_contract_needs_an_accepted_quote_and_a_sane_term(sales, account):
    opportunity = sales.open_opportunity(OpenOpportunity(
        "Deal", account.id, {"amount": "1.00", "currency": "EUR"}, "2025-06-30", caller=ANN))[0]
    draft = sales.draft_quote(DraftQuote(opportunity.id, book(sales).id, "2025-05-31",
                                         [{"sku": "WID-1", "quantity": "1", "tax_rate": "0"}], caller=ANN))[0]
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="is draft; a contract needs it accepted"):
        contract_for(sales, draft)
    quote = accepted_quote(sales, account).quote
    before = stored(sales)
    with pytest.raises(InvalidField) as caught:
        contract_for(sales, quote, ends_on="2025-05-01")
    assert caught.value.field == "ends_on"
    with pytest.raises(InvalidField) as caught:
        contract_for(sales, quote, terms={"instalments": 0, "first_due_on": "2025-06-01"})
    assert caught.value.field == "payment_terms.instalments"
    with pytest.raises(InvalidField) as caught:
        contract_for(sales, quote, caller=BOB)  # not Bob's quote: as if missing
    assert caught.value.field == "quote_id"
    assert stored(sales) == before


def test_the_same_idempotency_key_drafts_once(sales, account):
    quote = accepted_quote(sales, account).quote
    first, created = sales.draft_contract(DraftContract(quote.id, "2025-06-01", "2026-05-31", TERMS,
                                                        request_key="c-1", caller=ANN))
    again, created_again = sales.draft_contract(DraftContract(quote.id, "2025-06-01", "2026-05-31", TERMS,
                                                              request_key="c-1", caller=ANN))
    assert (created, created_again, again.id) == (True, False, first.id)
    with pytest.raises(Conflict):
        sales.draft_contract(DraftContract(quote.id, "2025-06-01", "2026-06-30", TERMS, request_key="c-1",
                                           caller=ANN))


# -- contracts: approval ----------------------------------------------------------------------

def test_below_the_threshold_submit_approves_at_once(sales, account):
    contract = contract_for(sales, accepted_quote(sales, account).quote)
    submitted = act(sales, contract, "submit")
    assert (submitted.status, submitted.approval_required, submitted.approved_by) == ("approved", False, None)
    assert submitted.base_total == Money.of("4600.00", "EUR")
    events = [type(e).__name__ for e in events_of(sales, submitted.id)]
    assert events[-2:] == ["Submitted", "Approved"]


def test_above_the_threshold_a_manager_approves_never_the_owner_or_submitter(sales, account):
    quote = accepted_quote(sales, account, widgets="100").quote  # 100 x 1000 x 1.2 + 1000 = 121,000 EUR
    contract = contract_for(sales, quote)
    pending = act(sales, contract, "submit")
    assert (pending.status, pending.approval_required) == ("pending_approval", True)
    before = stored(sales)
    with pytest.raises(PermissionDenied):
        act(sales, contract, "approve", caller=ANN)  # a rep has no contract_approvals:edit
    with pytest.raises(PermissionDenied):
        act(sales, contract, "approve", caller=SERVICE)
    with pytest.raises(FailedPrecondition, match="is pending_approval; signing it needs it to be approved"):
        act(sales, contract, "sign")
    assert stored(sales) == before
    approved = act(sales, contract, "approve", caller=BOSS, comment="Fine by me")
    assert (approved.status, approved.approved_by, approved.approval_comment) == ("approved", "boss", "Fine by me")


def test_a_manager_never_approves_a_contract_they_own_or_submitted(sales):
    account = sales.open_account(OpenAccount(name="Boss's own", caller=BOSS))[0]
    contract = contract_for(sales, accepted_quote(sales, account, widgets="100", caller=BOSS).quote, caller=BOSS)
    act(sales, contract, "submit", caller=BOSS)
    before = stored(sales)
    for action in ("approve", "reject"):
        with pytest.raises(FailedPrecondition, match="boss own contract"):
            act(sales, contract, action, caller=BOSS, comment="mine")
    assert stored(sales) == before
    # A manager who submits a rep's contract may not approve it either.
    rep_account = sales.open_account(OpenAccount(name="Acme", caller=ANN))[0]
    other = contract_for(sales, accepted_quote(sales, rep_account, widgets="100").quote)
    act(sales, other, "submit", caller=BOSS)
    with pytest.raises(FailedPrecondition, match="boss submitted contract"):
        act(sales, other, "approve", caller=BOSS)
    assert act(sales, other, "approve", caller=CHIEF).status == "approved"


def test_the_threshold_compares_the_base_currency_through_the_fx_table(sales, account):
    # 100 x 1000 USD x 1.2 + 1000 USD = 121,000 USD: at 1.25 USD per EUR, 96,800 EUR (below);
    # at 1.10, 110,000 EUR (above).
    quote = accepted_quote(sales, account, currency="USD", widgets="100").quote
    contract = contract_for(sales, quote)
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="no USD rate"):
        act(sales, contract, "submit")
    assert stored(sales) == before
    sales.set_fx_rates(SetFxRates("EUR", [{"currency": "USD", "rate": "1.25", "on": "2025-01-01"}], caller=BOSS))
    below = act(sales, contract, "submit")
    assert (below.status, below.base_total) == ("approved", Money.of("96800.00", "EUR"))
    sales.set_fx_rates(SetFxRates("EUR", [{"currency": "USD", "rate": "1.10", "on": "2025-05-01"}], caller=BOSS))
    other = contract_for(sales, quote)
    above = act(sales, other, "submit")
    assert (above.status, above.base_total) == ("pending_approval", Money.of("110000.00", "EUR"))


def test_a_configurable_threshold(clock, account):
    strict = SalesApplication(MEMORY, clock=clock, approval_threshold="1000")
    strict.add_product(AddProduct("WID-1", "Widget", "hardware", caller=BOSS))
    strict.add_product(AddProduct("SVC", "Support", "services", caller=BOSS))
    mine = strict.open_account(OpenAccount(name="Acme", caller=ANN))[0]
    contract = contract_for(strict, accepted_quote(strict, mine).quote)
    assert act(strict, contract, "submit").status == "pending_approval"


def test_a_rejection_needs_a_comment_and_makes_a_draft_again(sales, account):
    contract = contract_for(sales, accepted_quote(sales, account, widgets="100").quote)
    act(sales, contract, "submit")
    with pytest.raises(InvalidField) as caught:
        act(sales, contract, "reject", caller=BOSS)
    assert caught.value.field == "comment"
    rejected = act(sales, contract, "reject", caller=BOSS, comment="Discount too deep")
    assert (rejected.status, rejected.rejection_comment) == ("draft", "Discount too deep")
    assert act(sales, contract, "submit").status == "pending_approval"


# -- contracts: signing, activation, payments, expiry, termination, renewal -------------------

def active_contract(sales, account, **fields):
    contract = contract_for(sales, accepted_quote(sales, account).quote, **fields)
    act(sales, contract, "submit")
    act(sales, contract, "sign")
    return act(sales, contract, "activate")


def test_every_transition_in_order(sales, account):
    contract = active_contract(sales, account)
    assert (contract.status, contract.signed_on, contract.activated_on) == ("active", "2025-05-10", "2025-05-10")
    events = events_of(sales, contract.id)
    assert [type(e).__name__ for e in events] == ["Drafted", "Submitted", "Approved", "Signed", "Activated"]
    activated = events[-1]
    assert [item["due_on"] for item in activated.schedule] == ["2025-06-30", "2025-07-30", "2025-08-30"]


@pytest.mark.parametrize(("status_actions", "action", "message"), [
    ([], "sign", "is draft; signing it needs it to be approved"),
    ([], "activate", "is draft; activating it needs it to be signed"),
    ([], "approve", "is draft; approving it needs it to be pending_approval"),
    (["submit"], "activate", "is approved; activating it needs it to be signed"),
    (["submit"], "submit", "is approved; submitting it needs it to be draft"),
    (["submit", "sign"], "sign", "is signed; signing it needs it to be approved"),
    (["submit", "sign", "activate"], "expire", "is active; expiring it needs it active and past its ends_on"),
    (["terminate"], "submit", "is terminated; submitting it needs it to be draft"),
    (["terminate"], "terminate", "is terminated; terminating it needs"),
])
def test_commands_the_status_does_not_allow_store_nothing(sales, account, status_actions, action, message):
    contract = contract_for(sales, accepted_quote(sales, account).quote)
    for done in status_actions:
        act(sales, contract, done, caller=BOSS if done == "approve" else ANN)
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match=message):
        act(sales, contract, action, caller=BOSS if action == "approve" else ANN)
    assert stored(sales) == before


def test_payments_never_exceed_what_is_due(sales, account):
    contract = active_contract(sales, account)  # 4600.00 in 1533.34, 1533.33, 1533.33

    def pay(instalment, amount, paid_on="2025-05-10", currency="EUR"):
        return sales.record_payment(RecordPayment(contract.id, instalment, {"amount": amount, "currency": currency},
                                                  paid_on, caller=ANN))

    paid = pay(1, "1000.00")
    assert (paid.payment_schedule[0].outstanding, paid.outstanding) == (Money.of("533.34", "EUR"),
                                                                       Money.of("3600.00", "EUR"))
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="above the 533.34 EUR still due on instalment 1"):
        pay(1, "533.35")
    with pytest.raises(InvalidField):
        pay(4, "1.00")
    with pytest.raises(CurrencyMismatch):
        pay(2, "1.00", currency="USD")
    with pytest.raises(InvalidField) as caught:
        pay(2, "1.00", paid_on="2025-05-11")
    assert caught.value.field == "paid_on"
    assert stored(sales) == before
    assert pay(1, "533.34").payment_schedule[0].outstanding == Money.of("0.00", "EUR")
    with pytest.raises(FailedPrecondition, match="already paid in full"):
        pay(1, "0.01")
    events = events_of(sales, contract.id)
    assert (events[-1].instalment_outstanding, events[-1].contract_outstanding) == ("0.00", "3066.66")


def test_no_payment_on_a_draft(sales, account):
    contract = contract_for(sales, accepted_quote(sales, account).quote)
    with pytest.raises(FailedPrecondition, match="is draft; recording a payment"):
        sales.record_payment(RecordPayment(contract.id, 1, {"amount": "1.00", "currency": "EUR"}, "2025-05-01",
                                           caller=ANN))


def test_an_active_contract_past_its_end_shows_expired_and_expire_records_it(sales, account, clock):
    contract = active_contract(sales, account, ends_on="2025-12-31")
    clock.now = datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert sales.get_contract(contract.id, ANN).status == "expired"  # derived on read, nothing stored
    assert sales.repository.get(contract.id).stored_status == ContractStatus.ACTIVE
    expired = act(sales, contract, "expire", caller=SERVICE)
    assert expired.status == "expired"
    assert sales.repository.get(contract.id).stored_status == ContractStatus.EXPIRED
    with pytest.raises(FailedPrecondition):
        act(sales, contract, "expire", caller=SERVICE)
    with pytest.raises(FailedPrecondition, match="is expired; terminating"):
        act(sales, contract, "terminate")


def test_renewing_links_a_new_draft_and_the_old_one_becomes_renewed(sales, account, clock):
    contract = active_contract(sales, account, ends_on="2025-12-31")
    renewed = sales.renew_contract(RenewContract(contract.id, "2026-12-31", TERMS | {"first_due_on": "2026-01-31"},
                                                 request_key="renew-1", caller=ANN))
    assert renewed.created and renewed.previous.status == "renewed"
    assert renewed.previous.renewed_by_contract_id == renewed.contract.id
    assert (renewed.contract.status, renewed.contract.starts_on, renewed.contract.renews_contract_id) == (
        "draft", "2026-01-01", contract.id)
    assert renewed.contract.total == contract.total
    again = sales.renew_contract(RenewContract(contract.id, "2026-12-31", TERMS | {"first_due_on": "2026-01-31"},
                                               request_key="renew-1", caller=ANN))
    assert (again.created, again.contract.id) == (False, renewed.contract.id)
    with pytest.raises(FailedPrecondition, match="is renewed; renewing"):
        sales.renew_contract(RenewContract(contract.id, "2026-12-31", TERMS, caller=ANN))


def test_a_draft_cannot_be_renewed_and_termination_keeps_its_reason(sales, account):
    contract = contract_for(sales, accepted_quote(sales, account).quote)
    with pytest.raises(FailedPrecondition, match="is draft; renewing it needs it to be active or expired"):
        sales.renew_contract(RenewContract(contract.id, "2027-01-01", TERMS, caller=ANN))
    ended = act(sales, contract, "terminate", reason="Customer went elsewhere")
    assert (ended.status, ended.termination_reason, ended.terminated_on) == (
        "terminated", "Customer went elsewhere", "2025-05-10")


def test_another_reps_contract_is_missing(sales, account):
    contract = contract_for(sales, accepted_quote(sales, account).quote)
    with pytest.raises(NotFound):
        sales.get_contract(contract.id, BOB)
    with pytest.raises(NotFound):
        act(sales, contract, "submit", caller=BOB)
    assert sales.get_contract(contract.id, BOSS).id == contract.id


def test_stale_expected_version_is_a_conflict(sales, account):
    contract = contract_for(sales, accepted_quote(sales, account).quote)
    with pytest.raises(Conflict):
        sales.work_contract(WorkContract(contract.id, "submit", expected_version=3, caller=ANN))


def test_the_schedule_sums_exactly_for_random_totals_and_terms():
    from hypothesis import given
    from hypothesis import strategies as st

    @given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=120),
           st.sampled_from(["EUR", "JPY", "BHD"]), st.integers(min_value=1, max_value=24))
    def check(units, instalments, currency, every):
        total = Money(Decimal(units).scaleb(-{"EUR": 2, "JPY": 0, "BHD": 3}[currency]), currency)
        contract = Contract.draft(uuid4(), "q", "o", "a", "ann", total, date(2025, 1, 1), date(2040, 1, 1),
                                  PaymentTerms(instalments, date(2025, 1, 31), every), drafted_by="ann")
        assert sum((i.amount for i in contract.instalments), Money.zero(currency)) == total
        assert contract.outstanding == total

    check()


# -- orders and loyalty -------------------------------------------------------------------------

def test_winning_with_an_accepted_quote_places_an_order_in_the_same_transaction(sales, account):
    result = accepted_quote(sales, account, win=True)
    order = sales.repository.get(order_id_for(result.opportunity.id))
    assert isinstance(order, Order)
    assert (order.account_id, order.quote_id, order.owner_id) == (account.id, result.quote.id, "ann")
    assert [(line["sku"], line["family"], line["net"]) for line in order.lines] == [
        ("WID-1", "hardware", "3000.00"), ("SVC", "services", "1000.00")]
    assert order.base_net == {"amount": "4000.00", "currency": "EUR"}
    record = sales.get_order(order.id, ANN)
    assert record.totals["gross"] == Money.of("4600.00", "EUR")
    with pytest.raises(NotFound):
        sales.get_order(order.id, BOB)


def test_winning_without_an_fx_rate_stores_nothing(sales, account):
    opportunity = sales.open_opportunity(OpenOpportunity(
        "Deal", account.id, {"amount": "1.00", "currency": "USD"}, "2025-06-30", caller=ANN))[0]
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="no USD rate"):
        sales.work_opportunity(WorkOpportunity(opportunity.id, "win", caller=ANN))
    assert stored(sales) == before
    assert sales.get_opportunity(opportunity.id, ANN).status == "open"


def test_an_order_earns_points_by_the_rule_and_tier(sales, account):
    rule = sales.set_loyalty_rule(SetLoyaltyRule({"points_per_unit": "0.5", "tier_multipliers": {"strategic": "2"}},
                                                 caller=BOSS))
    assert rule.version == 1
    accepted_quote(sales, account, win=True, widget="999.99")  # net 3 x 999.99 + 1000 = 3999.97 EUR
    loyalty = sales.get_loyalty(account.id, ANN)
    assert loyalty.balance == 3999  # floor(3999.97 x 0.5 x 2)
    assert [entry["kind"] for entry in loyalty.ledger] == ["earned"]


def test_points_earned_in_another_currency_go_through_fx(sales, account):
    sales.set_fx_rates(SetFxRates("EUR", [{"currency": "USD", "rate": "2", "on": "2025-01-01"}], caller=BOSS))
    accepted_quote(sales, account, currency="USD", win=True)  # net 4000 USD = 2000 EUR; strategic x1 (default)
    assert sales.get_loyalty(account.id, ANN).balance == 2000


def test_redemptions_never_go_below_zero_and_apply_once(sales, account):
    accepted_quote(sales, account, win=True)  # 4000 points
    after = sales.redeem_points(RedeemPoints(account.id, 1500, "gift-1", caller=ANN))
    assert after.balance == 2500
    assert sales.redeem_points(RedeemPoints(account.id, 1500, "gift-1", caller=ANN)).balance == 2500  # same ref
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="cannot redeem 2501 points: the balance is 2500"):
        sales.redeem_points(RedeemPoints(account.id, 2501, "gift-2", caller=ANN))
    with pytest.raises(InvalidField):
        sales.redeem_points(RedeemPoints(account.id, 0, "gift-3", caller=ANN))
    assert stored(sales) == before
    with pytest.raises(NotFound):
        sales.redeem_points(RedeemPoints(account.id, 1, "gift-4", caller=BOB))
    assert sales.redeem_points(RedeemPoints(account.id, 2500, "gift-5", caller=ANN)).balance == 0


def test_an_account_without_orders_has_an_empty_ledger_and_cannot_redeem(sales, account):
    assert sales.get_loyalty(account.id, ANN).balance == 0
    with pytest.raises(FailedPrecondition):
        sales.redeem_points(RedeemPoints(account.id, 1, "x", caller=ANN))
    assert sales.find(LoyaltyAccount, LoyaltyAccount.open(account.id).id) is None


# -- commissions -------------------------------------------------------------------------------

PLAN = [{"percent": "2"},
        {"family": "services", "percent": "5"},
        {"owner_id": "ann", "family": "hardware", "percent": "4",
         "tiers": [{"attainment_from": {"amount": "10000.00", "currency": "EUR"}, "percent": "6"}]}]


def test_winning_earns_commission_per_line_with_the_most_specific_rule(sales, account):
    sales.set_commission_plan(SetCommissionPlan({"rules": PLAN}, caller=BOSS))
    won = accepted_quote(sales, account, win=True)  # hardware 3000.00, services 1000.00
    listed = sales.list_commissions(ListCommissions(caller=ANN))
    assert (listed.owner_id, listed.period, listed.attainment) == ("ann", "2025-Q2", Money.of("4000.00", "EUR"))
    assert [(c["sku"], c["family"], c["percent"], c["amount"]["amount"]) for c in listed.commissions] == [
        ("WID-1", "hardware", "4", "120.00"), ("SVC", "services", "5", "50.00")]
    assert all(c["opportunity_id"] == won.opportunity.id for c in listed.commissions)
    assert listed.totals == [Money.of("170.00", "EUR")]


def test_tiers_apply_by_quarter_to_date_attainment_this_deal_included(sales, account):
    sales.set_commission_plan(SetCommissionPlan({"rules": PLAN}, caller=BOSS))
    accepted_quote(sales, account, win=True, widgets="5")  # 5000 + 1000 = 6000: below the tier
    accepted_quote(sales, account, win=True, widgets="4")  # 4000 + 1000; quarter 11000: the tier applies
    listed = sales.list_commissions(ListCommissions("ann", "2025-Q2", caller=BOSS))
    hardware = [(c["percent"], c["amount"]["amount"], c["attainment"]["amount"]) for c in listed.commissions
                if c["family"] == "hardware"]
    assert hardware == [("4", "200.00", "6000.00"), ("6", "240.00", "11000.00")]
    assert listed.attainment == Money.of("11000.00", "EUR")


def test_attainment_restarts_each_quarter_and_reps_see_only_their_own(sales, account, clock):
    sales.set_commission_plan(SetCommissionPlan({"rules": PLAN}, caller=BOSS))
    accepted_quote(sales, account, win=True, widgets="9")
    clock.now = datetime(2025, 7, 1, 9, tzinfo=UTC)
    sales.set_fx_rates(SetFxRates("EUR", [{"currency": "USD", "rate": "1", "on": "2025-01-01"}], caller=BOSS))
    # a new book dated today: the fixture's valid_until is in the past now
    opportunity = sales.open_opportunity(OpenOpportunity(
        "Q3 deal", account.id, {"amount": "1.00", "currency": "EUR"}, "2025-09-30", caller=ANN))[0]
    quote = sales.draft_quote(DraftQuote(opportunity.id, book(sales).id, "2025-07-31",
                                         [{"sku": "WID-1", "quantity": "2", "tax_rate": "0"}], caller=ANN))[0]
    sales.work_quote(WorkQuote(quote.id, "send", caller=ANN))
    sales.work_quote(WorkQuote(quote.id, "accept", win_opportunity=True, caller=ANN))
    q3 = sales.list_commissions(ListCommissions(caller=ANN))
    assert (q3.period, q3.attainment) == ("2025-Q3", Money.of("2000.00", "EUR"))
    assert [c["percent"] for c in q3.commissions] == ["4"]
    assert sales.list_commissions(ListCommissions(period="2025-Q2", caller=ANN)).attainment == Money.of(
        "10000.00", "EUR")
    assert sales.list_commissions(ListCommissions("ann", "2025-Q2", caller=BOB)).commissions == []
    with pytest.raises(InvalidField) as caught:
        sales.list_commissions(ListCommissions(period="2025-Q5", caller=ANN))
    assert caught.value.field == "period"


def test_a_plain_win_counts_the_opportunity_amount_as_one_line(sales, account):
    sales.set_commission_plan(SetCommissionPlan({"rules": PLAN}, caller=BOSS))
    opportunity = sales.open_opportunity(OpenOpportunity(
        "Deal", account.id, {"amount": "2500.00", "currency": "EUR"}, "2025-06-30", caller=ANN))[0]
    sales.work_opportunity(WorkOpportunity(opportunity.id, "win", caller=ANN))
    listed = sales.list_commissions(ListCommissions(caller=ANN))
    assert [(c["sku"], c["family"], c["percent"], c["amount"]["amount"], c["order_id"])
            for c in listed.commissions] == [("", None, "2", "50.00", None)]
    quarter = sales.repository.get(quarter_id_for("ann", period_of(TODAY.date())))
    assert quarter.deals == [opportunity.id]


def test_no_plan_earns_nothing_but_attainment_is_counted(sales, account):
    accepted_quote(sales, account, win=True)
    listed = sales.list_commissions(ListCommissions(caller=ANN))
    assert (listed.commissions, listed.attainment) == ([], Money.of("4000.00", "EUR"))


def test_a_bad_plan_is_refused_naming_the_rule(sales):
    with pytest.raises(InvalidField) as caught:
        sales.set_commission_plan(SetCommissionPlan({"rules": [{"percent": "101"}]}, caller=BOSS))
    assert caught.value.field == "rules[0].percent"
    with pytest.raises(CurrencyMismatch):
        sales.set_commission_plan(SetCommissionPlan({"rules": [{"percent": "1", "tiers": [
            {"attainment_from": {"amount": "1.00", "currency": "USD"}, "percent": "2"}]}]}, caller=BOSS))


def test_the_ledger_and_quarter_are_saved_with_the_win_or_not_at_all(sales, account):
    sales.set_loyalty_rule(SetLoyaltyRule({"points_per_unit": "1"}, caller=BOSS))
    result = accepted_quote(sales, account, win=True)
    opportunity = sales.repository.get(result.opportunity.id)
    order = sales.repository.get(order_id_for(opportunity.id))
    # the same recorder notification batch: the quote's accept, the win, the order, points, quarter
    assert order.placed_on == opportunity.closed_on == "2025-05-10"
    assert timedelta(0) <= order.created_on - opportunity.modified_on < timedelta(seconds=1)

"""Contract amendments: the pure schedule rule (property-tested: a schedule that is accepted
sums exactly to the total and keeps every paid instalment), and the application's command
on the in-memory store (applied at once below the threshold, a manager's approval for a
raise above it, numbering and history, refusals that store nothing)."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_runtime.auth import PermissionDenied
from crm_runtime.errors import Conflict, FailedPrecondition, InvalidField, NotFound
from crm_runtime.money import CurrencyMismatch, Money
from crm_sales.amendments import amended_schedule, needs_approval, parse_amendment
from crm_sales.application import (
    AddProduct,
    AmendContract,
    DecideAmendment,
    OpenAccount,
    RecordPayment,
    SalesApplication,
    SetFxRates,
)
from crm_sales.payment_schedule import Instalment
from tests.unit.test_sales_contracts import (
    ANN,
    BOB,
    BOSS,
    CHIEF,
    MEMORY,
    Clock,
    accepted_quote,
    act,
    active_contract,
    contract_for,
    events_of,
    stored,
)
from tests.unit.test_sales_contracts import (
    TODAY as NOW,
)

TODAY = date(2025, 5, 10)


@pytest.fixture
def clock():
    return Clock(NOW)


def with_products(app: SalesApplication) -> SalesApplication:
    app.add_product(AddProduct("WID-1", "Widget", "hardware", caller=BOSS))
    app.add_product(AddProduct("SVC", "Support year", "services", caller=BOSS))
    return app


@pytest.fixture
def sales(clock):
    return with_products(SalesApplication(MEMORY, clock=clock))


@pytest.fixture
def account(sales):
    return sales.open_account(OpenAccount(name="Acme", tier="strategic", caller=ANN))[0]


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def schedule(*items: tuple[str, str]) -> tuple[Instalment, ...]:
    return tuple(Instalment(number, date.fromisoformat(day), eur(amount))
                 for number, (day, amount) in enumerate(items, start=1))


CURRENT = schedule(("2025-04-30", "100.00"), ("2025-05-31", "100.00"), ("2025-06-30", "100.00"))


# -- the pure rule -------------------------------------------------------------------------------

def test_paid_instalments_are_kept_and_the_listed_ones_replace_the_rest():
    paid = {1: eur("100.00"), 2: eur("40.00")}
    new = amended_schedule(CURRENT, paid, [Instalment(3, date(2025, 9, 30), eur("150.00")),
                                           Instalment(4, date(2025, 12, 31), eur("150.00"))], eur("500.00"), TODAY)
    assert new == (CURRENT[0], CURRENT[1], Instalment(3, date(2025, 9, 30), eur("150.00")),
                   Instalment(4, date(2025, 12, 31), eur("150.00")))
    # Listing a paid instalment unchanged is allowed; changing it is refused (409).
    assert amended_schedule(CURRENT, paid, [CURRENT[1], Instalment(3, date(2025, 7, 31), eur("100.00"))],
                            eur("300.00"), TODAY)[2].due_on == date(2025, 7, 31)
    with pytest.raises(FailedPrecondition, match="instalment 2 has 40.00 EUR paid against it"):
        amended_schedule(CURRENT, paid, [Instalment(2, date(2025, 8, 31), eur("100.00")), CURRENT[2]],
                         eur("300.00"), TODAY)


@pytest.mark.parametrize(("listed", "total", "field", "message"), [
    ([("2025-06-30", "150.00", 3)], "300.00", "payment_schedule", "sum to 350.00 EUR, not the total 300.00 EUR"),
    ([("2025-06-30", "100.00", 4)], "300.00", "payment_schedule", "instalment 3 is missing"),
    ([("2025-06-30", "50.00", 3), ("2025-07-30", "50.00", 3)], "300.00", "payment_schedule[1].instalment",
     "listed twice"),
    ([("2025-05-09", "100.00", 3)], "300.00", "payment_schedule[0].due_on", "before today"),
    ([("2025-06-30", "0.00", 3)], "200.00", "payment_schedule[0].amount", "positive"),
])
def test_bad_schedules_are_refused_naming_the_field(listed, total, field, message):
    items = [Instalment(number, date.fromisoformat(day), eur(amount)) for day, amount, number in listed]
    with pytest.raises(InvalidField, match=message) as caught:
        amended_schedule(CURRENT, {1: eur("100.00"), 2: eur("100.00")}, items, eur(total), TODAY)
    assert caught.value.field == field


def test_another_currency_is_refused():
    with pytest.raises(CurrencyMismatch) as caught:
        amended_schedule(CURRENT, {}, [Instalment(1, TODAY, Money.of("300.00", "USD"))], eur("300.00"), TODAY)
    assert caught.value.field == "payment_schedule[0].amount.currency"


def test_the_request_needs_a_reason_and_something_to_change():
    with pytest.raises(InvalidField) as caught:
        parse_amendment("", "2026-01-31")
    assert caught.value.field == "reason"
    with pytest.raises(InvalidField, match="changes ends_on, the payment_schedule"):
        parse_amendment("More time")
    with pytest.raises(InvalidField, match="a new total needs the remaining payment schedule") as caught:
        parse_amendment("Upsell", raw_total={"amount": "10.00", "currency": "EUR"})
    assert caught.value.field == "payment_schedule"
    with pytest.raises(InvalidField) as caught:
        parse_amendment("Upsell", raw_schedule=[{"instalment": 1, "due_on": "2025-13-01",
                                                 "amount": {"amount": "1.00", "currency": "EUR"}}])
    assert caught.value.field == "payment_schedule[0].due_on"


def test_approval_only_for_a_raise_above_the_threshold():
    threshold = eur("100000.00")
    assert needs_approval(eur("90000.00"), eur("100000.01"), eur("100000.01"), threshold)
    assert not needs_approval(eur("90000.00"), eur("95000.00"), eur("95000.00"), threshold)
    # Lowering (or keeping) a total above the threshold needs nobody.
    assert not needs_approval(eur("200000.00"), eur("150000.00"), None, threshold)
    assert needs_approval(eur("200000.00"), eur("200000.01"), eur("200000.01"), threshold)


@st.composite
def schedules_and_amendments(draw):
    """A current schedule with some payments, and a listed remainder summing to a new total."""
    count = draw(st.integers(1, 12))
    cents = draw(st.lists(st.integers(1, 10**7), min_size=count, max_size=count))
    current = tuple(Instalment(n, TODAY + timedelta(days=30 * n), Money(Decimal(c) / 100, "EUR").round_half_even())
                    for n, c in enumerate(cents, start=1))
    paid_numbers = draw(st.sets(st.integers(1, count)))
    paid = {n: current[n - 1].amount if draw(st.booleans()) else eur("0.01") for n in paid_numbers}
    kept = {n for n in paid_numbers}
    # The new schedule has at least as many instalments as the highest paid one.
    size = draw(st.integers(max(kept, default=0), max(kept, default=0) + 10))
    listed = [Instalment(n, TODAY + timedelta(days=draw(st.integers(0, 900))),
                         Money(Decimal(draw(st.integers(1, 10**7))) / 100, "EUR").round_half_even())
              for n in range(1, size + 1) if n not in kept]
    total = Money.zero("EUR")
    for n in range(1, size + 1):
        total = total + (current[n - 1].amount if n in kept else next(i.amount for i in listed if i.instalment == n))
    if size == 0:
        listed, total = [Instalment(1, TODAY, eur("1.00"))], eur("1.00")
    return current, paid, draw(st.permutations(listed)), total


@given(schedules_and_amendments(), st.integers(-3, 3))
def test_an_accepted_schedule_sums_exactly_and_keeps_what_is_paid(case, cents_off):
    current, paid, listed, total = case
    asked = total + Money(Decimal(cents_off) / 100, "EUR")
    if not asked.is_positive():
        return
    try:
        result = amended_schedule(current, paid, listed, asked, TODAY)
    except InvalidField as refused:
        assert cents_off != 0 and refused.field == "payment_schedule" and "not the total" in refused.message
        return
    assert cents_off == 0
    assert [item.instalment for item in result] == list(range(1, len(result) + 1))
    summed = Money.zero("EUR")
    for item in result:
        summed = summed + item.amount
        assert item.amount.is_rounded() and item.amount.is_positive()
    assert summed == asked
    for number in paid:
        assert result[number - 1] == current[number - 1]


# -- the command -------------------------------------------------------------------------------

def amend(sales, contract, caller=ANN, **fields):
    return sales.amend_contract(AmendContract(contract.id, fields.pop("reason", "Customer asked"), caller=caller,
                                              **fields))


def item(number, due_on, amount):
    return {"instalment": number, "due_on": due_on, "amount": {"amount": amount, "currency": "EUR"}}


def test_an_extension_and_a_new_schedule_apply_at_once_below_the_threshold(sales, account):
    contract = active_contract(sales, account)  # 4600.00 in 1533.34, 1533.33, 1533.33 from 2025-06-30
    sales.record_payment(RecordPayment(contract.id, 1, {"amount": "1533.34", "currency": "EUR"}, "2025-05-10",
                                       caller=ANN))
    done = amend(sales, contract, ends_on="2026-11-30", total={"amount": "6000.00", "currency": "EUR"},
                 payment_schedule=[item(2, "2025-09-30", "2233.33"), item(3, "2025-12-31", "2233.33")],
                 request_key="amend-1")
    amended, entry = done.contract, done.amendment
    assert (entry.number, entry.status, entry.approval_required, entry.decided_by) == (1, "applied", False, None)
    assert (entry.previous_total, entry.total, entry.previous_ends_on, entry.ends_on) == (
        eur("4600.00"), eur("6000.00"), "2026-05-31", "2026-11-30")
    assert (amended.status, amended.total, amended.ends_on, amended.outstanding) == (
        "active", eur("6000.00"), "2026-11-30", eur("4466.66"))
    assert [(i.instalment, i.due_on, i.amount.amount_text, i.paid.amount_text) for i in amended.payment_schedule] == [
        (1, "2025-06-30", "1533.34", "1533.34"), (2, "2025-09-30", "2233.33", "0.00"),
        (3, "2025-12-31", "2233.33", "0.00")]
    assert [a.number for a in amended.amendments] == [1]
    assert [type(e).__name__ for e in events_of(sales, contract.id)][-2:] == ["AmendmentRequested", "Amended"]
    # The same key answers the same amendment; another request with it is a conflict.
    before = stored(sales)
    again = amend(sales, contract, ends_on="2026-11-30", total={"amount": "6000.00", "currency": "EUR"},
                  payment_schedule=[item(2, "2025-09-30", "2233.33"), item(3, "2025-12-31", "2233.33")],
                  request_key="amend-1")
    assert (again.created, again.amendment.number) == (False, 1) and stored(sales) == before
    with pytest.raises(Conflict):
        amend(sales, contract, ends_on="2026-12-31", request_key="amend-1")
    # A second amendment is number 2, and payments follow the new schedule.
    second = amend(sales, contract, reason="Shorter", ends_on="2026-06-30").contract
    assert [(a.number, a.status) for a in second.amendments] == [(1, "applied"), (2, "applied")]
    paid = sales.record_payment(RecordPayment(contract.id, 2, {"amount": "2233.33", "currency": "EUR"},
                                              "2025-05-10", caller=ANN))
    assert paid.outstanding == eur("2233.33")


def test_a_raise_above_the_threshold_waits_for_a_manager(sales, account):
    contract = active_contract(sales, account)
    bigger = [item(1, "2025-06-30", "100000.00"), item(2, "2025-07-30", "1533.33"), item(3, "2025-08-30", "1533.33")]
    pending = amend(sales, contract, total={"amount": "103066.66", "currency": "EUR"}, payment_schedule=bigger)
    assert (pending.amendment.status, pending.amendment.approval_required, pending.amendment.base_total) == (
        "pending_approval", True, eur("103066.66"))
    assert pending.contract.total == eur("4600.00")  # unchanged until approved
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="amendment 1 of contract .* is pending approval"):
        amend(sales, contract, ends_on="2026-12-31")
    with pytest.raises(PermissionDenied):
        sales.decide_amendment(DecideAmendment(contract.id, 1, "approve", caller=ANN))
    with pytest.raises(NotFound, match="has no amendment 2"):
        sales.decide_amendment(DecideAmendment(contract.id, 2, "approve", caller=BOSS))
    with pytest.raises(InvalidField) as caught:
        sales.decide_amendment(DecideAmendment(contract.id, 1, "reject", caller=BOSS))
    assert caught.value.field == "comment"
    assert stored(sales) == before
    approved = sales.decide_amendment(DecideAmendment(contract.id, 1, "approve", comment="Upsell signed",
                                                      caller=BOSS))
    assert (approved.amendment.status, approved.amendment.decided_by, approved.amendment.comment) == (
        "applied", "boss", "Upsell signed")
    assert approved.contract.total == eur("103066.66")
    with pytest.raises(FailedPrecondition, match="amendment 1 of contract .* is applied"):
        sales.decide_amendment(DecideAmendment(contract.id, 1, "approve", caller=CHIEF))
    # Lowering it again needs nobody.
    lower = amend(sales, contract, total={"amount": "4600.00", "currency": "EUR"}, payment_schedule=[
        item(1, "2025-06-30", "1533.34"), item(2, "2025-07-30", "1533.33"), item(3, "2025-08-30", "1533.33")])
    assert lower.amendment.status == "applied"


def low_threshold(clock) -> SalesApplication:
    """Sales with a 5,000 EUR approval threshold and the two products."""
    return with_products(SalesApplication(MEMORY, clock=clock, approval_threshold="5000"))


def test_a_rejected_amendment_leaves_the_terms_and_the_requester_never_decides(clock):
    sales = low_threshold(clock)
    contract = active_contract(sales, sales.open_account(OpenAccount(name="Acme", caller=ANN))[0])
    pending = amend(sales, contract, caller=BOSS, total={"amount": "6000.00", "currency": "EUR"},
                    payment_schedule=[item(1, "2025-06-30", "2933.34"), item(2, "2025-07-30", "1533.33"),
                                      item(3, "2025-08-30", "1533.33")])
    assert pending.amendment.status == "pending_approval"
    with pytest.raises(FailedPrecondition, match="boss requested amendment 1"):
        sales.decide_amendment(DecideAmendment(contract.id, 1, "approve", caller=BOSS))
    rejected = sales.decide_amendment(DecideAmendment(contract.id, 1, "reject", comment="Too much", caller=CHIEF))
    assert (rejected.amendment.status, rejected.amendment.decided_by, rejected.contract.total) == (
        "rejected", "chief", eur("4600.00"))
    assert [type(e).__name__ for e in events_of(sales, contract.id)][-1] == "AmendmentRejected"


def test_a_payment_after_the_request_blocks_approving_a_change_to_that_instalment(clock):
    sales = low_threshold(clock)
    contract = active_contract(sales, sales.open_account(OpenAccount(name="Acme", caller=ANN))[0])
    amend(sales, contract, total={"amount": "6000.00", "currency": "EUR"}, payment_schedule=[
        item(1, "2025-06-30", "2933.34"), item(2, "2025-07-30", "1533.33"), item(3, "2025-08-30", "1533.33")])
    sales.record_payment(RecordPayment(contract.id, 1, {"amount": "100.00", "currency": "EUR"}, "2025-05-10",
                                       caller=ANN))
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="instalment 1 was paid after amendment 1 was requested"):
        sales.decide_amendment(DecideAmendment(contract.id, 1, "approve", caller=BOSS))
    assert stored(sales) == before


@pytest.mark.parametrize("actions", [[], ["submit"], ["terminate"]])
def test_only_a_signed_or_active_contract_is_amended(sales, account, actions):
    contract = contract_for(sales, accepted_quote(sales, account).quote)
    for action in actions:
        act(sales, contract, action)
    before = stored(sales)
    with pytest.raises(FailedPrecondition, match="amending it needs it to be signed or active"):
        amend(sales, contract, ends_on="2026-12-31")
    assert stored(sales) == before


def test_an_expired_contract_is_not_amended_and_bad_input_stores_nothing(sales, account, clock):
    contract = active_contract(sales, account)
    before = stored(sales)
    with pytest.raises(InvalidField, match="sum to 4700.00 EUR, not the total 4600.00 EUR"):
        amend(sales, contract, payment_schedule=[item(1, "2025-06-30", "1533.34"), item(2, "2025-07-30", "1533.33"),
                                                 item(3, "2025-08-30", "1633.33")])
    with pytest.raises(InvalidField, match="changes nothing"):
        amend(sales, contract, ends_on="2026-05-31")
    with pytest.raises(InvalidField) as caught:
        amend(sales, contract, ends_on="2025-05-01")
    assert caught.value.field == "ends_on"
    with pytest.raises(NotFound):
        amend(sales, contract, caller=BOB, ends_on="2026-12-31")
    with pytest.raises(Conflict):
        sales.amend_contract(AmendContract(contract.id, "Later", ends_on="2026-12-31", expected_version=1,
                                           caller=ANN))
    assert stored(sales) == before
    clock.now = clock.now.replace(year=2026, month=6, day=1)
    with pytest.raises(FailedPrecondition, match="is expired .*amending it needs it to be signed or active"):
        amend(sales, contract, ends_on="2026-12-31")


def test_a_signed_contract_is_activated_with_its_amended_schedule(sales, account):
    contract = contract_for(sales, accepted_quote(sales, account).quote)
    act(sales, contract, "submit")
    act(sales, contract, "sign")
    amend(sales, contract, payment_schedule=[item(1, "2025-06-15", "4600.00")])
    activated = act(sales, contract, "activate")
    assert [(i.instalment, i.due_on) for i in activated.payment_schedule] == [(1, "2025-06-15")]
    assert events_of(sales, contract.id)[-1].schedule == [
        {"instalment": 1, "due_on": "2025-06-15", "amount": "4600.00"}]


def test_the_fx_table_converts_a_raise_in_another_currency(sales, account):
    sales.set_fx_rates(SetFxRates("EUR", [{"currency": "USD", "rate": "0.5", "on": "2025-01-01"}], caller=BOSS))
    quote = accepted_quote(sales, account, currency="USD").quote  # 4600.00 USD = 9200.00 EUR
    contract = contract_for(sales, quote)
    act(sales, contract, "submit")
    act(sales, contract, "sign")
    raised = amend(sales, contract, total={"amount": "50001.00", "currency": "USD"},
                   payment_schedule=[{"instalment": 1, "due_on": "2025-06-30",
                                      "amount": {"amount": "50001.00", "currency": "USD"}}])
    assert (raised.amendment.status, raised.amendment.base_total) == ("pending_approval", eur("100002.00"))

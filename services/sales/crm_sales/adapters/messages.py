# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""Sales domain events to their protobuf messages (crm.sales.v1): the events the sales
context publishes on crm.sales.events.v1, and the resources the gRPC API answers with.
Absent optional values are empty strings (tier: TIER_UNSPECIFIED). Money is
crm.common.v1.Money: stored amounts are decimal strings with their currency, which
`crm_runtime.money.Money.to_proto` writes with exactly the currency's minor-unit digits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from crm.sales.v1 import events_pb2, sales_pb2, values_pb2
from crm_runtime.cloudevents import timestamp
from crm_runtime.events import EventMap
from crm_runtime.money import Money
from crm_sales.catalogue import PriceBook, Product
from crm_sales.contracts import Contract
from crm_sales.domain import Account, Contact, DomainAccount, Tier
from crm_sales.earnings import CommissionPlanSetting, RepQuarter
from crm_sales.fx import FxTable
from crm_sales.opportunities import Opportunity, SalesPipeline
from crm_sales.orders import LoyaltyAccount, LoyaltyProgramme, Order
from crm_sales.pipeline import FINAL_STAGES, Pipeline
from crm_sales.quotes import Quote
from crm_sales.views import (
    AccountRecord,
    AmendmentRecord,
    ContactRecord,
    ContractRecord,
    LoyaltyRecord,
    OpportunityRecord,
    OrderRecord,
    PriceBookRecord,
    ProductRecord,
    QuoteLineRecord,
    QuoteRecord,
)

TIER_TO_PROTO = {tier.value: events_pb2.Tier.Value(f"TIER_{tier.name}") for tier in Tier}
PROTO_TO_TIER = {value: tier for tier, value in TIER_TO_PROTO.items()}

EVENTS = EventMap(events_pb2)
# Which account an email domain's converted leads join: bookkeeping of the conversion.
EVENTS.internal(DomainAccount.Claimed, DomainAccount.Moved)


def tier_to_proto(tier: str | None) -> events_pb2.Tier.ValueType:
    return TIER_TO_PROTO[tier] if tier else events_pb2.TIER_UNSPECIFIED


@EVENTS.publishes(Account.Opened)
def account_opened(event: Account.Opened) -> events_pb2.AccountOpened:
    return events_pb2.AccountOpened(
        account_id=str(event.originator_id), name=event.name, domain=event.domain or "",
        industry=event.industry or "", region=event.region or "", tier=tier_to_proto(event.tier),
        owner_id=event.owner_id, version=event.originator_version,
        opened_at=timestamp(event.timestamp), opened_by=event.opened_by)


@EVENTS.publishes(Account.Changed)
def account_changed(event: Account.Changed) -> events_pb2.AccountChanged:
    return events_pb2.AccountChanged(
        account_id=str(event.originator_id), name=event.name, domain=event.domain or "",
        industry=event.industry or "", region=event.region or "", tier=tier_to_proto(event.tier),
        owner_id=event.owner_id, version=event.originator_version,
        changed_fields=list(event.changed_fields), changed_at=timestamp(event.timestamp),
        changed_by=event.changed_by)


@EVENTS.publishes(Contact.Added)
def contact_added(event: Contact.Added) -> events_pb2.ContactAdded:
    return events_pb2.ContactAdded(
        contact_id=str(event.originator_id), account_id=event.account_id, name=event.name,
        email=event.email or "", phone=event.phone or "", version=event.originator_version,
        added_at=timestamp(event.timestamp), added_by=event.added_by,
        # Events stored before conversion existed have neither attribute.
        lead_id=getattr(event, "lead_id", None) or "",
        account_reused=bool(getattr(event, "account_reused", False)))


@EVENTS.publishes(Contact.Changed)
def contact_changed(event: Contact.Changed) -> events_pb2.ContactChanged:
    return events_pb2.ContactChanged(
        contact_id=str(event.originator_id), account_id=event.account_id, name=event.name,
        email=event.email or "", phone=event.phone or "", version=event.originator_version,
        changed_fields=list(event.changed_fields), changed_at=timestamp(event.timestamp),
        changed_by=event.changed_by)


def account_to_message(account: AccountRecord) -> sales_pb2.Account:
    return sales_pb2.Account(
        id=account.id, name=account.name, domain=account.domain or "",
        industry=account.industry or "", region=account.region or "",
        tier=tier_to_proto(account.tier), owner_id=account.owner_id, version=account.version,
        created_at=timestamp(account.created_at), updated_at=timestamp(account.updated_at))


def contact_to_message(contact: ContactRecord) -> sales_pb2.Contact:
    return sales_pb2.Contact(
        id=contact.id, account_id=contact.account_id, name=contact.name,
        email=contact.email or "", phone=contact.phone or "", owner_id=contact.owner_id,
        version=contact.version, created_at=timestamp(contact.created_at),
        updated_at=timestamp(contact.updated_at))


# -- money and values -------------------------------------------------------------------------

def money(amount: str, currency: str) -> Any:
    """A stored amount (a decimal string) as crm.common.v1.Money."""
    return Money(Decimal(amount), currency).to_proto()


def stages_to_proto(stages: list[dict[str, Any]] | Pipeline) -> list[values_pb2.PipelineStage]:
    pairs = ([(stage.name, stage.probability) for stage in stages.stages] if isinstance(stages, Pipeline)
             else [(stage["name"], stage["probability"]) for stage in stages])
    return [values_pb2.PipelineStage(name=name, probability=probability, final=name in FINAL_STAGES)
            for name, probability in pairs]


def discount_to_proto(discount: dict[str, str] | None, currency: str) -> values_pb2.Discount | None:
    if not discount:
        return None
    if "percent" in discount:
        return values_pb2.Discount(percent=discount["percent"])
    return values_pb2.Discount(amount=money(discount["amount"], currency))


def stored_line_to_proto(line: dict[str, Any], currency: str) -> values_pb2.PricedQuoteLine:
    return values_pb2.PricedQuoteLine(
        sku=line["sku"], quantity=line["quantity"], tax_rate=line["tax_rate"],
        discount=discount_to_proto(line.get("discount"), currency),
        **{name: money(line[name], currency)
           for name in ("unit_price", "list_amount", "discount_amount", "net", "tax", "gross")})


def totals_to_proto(net: str, tax: str, gross: str, currency: str) -> values_pb2.QuoteTotals:
    return values_pb2.QuoteTotals(net=money(net, currency), tax=money(tax, currency),
                                  gross=money(gross, currency))


# -- pipeline and opportunities ---------------------------------------------------------------

@EVENTS.publishes(SalesPipeline.Configured, SalesPipeline.Changed)
def pipeline_configured(event: Any) -> events_pb2.PipelineConfigured:
    return events_pb2.PipelineConfigured(
        stages=stages_to_proto(event.stages), version=event.originator_version,
        configured_at=timestamp(event.timestamp), configured_by=event.configured_by)


@EVENTS.publishes(Opportunity.Opened)
def opportunity_opened(event: Opportunity.Opened) -> events_pb2.OpportunityOpened:
    return events_pb2.OpportunityOpened(
        opportunity_id=str(event.originator_id), name=event.name, account_id=event.account_id,
        amount=money(event.amount, event.currency), expected_close_on=event.expected_close_on,
        owner_id=event.owner_id, stage=event.stage, probability=event.probability,
        version=event.originator_version, opened_at=timestamp(event.timestamp), opened_by=event.opened_by)


def _opportunity(event: Any) -> dict[str, Any]:
    """The whole opportunity every later opportunity event carries, as message fields."""
    return {"opportunity_id": str(event.originator_id), "name": event.name, "account_id": event.account_id,
            "amount": money(event.amount, event.currency), "expected_close_on": event.expected_close_on,
            "owner_id": event.owner_id, "from_stage": event.from_stage, "version": event.originator_version}


@EVENTS.publishes(Opportunity.StageChanged)
def opportunity_stage_changed(event: Opportunity.StageChanged) -> events_pb2.OpportunityStageChanged:
    return events_pb2.OpportunityStageChanged(
        **_opportunity(event), stage=event.stage, probability=event.probability,
        changed_at=timestamp(event.timestamp), changed_by=event.changed_by)


@EVENTS.publishes(Opportunity.Won)
def opportunity_won(event: Opportunity.Won) -> events_pb2.OpportunityWon:
    return events_pb2.OpportunityWon(
        **_opportunity(event), closed_on=event.closed_on, quote_id=event.quote_id or "",
        won_at=timestamp(event.timestamp), won_by=event.won_by)


@EVENTS.publishes(Opportunity.Lost)
def opportunity_lost(event: Opportunity.Lost) -> events_pb2.OpportunityLost:
    return events_pb2.OpportunityLost(
        **_opportunity(event), closed_on=event.closed_on, reason=event.reason,
        lost_at=timestamp(event.timestamp), lost_by=event.lost_by)


# -- catalogue ----------------------------------------------------------------------------------

@EVENTS.publishes(Product.Added)
def product_added(event: Product.Added) -> events_pb2.ProductAdded:
    return events_pb2.ProductAdded(
        product_id=str(event.originator_id), sku=event.sku, name=event.name, family=event.family or "",
        active=event.active, decimal_quantities=event.decimal_quantities, version=event.originator_version,
        added_at=timestamp(event.timestamp), added_by=event.added_by)


@EVENTS.publishes(PriceBook.Published)
def price_book_published(event: PriceBook.Published) -> events_pb2.PriceBookPublished:
    return events_pb2.PriceBookPublished(
        price_book_id=str(event.originator_id), name=event.name, currency_code=event.currency,
        entries=[values_pb2.PriceBookEntry(sku=entry["sku"], unit_price=money(entry["unit_price"], event.currency))
                 for entry in event.entries],
        version=event.originator_version, published_at=timestamp(event.timestamp),
        published_by=event.published_by)


# -- quotes -------------------------------------------------------------------------------------
# Status events name the quote and its opportunity; the relay sees one event at a time, so
# what they carry beyond their own change is what the aggregate put in them.

@EVENTS.publishes(Quote.Drafted)
def quote_drafted(event: Quote.Drafted) -> events_pb2.QuoteDrafted:
    return events_pb2.QuoteDrafted(
        quote_id=str(event.originator_id), opportunity_id=event.opportunity_id, account_id=event.account_id,
        owner_id=event.owner_id, price_book_id=event.price_book_id, currency_code=event.currency,
        valid_until=event.valid_until, number=event.number, previous_quote_id=event.previous_quote_id or "",
        lines=[stored_line_to_proto(line, event.currency) for line in event.lines],
        totals=totals_to_proto(event.net, event.tax, event.gross, event.currency),
        version=event.originator_version, drafted_at=timestamp(event.timestamp), drafted_by=event.drafted_by)


def _quote(event: Any) -> dict[str, Any]:
    return {"quote_id": str(event.originator_id), "opportunity_id": event.opportunity_id,
            "owner_id": event.owner_id, "version": event.originator_version}


@EVENTS.publishes(Quote.Sent)
def quote_sent(event: Quote.Sent) -> events_pb2.QuoteSent:
    return events_pb2.QuoteSent(
        **_quote(event), valid_until=event.valid_until,
        totals=totals_to_proto(event.net, event.tax, event.gross, event.currency),
        sent_at=timestamp(event.timestamp), sent_by=event.sent_by)


@EVENTS.publishes(Quote.Accepted)
def quote_accepted(event: Quote.Accepted) -> events_pb2.QuoteAccepted:
    return events_pb2.QuoteAccepted(
        **_quote(event), account_id=event.account_id,
        totals=totals_to_proto(event.net, event.tax, event.gross, event.currency),
        accepted_on=event.accepted_on, opportunity_won=event.opportunity_won,
        accepted_at=timestamp(event.timestamp), accepted_by=event.accepted_by)


@EVENTS.publishes(Quote.Rejected)
def quote_rejected(event: Quote.Rejected) -> events_pb2.QuoteRejected:
    return events_pb2.QuoteRejected(
        **_quote(event), reason=event.reason or "", rejected_at=timestamp(event.timestamp),
        rejected_by=event.rejected_by)


@EVENTS.publishes(Quote.Revised)
def quote_revised(event: Quote.Revised) -> events_pb2.QuoteRevised:
    return events_pb2.QuoteRevised(
        **_quote(event), next_quote_id=event.next_quote_id, next_number=event.next_number,
        revised_at=timestamp(event.timestamp), revised_by=event.revised_by)


# -- resources the gRPC API answers with ----------------------------------------------------------

def _money(value: Money) -> Any:
    return value.to_proto()


def pipeline_to_message(pipeline: Pipeline, version: int) -> sales_pb2.Pipeline:
    return sales_pb2.Pipeline(stages=stages_to_proto(pipeline), version=version)


def opportunity_to_message(record: OpportunityRecord) -> sales_pb2.Opportunity:
    return sales_pb2.Opportunity(
        id=record.id, name=record.name, account_id=record.account_id, amount=_money(record.amount),
        expected_close_on=record.expected_close_on, owner_id=record.owner_id, stage=record.stage,
        probability=record.probability, status=record.status, closed_on=record.closed_on or "",
        lost_reason=record.lost_reason or "", won_quote_id=record.won_quote_id or "",
        stage_history=[values_pb2.StageChange(from_stage=entry.from_stage or "", stage=entry.stage,
                                              changed_at=timestamp(entry.at), changed_by=entry.by)
                       for entry in record.stage_history],
        version=record.version, created_at=timestamp(record.created_at), updated_at=timestamp(record.updated_at))


def product_to_message(record: ProductRecord) -> sales_pb2.Product:
    return sales_pb2.Product(
        id=record.id, sku=record.sku, name=record.name, family=record.family or "", active=record.active,
        decimal_quantities=record.decimal_quantities, version=record.version,
        created_at=timestamp(record.created_at))


def price_book_to_message(record: PriceBookRecord) -> sales_pb2.PriceBook:
    return sales_pb2.PriceBook(
        id=record.id, name=record.name, currency_code=record.currency,
        entries=[values_pb2.PriceBookEntry(sku=sku, unit_price=_money(price)) for sku, price in record.entries or ()],
        entry_count=record.entry_count, version=record.version, created_at=timestamp(record.created_at))


def _line_to_message(line: QuoteLineRecord, currency: str) -> values_pb2.PricedQuoteLine:
    return values_pb2.PricedQuoteLine(
        sku=line.sku, quantity=line.quantity, tax_rate=line.tax_rate,
        discount=discount_to_proto(line.discount, currency), unit_price=_money(line.unit_price),
        list_amount=_money(line.list_amount), discount_amount=_money(line.discount_amount),
        net=_money(line.net), tax=_money(line.tax), gross=_money(line.gross))


def quote_to_message(record: QuoteRecord) -> sales_pb2.Quote:
    return sales_pb2.Quote(
        id=record.id, opportunity_id=record.opportunity_id, account_id=record.account_id,
        owner_id=record.owner_id, price_book_id=record.price_book_id, currency_code=record.currency,
        valid_until=record.valid_until, number=record.number, previous_quote_id=record.previous_quote_id or "",
        next_quote_id=record.next_quote_id or "", status=record.status,
        lines=[_line_to_message(line, record.currency) for line in record.lines],
        totals=values_pb2.QuoteTotals(**{name: _money(value) for name, value in record.totals.items()}),
        version=record.version, created_at=timestamp(record.created_at), updated_at=timestamp(record.updated_at))


# -- the FX table, contracts, orders, loyalty, commissions ----------------------------------------

EVENTS.internal(
    # An account's ledger opening, a rep's quarter starting and counting a deal are
    # bookkeeping: the published facts are LoyaltyPointsEarned/Redeemed and CommissionEarned.
    LoyaltyAccount.Opened, RepQuarter.Started, RepQuarter.DealCounted)


def _stored_money(value: dict[str, str]) -> Any:
    return Money(Decimal(value["amount"]), value["currency"]).to_proto()


def fx_rates_to_proto(rates: list[dict[str, str]]) -> list[values_pb2.FxRate]:
    return [values_pb2.FxRate(currency_code=rate["currency"], rate=rate["rate"], on=rate["on"]) for rate in rates]


@EVENTS.publishes(FxTable.Set, FxTable.Changed)
def fx_rates_set(event: Any) -> events_pb2.FxRatesSet:
    return events_pb2.FxRatesSet(
        base_currency=event.base_currency, rates=fx_rates_to_proto(event.rates), version=event.originator_version,
        set_at=timestamp(event.timestamp), set_by=event.set_by)


def terms_to_proto(terms: dict[str, Any]) -> values_pb2.PaymentTerms:
    return values_pb2.PaymentTerms(instalments=terms["instalments"], first_due_on=terms["first_due_on"],
                                   every_months=terms["every_months"])


def schedule_to_proto(schedule: list[dict[str, Any]], currency: str) -> list[values_pb2.Instalment]:
    return [values_pb2.Instalment(instalment=item["instalment"], due_on=item["due_on"],
                                  amount=money(item["amount"], currency)) for item in schedule]


@EVENTS.publishes(Contract.Drafted)
def contract_drafted(event: Contract.Drafted) -> events_pb2.ContractDrafted:
    return events_pb2.ContractDrafted(
        contract_id=str(event.originator_id), quote_id=event.quote_id, opportunity_id=event.opportunity_id,
        account_id=event.account_id, owner_id=event.owner_id, total=money(event.total, event.currency),
        starts_on=event.starts_on, ends_on=event.ends_on, payment_terms=terms_to_proto(event.payment_terms),
        payment_schedule=schedule_to_proto(event.schedule, event.currency),
        renews_contract_id=event.renews_contract_id or "", version=event.originator_version,
        drafted_at=timestamp(event.timestamp), drafted_by=event.drafted_by)


def _contract(event: Any) -> dict[str, Any]:
    return {"contract_id": str(event.originator_id), "account_id": event.account_id, "owner_id": event.owner_id,
            "version": event.originator_version}


@EVENTS.publishes(Contract.Submitted)
def contract_submitted(event: Contract.Submitted) -> events_pb2.ContractSubmitted:
    return events_pb2.ContractSubmitted(
        **_contract(event), total=money(event.total, event.currency), base_total=_stored_money(event.base_total),
        approval_threshold=_stored_money(event.threshold), approval_required=event.approval_required,
        submitted_on=event.submitted_on, ends_on=event.ends_on, submitted_at=timestamp(event.timestamp),
        submitted_by=event.submitted_by)


@EVENTS.publishes(Contract.Approved)
def contract_approved(event: Contract.Approved) -> events_pb2.ContractApproved:
    return events_pb2.ContractApproved(
        **_contract(event), total=money(event.total, event.currency), automatic=event.automatic,
        comment=event.comment or "", approved_on=event.approved_on, approved_at=timestamp(event.timestamp),
        approved_by=event.approved_by)


@EVENTS.publishes(Contract.Rejected)
def contract_rejected(event: Contract.Rejected) -> events_pb2.ContractRejected:
    return events_pb2.ContractRejected(
        **_contract(event), comment=event.comment or "", rejected_on=event.rejected_on,
        rejected_at=timestamp(event.timestamp), rejected_by=event.rejected_by)


@EVENTS.publishes(Contract.Signed)
def contract_signed(event: Contract.Signed) -> events_pb2.ContractSigned:
    return events_pb2.ContractSigned(
        **_contract(event), total=money(event.total, event.currency), signed_on=event.signed_on,
        starts_on=event.starts_on, ends_on=event.ends_on, signed_at=timestamp(event.timestamp),
        signed_by=event.signed_by)


@EVENTS.publishes(Contract.Activated)
def contract_activated(event: Contract.Activated) -> events_pb2.ContractActivated:
    return events_pb2.ContractActivated(
        **_contract(event), total=money(event.total, event.currency), activated_on=event.activated_on,
        starts_on=event.starts_on, ends_on=event.ends_on,
        instalments=schedule_to_proto(event.schedule, event.currency),
        activated_at=timestamp(event.timestamp), activated_by=event.activated_by)


@EVENTS.publishes(Contract.PaymentRecorded)
def payment_recorded(event: Contract.PaymentRecorded) -> events_pb2.PaymentRecorded:
    return events_pb2.PaymentRecorded(
        **_contract(event), instalment=event.instalment, amount=money(event.amount, event.currency),
        paid_on=event.paid_on, instalment_outstanding=money(event.instalment_outstanding, event.currency),
        contract_outstanding=money(event.contract_outstanding, event.currency),
        recorded_at=timestamp(event.timestamp), recorded_by=event.recorded_by)


@EVENTS.publishes(Contract.Expired)
def contract_expired(event: Contract.Expired) -> events_pb2.ContractExpired:
    return events_pb2.ContractExpired(
        **_contract(event), ends_on=event.ends_on, expired_on=event.expired_on,
        expired_at=timestamp(event.timestamp), expired_by=event.expired_by)


@EVENTS.publishes(Contract.Terminated)
def contract_terminated(event: Contract.Terminated) -> events_pb2.ContractTerminated:
    return events_pb2.ContractTerminated(
        **_contract(event), from_status=event.from_status, reason=event.reason or "",
        terminated_on=event.terminated_on, terminated_at=timestamp(event.timestamp),
        terminated_by=event.terminated_by)


@EVENTS.publishes(Contract.Renewed)
def contract_renewed(event: Contract.Renewed) -> events_pb2.ContractRenewed:
    return events_pb2.ContractRenewed(
        **_contract(event), next_contract_id=event.next_contract_id, renewed_on=event.renewed_on,
        renewed_at=timestamp(event.timestamp), renewed_by=event.renewed_by)


@EVENTS.publishes(Contract.AmendmentRequested)
def contract_amendment_requested(event: Contract.AmendmentRequested) -> events_pb2.ContractAmendmentRequested:
    return events_pb2.ContractAmendmentRequested(
        **_contract(event), amendment=event.amendment, reason=event.reason, total=money(event.total, event.currency),
        ends_on=event.ends_on, proposed_total=money(event.proposed_total, event.currency),
        proposed_ends_on=event.proposed_ends_on,
        proposed_schedule=schedule_to_proto(event.proposed_schedule or [], event.currency),
        base_total=_stored_money(event.base_total) if event.base_total else None,
        approval_threshold=_stored_money(event.threshold), approval_required=event.approval_required,
        requested_on=event.requested_on, requested_at=timestamp(event.timestamp), requested_by=event.requested_by)


def balances_to_proto(schedule: list[dict[str, Any]], paid: dict[str, str],
                      currency: str) -> tuple[list[values_pb2.InstalmentBalance], Money]:
    """The schedule with what is paid and outstanding on each instalment, and the sum outstanding."""
    items, left = [], Money.zero(currency)
    for item in schedule:
        amount = Money(Decimal(item["amount"]), currency)
        paid_on = Money(Decimal(paid.get(str(item["instalment"]), "0")), currency)
        left = left + amount - paid_on
        items.append(values_pb2.InstalmentBalance(
            instalment=item["instalment"], due_on=item["due_on"], amount=amount.to_proto(),
            paid=paid_on.round_half_even().to_proto(), outstanding=(amount - paid_on).to_proto()))
    return items, left


@EVENTS.publishes(Contract.Amended)
def contract_amended(event: Contract.Amended) -> events_pb2.ContractAmended:
    instalments, left = balances_to_proto(event.schedule, event.paid, event.currency)
    return events_pb2.ContractAmended(
        **_contract(event), amendment=event.amendment, reason=event.reason,
        previous_total=money(event.previous_total, event.currency), total=money(event.total, event.currency),
        previous_ends_on=event.previous_ends_on, starts_on=event.starts_on, ends_on=event.ends_on,
        instalments=instalments, outstanding=left.to_proto(), status=event.status, automatic=event.automatic,
        comment=event.comment or "", requested_by=event.requested_by, amended_on=event.amended_on,
        amended_at=timestamp(event.timestamp), approved_by=event.approved_by)


@EVENTS.publishes(Contract.AmendmentRejected)
def contract_amendment_rejected(event: Contract.AmendmentRejected) -> events_pb2.ContractAmendmentRejected:
    return events_pb2.ContractAmendmentRejected(
        **_contract(event), amendment=event.amendment, comment=event.comment or "",
        rejected_on=event.rejected_on, rejected_at=timestamp(event.timestamp), rejected_by=event.rejected_by)


def order_lines_to_proto(lines: list[dict[str, Any]], currency: str) -> list[values_pb2.OrderLine]:
    return [values_pb2.OrderLine(sku=line["sku"], family=line["family"] or "", quantity=line["quantity"],
                                 net=money(line["net"], currency), tax=money(line["tax"], currency),
                                 gross=money(line["gross"], currency)) for line in lines]


@EVENTS.publishes(Order.Placed)
def order_placed(event: Order.Placed) -> events_pb2.OrderPlaced:
    return events_pb2.OrderPlaced(
        order_id=str(event.originator_id), opportunity_id=event.opportunity_id, quote_id=event.quote_id,
        account_id=event.account_id, owner_id=event.owner_id, lines=order_lines_to_proto(event.lines, event.currency),
        totals=totals_to_proto(event.net, event.tax, event.gross, event.currency),
        base_net=_stored_money(event.base_net), placed_on=event.placed_on, version=event.originator_version,
        placed_at=timestamp(event.timestamp), placed_by=event.placed_by)


@EVENTS.publishes(LoyaltyProgramme.RuleSet, LoyaltyProgramme.RuleChanged)
def loyalty_rule_set(event: Any) -> events_pb2.LoyaltyRuleSet:
    rule = event.rule
    return events_pb2.LoyaltyRuleSet(
        base_currency=rule["base_currency"], points_per_unit=rule["points_per_unit"],
        tier_multipliers=dict(rule["tier_multipliers"]), version=event.originator_version,
        set_at=timestamp(event.timestamp), set_by=event.set_by)


@EVENTS.publishes(LoyaltyAccount.Earned)
def loyalty_points_earned(event: LoyaltyAccount.Earned) -> events_pb2.LoyaltyPointsEarned:
    return events_pb2.LoyaltyPointsEarned(
        ledger_id=str(event.originator_id), account_id=event.account_id, order_id=event.order_id,
        points=event.points, balance=event.balance, base_amount=_stored_money(event.base_amount),
        tier=event.tier or "", version=event.originator_version, earned_at=timestamp(event.timestamp))


@EVENTS.publishes(LoyaltyAccount.Redeemed)
def loyalty_points_redeemed(event: LoyaltyAccount.Redeemed) -> events_pb2.LoyaltyPointsRedeemed:
    return events_pb2.LoyaltyPointsRedeemed(
        ledger_id=str(event.originator_id), account_id=event.account_id, points=event.points,
        balance=event.balance, reference=event.reference, version=event.originator_version,
        redeemed_at=timestamp(event.timestamp), redeemed_by=event.redeemed_by)


def commission_rules_to_proto(plan: dict[str, Any]) -> list[values_pb2.CommissionRule]:
    return [values_pb2.CommissionRule(
        owner_id=rule["owner_id"] or "", family=rule["family"] or "", percent=rule["percent"],
        tiers=[values_pb2.CommissionTier(attainment_from=_stored_money(tier["attainment_from"]),
                                         percent=tier["percent"]) for tier in rule["tiers"]])
        for rule in plan["rules"]]


@EVENTS.publishes(CommissionPlanSetting.PlanSet, CommissionPlanSetting.PlanChanged)
def commission_plan_set(event: Any) -> events_pb2.CommissionPlanSet:
    return events_pb2.CommissionPlanSet(
        base_currency=event.plan["base_currency"], rules=commission_rules_to_proto(event.plan),
        version=event.originator_version, set_at=timestamp(event.timestamp), set_by=event.set_by)


@EVENTS.publishes(RepQuarter.CommissionEarned)
def commission_earned(event: RepQuarter.CommissionEarned) -> events_pb2.CommissionEarned:
    return events_pb2.CommissionEarned(
        quarter_id=str(event.originator_id), owner_id=event.owner_id, period=event.period,
        opportunity_id=event.opportunity_id, order_id=event.order_id or "", sku=event.sku,
        family=event.family or "", net=_stored_money(event.net), percent=event.percent,
        amount=_stored_money(event.amount), attainment=_stored_money(event.attainment), won_on=event.won_on,
        version=event.originator_version, earned_at=timestamp(event.timestamp))


# -- the lead-to-cash resources the gRPC API answers with ---------------------------------------

def fx_rates_to_message(record: Any) -> sales_pb2.FxRates:
    return sales_pb2.FxRates(base_currency=record.base_currency, on=record.on,
                             rates=fx_rates_to_proto([rate.to_json() for rate in record.rates]),
                             version=record.version)


def contract_to_message(record: ContractRecord) -> sales_pb2.Contract:
    return sales_pb2.Contract(
        id=record.id, quote_id=record.quote_id, opportunity_id=record.opportunity_id, account_id=record.account_id,
        owner_id=record.owner_id, status=record.status, total=_money(record.total), starts_on=record.starts_on,
        ends_on=record.ends_on, payment_terms=terms_to_proto(record.payment_terms),
        payment_schedule=[sales_pb2.ScheduledInstalment(
            instalment=item.instalment, due_on=item.due_on, amount=_money(item.amount), paid=_money(item.paid),
            outstanding=_money(item.outstanding)) for item in record.payment_schedule],
        outstanding=_money(record.outstanding), approval_required=bool(record.approval_required),
        base_total=_money(record.base_total) if record.base_total is not None else None,
        submitted_by=record.submitted_by or "", approved_by=record.approved_by or "",
        approval_comment=record.approval_comment or "", rejection_comment=record.rejection_comment or "",
        signed_on=record.signed_on or "", activated_on=record.activated_on or "",
        terminated_on=record.terminated_on or "", termination_reason=record.termination_reason or "",
        renews_contract_id=record.renews_contract_id or "",
        renewed_by_contract_id=record.renewed_by_contract_id or "", version=record.version,
        created_at=timestamp(record.created_at), updated_at=timestamp(record.updated_at),
        amendments=[amendment_to_message(item) for item in record.amendments])


def amendment_to_message(record: AmendmentRecord) -> sales_pb2.ContractAmendment:
    return sales_pb2.ContractAmendment(
        number=record.number, status=record.status, reason=record.reason, ends_on=record.ends_on,
        previous_ends_on=record.previous_ends_on, total=_money(record.total),
        previous_total=_money(record.previous_total),
        payment_schedule=[values_pb2.Instalment(instalment=number, due_on=due_on, amount=_money(amount))
                          for number, due_on, amount in record.payment_schedule or []],
        approval_required=record.approval_required,
        base_total=_money(record.base_total) if record.base_total is not None else None,
        requested_on=record.requested_on, requested_by=record.requested_by, decided_on=record.decided_on or "",
        decided_by=record.decided_by or "", comment=record.comment or "")


def order_to_message(record: OrderRecord) -> sales_pb2.Order:
    return sales_pb2.Order(
        id=record.id, opportunity_id=record.opportunity_id, quote_id=record.quote_id, account_id=record.account_id,
        owner_id=record.owner_id,
        lines=[values_pb2.OrderLine(sku=line.sku, family=line.family or "", quantity=line.quantity,
                                    net=_money(line.net), tax=_money(line.tax), gross=_money(line.gross))
               for line in record.lines],
        totals=values_pb2.QuoteTotals(**{name: _money(value) for name, value in record.totals.items()}),
        base_net=_money(record.base_net), placed_on=record.placed_on, version=record.version,
        created_at=timestamp(record.created_at), status=record.status)


def loyalty_rule_to_message(record: Any) -> sales_pb2.LoyaltyRule:
    rule = record.rule.to_json()
    return sales_pb2.LoyaltyRule(base_currency=rule["base_currency"], points_per_unit=rule["points_per_unit"],
                                 tier_multipliers=rule["tier_multipliers"], version=record.version)


def loyalty_to_message(record: LoyaltyRecord) -> sales_pb2.Loyalty:
    return sales_pb2.Loyalty(account_id=record.account_id, balance=record.balance,
                             ledger=[sales_pb2.LoyaltyEntry(**entry) for entry in record.ledger])


def commission_plan_to_message(record: Any) -> sales_pb2.CommissionPlan:
    return sales_pb2.CommissionPlan(base_currency=record.plan.base_currency,
                                    rules=commission_rules_to_proto(record.plan.to_json()), version=record.version)


def commissions_to_message(record: Any) -> sales_pb2.ListCommissionsResponse:
    return sales_pb2.ListCommissionsResponse(
        owner_id=record.owner_id, period=record.period, attainment=_money(record.attainment),
        commissions=[sales_pb2.Commission(
            opportunity_id=item["opportunity_id"], order_id=item["order_id"] or "", sku=item["sku"],
            family=item["family"] or "", net=_stored_money(item["net"]), percent=item["percent"],
            amount=_stored_money(item["amount"]), attainment=_stored_money(item["attainment"]),
            won_on=item["won_on"]) for item in record.commissions],
        totals=[_money(total) for total in record.totals])

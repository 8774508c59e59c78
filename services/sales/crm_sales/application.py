"""Sales application: commands and queries over the sales event store (accounts, contacts,
the pipeline, opportunities, products, price books, quotes, contracts, orders, loyalty and
commissions).

Commands are small dataclasses that the HTTP and gRPC adapters both build. Each loads the
aggregate, checks the caller may see it (crm_runtime.ownership: a `sales_rep` sees the
accounts it owns and their contacts; a record it may not see is answered as missing), calls
the domain and saves the new events in one transaction. A stale expected version, or a
concurrent write to the same record, is a Conflict.

Lists are answered by the query model (crm_sales.views), which is caught up with the store
after every command, so a caller lists what it has just written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from crm_runtime import logs
from crm_runtime.auth import Action, Principal, current_principal
from crm_runtime.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidField, NotFound
from crm_runtime.eventstore import ServiceApplication, caller_scoped, check_version, parse_id
from crm_runtime.index import ViewsOf
from crm_runtime.index import decode_cursor as decode_index_cursor
from crm_runtime.money import Money, check_currency
from crm_runtime.ownership import can_see, check_visible, owner_filter
from crm_runtime.settings import PlatformSettings
from crm_sales.amendments import parse_amendment
from crm_sales.catalogue import PriceBook, Product, product_id_for, validate_price_book, validate_product
from crm_sales.catalogue import price_book_id_for as _price_book_id_for
from crm_sales.commissions import CommissionPlan
from crm_sales.contracts import Contract, ContractStatus, check_term, contract_id_for
from crm_sales.domain import (
    NAME_MAX,
    Account,
    Contact,
    DomainAccount,
    account_id_for,
    contact_id_for,
    plain_identifier,
    record_id,
    validate_account,
    validate_contact,
)
from crm_sales.earnings import (
    COMMISSION_PLAN_ID,
    CommissionPlanSetting,
    RepQuarter,
    parse_period,
    period_of,
    plan_of,
    quarter_id_for,
)
from crm_sales.fx import FX_TABLE_ID, FxRate, FxTable, Rates, check_base, parse_rates, rates_of
from crm_sales.loyalty import LoyaltyRule
from crm_sales.opportunities import (
    PIPELINE_ID,
    Opportunity,
    SalesPipeline,
    active_pipeline,
    clean_reason,
    opportunity_id_for,
    parse_date,
    validate_opportunity,
)
from crm_sales.orders import (
    LOYALTY_PROGRAMME_ID,
    LoyaltyAccount,
    LoyaltyProgramme,
    Order,
    OrderStatus,
    ledger_id_for,
    loyalty_rule_of,
)
from crm_sales.payment_schedule import PaymentTerms
from crm_sales.permissions import ACCOUNTS, CONTRACT_APPROVALS, OPPORTUNITIES
from crm_sales.pipeline import Pipeline
from crm_sales.pricing import PricedQuote, parse_lines, price_quote
from crm_sales.quotes import Quote, QuoteStatus, check_valid_until, quote_id_for
from crm_sales.views import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    AccountRecord,
    AmendmentRecord,
    ContactRecord,
    ContractQuery,
    ContractRecord,
    ListQuery,
    LoyaltyRecord,
    OpportunityQuery,
    OpportunityRecord,
    OrderQuery,
    OrderRecord,
    Page,
    PriceBookRecord,
    ProductQuery,
    ProductRecord,
    QuoteQuery,
    QuoteRecord,
    SalesViews,
    decode_cursor,
    open_views,
)

log = logs.get(__name__)
A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class OpenAccount:
    name: Any
    domain: Any = None
    industry: Any = None
    region: Any = None
    tier: Any = None
    owner_id: Any = None  # None or empty: the caller
    # The caller's Idempotency-Key (HTTP) or request_id (gRPC).
    request_key: str | None = None
    # Who asks; None: the principal bound to this call (none: an internal call).
    caller: Principal | None = None


@dataclass(frozen=True)
class ChangeAccount:
    account_id: str | UUID
    # Required: the version the caller read (HTTP If-Match, gRPC expected_version).
    expected_version: int | None
    # Only the fields to change; None clears an optional field.
    changes: Mapping[str, Any] = field(default_factory=dict)
    caller: Principal | None = None


@dataclass(frozen=True)
class AddContact:
    account_id: Any
    name: Any
    email: Any = None
    phone: Any = None
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ChangeContact:
    contact_id: str | UUID
    expected_version: int | None
    changes: Mapping[str, Any] = field(default_factory=dict)
    caller: Principal | None = None


@dataclass(frozen=True)
class ListRecords:
    """A page of accounts or contacts (account_id: contacts only)."""

    limit: int | None = None
    cursor: str | None = None
    owner_id: str | None = None
    name_prefix: str | None = None
    updated_since: datetime | None = None
    account_id: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ConfigurePipeline:
    stages: Any  # [{"name", "probability"}]
    # Optional: the version read (0: the default pipeline); stale: Conflict.
    expected_version: int | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class PipelineRecord:
    pipeline: Pipeline
    version: int  # 0: the default, never configured


@dataclass(frozen=True)
class OpenOpportunity:
    name: Any
    account_id: Any
    amount: Any  # {"amount", "currency"} or a Money
    expected_close_on: Any
    owner_id: Any = None  # None or empty: the caller
    stage: Any = None  # None or empty: the pipeline's first open stage
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class WorkOpportunity:
    """`action`: "stage" (to `stage`), "win", or "lose" (with `reason`)."""

    opportunity_id: str | UUID
    action: str
    stage: Any = None
    reason: Any = None
    expected_version: int | None = None  # optional If-Match
    caller: Principal | None = None


@dataclass(frozen=True)
class ListOpportunities:
    limit: int | None = None
    cursor: str | None = None
    owner_id: str | None = None
    stage: str | None = None
    account_id: str | None = None
    close_month: str | None = None  # YYYY-MM
    caller: Principal | None = None


@dataclass(frozen=True)
class AddProduct:
    sku: Any
    name: Any
    family: Any = None
    active: Any = None  # None: true
    decimal_quantities: Any = None  # None: false
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ListProducts:
    limit: int | None = None
    cursor: str | None = None
    family: str | None = None
    active: bool | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class PublishPriceBook:
    name: Any
    currency: Any
    entries: Any  # [{"sku", "unit_price": {"amount", "currency"} | "12.50" | Money}]
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ListPriceBooks:
    limit: int | None = None
    cursor: str | None = None
    currency: str | None = None
    name_prefix: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class DraftQuote:
    opportunity_id: Any
    price_book_id: Any
    valid_until: Any
    lines: Any  # [{"sku", "quantity", "discount"?, "tax_rate"}]
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class WorkQuote:
    """`action`: "send", "accept" (optionally winning the opportunity) or "reject"."""

    quote_id: str | UUID
    action: str
    win_opportunity: bool = False
    reason: Any = None
    expected_version: int | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ListQuotes:
    """A page of quotes by valid_until, then id; filters combine with AND."""

    limit: int | None = None
    cursor: str | None = None
    owner_id: str | None = None
    opportunity_id: str | None = None
    account_id: str | None = None
    status: str | None = None  # as shown today: expired is a draft or sent quote past valid_until
    valid_until_after: Any = None  # ISO dates, exclusive
    valid_until_before: Any = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ReviseQuote:
    quote_id: str | UUID
    lines: Any
    valid_until: Any = None  # None: the revised quote's
    expected_version: int | None = None
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class AcceptedQuote:
    quote: QuoteRecord
    opportunity: OpportunityRecord | None  # when the acceptance won it


@dataclass(frozen=True)
class RevisedQuote:
    quote: QuoteRecord  # the new one
    previous: QuoteRecord  # superseded
    created: bool


@dataclass(frozen=True)
class SetFxRates:
    base: Any  # must be the configured base currency
    rates: Any  # [{"currency", "rate", "on"}]
    caller: Principal | None = None


@dataclass(frozen=True)
class FxRatesRecord:
    base_currency: str
    on: str
    rates: list[FxRate]  # per currency, the latest on or before `on`
    version: int  # 0: nothing set yet


@dataclass(frozen=True)
class DraftContract:
    quote_id: Any
    starts_on: Any
    ends_on: Any
    payment_terms: Any  # {"instalments", "first_due_on", "every_months"}
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ListContracts:
    """A page of contracts by ends_on, then id (renewals first due come first); filters
    combine with AND."""

    limit: int | None = None
    cursor: str | None = None
    owner_id: str | None = None
    account_id: str | None = None
    status: str | None = None  # as shown today: an active contract past ends_on is expired
    ends_after: Any = None  # ISO dates, exclusive
    ends_before: Any = None
    caller: Principal | None = None


@dataclass(frozen=True)
class WorkContract:
    """`action`: submit, approve, reject (with `comment`), sign, activate, expire, terminate (`reason`)."""

    contract_id: str | UUID
    action: str
    comment: Any = None
    reason: Any = None
    expected_version: int | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class RenewContract:
    contract_id: str | UUID
    ends_on: Any
    payment_terms: Any
    starts_on: Any = None  # None: the day after the renewed contract's ends_on
    expected_version: int | None = None
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class RenewedContract:
    contract: ContractRecord  # the new one
    previous: ContractRecord
    created: bool


@dataclass(frozen=True)
class RecordPayment:
    contract_id: str | UUID
    instalment: Any
    amount: Any  # {"amount", "currency"} or Money
    paid_on: Any
    expected_version: int | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class AmendContract:
    """An amendment (crm_sales.amendments): `reason`, and a new `ends_on` and/or the
    remaining `payment_schedule` (`[{"instalment", "due_on", "amount"}]`) with its `total`."""

    contract_id: str | UUID
    reason: Any
    ends_on: Any = None
    total: Any = None  # {"amount", "currency"} or Money; None: unchanged
    payment_schedule: Any = None  # None: unchanged
    expected_version: int | None = None
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class DecideAmendment:
    """`action`: approve (optional `comment`) or reject (`comment` required)."""

    contract_id: str | UUID
    amendment: Any
    action: str
    comment: Any = None
    expected_version: int | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class AmendedContract:
    contract: ContractRecord
    amendment: AmendmentRecord
    created: bool = True


@dataclass(frozen=True)
class ListOrders:
    """A page of orders by placed_on, then id; filters combine with AND."""

    limit: int | None = None
    cursor: str | None = None
    owner_id: str | None = None
    account_id: str | None = None
    status: str | None = None  # placed
    placed_after: Any = None  # ISO dates, exclusive
    placed_before: Any = None
    caller: Principal | None = None


@dataclass(frozen=True)
class SetLoyaltyRule:
    rule: Any  # {"points_per_unit", "tier_multipliers"}
    caller: Principal | None = None


@dataclass(frozen=True)
class LoyaltyRuleRecord:
    rule: LoyaltyRule
    version: int  # 0: the default rule


@dataclass(frozen=True)
class RedeemPoints:
    account_id: str | UUID
    points: Any
    reference: Any
    caller: Principal | None = None


@dataclass(frozen=True)
class SetCommissionPlan:
    rules: Any
    caller: Principal | None = None


@dataclass(frozen=True)
class CommissionPlanRecord:
    plan: CommissionPlan
    version: int  # 0: no plan yet


@dataclass(frozen=True)
class ListCommissions:
    owner_id: str | None = None  # None: the caller
    period: str | None = None  # None: this quarter
    caller: Principal | None = None


@dataclass(frozen=True)
class CommissionsRecord:
    owner_id: str
    period: str
    attainment: Money
    commissions: list[dict[str, Any]]
    totals: list[Money]  # per currency


_CLOSE_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


def _close_month(raw: str) -> tuple[str, str]:
    """`YYYY-MM` as [its first day, the next month's first day), ISO dates."""
    found = _CLOSE_MONTH.fullmatch(raw)
    if found is None:
        raise InvalidField("close_month", f"{raw[:20]!r} is not a month such as 2025-06 (YYYY-MM)")
    year, month = int(found.group(1)), int(found.group(2))
    following = date(year + (month == 12), month % 12 + 1, 1)
    return date(year, month, 1).isoformat(), following.isoformat()


def _who(caller: Principal | None) -> Principal | None:
    return caller if caller is not None else current_principal()


def _subject(who: Principal | None) -> str:
    return who.subject if who is not None else ""


def _require_version(expected: int | None, what: str) -> int:
    if expected is None:
        raise FailedPrecondition(f"changing a {what} needs the version it was read at "
                                 f"(HTTP If-Match, gRPC expected_version)")
    if expected < 1:
        raise InvalidField("expected_version", "versions start at 1")
    return expected


def _check_owner(who: Principal | None, owner_id: str) -> None:
    """Giving an account to anyone but yourself is assigning it."""
    if who is not None and owner_id != who.subject:
        who.check(ACCOUNTS.name, Action.ASSIGN)


class SalesApplication(ViewsOf[SalesViews], ServiceApplication):
    name = "Sales"

    def __init__(self, platform: PlatformSettings, default_phone_region: str = "US",
                 clock: Callable[[], datetime] | None = None, base_currency: str = "EUR",
                 approval_threshold: str | Decimal = "100000", converted_close_days: int = 30):
        super().__init__(platform)
        self.default_phone_region = default_phone_region
        # Reports, thresholds, loyalty points and attainment are in this currency (FX table).
        self.base_currency = check_currency("base_currency", base_currency)
        # Contracts above this total in the base currency wait for a manager's approval.
        self.approval_threshold = Money(Decimal(approval_threshold), base_currency).round_half_even()
        self.converted_close_days = converted_close_days
        # What "today" is for quote expiry and close dates (UTC); tests set it.
        self.clock = clock or (lambda: datetime.now(UTC))

    def make_views(self) -> SalesViews:
        return open_views(self, self.platform)

    # -- accounts -------------------------------------------------------------------------

    def open_account(self, command: OpenAccount) -> tuple[AccountRecord, bool]:
        """Opens an account; returns (account, created). A repeated request key returns the first."""
        who = _who(command.caller)
        owner = command.owner_id if command.owner_id not in (None, "") else (who.subject if who else None)
        details = validate_account(command.name, owner, command.domain, command.industry,
                                   command.region, command.tier)
        _check_owner(who, details.owner_id)
        key = caller_scoped(who.subject if who else None, command.request_key)
        account, created = self.create_once(
            Account.open(details, account_id_for(key), opened_by=_subject(who)),
            same=lambda first: first.same_opening(details))
        if created:
            log.info("account.opened", account_id=str(account.id), owner_id=account.owner_id)
            self._refresh_views()
        else:
            check_visible(account, "account", who)
        return AccountRecord.of(account), created

    def _visible_account(self, account_id: str | UUID, who: Principal | None) -> Account:
        return check_visible(self.get(Account, account_id, "account"), "account", who)

    def get_account(self, account_id: str | UUID, caller: Principal | None = None) -> AccountRecord:
        return AccountRecord.of(self._visible_account(account_id, _who(caller)))

    def change_account(self, command: ChangeAccount) -> AccountRecord:
        who = _who(command.caller)
        expected = _require_version(command.expected_version, "account")
        account = self._visible_account(command.account_id, who)
        check_version(account, expected)
        differences = account.differences(command.changes)
        if "owner_id" in differences:
            _check_owner(who, differences["owner_id"])
        changed = account.change(command.changes, changed_by=_subject(who))
        if changed:
            self.save_changes(account)
            log.info("account.changed", account_id=str(account.id), changed=changed)
            self._refresh_views()
        return AccountRecord.of(account)

    def list_accounts(self, request: ListRecords) -> Page[AccountRecord]:
        query = self._query(request, "account")
        self.views.catch_up()
        return self.views.list_accounts(query, owner_filter(_who(request.caller)))

    # -- contacts -------------------------------------------------------------------------

    def _account_of_contact(self, account_id: str, who: Principal | None) -> Account:
        """The account a contact is added to or moved to: it must exist and be the caller's to see."""
        account = self.find(Account, parse_id("account_id", account_id))
        if account is None or not can_see(account.owner_id, who):
            raise InvalidField("account_id", f"account {account_id} does not exist")
        return account

    def _visible_contact(self, contact_id: str | UUID, who: Principal | None) -> tuple[Contact, Account]:
        contact = self.get(Contact, contact_id, "contact")
        account = self.find(Account, UUID(contact.account_id))
        if account is None or not can_see(account.owner_id, who):
            raise NotFound(f"contact {contact_id} does not exist")
        return contact, account

    def add_contact(self, command: AddContact) -> tuple[ContactRecord, bool]:
        """Adds a contact to an account; returns (contact, created)."""
        who = _who(command.caller)
        details = validate_contact(command.account_id, command.name, command.email, command.phone,
                                   self.default_phone_region)
        account = self._account_of_contact(details.account_id, who)
        key = caller_scoped(who.subject if who else None, command.request_key)
        contact, created = self.create_once(
            Contact.add(details, contact_id_for(key), added_by=_subject(who)),
            same=lambda first: first.same_addition(details))
        if created:
            log.info("contact.added", contact_id=str(contact.id), account_id=contact.account_id)
            self._refresh_views()
        else:
            contact, account = self._visible_contact(contact.id, who)
        return ContactRecord.of(contact, account.owner_id), created

    def get_contact(self, contact_id: str | UUID, caller: Principal | None = None) -> ContactRecord:
        contact, account = self._visible_contact(contact_id, _who(caller))
        return ContactRecord.of(contact, account.owner_id)

    def change_contact(self, command: ChangeContact) -> ContactRecord:
        who = _who(command.caller)
        expected = _require_version(command.expected_version, "contact")
        contact, account = self._visible_contact(command.contact_id, who)
        check_version(contact, expected)
        differences = contact.differences(command.changes, self.default_phone_region)
        if "account_id" in differences:
            account = self._account_of_contact(differences["account_id"], who)
        changed = contact.change(command.changes, changed_by=_subject(who),
                                 default_region=self.default_phone_region)
        if changed:
            self.save_changes(contact)
            log.info("contact.changed", contact_id=str(contact.id), changed=changed)
            self._refresh_views()
        return ContactRecord.of(contact, account.owner_id)

    def list_contacts(self, request: ListRecords) -> Page[ContactRecord]:
        query = self._query(request, "contact")
        self.views.catch_up()
        return self.views.list_contacts(query, owner_filter(_who(request.caller)))

    # -- the pipeline -----------------------------------------------------------------------

    def today(self) -> date:
        return self.clock().astimezone(UTC).date()

    def _configured_pipeline(self) -> SalesPipeline | None:
        return self.find(SalesPipeline, PIPELINE_ID)

    def pipeline(self) -> Pipeline:
        """The active pipeline: the configured one, else the default."""
        return active_pipeline(self._configured_pipeline())

    def get_pipeline(self) -> PipelineRecord:
        configured = self._configured_pipeline()
        return PipelineRecord(active_pipeline(configured), configured.version if configured else 0)

    def configure_pipeline(self, command: ConfigurePipeline) -> PipelineRecord:
        """Sets the stages and probabilities. Opportunities in a stage the new pipeline lacks
        keep it (they can leave it, nobody can enter it)."""
        who = _who(command.caller)
        pipeline = Pipeline.parse(command.stages)
        configured = self._configured_pipeline()
        current = configured.version if configured else 0
        if command.expected_version is not None and command.expected_version != current:
            raise Conflict(f"the pipeline is at version {current}, not {command.expected_version}")
        if configured is None:
            configured = SalesPipeline.configure(pipeline, configured_by=_subject(who))
        elif not configured.change(pipeline, changed_by=_subject(who)):
            return PipelineRecord(configured.pipeline, configured.version)
        self.save_changes(configured)
        log.info("pipeline.configured", stages=list(pipeline.names), version=configured.version)
        return PipelineRecord(configured.pipeline, configured.version)

    # -- opportunities ----------------------------------------------------------------------

    def _visible_opportunity(self, opportunity_id: str | UUID, who: Principal | None) -> Opportunity:
        return check_visible(self.get(Opportunity, opportunity_id, "opportunity"), "opportunity", who)

    def open_opportunity(self, command: OpenOpportunity) -> tuple[OpportunityRecord, bool]:
        """Opens an opportunity on an account the caller can see; returns (opportunity, created)."""
        who = _who(command.caller)
        pipeline = self.pipeline()
        owner = command.owner_id if command.owner_id not in (None, "") else (who.subject if who else None)
        details = validate_opportunity(pipeline, command.name, command.account_id, command.amount,
                                       command.expected_close_on, owner, command.stage)
        if who is not None and details.owner_id != who.subject:
            who.check(OPPORTUNITIES.name, Action.ASSIGN)
        self._account_of_contact(details.account_id, who)  # exists and is the caller's to see
        key = caller_scoped(who.subject if who else None, command.request_key)
        opportunity, created = self.create_once(
            Opportunity.open(details, pipeline, opportunity_id_for(key), opened_by=_subject(who)),
            same=lambda first: first.same_opening(details))
        if created:
            log.info("opportunity.opened", opportunity_id=str(opportunity.id), stage=opportunity.stage,
                     amount=str(opportunity.amount))
            self._refresh_views()
        else:
            check_visible(opportunity, "opportunity", who)
        return OpportunityRecord.of(opportunity, pipeline), created

    def get_opportunity(self, opportunity_id: str | UUID, caller: Principal | None = None) -> OpportunityRecord:
        return OpportunityRecord.of(self._visible_opportunity(opportunity_id, _who(caller)), self.pipeline())

    def work_opportunity(self, command: WorkOpportunity) -> OpportunityRecord:
        """Moves an opportunity to another open stage, wins it or loses it. Won and lost are
        final (FailedPrecondition naming the status); a stage not in the pipeline is InvalidField."""
        who = _who(command.caller)
        opportunity = self._visible_opportunity(command.opportunity_id, who)
        check_version(opportunity, command.expected_version)
        pipeline = self.pipeline()
        added: list[Any] = []
        if command.action == "stage":
            opportunity.move_to(pipeline, command.stage, moved_by=_subject(who))
        elif command.action == "win":
            added = self._win(opportunity, who)
        elif command.action == "lose":
            opportunity.lose(command.reason, self.today(), lost_by=_subject(who))
        else:
            raise ValueError(f"unknown opportunity action {command.action!r}")
        if opportunity.pending_events:
            self.save_changes(opportunity, *added)
            log.info("opportunity.changed", opportunity_id=str(opportunity.id), stage=opportunity.stage)
            self._refresh_views()
        return OpportunityRecord.of(opportunity, pipeline)

    def _win(self, opportunity: Opportunity, who: Principal | None, quote: Quote | None = None) -> list[Any]:
        """Wins the opportunity (with the accepted quote that won it, if any) and returns
        what the win adds, for the caller to save in ONE transaction with the opportunity
        (and the quote): with a quote, the order (`OrderPlaced`) and the account's loyalty
        points; always, the owner's quarter counting the deal and its commissions. The won
        net is converted to the base currency with the FX table first: no rate, nothing
        won (409 naming the currency)."""
        today = self.today()
        amount = quote.totals["net"] if quote is not None else None
        opportunity.win(today, won_by=_subject(who), amount=amount,
                        quote_id=str(quote.id) if quote is not None else None)
        base_net = self.fx_rates().to_base(opportunity.amount, today)
        added: list[Any] = []
        order: Order | None = None
        if quote is not None:
            families = {}
            for line in quote.lines:
                product = self.find(Product, product_id_for(line["sku"]))
                families[line["sku"]] = product.family if product is not None else None
            order = Order.place(str(opportunity.id), quote, families, base_net, today, placed_by=_subject(who))
            added.append(order)
            ledger = self._loyalty_points(order, base_net)
            if ledger is not None:
                added.append(ledger)
            lines = [(line["sku"], families[line["sku"]], quote.money(line["net"])) for line in quote.lines]
        else:
            lines = [("", None, opportunity.amount)]
        period = period_of(today)
        quarter = (self.find(RepQuarter, quarter_id_for(opportunity.owner_id, period))
                   or RepQuarter.start(opportunity.owner_id, period, self.base_currency))
        if quarter.count_deal(self.commission_plan(), str(opportunity.id), str(order.id) if order else None,
                              base_net, lines, today):
            added.append(quarter)
        return added

    def _loyalty_points(self, order: Order, base_net: Money) -> LoyaltyAccount | None:
        """The account's ledger credited with the order's points, or None when it earns none."""
        account = self.find(Account, UUID(order.account_id))
        tier = account.tier.value if account is not None and account.tier else None
        points = self.loyalty_rule().points_for(base_net, tier)
        ledger = self.find(LoyaltyAccount, ledger_id_for(order.account_id)) or LoyaltyAccount.open(order.account_id)
        return ledger if ledger.earn(points, str(order.id), base_net, tier) else None

    def list_opportunities(self, request: ListOpportunities) -> Page[OpportunityRecord]:
        who = _who(request.caller)
        pipeline = self.pipeline()
        query = OpportunityQuery(
            limit=_limit(request.limit), after=_cursor("opportunity", request.cursor),
            owner_id=plain_identifier("owner_id", request.owner_id) if request.owner_id else None,
            stage=pipeline.check_stage(request.stage) if request.stage else None,
            account_id=record_id("account_id", request.account_id) if request.account_id else None,
            close_month=_close_month(request.close_month) if request.close_month else None)
        self.views.catch_up()
        return self._records(self.views.list_opportunity_ids(query, owner_filter(who)), Opportunity,
                             lambda opportunity: OpportunityRecord.of(opportunity, pipeline))

    def _records(self, ids: Page[str], cls: type[A], record: Callable[[A], R]) -> Page[R]:
        """The page's records, read from the store in the index's order."""
        found = (self.find(cls, UUID(item)) for item in ids.items)
        return Page([record(aggregate) for aggregate in found if aggregate is not None], ids.next_cursor)

    # -- products and price books ------------------------------------------------------------

    def add_product(self, command: AddProduct) -> tuple[ProductRecord, bool]:
        """Adds a product; its id derives from the SKU, so a second one with the SKU is
        AlreadyExists (a repeat of the same request with the same Idempotency-Key answers the
        first, created False)."""
        who = _who(command.caller)
        details = validate_product(command.sku, command.name, command.family, command.active,
                                   command.decimal_quantities)
        key = caller_scoped(who.subject if who else None, command.request_key)
        existing = self.find(Product, product_id_for(details.sku))
        if existing is None:
            product = Product.add(details, added_by=_subject(who), request_key=key)
            try:
                self.save(product)
            except IntegrityError:  # a concurrent request for the same SKU won the race
                existing = self.find(Product, product.id)
                if existing is None:
                    raise
            else:
                log.info("product.added", product_id=str(product.id), sku=product.sku)
                self._refresh_views()
                return ProductRecord.of(product), True
        if existing.is_repeat_of(details, key):
            return ProductRecord.of(existing), False
        raise AlreadyExists(f"sku: a product with SKU {details.sku} exists already ({existing.id})")

    def get_product(self, product_id: str | UUID) -> ProductRecord:
        return ProductRecord.of(self.get(Product, product_id, "product"))

    def list_products(self, request: ListProducts) -> Page[ProductRecord]:
        after = None
        if request.cursor:
            (last,) = decode_index_cursor("product", request.cursor, (str,))
            after = str(last)
        family = request.family or None
        if family is not None and (len(family) > 100 or not family.isprintable()):
            raise InvalidField("family", "must be at most 100 printable characters")
        query = ProductQuery(limit=_limit(request.limit), after=after, family=family, active=request.active)
        self.views.catch_up()
        return self.views.list_products(query)

    def publish_price_book(self, command: PublishPriceBook) -> tuple[PriceBookRecord, bool]:
        """Publishes a price book; every SKU must name an active product."""
        who = _who(command.caller)
        details = validate_price_book(command.name, command.currency, command.entries)
        for index, sku in enumerate(details.prices):  # in the caller's order, each SKU once
            product = self.find(Product, product_id_for(sku))
            if product is None:
                raise InvalidField(f"entries[{index}].sku", f"there is no product with SKU {sku}")
            if not product.active:
                raise InvalidField(f"entries[{index}].sku", f"product {sku} is inactive: it cannot be priced")
        key = caller_scoped(who.subject if who else None, command.request_key)
        book, created = self.create_once(
            PriceBook.publish(details, _price_book_id_for(key), published_by=_subject(who)),
            same=lambda first: first.same_publication(details))
        if created:
            log.info("price_book.published", price_book_id=str(book.id), currency=book.currency,
                     entries=len(book.entries))
            self._refresh_views()
        return PriceBookRecord.of(book), created

    def get_price_book(self, price_book_id: str | UUID) -> PriceBookRecord:
        return PriceBookRecord.of(self.get(PriceBook, price_book_id, "price_book"))

    def list_price_books(self, request: ListPriceBooks) -> Page[PriceBookRecord]:
        currency = check_currency("currency", request.currency) if request.currency else None
        query = self._query(ListRecords(limit=request.limit, cursor=request.cursor, name_prefix=request.name_prefix),
                            "price-book")
        self.views.catch_up()
        return self.views.list_price_books(query, currency)

    # -- quotes ----------------------------------------------------------------------------

    def _visible_quote(self, quote_id: str | UUID, who: Principal | None) -> Quote:
        return check_visible(self.get(Quote, quote_id, "quote"), "quote", who)

    def _opportunity_of(self, quote: Quote) -> Opportunity:
        opportunity = self.find(Opportunity, UUID(quote.opportunity_id))
        if opportunity is None:  # never: quotes are drafted for opportunities that exist
            raise NotFound(f"opportunity {quote.opportunity_id} of quote {quote.id} does not exist")
        return opportunity

    def _price(self, raw_lines: Any, book: PriceBook, currency: str) -> PricedQuote:
        """Prices the caller's lines from the book, in `currency` (the opportunity's)."""
        if book.currency != currency:
            raise InvalidField("price_book_id", f"price book {book.id} is in {book.currency}, and the quote "
                                                f"is in {currency} (its opportunity's currency): use a "
                                                f"{currency} price book")
        lines = parse_lines(_discounts_as_amounts(raw_lines, currency), currency)
        prices = book.prices
        decimal_skus = set()
        for index, line in enumerate(lines):
            if line.sku not in prices:
                continue  # price_quote names it: not in the price book
            product = self.find(Product, product_id_for(line.sku))
            if product is None or not product.active:
                raise InvalidField(f"lines[{index}].sku", f"product {line.sku} is inactive: it cannot be quoted")
            if product.decimal_quantities:
                decimal_skus.add(line.sku)
        return price_quote(lines, prices, currency, decimal_skus=decimal_skus)

    def _book_for_quote(self, raw_id: Any) -> PriceBook:
        book = self.find(PriceBook, parse_id("price_book_id", raw_id))
        if book is None:
            raise InvalidField("price_book_id", f"price book {raw_id} does not exist")
        return book

    def draft_quote(self, command: DraftQuote) -> tuple[QuoteRecord, bool]:
        """Drafts a priced quote for an open opportunity the caller can see; returns (quote, created)."""
        who = _who(command.caller)
        if command.opportunity_id in (None, ""):
            raise InvalidField("opportunity_id", "is required")
        opportunity = self.find(Opportunity, parse_id("opportunity_id", command.opportunity_id))
        if opportunity is None or not can_see(opportunity.owner_id, who):
            raise InvalidField("opportunity_id", f"opportunity {command.opportunity_id} does not exist")
        if command.price_book_id in (None, ""):
            raise InvalidField("price_book_id", "is required")
        book = self._book_for_quote(command.price_book_id)
        today = self.today()
        valid_until = check_valid_until(parse_date("valid_until", command.valid_until), today)
        priced = self._price(command.lines, book, opportunity.amount.currency)
        key = caller_scoped(who.subject if who else None, command.request_key)
        existing = self.find(Quote, quote_id_for(key)) if key else None
        if existing is None:
            opportunity.check_open("quoting it")
        quote, created = self.create_once(
            Quote.draft(quote_id_for(key), str(opportunity.id), opportunity.account_id, opportunity.owner_id,
                        str(book.id), valid_until, priced, drafted_by=_subject(who)),
            same=lambda first: first.same_request(str(opportunity.id), str(book.id), valid_until, priced))
        if created:
            log.info("quote.drafted", quote_id=str(quote.id), opportunity_id=quote.opportunity_id,
                     gross=str(quote.totals["gross"]))
            self._refresh_views()
        else:
            check_visible(quote, "quote", who)
        return QuoteRecord.of(quote, today), created

    def get_quote(self, quote_id: str | UUID, caller: Principal | None = None) -> QuoteRecord:
        return QuoteRecord.of(self._visible_quote(quote_id, _who(caller)), self.today())

    def work_quote(self, command: WorkQuote) -> AcceptedQuote:
        """Sends, accepts or rejects a quote. Accepting with `win_opportunity` wins its
        opportunity in the same transaction (both saved, or neither)."""
        who = _who(command.caller)
        if command.win_opportunity and who is not None:
            who.check(OPPORTUNITIES.name, Action.EDIT)
        quote = self._visible_quote(command.quote_id, who)
        check_version(quote, command.expected_version)
        today = self.today()
        won: Opportunity | None = None
        added: list[Any] = []
        if command.action == "send":
            quote.send(today, sent_by=_subject(who))
            self._opportunity_of(quote).check_open("sending a quote of it")
        elif command.action == "accept":
            quote.accept(today, accepted_by=_subject(who), opportunity_won=command.win_opportunity)
            opportunity = self._opportunity_of(quote)
            opportunity.check_open("accepting a quote of it")
            if command.win_opportunity:
                added = self._win(opportunity, who, quote)
                won = opportunity
        elif command.action == "reject":
            quote.reject(today, clean_reason(command.reason), rejected_by=_subject(who))
        else:
            raise ValueError(f"unknown quote action {command.action!r}")
        self.save_changes(quote, won, *added)
        log.info("quote.changed", quote_id=str(quote.id), status=str(quote.stored_status),
                 opportunity_won=won is not None)
        self._refresh_views()
        return AcceptedQuote(QuoteRecord.of(quote, today),
                             OpportunityRecord.of(won, self.pipeline()) if won is not None else None)

    def revise_quote(self, command: ReviseQuote) -> RevisedQuote:
        """Drafts version n + 1 of a draft, sent or expired quote with new lines (and,
        optionally, a new valid_until), superseding it in the same transaction."""
        who = _who(command.caller)
        previous = self._visible_quote(command.quote_id, who)
        today = self.today()
        key = caller_scoped(who.subject if who else None, command.request_key)
        valid_until = check_valid_until(
            parse_date("valid_until", command.valid_until) if command.valid_until not in (None, "")
            else date.fromisoformat(previous.valid_until), today)
        book = self._book_for_quote(previous.price_book_id)
        priced = self._price(command.lines, book, previous.currency)
        repeat = self.find(Quote, quote_id_for(key)) if key else None
        if repeat is not None:
            if not repeat.same_request(previous.opportunity_id, previous.price_book_id, valid_until, priced,
                                       previous_quote_id=str(previous.id)):
                raise Conflict("Idempotency-Key was already used for a different request")
            return RevisedQuote(QuoteRecord.of(repeat, today), QuoteRecord.of(previous, today), False)
        check_version(previous, command.expected_version)
        previous.check_revisable(today)
        opportunity = self._opportunity_of(previous)
        opportunity.check_open("revising a quote of it")
        quote = Quote.draft(quote_id_for(key), previous.opportunity_id, previous.account_id, previous.owner_id,
                            previous.price_book_id, valid_until, priced, drafted_by=_subject(who),
                            number=previous.number + 1, previous_quote_id=str(previous.id))
        previous.supersede(today, str(quote.id), revised_by=_subject(who))
        self.save_changes(previous, quote)
        log.info("quote.revised", quote_id=str(previous.id), next_quote_id=str(quote.id), number=quote.number)
        self._refresh_views()
        return RevisedQuote(QuoteRecord.of(quote, today), QuoteRecord.of(previous, today), True)

    def list_quotes(self, request: ListQuotes) -> Page[QuoteRecord]:
        who = _who(request.caller)
        today = self.today()
        query = QuoteQuery(
            today=today, limit=_limit(request.limit), after=_cursor("quote", request.cursor),
            owner_id=plain_identifier("owner_id", request.owner_id) if request.owner_id else None,
            opportunity_id=record_id("opportunity_id", request.opportunity_id) if request.opportunity_id else None,
            account_id=record_id("account_id", request.account_id) if request.account_id else None,
            status=_status(QuoteStatus, request.status),
            valid_until_after=_day("valid_until_after", request.valid_until_after),
            valid_until_before=_day("valid_until_before", request.valid_until_before))
        self.views.catch_up()
        return self._records(self.views.list_quote_ids(query, owner_filter(who)), Quote,
                             lambda quote: QuoteRecord.of(quote, today))

    # -- the FX table ------------------------------------------------------------------------

    def _fx_table(self) -> FxTable | None:
        return self.find(FxTable, FX_TABLE_ID)

    def fx_rates(self) -> Rates:
        return rates_of(self._fx_table(), self.base_currency)

    def get_fx_rates(self, on: Any = None) -> FxRatesRecord:
        day = parse_date("on", on) if on not in (None, "") else self.today()
        table = self._fx_table()
        rates = rates_of(table, self.base_currency)
        return FxRatesRecord(self.base_currency, day.isoformat(), rates.rates_on(day),
                             table.version if table is not None else 0)

    def set_fx_rates(self, command: SetFxRates) -> FxRatesRecord:
        """Adds dated rates (a currency and date already there is replaced)."""
        who = _who(command.caller)
        base = check_base(self.base_currency, command.base)
        rates = parse_rates(base, command.rates)
        table = self._fx_table()
        if table is None:
            table = FxTable.start(base, rates, set_by=_subject(who))
        else:
            table.add(base, rates, set_by=_subject(who))
        self.save_changes(table)
        log.info("fx.rates_set", rates=len(rates), version=table.version)
        return self.get_fx_rates(max(rate.on for rate in rates))

    # -- contracts -----------------------------------------------------------------------------

    def _visible_contract(self, contract_id: str | UUID, who: Principal | None) -> Contract:
        return check_visible(self.get(Contract, contract_id, "contract"), "contract", who)

    def draft_contract(self, command: DraftContract) -> tuple[ContractRecord, bool]:
        """A contract from an accepted quote the caller can see; returns (contract, created)."""
        who = _who(command.caller)
        if command.quote_id in (None, ""):
            raise InvalidField("quote_id", "is required")
        quote = self.find(Quote, parse_id("quote_id", command.quote_id))
        if quote is None or not can_see(quote.owner_id, who):
            raise InvalidField("quote_id", f"quote {command.quote_id} does not exist")
        starts_on = parse_date("starts_on", command.starts_on)
        ends_on = parse_date("ends_on", command.ends_on)
        terms = PaymentTerms.parse(command.payment_terms)
        check_term(starts_on, ends_on)
        today = self.today()
        key = caller_scoped(who.subject if who else None, command.request_key)
        existing = self.find(Contract, contract_id_for(key)) if key else None
        if existing is None and quote.status_on(today) != QuoteStatus.ACCEPTED:
            raise FailedPrecondition(f"quote {quote.id} is {quote.status_on(today)}; a contract needs it accepted")
        contract, created = self.create_once(
            Contract.draft(contract_id_for(key), str(quote.id), quote.opportunity_id, quote.account_id,
                           quote.owner_id, quote.totals["gross"], starts_on, ends_on, terms,
                           drafted_by=_subject(who)),
            same=lambda first: first.same_draft(str(quote.id), starts_on, ends_on, terms))
        if created:
            log.info("contract.drafted", contract_id=str(contract.id), quote_id=contract.quote_id,
                     total=str(contract.total_money))
            self._refresh_views()
        else:
            check_visible(contract, "contract", who)
        return ContractRecord.of(contract, today), created

    def get_contract(self, contract_id: str | UUID, caller: Principal | None = None) -> ContractRecord:
        return ContractRecord.of(self._visible_contract(contract_id, _who(caller)), self.today())

    def work_contract(self, command: WorkContract) -> ContractRecord:
        """Moves a contract along its lifecycle (crm_sales.contracts). Approving and
        rejecting need `contract_approvals:edit` (managers, admins), checked here too."""
        who = _who(command.caller)
        if command.action in ("approve", "reject") and who is not None:
            who.check(CONTRACT_APPROVALS.name, Action.EDIT)
        contract = self._visible_contract(command.contract_id, who)
        check_version(contract, command.expected_version)
        today = self.today()
        by = _subject(who)
        if command.action == "submit":
            base_total = self.fx_rates().to_base(contract.total_money, today)
            contract.submit(today, base_total, self.approval_threshold, submitted_by=by)
        elif command.action == "approve":
            contract.approve(today, command.comment, approved_by=by)
        elif command.action == "reject":
            contract.reject(today, command.comment, rejected_by=by)
        elif command.action == "sign":
            contract.sign(today, signed_by=by)
        elif command.action == "activate":
            contract.activate(today, activated_by=by)
        elif command.action == "expire":
            contract.expire(today, expired_by=by)
        elif command.action == "terminate":
            contract.terminate(today, command.reason, terminated_by=by)
        else:
            raise ValueError(f"unknown contract action {command.action!r}")
        self.save_changes(contract)
        log.info("contract.changed", contract_id=str(contract.id), action=command.action,
                 status=str(contract.stored_status))
        self._refresh_views()
        return ContractRecord.of(contract, today)

    def record_payment(self, command: RecordPayment) -> ContractRecord:
        who = _who(command.caller)
        contract = self._visible_contract(command.contract_id, who)
        check_version(contract, command.expected_version)
        amount = command.amount if isinstance(command.amount, Money) else Money.parse(command.amount, field="amount")
        paid_on = parse_date("paid_on", command.paid_on)
        today = self.today()
        contract.record_payment(today, command.instalment, amount, paid_on, recorded_by=_subject(who))
        self.save_changes(contract)
        log.info("contract.payment_recorded", contract_id=str(contract.id), instalment=command.instalment,
                 amount=str(amount))
        self._refresh_views()
        return ContractRecord.of(contract, today)

    def renew_contract(self, command: RenewContract) -> RenewedContract:
        """A new draft contract for the same quote and total, linked to this one (active or
        expired), which becomes renewed; both saved in one transaction."""
        who = _who(command.caller)
        previous = self._visible_contract(command.contract_id, who)
        today = self.today()
        starts_on = (parse_date("starts_on", command.starts_on) if command.starts_on not in (None, "")
                     else date.fromisoformat(previous.ends_on) + timedelta(days=1))
        ends_on = parse_date("ends_on", command.ends_on)
        terms = PaymentTerms.parse(command.payment_terms)
        check_term(starts_on, ends_on)
        key = caller_scoped(who.subject if who else None, command.request_key)
        repeat = self.find(Contract, contract_id_for(key)) if key else None
        if repeat is not None:
            if not repeat.same_draft(previous.quote_id, starts_on, ends_on, terms, str(previous.id)):
                raise Conflict("Idempotency-Key was already used for a different request")
            return RenewedContract(ContractRecord.of(repeat, today), ContractRecord.of(previous, today), False)
        check_version(previous, command.expected_version)
        previous.check_renewable(today)
        contract = Contract.draft(contract_id_for(key), previous.quote_id, previous.opportunity_id,
                                  previous.account_id, previous.owner_id, previous.total_money, starts_on,
                                  ends_on, terms, drafted_by=_subject(who), renews_contract_id=str(previous.id))
        previous.renew(today, str(contract.id), renewed_by=_subject(who))
        self.save_changes(previous, contract)
        log.info("contract.renewed", contract_id=str(previous.id), next_contract_id=str(contract.id))
        self._refresh_views()
        return RenewedContract(ContractRecord.of(contract, today), ContractRecord.of(previous, today), True)

    def amend_contract(self, command: AmendContract) -> AmendedContract:
        """Requests an amendment of a signed or active contract the caller can see; applied
        at once unless it raises the total to above the approval threshold in the base
        currency (then pending a manager's approval). A repeated request key answers the
        amendment it made (created False)."""
        who = _who(command.caller)
        contract = self._visible_contract(command.contract_id, who)
        today = self.today()
        key = caller_scoped(who.subject if who else None, command.request_key)
        request = parse_amendment(command.reason, command.ends_on, command.total, command.payment_schedule)
        if key is not None:
            repeat = contract.amendment_by_key(key)
            if repeat is not None:
                if repeat.get("asked") != request.to_json():
                    raise Conflict("Idempotency-Key was already used for a different request")
                return AmendedContract(ContractRecord.of(contract, today), AmendmentRecord.of(repeat, contract),
                                       created=False)
        check_version(contract, command.expected_version)
        proposal = contract.propose_amendment(today, request)
        base_total = (self.fx_rates().to_base(proposal.total, today)
                      if proposal.total > contract.total_money else None)
        entry = contract.request_amendment(today, proposal, base_total, self.approval_threshold,
                                           requested_by=_subject(who), request_key=key)
        self.save_changes(contract)
        log.info("contract.amendment_requested", contract_id=str(contract.id), amendment=entry["number"],
                 status=entry["status"], total=str(contract.total_money))
        self._refresh_views()
        return AmendedContract(ContractRecord.of(contract, today), AmendmentRecord.of(entry, contract))

    def decide_amendment(self, command: DecideAmendment) -> AmendedContract:
        """Approves or rejects a pending amendment: `contract_approvals:edit` (managers,
        admins), never the contract's owner or the amendment's requester."""
        who = _who(command.caller)
        if who is not None:
            who.check(CONTRACT_APPROVALS.name, Action.EDIT)
        contract = self._visible_contract(command.contract_id, who)
        check_version(contract, command.expected_version)
        today = self.today()
        if command.action == "approve":
            entry = contract.approve_amendment(today, command.amendment, command.comment, approved_by=_subject(who))
        elif command.action == "reject":
            entry = contract.reject_amendment(today, command.amendment, command.comment, rejected_by=_subject(who))
        else:
            raise ValueError(f"unknown amendment action {command.action!r}")
        self.save_changes(contract)
        log.info("contract.amendment_decided", contract_id=str(contract.id), amendment=entry["number"],
                 status=entry["status"])
        self._refresh_views()
        return AmendedContract(ContractRecord.of(contract, today), AmendmentRecord.of(entry, contract))

    def list_contracts(self, request: ListContracts) -> Page[ContractRecord]:
        who = _who(request.caller)
        today = self.today()
        query = ContractQuery(
            today=today, limit=_limit(request.limit), after=_cursor("contract", request.cursor),
            owner_id=plain_identifier("owner_id", request.owner_id) if request.owner_id else None,
            account_id=record_id("account_id", request.account_id) if request.account_id else None,
            status=_status(ContractStatus, request.status),
            ends_after=_day("ends_after", request.ends_after), ends_before=_day("ends_before", request.ends_before))
        self.views.catch_up()
        return self._records(self.views.list_contract_ids(query, owner_filter(who)), Contract,
                             lambda contract: ContractRecord.of(contract, today))

    # -- orders and loyalty ----------------------------------------------------------------------

    def get_order(self, order_id: str | UUID, caller: Principal | None = None) -> OrderRecord:
        return OrderRecord.of(check_visible(self.get(Order, order_id, "order"), "order", _who(caller)))

    def list_orders(self, request: ListOrders) -> Page[OrderRecord]:
        """Orders the caller may see (a sales_rep: their own), by placed_on."""
        who = _who(request.caller)
        status = _status(OrderStatus, request.status)
        query = OrderQuery(
            limit=_limit(request.limit), after=_cursor("order", request.cursor),
            owner_id=plain_identifier("owner_id", request.owner_id) if request.owner_id else None,
            account_id=record_id("account_id", request.account_id) if request.account_id else None,
            status=str(status) if status is not None else None,
            placed_after=_day("placed_after", request.placed_after),
            placed_before=_day("placed_before", request.placed_before))
        self.views.catch_up()
        return self._records(self.views.list_order_ids(query, owner_filter(who)), Order, OrderRecord.of)

    def _loyalty_programme(self) -> LoyaltyProgramme | None:
        return self.find(LoyaltyProgramme, LOYALTY_PROGRAMME_ID)

    def loyalty_rule(self) -> LoyaltyRule:
        return loyalty_rule_of(self._loyalty_programme(), self.base_currency)

    def get_loyalty_rule(self) -> LoyaltyRuleRecord:
        programme = self._loyalty_programme()
        in_use = programme is not None and programme.rule_json.get("base_currency") == self.base_currency
        return LoyaltyRuleRecord(self.loyalty_rule(), programme.version if programme is not None and in_use else 0)

    def set_loyalty_rule(self, command: SetLoyaltyRule) -> LoyaltyRuleRecord:
        who = _who(command.caller)
        rule = LoyaltyRule.parse(command.rule, base_currency=self.base_currency, field="loyalty_rule")
        programme = self._loyalty_programme()
        if programme is None:
            programme = LoyaltyProgramme.start(rule, set_by=_subject(who))
        elif not programme.change(rule, set_by=_subject(who)):
            return LoyaltyRuleRecord(rule, programme.version)
        self.save_changes(programme)
        log.info("loyalty.rule_set", version=programme.version)
        return LoyaltyRuleRecord(rule, programme.version)

    def get_loyalty(self, account_id: str | UUID, caller: Principal | None = None) -> LoyaltyRecord:
        account = self._visible_account(account_id, _who(caller))
        return LoyaltyRecord.of(str(account.id), self.find(LoyaltyAccount, ledger_id_for(account.id)))

    def redeem_points(self, command: RedeemPoints) -> LoyaltyRecord:
        """Redeems points from an account the caller can see; never below zero (409). A
        reference already applied changes nothing."""
        who = _who(command.caller)
        account = self._visible_account(command.account_id, who)
        ledger = self.find(LoyaltyAccount, ledger_id_for(account.id)) or LoyaltyAccount.open(str(account.id))
        if ledger.redeem(command.points, command.reference, redeemed_by=_subject(who)):
            self.save_changes(ledger)
            log.info("loyalty.redeemed", account_id=str(account.id), points=command.points)
        return LoyaltyRecord.of(str(account.id), self.find(LoyaltyAccount, ledger.id) or ledger)

    # -- commissions -----------------------------------------------------------------------------

    def _commission_setting(self) -> CommissionPlanSetting | None:
        return self.find(CommissionPlanSetting, COMMISSION_PLAN_ID)

    def commission_plan(self) -> CommissionPlan:
        return plan_of(self._commission_setting(), self.base_currency)

    def set_commission_plan(self, command: SetCommissionPlan) -> CommissionPlanRecord:
        who = _who(command.caller)
        plan = CommissionPlan.parse(command.rules, base_currency=self.base_currency)
        setting = self._commission_setting()
        if setting is None:
            setting = CommissionPlanSetting.start(plan, set_by=_subject(who))
        elif not setting.change(plan, set_by=_subject(who)):
            return CommissionPlanRecord(plan, setting.version)
        self.save_changes(setting)
        log.info("commissions.plan_set", rules=len(plan.rules), version=setting.version)
        return CommissionPlanRecord(plan, setting.version)

    def get_commission_plan(self) -> CommissionPlanRecord:
        setting = self._commission_setting()
        return CommissionPlanRecord(self.commission_plan(), setting.version if setting is not None else 0)

    def list_commissions(self, request: ListCommissions) -> CommissionsRecord:
        """A rep's commissions in a quarter (a rep sees only their own: another's list is empty)."""
        who = _who(request.caller)
        owner = (plain_identifier("owner_id", request.owner_id) if request.owner_id
                 else (who.subject if who is not None else None))
        if owner is None:
            raise InvalidField("owner_id", "is required")
        period = parse_period(request.period) if request.period else period_of(self.today())
        quarter = self.find(RepQuarter, quarter_id_for(owner, period)) if can_see(owner, who) else None
        if quarter is None:
            return CommissionsRecord(owner, period, Money.zero(self.base_currency), [], [])
        sums: dict[str, Money] = {}
        for item in quarter.commissions:
            amount = Money.parse(item["amount"], field="amount")
            sums[amount.currency] = sums.get(amount.currency, Money.zero(amount.currency)) + amount
        return CommissionsRecord(owner, period, quarter.attainment, [dict(c) for c in quarter.commissions],
                                 [sums[c] for c in sorted(sums)])

    # -- lead conversion --------------------------------------------------------------------

    def conversion_lookups(self) -> ConversionLookups:
        """What a conversion plan (crm_sales.conversion) reads: this store, and the query
        model caught up with it now (so accounts opened until now are found by domain)."""
        self.views.catch_up()
        return ConversionLookups(self)

    # -- list requests ----------------------------------------------------------------------

    @staticmethod
    def _query(request: ListRecords, kind: str) -> ListQuery:
        limit = DEFAULT_LIMIT if request.limit is None else request.limit
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidField("limit", f"must be between 1 and {MAX_LIMIT}")
        prefix = request.name_prefix or None
        if prefix is not None and (len(prefix) > NAME_MAX or not prefix.isprintable()):
            raise InvalidField("name_prefix", f"must be at most {NAME_MAX} printable characters")
        since = request.updated_since
        if since is not None and since.utcoffset() is None:
            raise InvalidField("updated_since", "needs a time zone offset (RFC 3339), e.g. 2025-01-31T09:00:00Z")
        if request.account_id and kind != "contact":
            raise InvalidField("account_id", "filters contacts only")
        return ListQuery(
            limit=limit,
            after=decode_cursor(kind, request.cursor) if request.cursor else None,
            owner_id=plain_identifier("owner_id", request.owner_id) if request.owner_id else None,
            name_prefix=prefix,
            updated_since=since,
            account_id=record_id("account_id", request.account_id) if request.account_id else None)


def _cursor(kind: str, cursor: str | None) -> tuple[str, str] | None:
    """A list's cursor as its (date, id) sort key."""
    if not cursor:
        return None
    key, last_id = decode_index_cursor(kind, cursor, (str, str))
    return str(key), str(last_id)


S = TypeVar("S", bound=StrEnum)


def _status(statuses: type[S], raw: str | None) -> S | None:
    if not raw:
        return None
    try:
        return statuses(raw)
    except ValueError:
        names = ", ".join(str(status) for status in statuses)
        raise InvalidField("status", f"{raw[:40]!r} is not one of {names}") from None


def _day(field_name: str, raw: Any) -> str | None:
    return parse_date(field_name, raw).isoformat() if raw not in (None, "") else None


def _limit(limit: int | None) -> int:
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidField("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def _discounts_as_amounts(raw_lines: Any, currency: str) -> Any:
    """Lines whose discount amount may be Money (`{"amount", "currency"}`, or a Money from
    gRPC) made the bare decimal string in the quote's currency that pricing reads; Money in
    another currency is refused, naming the line."""
    if not isinstance(raw_lines, Sequence) or isinstance(raw_lines, str | bytes):
        return raw_lines
    lines = []
    for index, line in enumerate(raw_lines):
        discount = line.get("discount") if isinstance(line, Mapping) else None
        amount = discount.get("amount") if isinstance(discount, Mapping) else None
        if isinstance(discount, Mapping) and isinstance(amount, Mapping | Money):
            where = f"lines[{index}].discount.amount"
            money = amount if isinstance(amount, Money) else Money.parse(amount, field=where)
            if money.currency != currency:
                raise InvalidField(f"{where}.currency", f"the quote is in {currency}, not {money.currency}")
            line = {**line, "discount": {**discount, "amount": money.amount_text}}
        lines.append(line)
    return lines


class ConversionLookups:
    """`crm_sales.conversion.Lookups` over the sales store and its query model. An id that
    names a record of another kind is refused: the conversion could never be saved."""

    def __init__(self, app: SalesApplication):
        self.app = app

    def _find(self, cls: type, aggregate_id: UUID, field_name: str) -> Any:
        from eventsourcing.application import AggregateNotFoundError

        try:
            aggregate: Any = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, cls):
            raise InvalidField(field_name, f"{aggregate_id} names a record that is not a {cls.__name__.lower()}")
        return aggregate

    def account(self, account_id: UUID) -> Account | None:
        return self._find(Account, account_id, "account_id")  # type: ignore[no-any-return]

    def contact(self, contact_id: UUID) -> Contact | None:
        return self._find(Contact, contact_id, "contact_id")  # type: ignore[no-any-return]

    def opportunity(self, opportunity_id: UUID) -> Opportunity | None:
        return self._find(Opportunity, opportunity_id, "lead_id")  # type: ignore[no-any-return]

    def pipeline(self) -> Pipeline:
        return self.app.pipeline()

    def domain_account(self, domain: str) -> DomainAccount | None:
        return self.app.find(DomainAccount, DomainAccount.id_for(domain))

    def account_with_domain(self, domain: str) -> UUID | None:
        found = self.app.views.account_with_domain(domain)
        return UUID(found) if found is not None else None

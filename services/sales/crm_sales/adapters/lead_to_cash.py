"""HTTP adapter: /v1/fx-rates, /v1/contracts, /v1/orders, loyalty (/v1/loyalty-rule,
/v1/accounts/{id}/loyalty) and commissions (/v1/commission-plans, /v1/commissions).
Pydantic models live here, at the edge only; the domain validates again and names the field.

Creating is `POST` (honours `Idempotency-Key`, per caller; answers `Location` and `ETag`);
commands are `POST /{id}/<command>` (a command the record's status does not allow: 409
naming its status; an optional `If-Match: "<version>"` is checked too, stale: 409). Money
is `{"amount": "1234.50", "currency": "EUR"}`, the amount a decimal string.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses, expected_version, tag
from crm_sales.adapters.deals import (
    COMMAND_ERRORS,
    CREATE_ERRORS,
    Cursor,
    Date,
    IdempotencyKey,
    IfMatch,
    Limit,
    MoneyIn,
    MoneyOut,
)
from crm_sales.adapters.deals import Decimal as DecimalText
from crm_sales.amendments import REASON_MAX
from crm_sales.application import (
    AmendContract,
    AmendedContract,
    CommissionPlanRecord,
    CommissionsRecord,
    DecideAmendment,
    DraftContract,
    FxRatesRecord,
    ListCommissions,
    ListContracts,
    ListOrders,
    LoyaltyRuleRecord,
    RecordPayment,
    RedeemPoints,
    RenewContract,
    SalesApplication,
    SetCommissionPlan,
    SetFxRates,
    SetLoyaltyRule,
    WorkContract,
)
from crm_sales.commissions import MAX_RULES, MAX_TIERS
from crm_sales.contracts import COMMENT_MAX
from crm_sales.domain import ID_MAX
from crm_sales.fx import MAX_RATES
from crm_sales.loyalty import REFERENCE_MAX
from crm_sales.payment_schedule import MAX_EVERY_MONTHS, MAX_INSTALMENTS
from crm_sales.permissions import COMMISSIONS, CONTRACT_APPROVALS, CONTRACTS, FX_RATES, LOYALTY, ORDERS
from crm_sales.views import DEFAULT_LIMIT, AmendmentRecord, ContractRecord, LoyaltyRecord, OrderRecord

Currency = Annotated[StrictStr, Field(min_length=3, max_length=3, description="ISO 4217, e.g. EUR")]


# -- FX ---------------------------------------------------------------------------------------

class FxRateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: Currency
    rate: DecimalText = Field(description='Units of the currency one unit of the base buys, e.g. "1.0850"')
    on: Date = Field(description="The date the rate applies from")


class FxRatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: Currency = Field(description="Must be the configured base currency (CRM_SALES_BASE_CURRENCY)")
    rates: list[FxRateIn] = Field(min_length=1, max_length=MAX_RATES)


class FxRateOut(BaseModel):
    currency: str
    rate: str
    on: str


class FxRatesOut(BaseModel):
    base: str
    on: str = Field(description="The date asked for")
    rates: list[FxRateOut] = Field(description="Per currency, the latest rate on or before `on`")
    version: int

    @classmethod
    def of(cls, record: FxRatesRecord) -> FxRatesOut:
        return cls(base=record.base_currency, on=record.on, rates=[FxRateOut(**r.to_json()) for r in record.rates],
                   version=record.version)


# -- contracts ----------------------------------------------------------------------------------

class TermsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instalments: StrictInt = Field(ge=1, le=MAX_INSTALMENTS)
    first_due_on: Date
    every_months: StrictInt = Field(default=1, ge=1, le=MAX_EVERY_MONTHS)


class NewContract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quote_id: UUID = Field(description="An accepted quote the caller can see")
    starts_on: Date
    ends_on: Date = Field(description="On or after starts_on")
    payment_terms: TermsIn


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(default=None, max_length=COMMENT_MAX)


class RejectContractBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(max_length=COMMENT_MAX, pattern=r"\S")


class TerminateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=COMMENT_MAX)


class RenewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_on: Date | None = Field(default=None, description="Default: the day after the renewed contract ends")
    ends_on: Date
    payment_terms: TermsIn


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instalment: StrictInt = Field(ge=1, le=MAX_INSTALMENTS)
    amount: MoneyIn
    paid_on: Date = Field(description="Today or earlier")


class AmendedInstalmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instalment: StrictInt = Field(ge=1, le=MAX_INSTALMENTS)
    due_on: Date
    amount: MoneyIn


class AmendmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=REASON_MAX, pattern=r"\S", description="Why the contract changes")
    ends_on: Date | None = Field(default=None, description="A new last day (not before today); null: unchanged")
    total: MoneyIn | None = Field(default=None, description="The new total; null: unchanged (the schedule must "
                                                             "then sum to the current total)")
    payment_schedule: list[AmendedInstalmentIn] | None = Field(
        default=None, min_length=1, max_length=MAX_INSTALMENTS,
        description="The instalments without payments as they should be: instalments with a payment are kept as "
                    "they are, unpaid ones not listed are dropped; the result numbers 1..N and sums exactly to the "
                    "total. null: unchanged")


class ScheduledOut(BaseModel):
    instalment: int
    due_on: str
    amount: MoneyOut


class AmendmentOut(BaseModel):
    number: int
    status: str = Field(description="pending_approval, applied, rejected")
    reason: str
    ends_on: str
    previous_ends_on: str
    total: MoneyOut
    previous_total: MoneyOut
    payment_schedule: list[ScheduledOut] | None = Field(description="The whole schedule it set; null: unchanged")
    approval_required: bool = Field(description="It raised the total to above the threshold in the base currency")
    base_total: MoneyOut | None = Field(description="The new total in the base currency (a raise only)")
    requested_on: str
    requested_by: str
    decided_on: str | None
    decided_by: str | None = Field(description="The approving or rejecting manager; null when applied at once")
    comment: str | None

    @classmethod
    def of(cls, record: AmendmentRecord) -> AmendmentOut:
        schedule = record.payment_schedule
        return cls(**{**record.__dict__, "total": MoneyOut.of(record.total),
                      "previous_total": MoneyOut.of(record.previous_total),
                      "base_total": MoneyOut.of(record.base_total) if record.base_total else None,
                      "payment_schedule": [ScheduledOut(instalment=n, due_on=d, amount=MoneyOut.of(a))
                                           for n, d, a in schedule] if schedule is not None else None})


class TermsOut(BaseModel):
    instalments: int
    first_due_on: str
    every_months: int


class InstalmentOut(BaseModel):
    instalment: int
    due_on: str
    amount: MoneyOut
    paid: MoneyOut
    outstanding: MoneyOut


class ContractOut(BaseModel):
    id: str
    quote_id: str
    opportunity_id: str
    account_id: str
    owner_id: str
    status: str = Field(description="draft, pending_approval, approved, signed, active, expired (an active contract "
                                    "past ends_on shows it), terminated, renewed")
    total: MoneyOut = Field(description="The quote's gross total")
    starts_on: str
    ends_on: str
    payment_terms: TermsOut
    payment_schedule: list[InstalmentOut] = Field(description="Amounts sum exactly to the total")
    outstanding: MoneyOut
    approval_required: bool | None = Field(description="Set when submitted: the base total above the threshold")
    base_total: MoneyOut | None = Field(description="The total in the base currency when submitted")
    submitted_by: str | None
    approved_by: str | None = Field(description="null when approved automatically (below the threshold)")
    approval_comment: str | None
    rejection_comment: str | None
    signed_on: str | None
    activated_on: str | None
    terminated_on: str | None
    termination_reason: str | None
    renews_contract_id: str | None
    renewed_by_contract_id: str | None
    amendments: list[AmendmentOut] = Field(description="Every amendment, oldest first")
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: ContractRecord) -> ContractOut:
        schedule = [InstalmentOut(instalment=i.instalment, due_on=i.due_on, amount=MoneyOut.of(i.amount),
                                  paid=MoneyOut.of(i.paid), outstanding=MoneyOut.of(i.outstanding))
                    for i in record.payment_schedule]
        return cls(**{**record.__dict__, "total": MoneyOut.of(record.total), "outstanding":
                      MoneyOut.of(record.outstanding), "payment_terms": TermsOut(**record.payment_terms),
                      "payment_schedule": schedule,
                      "amendments": [AmendmentOut.of(item) for item in record.amendments],
                      "base_total": MoneyOut.of(record.base_total) if record.base_total else None})


class ContractPage(BaseModel):
    items: list[ContractOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class AmendedOut(BaseModel):
    amendment: AmendmentOut
    contract: ContractOut

    @classmethod
    def of(cls, result: AmendedContract) -> AmendedOut:
        return cls(amendment=AmendmentOut.of(result.amendment), contract=ContractOut.of(result.contract))


class RenewedOut(BaseModel):
    contract: ContractOut = Field(description="The new contract (draft)")
    previous: ContractOut = Field(description="The renewed one")


# -- orders, loyalty, commissions -------------------------------------------------------------------

class OrderLineOut(BaseModel):
    sku: str
    family: str | None
    quantity: str
    net: MoneyOut
    tax: MoneyOut
    gross: MoneyOut


class OrderOut(BaseModel):
    id: str
    opportunity_id: str
    quote_id: str
    account_id: str
    owner_id: str
    lines: list[OrderLineOut]
    totals: dict[str, MoneyOut] = Field(description="net, tax, gross")
    base_net: MoneyOut = Field(description="The net total in the base currency on placed_on")
    placed_on: str
    status: str = Field(description="placed (the only status so far)")
    version: int
    created_at: datetime

    @classmethod
    def of(cls, record: OrderRecord) -> OrderOut:
        return cls(**{**record.__dict__,
                      "lines": [OrderLineOut(sku=line.sku, family=line.family, quantity=line.quantity,
                                             net=MoneyOut.of(line.net), tax=MoneyOut.of(line.tax),
                                             gross=MoneyOut.of(line.gross)) for line in record.lines],
                      "totals": {name: MoneyOut.of(value) for name, value in record.totals.items()},
                      "base_net": MoneyOut.of(record.base_net)})


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class LoyaltyRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points_per_unit: DecimalText | StrictInt = Field(description="Points per whole unit of the base currency")
    tier_multipliers: dict[Annotated[str, Field(max_length=20)], DecimalText | StrictInt] = Field(
        default_factory=dict, max_length=10, description='Per account tier, e.g. {"strategic": "2"}')


class LoyaltyRuleOut(BaseModel):
    base_currency: str
    points_per_unit: str
    tier_multipliers: dict[str, str]
    version: int = Field(description="0 while the default rule (1 point per unit) is in use")

    @classmethod
    def of(cls, record: LoyaltyRuleRecord) -> LoyaltyRuleOut:
        return cls(**record.rule.to_json(), version=record.version)


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: StrictInt = Field(ge=1)
    reference: str = Field(min_length=1, max_length=REFERENCE_MAX,
                           description="Applied once: a repeat with the same reference changes nothing")


class LedgerEntryOut(BaseModel):
    kind: str = Field(description="earned or redeemed")
    points: int
    balance: int
    reference: str = Field(description="The order id, or the redemption's reference")


class LoyaltyOut(BaseModel):
    account_id: str
    balance: int
    ledger: list[LedgerEntryOut]

    @classmethod
    def of(cls, record: LoyaltyRecord) -> LoyaltyOut:
        return cls(account_id=record.account_id, balance=record.balance,
                   ledger=[LedgerEntryOut(**entry) for entry in record.ledger])


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attainment_from: MoneyIn
    percent: DecimalText | StrictInt


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner_id: str | None = Field(default=None, max_length=ID_MAX, description="Null: any rep")
    family: str | None = Field(default=None, max_length=100, description="Null: any product family")
    percent: DecimalText | StrictInt = Field(description='Of the won line\'s net, e.g. "5"')
    tiers: list[TierIn] | None = Field(default=None, max_length=MAX_TIERS)


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(max_length=MAX_RULES)


class TierOut(BaseModel):
    attainment_from: MoneyOut
    percent: str


class RuleOut(BaseModel):
    owner_id: str | None
    family: str | None
    percent: str
    tiers: list[TierOut]


class PlanOut(BaseModel):
    base_currency: str
    rules: list[RuleOut]
    version: int

    @classmethod
    def of(cls, record: CommissionPlanRecord) -> PlanOut:
        return cls(base_currency=record.plan.base_currency, version=record.version,
                   rules=[RuleOut(**rule.to_json()) for rule in record.plan.rules])


class CommissionOut(BaseModel):
    opportunity_id: str
    order_id: str | None
    sku: str = Field(description="Empty when the opportunity was won without a quote")
    family: str | None
    net: MoneyOut
    percent: str
    amount: MoneyOut
    attainment: MoneyOut = Field(description="Quarter-to-date won net in the base currency, this deal included")
    won_on: str


class CommissionsOut(BaseModel):
    owner_id: str
    period: str
    attainment: MoneyOut
    items: list[CommissionOut]
    totals: list[MoneyOut] = Field(description="Per currency")

    @classmethod
    def of(cls, record: CommissionsRecord) -> CommissionsOut:
        return cls(owner_id=record.owner_id, period=record.period, attainment=MoneyOut.of(record.attainment),
                   items=[CommissionOut(**item) for item in record.commissions],
                   totals=[MoneyOut.of(total) for total in record.totals])


OwnerQuery = Annotated[str | None, Query(max_length=ID_MAX, description="Default: the caller")]
PeriodQuery = Annotated[str | None, Query(max_length=7, description="YYYY-Qn; default: this quarter")]


def _terms(terms: TermsIn) -> dict[str, Any]:
    return terms.model_dump()


def routers(app: SalesApplication) -> list[APIRouter]:
    return [fx_router(app), contracts_router(app), orders_router(app), loyalty_router(app), commissions_router(app)]


def fx_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/fx-rates", tags=["fx rates"])

    @api.put("", response_model=FxRatesOut, responses=error_responses(409, 422),
             summary="Add dated rates to the base currency (a currency and date given again is replaced)")
    async def put_rates(body: FxRatesIn, response: Response, caller: Principal = require(FX_RATES.edit)):
        record = await asyncio.to_thread(app.set_fx_rates, SetFxRates(
            body.base, [rate.model_dump() for rate in body.rates], caller=caller))
        tag(response, record.version)
        return FxRatesOut.of(record)

    @api.get("", response_model=FxRatesOut, responses=error_responses(422))
    async def get_rates(_caller: Principal = require(FX_RATES.view),
                        on: Annotated[str | None, Query(max_length=10, description="Default: today")] = None):
        return FxRatesOut.of(await asyncio.to_thread(app.get_fx_rates, on))

    return api


def contracts_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/contracts", tags=["contracts"])

    @api.post("", status_code=201, response_model=ContractOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first contract", "model": ContractOut},
                         **CREATE_ERRORS})
    async def draft_contract(body: NewContract, response: Response, caller: Principal = require(CONTRACTS.create),
                             idempotency_key: IdempotencyKey = None):
        record, created = await asyncio.to_thread(app.draft_contract, DraftContract(
            str(body.quote_id), body.starts_on, body.ends_on, _terms(body.payment_terms),
            request_key=idempotency_key, caller=caller))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/contracts/{record.id}"
        tag(response, record.version)
        return ContractOut.of(record)

    @api.get("", response_model=ContractPage, responses=error_responses(422),
             summary="Contracts by ends_on, then id; a sales_rep lists their own")
    async def list_contracts(caller: Principal = require(CONTRACTS.view), limit: Limit = DEFAULT_LIMIT,
                             cursor: Cursor = None,
                             status: Annotated[str | None, Query(max_length=20, description=(
                                 "draft, pending_approval, approved, signed, active, expired (an active contract "
                                 "past ends_on, today, included), terminated, renewed"))] = None,
                             account_id: Annotated[UUID | None, Query()] = None,
                             owner_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
                             ends_after: Annotated[str | None, Query(
                                 max_length=10, description="ISO date: ends_on after it (exclusive)")] = None,
                             ends_before: Annotated[str | None, Query(
                                 max_length=10, description="ISO date: ends_on before it (exclusive); with "
                                                            "status=active, the renewals coming up")] = None):
        page = await asyncio.to_thread(app.list_contracts, ListContracts(
            limit=limit, cursor=cursor, owner_id=owner_id, account_id=str(account_id) if account_id else None,
            status=status, ends_after=ends_after, ends_before=ends_before, caller=caller))
        return ContractPage(items=[ContractOut.of(c) for c in page.items], next_cursor=page.next_cursor)

    @api.get("/{contract_id}", response_model=ContractOut, responses=error_responses(404, 422))
    async def get_contract(contract_id: UUID, response: Response, caller: Principal = require(CONTRACTS.view)):
        record = await asyncio.to_thread(app.get_contract, contract_id, caller)
        tag(response, record.version)
        return ContractOut.of(record)

    async def work(contract_id: UUID, action: str, caller: Principal, if_match: str | None, response: Response,
                   **fields: Any) -> ContractOut:
        record = await asyncio.to_thread(app.work_contract, WorkContract(
            contract_id, action, expected_version=expected_version(if_match), caller=caller, **fields))
        tag(response, record.version)
        return ContractOut.of(record)

    @api.post("/{contract_id}/submit", response_model=ContractOut, responses=COMMAND_ERRORS,
              summary="draft -> pending_approval (above the threshold in the base currency) or approved")
    async def submit(contract_id: UUID, response: Response, caller: Principal = require(CONTRACTS.edit),
                     if_match: IfMatch = None):
        return await work(contract_id, "submit", caller, if_match, response)

    @api.post("/{contract_id}/approve", response_model=ContractOut, responses=error_responses(403, 404, 409, 422),
              summary="pending_approval -> approved: managers and admins, never on their own or submitted contract")
    async def approve(contract_id: UUID, response: Response, body: CommentBody | None = None,
                      caller: Principal = require(CONTRACT_APPROVALS.edit), if_match: IfMatch = None):
        return await work(contract_id, "approve", caller, if_match, response,
                          comment=body.comment if body is not None else None)

    @api.post("/{contract_id}/reject", response_model=ContractOut, responses=error_responses(403, 404, 409, 422),
              summary="pending_approval -> draft, with a comment: managers and admins")
    async def reject(contract_id: UUID, body: RejectContractBody, response: Response,
                     caller: Principal = require(CONTRACT_APPROVALS.edit), if_match: IfMatch = None):
        return await work(contract_id, "reject", caller, if_match, response, comment=body.comment)

    @api.post("/{contract_id}/sign", response_model=ContractOut, responses=COMMAND_ERRORS, summary="approved -> signed")
    async def sign(contract_id: UUID, response: Response, caller: Principal = require(CONTRACTS.edit),
                   if_match: IfMatch = None):
        return await work(contract_id, "sign", caller, if_match, response)

    @api.post("/{contract_id}/activate", response_model=ContractOut, responses=COMMAND_ERRORS,
              summary="signed -> active")
    async def activate(contract_id: UUID, response: Response, caller: Principal = require(CONTRACTS.edit),
                       if_match: IfMatch = None):
        return await work(contract_id, "activate", caller, if_match, response)

    @api.post("/{contract_id}/expire", response_model=ContractOut, responses=COMMAND_ERRORS,
              summary="Records the expiry of an active contract past its ends_on (the workflow's timer)")
    async def expire(contract_id: UUID, response: Response, caller: Principal = require(CONTRACTS.edit),
                     if_match: IfMatch = None):
        return await work(contract_id, "expire", caller, if_match, response)

    @api.post("/{contract_id}/terminate", response_model=ContractOut, responses=COMMAND_ERRORS,
              summary="Ends it now (any status but expired, terminated, renewed)")
    async def terminate(contract_id: UUID, response: Response, body: TerminateBody | None = None,
                        caller: Principal = require(CONTRACTS.edit), if_match: IfMatch = None):
        return await work(contract_id, "terminate", caller, if_match, response,
                          reason=body.reason if body is not None else None)

    @api.post("/{contract_id}/renew", status_code=201, response_model=RenewedOut,
              responses={200: {"description": "Repeated Idempotency-Key", "model": RenewedOut}, **COMMAND_ERRORS},
              summary="A new draft contract linked to this one (active or expired), which becomes renewed")
    async def renew(contract_id: UUID, body: RenewBody, response: Response,
                    caller: Principal = require(CONTRACTS.create), if_match: IfMatch = None,
                    idempotency_key: IdempotencyKey = None):
        result = await asyncio.to_thread(app.renew_contract, RenewContract(
            contract_id, body.ends_on, _terms(body.payment_terms), starts_on=body.starts_on,
            expected_version=expected_version(if_match), request_key=idempotency_key, caller=caller))
        response.status_code = 201 if result.created else 200
        response.headers["Location"] = f"/v1/contracts/{result.contract.id}"
        return RenewedOut(contract=ContractOut.of(result.contract), previous=ContractOut.of(result.previous))

    @api.post("/{contract_id}/payments", response_model=ContractOut, responses=COMMAND_ERRORS,
              summary="Records a payment against an instalment (never above what is still due on it: 409)")
    async def record_payment(contract_id: UUID, body: PaymentIn, response: Response,
                             caller: Principal = require(CONTRACTS.edit), if_match: IfMatch = None):
        record = await asyncio.to_thread(app.record_payment, RecordPayment(
            contract_id, body.instalment, body.amount.model_dump(), body.paid_on,
            expected_version=expected_version(if_match), caller=caller))
        tag(response, record.version)
        return ContractOut.of(record)

    @api.post("/{contract_id}/amendments", status_code=201, response_model=AmendedOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first amendment", "model": AmendedOut},
                         **COMMAND_ERRORS},
              summary="Amends a signed or active contract (ends_on, the remaining schedule and total); applied at "
                      "once unless it raises the total to above the approval threshold")
    async def amend(contract_id: UUID, body: AmendmentIn, response: Response,
                    caller: Principal = require(CONTRACTS.edit), if_match: IfMatch = None,
                    idempotency_key: IdempotencyKey = None):
        result = await asyncio.to_thread(app.amend_contract, AmendContract(
            contract_id, body.reason, ends_on=body.ends_on,
            total=body.total.model_dump() if body.total is not None else None,
            payment_schedule=[{"instalment": item.instalment, "due_on": item.due_on,
                               "amount": item.amount.model_dump()} for item in body.payment_schedule]
            if body.payment_schedule is not None else None,
            expected_version=expected_version(if_match), request_key=idempotency_key, caller=caller))
        response.status_code = 201 if result.created else 200
        tag(response, result.contract.version)
        return AmendedOut.of(result)

    async def decide(contract_id: UUID, number: int, action: str, caller: Principal, if_match: str | None,
                     response: Response, comment: str | None) -> AmendedOut:
        result = await asyncio.to_thread(app.decide_amendment, DecideAmendment(
            contract_id, number, action, comment=comment, expected_version=expected_version(if_match),
            caller=caller))
        tag(response, result.contract.version)
        return AmendedOut.of(result)

    @api.post("/{contract_id}/amendments/{number}/approve", response_model=AmendedOut,
              responses=error_responses(403, 404, 409, 422),
              summary="Applies a pending amendment: managers and admins, never the contract's owner or the requester")
    async def approve_amendment(contract_id: UUID, number: Annotated[int, Path(ge=1, le=10_000)], response: Response,
                                body: CommentBody | None = None,
                                caller: Principal = require(CONTRACT_APPROVALS.edit), if_match: IfMatch = None):
        return await decide(contract_id, number, "approve", caller, if_match, response,
                            body.comment if body is not None else None)

    @api.post("/{contract_id}/amendments/{number}/reject", response_model=AmendedOut,
              responses=error_responses(403, 404, 409, 422),
              summary="Rejects a pending amendment with a comment: managers and admins")
    async def reject_amendment(contract_id: UUID, number: Annotated[int, Path(ge=1, le=10_000)],
                               body: RejectContractBody, response: Response,
                               caller: Principal = require(CONTRACT_APPROVALS.edit), if_match: IfMatch = None):
        return await decide(contract_id, number, "reject", caller, if_match, response, body.comment)

    return api


def orders_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/orders", tags=["orders"])

    @api.get("", response_model=OrderPage, responses=error_responses(422),
             summary="Orders by placed_on, then id; a sales_rep lists their own")
    async def list_orders(caller: Principal = require(ORDERS.view), limit: Limit = DEFAULT_LIMIT,
                          cursor: Cursor = None,
                          status: Annotated[str | None, Query(max_length=20, description="placed")] = None,
                          account_id: Annotated[UUID | None, Query()] = None,
                          owner_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
                          placed_after: Annotated[str | None, Query(
                              max_length=10, description="ISO date: placed_on after it (exclusive)")] = None,
                          placed_before: Annotated[str | None, Query(
                              max_length=10, description="ISO date: placed_on before it (exclusive)")] = None):
        page = await asyncio.to_thread(app.list_orders, ListOrders(
            limit=limit, cursor=cursor, owner_id=owner_id, account_id=str(account_id) if account_id else None,
            status=status, placed_after=placed_after, placed_before=placed_before, caller=caller))
        return OrderPage(items=[OrderOut.of(o) for o in page.items], next_cursor=page.next_cursor)

    @api.get("/{order_id}", response_model=OrderOut, responses=error_responses(404, 422))
    async def get_order(order_id: UUID, caller: Principal = require(ORDERS.view)):
        return OrderOut.of(await asyncio.to_thread(app.get_order, order_id, caller))

    return api


def loyalty_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(tags=["loyalty"])

    @api.get("/v1/loyalty-rule", response_model=LoyaltyRuleOut)
    async def get_rule(_caller: Principal = require(LOYALTY.view)):
        return LoyaltyRuleOut.of(await asyncio.to_thread(app.get_loyalty_rule))

    @api.put("/v1/loyalty-rule", response_model=LoyaltyRuleOut, responses=error_responses(409, 422))
    async def put_rule(body: LoyaltyRuleIn, caller: Principal = require(LOYALTY.edit)):
        raw = {"points_per_unit": str(body.points_per_unit),
               "tier_multipliers": {tier: str(value) for tier, value in body.tier_multipliers.items()}}
        return LoyaltyRuleOut.of(await asyncio.to_thread(app.set_loyalty_rule, SetLoyaltyRule(raw, caller=caller)))

    @api.get("/v1/accounts/{account_id}/loyalty", response_model=LoyaltyOut, responses=error_responses(404, 422))
    async def get_loyalty(account_id: UUID, caller: Principal = require(LOYALTY.view)):
        return LoyaltyOut.of(await asyncio.to_thread(app.get_loyalty, account_id, caller))

    @api.post("/v1/accounts/{account_id}/loyalty/redemptions", response_model=LoyaltyOut,
              responses=error_responses(404, 409, 422), summary="Redeems points; never below zero (409)")
    async def redeem(account_id: UUID, body: RedemptionIn, caller: Principal = require(LOYALTY.create)):
        return LoyaltyOut.of(await asyncio.to_thread(app.redeem_points, RedeemPoints(
            account_id, body.points, body.reference, caller=caller)))

    return api


def commissions_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(tags=["commissions"])

    @api.get("/v1/commission-plans", response_model=PlanOut)
    async def get_plan(_caller: Principal = require(COMMISSIONS.view)):
        return PlanOut.of(await asyncio.to_thread(app.get_commission_plan))

    @api.put("/v1/commission-plans", response_model=PlanOut, responses=error_responses(409, 422))
    async def put_plan(body: PlanIn, caller: Principal = require(COMMISSIONS.edit)):
        rules = []
        for rule in body.rules:
            item: dict[str, Any] = {"percent": str(rule.percent)}
            if rule.owner_id is not None:
                item["owner_id"] = rule.owner_id
            if rule.family is not None:
                item["family"] = rule.family
            if rule.tiers is not None:
                item["tiers"] = [{"attainment_from": tier.attainment_from.model_dump(), "percent": str(tier.percent)}
                                 for tier in rule.tiers]
            rules.append(item)
        return PlanOut.of(await asyncio.to_thread(app.set_commission_plan, SetCommissionPlan(
            {"rules": rules}, caller=caller)))

    @api.get("/v1/commissions", response_model=CommissionsOut, responses=error_responses(422))
    async def list_commissions(caller: Principal = require(COMMISSIONS.view),
                               owner_id: OwnerQuery = None, period: PeriodQuery = None):
        return CommissionsOut.of(await asyncio.to_thread(app.list_commissions, ListCommissions(
            owner_id, period, caller=caller)))

    return api

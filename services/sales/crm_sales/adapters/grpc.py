"""gRPC adapter: crm.sales.v1.SalesService. Each method names its permission once (`@rpc`);
errors map to status codes through the runtime's one table (crm_runtime.errors)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

from crm.sales.v1 import events_pb2, sales_pb2, sales_pb2_grpc
from crm_runtime.auth import current_principal
from crm_runtime.errors import InvalidField
from crm_runtime.grpc_server import Registration, rpc
from crm_sales.adapters.messages import (
    PROTO_TO_TIER,
    account_to_message,
    amendment_to_message,
    commission_plan_to_message,
    commissions_to_message,
    contact_to_message,
    contract_to_message,
    fx_rates_to_message,
    loyalty_rule_to_message,
    loyalty_to_message,
    opportunity_to_message,
    order_to_message,
    pipeline_to_message,
    price_book_to_message,
    product_to_message,
    quote_to_message,
)
from crm_sales.application import (
    AddContact,
    AddProduct,
    AmendContract,
    ChangeAccount,
    ChangeContact,
    ConfigurePipeline,
    DecideAmendment,
    DraftContract,
    DraftQuote,
    ListCommissions,
    ListContracts,
    ListOpportunities,
    ListOrders,
    ListPriceBooks,
    ListProducts,
    ListQuotes,
    ListRecords,
    OpenAccount,
    OpenOpportunity,
    PublishPriceBook,
    RecordPayment,
    RedeemPoints,
    RenewContract,
    ReviseQuote,
    SalesApplication,
    SetCommissionPlan,
    SetFxRates,
    SetLoyaltyRule,
    WorkContract,
    WorkOpportunity,
    WorkQuote,
)
from crm_sales.permissions import (
    ACCOUNTS,
    COMMISSIONS,
    CONTACTS,
    CONTRACT_APPROVALS,
    CONTRACTS,
    FX_RATES,
    LOYALTY,
    OPPORTUNITIES,
    ORDERS,
    PIPELINE,
    PRICE_BOOKS,
    PRODUCTS,
    QUOTES,
)
from crm_sales.views import DEFAULT_LIMIT, MAX_LIMIT

# The list fields' names on this protocol.
_LIST_FIELDS = {"limit": "page_size", "cursor": "page_token"}


def _tier(value: int) -> str | None:
    """A Tier number as the domain's name; an unknown number is passed on to be refused."""
    if value == events_pb2.TIER_UNSPECIFIED:
        return None
    return PROTO_TO_TIER.get(value, str(value))


def _set_fields(request, names: tuple[str, ...]) -> dict[str, Any]:
    """The optional fields the caller set: only those change (an empty value clears)."""
    changes: dict[str, Any] = {}
    for name in names:
        if request.HasField(name):
            value = getattr(request, name)
            changes[name] = _tier(value) if name == "tier" else (value or None)
    return changes


def _list_request(request, account_id: str | None = None) -> ListRecords:
    if request.page_size < 0:
        raise InvalidField("page_size", "must not be negative")
    return ListRecords(
        limit=min(request.page_size, MAX_LIMIT) or DEFAULT_LIMIT,
        cursor=request.page_token or None, owner_id=request.owner_id or None,
        name_prefix=request.name_prefix or None,
        updated_since=(request.updated_since.ToDatetime(tzinfo=UTC)
                       if request.HasField("updated_since") else None),
        account_id=account_id, caller=current_principal())


def _money(message, present: bool) -> dict[str, str] | None:
    """crm.common.v1.Money as the JSON form the application parses (None when unset)."""
    return {"amount": message.amount, "currency": message.currency_code} if present else None


def _lines(lines) -> list[dict[str, Any]]:
    """QuoteLineInput messages as the line objects the application prices."""
    out = []
    for line in lines:
        item: dict[str, Any] = {"sku": line.sku, "quantity": line.quantity, "tax_rate": line.tax_rate}
        kind = line.discount.WhichOneof("kind") if line.HasField("discount") else None
        if kind == "percent":
            item["discount"] = {"percent": line.discount.percent}
        elif kind == "amount":
            item["discount"] = {"amount": _money(line.discount.amount, True)}
        out.append(item)
    return out


def _terms(terms) -> dict[str, Any]:
    """PaymentTerms as the JSON the application parses (every_months 0: 1)."""
    return {"instalments": terms.instalments, "first_due_on": terms.first_due_on,
            "every_months": terms.every_months or 1}


def _version(value: int) -> int | None:
    """expected_version: 0 is unset (no check)."""
    if value < 0:
        raise InvalidField("expected_version", "must not be negative")
    return value or None


def _page(page_size: int) -> int:
    if page_size < 0:
        raise InvalidField("page_size", "must not be negative")
    return min(page_size, MAX_LIMIT) or DEFAULT_LIMIT


async def _listed(fn, request):
    try:
        return await asyncio.to_thread(fn, request)
    except InvalidField as exc:
        name = _LIST_FIELDS.get(exc.field)
        if name is None:
            raise
        raise InvalidField(name, exc.message) from None


class SalesServicer(sales_pb2_grpc.SalesServiceServicer):
    def __init__(self, app: SalesApplication):
        self.app = app

    # -- accounts -------------------------------------------------------------------------

    @rpc(ACCOUNTS.create)
    async def CreateAccount(self, request, context):
        account, created = await asyncio.to_thread(self.app.open_account, OpenAccount(
            name=request.name, domain=request.domain, industry=request.industry,
            region=request.region, tier=_tier(request.tier), owner_id=request.owner_id or None,
            request_key=request.request_id or None, caller=current_principal()))
        return sales_pb2.CreateAccountResponse(account=account_to_message(account), created=created)

    @rpc(ACCOUNTS.view)
    async def GetAccount(self, request, context):
        account = await asyncio.to_thread(self.app.get_account, request.account_id, current_principal())
        return sales_pb2.GetAccountResponse(account=account_to_message(account))

    @rpc(ACCOUNTS.edit)
    async def UpdateAccount(self, request, context):
        changes = _set_fields(request, ("name", "domain", "industry", "region", "tier", "owner_id"))
        account = await asyncio.to_thread(self.app.change_account, ChangeAccount(
            account_id=request.account_id, expected_version=request.expected_version or None,
            changes=changes, caller=current_principal()))
        return sales_pb2.UpdateAccountResponse(account=account_to_message(account))

    @rpc(ACCOUNTS.view)
    async def ListAccounts(self, request, context):
        page = await _listed(self.app.list_accounts, _list_request(request))
        return sales_pb2.ListAccountsResponse(accounts=[account_to_message(a) for a in page.items],
                                              next_page_token=page.next_cursor or "")

    # -- contacts -------------------------------------------------------------------------

    @rpc(CONTACTS.create)
    async def CreateContact(self, request, context):
        contact, created = await asyncio.to_thread(self.app.add_contact, AddContact(
            account_id=request.account_id, name=request.name, email=request.email,
            phone=request.phone, request_key=request.request_id or None, caller=current_principal()))
        return sales_pb2.CreateContactResponse(contact=contact_to_message(contact), created=created)

    @rpc(CONTACTS.view)
    async def GetContact(self, request, context):
        contact = await asyncio.to_thread(self.app.get_contact, request.contact_id, current_principal())
        return sales_pb2.GetContactResponse(contact=contact_to_message(contact))

    @rpc(CONTACTS.edit)
    async def UpdateContact(self, request, context):
        changes = _set_fields(request, ("name", "email", "phone", "account_id"))
        contact = await asyncio.to_thread(self.app.change_contact, ChangeContact(
            contact_id=request.contact_id, expected_version=request.expected_version or None,
            changes=changes, caller=current_principal()))
        return sales_pb2.UpdateContactResponse(contact=contact_to_message(contact))

    @rpc(CONTACTS.view)
    async def ListContacts(self, request, context):
        page = await _listed(self.app.list_contacts,
                             _list_request(request, account_id=request.account_id or None))
        return sales_pb2.ListContactsResponse(contacts=[contact_to_message(c) for c in page.items],
                                              next_page_token=page.next_cursor or "")


    # -- pipeline ---------------------------------------------------------------------------

    @rpc(PIPELINE.view)
    async def GetPipeline(self, request, context):
        record = await asyncio.to_thread(self.app.get_pipeline)
        return sales_pb2.GetPipelineResponse(pipeline=pipeline_to_message(record.pipeline, record.version))

    @rpc(PIPELINE.edit)
    async def UpdatePipeline(self, request, context):
        expected = request.expected_version if request.HasField("expected_version") else None
        record = await asyncio.to_thread(self.app.configure_pipeline, ConfigurePipeline(
            stages=[{"name": stage.name, "probability": stage.probability} for stage in request.stages],
            expected_version=expected, caller=current_principal()))
        return sales_pb2.UpdatePipelineResponse(pipeline=pipeline_to_message(record.pipeline, record.version))

    # -- opportunities ----------------------------------------------------------------------

    @rpc(OPPORTUNITIES.create)
    async def CreateOpportunity(self, request, context):
        record, created = await asyncio.to_thread(self.app.open_opportunity, OpenOpportunity(
            name=request.name, account_id=request.account_id,
            amount=_money(request.amount, request.HasField("amount")),
            expected_close_on=request.expected_close_on, owner_id=request.owner_id or None,
            stage=request.stage or None, request_key=request.request_id or None, caller=current_principal()))
        return sales_pb2.CreateOpportunityResponse(opportunity=opportunity_to_message(record), created=created)

    @rpc(OPPORTUNITIES.view)
    async def GetOpportunity(self, request, context):
        record = await asyncio.to_thread(self.app.get_opportunity, request.opportunity_id, current_principal())
        return sales_pb2.GetOpportunityResponse(opportunity=opportunity_to_message(record))

    @rpc(OPPORTUNITIES.view)
    async def ListOpportunities(self, request, context):
        page = await _listed(self.app.list_opportunities, ListOpportunities(
            limit=_page(request.page_size), cursor=request.page_token or None, owner_id=request.owner_id or None,
            stage=request.stage or None, account_id=request.account_id or None,
            close_month=request.close_month or None, caller=current_principal()))
        return sales_pb2.ListOpportunitiesResponse(
            opportunities=[opportunity_to_message(o) for o in page.items], next_page_token=page.next_cursor or "")

    async def _work_opportunity(self, request, action: str, **fields):
        return opportunity_to_message(await asyncio.to_thread(self.app.work_opportunity, WorkOpportunity(
            opportunity_id=request.opportunity_id, action=action, expected_version=_version(request.expected_version),
            caller=current_principal(), **fields)))

    @rpc(OPPORTUNITIES.edit)
    async def MoveOpportunityStage(self, request, context):
        return sales_pb2.MoveOpportunityStageResponse(
            opportunity=await self._work_opportunity(request, "stage", stage=request.stage))

    @rpc(OPPORTUNITIES.edit)
    async def WinOpportunity(self, request, context):
        return sales_pb2.WinOpportunityResponse(opportunity=await self._work_opportunity(request, "win"))

    @rpc(OPPORTUNITIES.edit)
    async def LoseOpportunity(self, request, context):
        return sales_pb2.LoseOpportunityResponse(
            opportunity=await self._work_opportunity(request, "lose", reason=request.reason))

    # -- products and price books -----------------------------------------------------------

    @rpc(PRODUCTS.create)
    async def CreateProduct(self, request, context):
        record, created = await asyncio.to_thread(self.app.add_product, AddProduct(
            sku=request.sku, name=request.name, family=request.family or None,
            active=request.active if request.HasField("active") else None,
            decimal_quantities=request.decimal_quantities, request_key=request.request_id or None,
            caller=current_principal()))
        return sales_pb2.CreateProductResponse(product=product_to_message(record), created=created)

    @rpc(PRODUCTS.view)
    async def GetProduct(self, request, context):
        record = await asyncio.to_thread(self.app.get_product, request.product_id)
        return sales_pb2.GetProductResponse(product=product_to_message(record))

    @rpc(PRODUCTS.view)
    async def ListProducts(self, request, context):
        page = await _listed(self.app.list_products, ListProducts(
            limit=_page(request.page_size), cursor=request.page_token or None, family=request.family or None,
            active=request.active if request.HasField("active") else None))
        return sales_pb2.ListProductsResponse(products=[product_to_message(p) for p in page.items],
                                              next_page_token=page.next_cursor or "")

    @rpc(PRICE_BOOKS.create)
    async def CreatePriceBook(self, request, context):
        entries = [{"sku": entry.sku, "unit_price": _money(entry.unit_price, entry.HasField("unit_price"))}
                   for entry in request.entries]
        record, created = await asyncio.to_thread(self.app.publish_price_book, PublishPriceBook(
            name=request.name, currency=request.currency_code, entries=entries,
            request_key=request.request_id or None, caller=current_principal()))
        return sales_pb2.CreatePriceBookResponse(price_book=price_book_to_message(record), created=created)

    @rpc(PRICE_BOOKS.view)
    async def GetPriceBook(self, request, context):
        record = await asyncio.to_thread(self.app.get_price_book, request.price_book_id)
        return sales_pb2.GetPriceBookResponse(price_book=price_book_to_message(record))

    @rpc(PRICE_BOOKS.view)
    async def ListPriceBooks(self, request, context):
        page = await _listed(self.app.list_price_books, ListPriceBooks(
            limit=_page(request.page_size), cursor=request.page_token or None,
            currency=request.currency_code or None))
        return sales_pb2.ListPriceBooksResponse(price_books=[price_book_to_message(b) for b in page.items],
                                                next_page_token=page.next_cursor or "")

    # -- quotes -----------------------------------------------------------------------------

    @rpc(QUOTES.create)
    async def CreateQuote(self, request, context):
        record, created = await asyncio.to_thread(self.app.draft_quote, DraftQuote(
            opportunity_id=request.opportunity_id, price_book_id=request.price_book_id,
            valid_until=request.valid_until, lines=_lines(request.lines), request_key=request.request_id or None,
            caller=current_principal()))
        return sales_pb2.CreateQuoteResponse(quote=quote_to_message(record), created=created)

    @rpc(QUOTES.view)
    async def GetQuote(self, request, context):
        record = await asyncio.to_thread(self.app.get_quote, request.quote_id, current_principal())
        return sales_pb2.GetQuoteResponse(quote=quote_to_message(record))

    async def _work_quote(self, request, action: str, **fields):
        return await asyncio.to_thread(self.app.work_quote, WorkQuote(
            quote_id=request.quote_id, action=action, expected_version=_version(request.expected_version),
            caller=current_principal(), **fields))

    @rpc(QUOTES.edit)
    async def SendQuote(self, request, context):
        result = await self._work_quote(request, "send")
        return sales_pb2.SendQuoteResponse(quote=quote_to_message(result.quote))

    @rpc(QUOTES.edit)
    async def AcceptQuote(self, request, context):
        result = await self._work_quote(request, "accept", win_opportunity=request.win_opportunity)
        return sales_pb2.AcceptQuoteResponse(
            quote=quote_to_message(result.quote),
            opportunity=opportunity_to_message(result.opportunity) if result.opportunity else None)

    @rpc(QUOTES.edit)
    async def RejectQuote(self, request, context):
        result = await self._work_quote(request, "reject", reason=request.reason or None)
        return sales_pb2.RejectQuoteResponse(quote=quote_to_message(result.quote))

    @rpc(QUOTES.create)
    async def ReviseQuote(self, request, context):
        result = await asyncio.to_thread(self.app.revise_quote, ReviseQuote(
            quote_id=request.quote_id, lines=_lines(request.lines), valid_until=request.valid_until or None,
            expected_version=_version(request.expected_version), request_key=request.request_id or None,
            caller=current_principal()))
        return sales_pb2.ReviseQuoteResponse(quote=quote_to_message(result.quote),
                                             previous=quote_to_message(result.previous))

    @rpc(QUOTES.view)
    async def ListQuotes(self, request, context):
        page = await _listed(self.app.list_quotes, ListQuotes(
            limit=_page(request.page_size), cursor=request.page_token or None, owner_id=request.owner_id or None,
            opportunity_id=request.opportunity_id or None, account_id=request.account_id or None,
            status=request.status or None, valid_until_after=request.valid_until_after or None,
            valid_until_before=request.valid_until_before or None, caller=current_principal()))
        return sales_pb2.ListQuotesResponse(quotes=[quote_to_message(q) for q in page.items],
                                            next_page_token=page.next_cursor or "")

    # -- FX table ---------------------------------------------------------------------------

    @rpc(FX_RATES.edit)
    async def SetFxRates(self, request, context):
        record = await asyncio.to_thread(self.app.set_fx_rates, SetFxRates(
            request.base_currency, [{"currency": r.currency_code, "rate": r.rate, "on": r.on} for r in request.rates],
            caller=current_principal()))
        return sales_pb2.SetFxRatesResponse(fx_rates=fx_rates_to_message(record))

    @rpc(FX_RATES.view)
    async def GetFxRates(self, request, context):
        record = await asyncio.to_thread(self.app.get_fx_rates, request.on or None)
        return sales_pb2.GetFxRatesResponse(fx_rates=fx_rates_to_message(record))

    # -- contracts --------------------------------------------------------------------------

    @rpc(CONTRACTS.create)
    async def CreateContract(self, request, context):
        record, created = await asyncio.to_thread(self.app.draft_contract, DraftContract(
            request.quote_id, request.starts_on, request.ends_on, _terms(request.payment_terms),
            request_key=request.request_id or None, caller=current_principal()))
        return sales_pb2.CreateContractResponse(contract=contract_to_message(record), created=created)

    @rpc(CONTRACTS.view)
    async def GetContract(self, request, context):
        record = await asyncio.to_thread(self.app.get_contract, request.contract_id, current_principal())
        return sales_pb2.GetContractResponse(contract=contract_to_message(record))

    async def _work_contract(self, request, action: str, **fields):
        return contract_to_message(await asyncio.to_thread(self.app.work_contract, WorkContract(
            request.contract_id, action, expected_version=_version(request.expected_version),
            caller=current_principal(), **fields)))

    @rpc(CONTRACTS.edit)
    async def SubmitContract(self, request, context):
        return sales_pb2.SubmitContractResponse(contract=await self._work_contract(request, "submit"))

    @rpc(CONTRACT_APPROVALS.edit)
    async def ApproveContract(self, request, context):
        return sales_pb2.ApproveContractResponse(
            contract=await self._work_contract(request, "approve", comment=request.comment or None))

    @rpc(CONTRACT_APPROVALS.edit)
    async def RejectContract(self, request, context):
        return sales_pb2.RejectContractResponse(
            contract=await self._work_contract(request, "reject", comment=request.comment))

    @rpc(CONTRACTS.edit)
    async def SignContract(self, request, context):
        return sales_pb2.SignContractResponse(contract=await self._work_contract(request, "sign"))

    @rpc(CONTRACTS.edit)
    async def ActivateContract(self, request, context):
        return sales_pb2.ActivateContractResponse(contract=await self._work_contract(request, "activate"))

    @rpc(CONTRACTS.edit)
    async def TerminateContract(self, request, context):
        return sales_pb2.TerminateContractResponse(
            contract=await self._work_contract(request, "terminate", reason=request.reason or None))

    @rpc(CONTRACTS.edit)
    async def ExpireContract(self, request, context):
        return sales_pb2.ExpireContractResponse(contract=await self._work_contract(request, "expire"))

    @rpc(CONTRACTS.create)
    async def RenewContract(self, request, context):
        result = await asyncio.to_thread(self.app.renew_contract, RenewContract(
            request.contract_id, request.ends_on, _terms(request.payment_terms),
            starts_on=request.starts_on or None, expected_version=_version(request.expected_version),
            request_key=request.request_id or None, caller=current_principal()))
        return sales_pb2.RenewContractResponse(contract=contract_to_message(result.contract),
                                               previous=contract_to_message(result.previous))

    @rpc(CONTRACTS.edit)
    async def RecordPayment(self, request, context):
        record = await asyncio.to_thread(self.app.record_payment, RecordPayment(
            request.contract_id, request.instalment, _money(request.amount, request.HasField("amount")),
            request.paid_on, expected_version=_version(request.expected_version), caller=current_principal()))
        return sales_pb2.RecordPaymentResponse(contract=contract_to_message(record))

    @rpc(CONTRACTS.view)
    async def ListContracts(self, request, context):
        page = await _listed(self.app.list_contracts, ListContracts(
            limit=_page(request.page_size), cursor=request.page_token or None, owner_id=request.owner_id or None,
            account_id=request.account_id or None, status=request.status or None,
            ends_after=request.ends_after or None, ends_before=request.ends_before or None,
            caller=current_principal()))
        return sales_pb2.ListContractsResponse(contracts=[contract_to_message(c) for c in page.items],
                                               next_page_token=page.next_cursor or "")

    @rpc(CONTRACTS.edit)
    async def AmendContract(self, request, context):
        schedule = [{"instalment": item.instalment, "due_on": item.due_on,
                     "amount": _money(item.amount, item.HasField("amount"))}
                    for item in request.payment_schedule] or None
        result = await asyncio.to_thread(self.app.amend_contract, AmendContract(
            request.contract_id, request.reason, ends_on=request.ends_on or None,
            total=_money(request.total, request.HasField("total")), payment_schedule=schedule,
            expected_version=_version(request.expected_version), request_key=request.request_id or None,
            caller=current_principal()))
        return sales_pb2.AmendContractResponse(contract=contract_to_message(result.contract),
                                               amendment=amendment_to_message(result.amendment),
                                               created=result.created)

    async def _decide_amendment(self, request, action: str):
        return await asyncio.to_thread(self.app.decide_amendment, DecideAmendment(
            request.contract_id, request.amendment, action, comment=request.comment or None,
            expected_version=_version(request.expected_version), caller=current_principal()))

    @rpc(CONTRACT_APPROVALS.edit)
    async def ApproveContractAmendment(self, request, context):
        result = await self._decide_amendment(request, "approve")
        return sales_pb2.ApproveContractAmendmentResponse(contract=contract_to_message(result.contract),
                                                          amendment=amendment_to_message(result.amendment))

    @rpc(CONTRACT_APPROVALS.edit)
    async def RejectContractAmendment(self, request, context):
        result = await self._decide_amendment(request, "reject")
        return sales_pb2.RejectContractAmendmentResponse(contract=contract_to_message(result.contract),
                                                         amendment=amendment_to_message(result.amendment))

    # -- orders and loyalty ----------------------------------------------------------------------

    @rpc(ORDERS.view)
    async def GetOrder(self, request, context):
        record = await asyncio.to_thread(self.app.get_order, request.order_id, current_principal())
        return sales_pb2.GetOrderResponse(order=order_to_message(record))

    @rpc(ORDERS.view)
    async def ListOrders(self, request, context):
        page = await _listed(self.app.list_orders, ListOrders(
            limit=_page(request.page_size), cursor=request.page_token or None, owner_id=request.owner_id or None,
            account_id=request.account_id or None, status=request.status or None,
            placed_after=request.placed_after or None, placed_before=request.placed_before or None,
            caller=current_principal()))
        return sales_pb2.ListOrdersResponse(orders=[order_to_message(o) for o in page.items],
                                            next_page_token=page.next_cursor or "")

    @rpc(LOYALTY.edit)
    async def SetLoyaltyRule(self, request, context):
        record = await asyncio.to_thread(self.app.set_loyalty_rule, SetLoyaltyRule(
            {"points_per_unit": request.points_per_unit or "1", "tier_multipliers": dict(request.tier_multipliers)},
            caller=current_principal()))
        return sales_pb2.SetLoyaltyRuleResponse(rule=loyalty_rule_to_message(record))

    @rpc(LOYALTY.view)
    async def GetLoyalty(self, request, context):
        record = await asyncio.to_thread(self.app.get_loyalty, request.account_id, current_principal())
        return sales_pb2.GetLoyaltyResponse(loyalty=loyalty_to_message(record))

    @rpc(LOYALTY.create)
    async def RedeemLoyaltyPoints(self, request, context):
        record = await asyncio.to_thread(self.app.redeem_points, RedeemPoints(
            request.account_id, request.points, request.reference, caller=current_principal()))
        return sales_pb2.RedeemLoyaltyPointsResponse(loyalty=loyalty_to_message(record))

    # -- commissions -----------------------------------------------------------------------------

    @rpc(COMMISSIONS.edit)
    async def SetCommissionPlan(self, request, context):
        rules = []
        for rule in request.rules:
            item = {"percent": rule.percent}
            if rule.owner_id:
                item["owner_id"] = rule.owner_id
            if rule.family:
                item["family"] = rule.family
            if rule.tiers:
                item["tiers"] = [{"attainment_from": _money(tier.attainment_from, tier.HasField("attainment_from")),
                                  "percent": tier.percent} for tier in rule.tiers]
            rules.append(item)
        record = await asyncio.to_thread(self.app.set_commission_plan, SetCommissionPlan(
            {"rules": rules}, caller=current_principal()))
        return sales_pb2.SetCommissionPlanResponse(plan=commission_plan_to_message(record))

    @rpc(COMMISSIONS.view)
    async def ListCommissions(self, request, context):
        record = await asyncio.to_thread(self.app.list_commissions, ListCommissions(
            request.owner_id or None, request.period or None, caller=current_principal()))
        return commissions_to_message(record)


def registrations(app: SalesApplication) -> list[Registration]:
    return [Registration(sales_pb2_grpc.add_SalesServiceServicer_to_server, SalesServicer(app),
                         sales_pb2.DESCRIPTOR.services_by_name["SalesService"])]

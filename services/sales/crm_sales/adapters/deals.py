"""HTTP adapter: /v1/pipeline, /v1/opportunities, /v1/products, /v1/price-books and
/v1/quotes. Pydantic models live here, at the edge only; the domain validates again and
names the field.

Creating is `POST` (honours `Idempotency-Key`, per caller; answers `Location` and `ETag`);
commands are `POST /{id}/<command>` (a command the record's state does not allow: 409
naming its status; an optional `If-Match: "<version>"` is checked too, stale: 409); lists
take `limit`, `cursor` and filters. Money is `{"amount": "1234.50", "currency": "EUR"}`, the
amount a decimal string (never a JSON number). Bodies with unknown fields are refused.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses, expected_version, tag
from crm_runtime.money import Money
from crm_sales.application import (
    AddProduct,
    ConfigurePipeline,
    DraftQuote,
    ListOpportunities,
    ListPriceBooks,
    ListProducts,
    ListQuotes,
    OpenOpportunity,
    PipelineRecord,
    PublishPriceBook,
    ReviseQuote,
    SalesApplication,
    WorkOpportunity,
    WorkQuote,
)
from crm_sales.catalogue import FAMILY_MAX
from crm_sales.catalogue import NAME_MAX as PRODUCT_NAME_MAX
from crm_sales.domain import ID_MAX
from crm_sales.opportunities import NAME_MAX, REASON_MAX
from crm_sales.permissions import OPPORTUNITIES, PIPELINE, PRICE_BOOKS, PRODUCTS, QUOTES
from crm_sales.pricing import MAX_BOOK_ENTRIES, MAX_LINES, SKU_MAX
from crm_sales.views import (
    CURSOR_MAX,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    OpportunityRecord,
    PriceBookRecord,
    ProductRecord,
    QuoteRecord,
)

Date = Annotated[str, Field(max_length=10, pattern=r"^\d{4}-\d{2}-\d{2}$", json_schema_extra={"format": "date"},
                            description="ISO 8601 date, e.g. 2025-06-30")]
Decimal = Annotated[StrictStr, Field(max_length=40, pattern=r"^-?[0-9]+(\.[0-9]+)?$",
                                     description='A decimal string, e.g. "12.5" (never a JSON number)')]
Sku = Annotated[StrictStr, Field(min_length=1, max_length=SKU_MAX)]


# -- money ------------------------------------------------------------------------------------

class MoneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(description='A decimal string with at most the currency\'s minor-unit digits, '
                                        'e.g. "1234.50" (never a JSON number)')
    currency: StrictStr = Field(min_length=3, max_length=3, description="ISO 4217, e.g. EUR")


class MoneyOut(BaseModel):
    amount: str = Field(description='A decimal string with exactly the currency\'s minor-unit digits, e.g. "1234.50"')
    currency: str

    @classmethod
    def of(cls, money: Money) -> MoneyOut:
        return cls(**money.to_json())


# -- pipeline ---------------------------------------------------------------------------------

class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(max_length=64, description="A lower-case identifier, e.g. proposal")
    probability: StrictInt = Field(description="Whole percent, 0..100")


class PipelineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stages: list[StageIn] = Field(max_length=30, description=(
        "In order; names unique; closed_won (100) and closed_lost (0) included, and at least one open stage"))


class StageOut(BaseModel):
    name: str
    probability: int
    final: bool = Field(description="closed_won and closed_lost: an opportunity never leaves them")


class PipelineOut(BaseModel):
    stages: list[StageOut]
    version: int = Field(description="0 while the default pipeline is in use")

    @classmethod
    def of(cls, record: PipelineRecord) -> PipelineOut:
        return cls(stages=[StageOut(**stage.to_json()) for stage in record.pipeline.stages], version=record.version)


# -- opportunities ------------------------------------------------------------------------------

class NewOpportunity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=NAME_MAX, pattern=r"\S")
    account_id: UUID = Field(description="An account the caller can see")
    amount: MoneyIn
    expected_close_on: Date
    owner_id: str | None = Field(default=None, max_length=ID_MAX,
                                 description="Default: the caller. Another subject needs opportunities:assign")
    stage: str | None = Field(default=None, max_length=64,
                              description="An open stage of the pipeline; default: its first open stage")


class StageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: StrictStr = Field(max_length=64, description="An open stage of the pipeline (win and lose have their own "
                                                        "commands)")


class LoseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=REASON_MAX, pattern=r"\S")


class StageChangeOut(BaseModel):
    from_stage: str | None = Field(description="null for the stage it opened in")
    stage: str
    at: datetime
    by: str = Field(description="The subject who moved it")


class OpportunityOut(BaseModel):
    id: str
    name: str
    account_id: str
    amount: MoneyOut = Field(description="Once won by accepting a quote: the quote's net total")
    expected_close_on: str
    owner_id: str
    stage: str
    probability: int = Field(description="The stage's probability in the pipeline now")
    status: str = Field(description="open, won or lost")
    closed_on: str | None = Field(description="The date it was won or lost")
    lost_reason: str | None
    won_quote_id: str | None = Field(description="The accepted quote that won it")
    stage_history: list[StageChangeOut]
    version: int = Field(description="Send it back as If-Match with a command")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: OpportunityRecord) -> OpportunityOut:
        return cls(**{**record.__dict__, "amount": MoneyOut.of(record.amount),
                      "stage_history": [StageChangeOut(**entry.__dict__) for entry in record.stage_history]})


class OpportunityPage(BaseModel):
    items: list[OpportunityOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


# -- products and price books -------------------------------------------------------------------

class NewProduct(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku = Field(description="Unique, printable ASCII without spaces; a second product with it is 409")
    name: str = Field(max_length=PRODUCT_NAME_MAX, pattern=r"\S")
    family: str | None = Field(default=None, max_length=FAMILY_MAX, description="e.g. hardware, services")
    active: StrictBool = Field(default=True, description="Only active products are priced and quoted")
    decimal_quantities: StrictBool = Field(default=False, description=(
        'Sold in fractional quantities ("2.5" hours); else quotes take whole units only'))


class ProductOut(BaseModel):
    id: str
    sku: str
    name: str
    family: str | None
    active: bool
    decimal_quantities: bool
    version: int
    created_at: datetime

    @classmethod
    def of(cls, record: ProductRecord) -> ProductOut:
        return cls(**record.__dict__)


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku = Field(description="An active product's SKU, once per book")
    unit_price: MoneyIn | Decimal = Field(description=(
        'Money in the book\'s currency, or a bare decimal string read in the book\'s currency ("19.99")'))


class NewPriceBook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=PRODUCT_NAME_MAX, pattern=r"\S")
    currency: StrictStr = Field(min_length=3, max_length=3, description="ISO 4217, e.g. EUR")
    entries: list[EntryIn] = Field(min_length=1, max_length=MAX_BOOK_ENTRIES)


class EntryOut(BaseModel):
    sku: str
    unit_price: MoneyOut


class PriceBookOut(BaseModel):
    id: str
    name: str
    currency: str
    entries: list[EntryOut] | None = Field(description="Every entry (null in lists: see entry_count)")
    entry_count: int
    version: int
    created_at: datetime

    @classmethod
    def of(cls, record: PriceBookRecord) -> PriceBookOut:
        entries = (None if record.entries is None else
                   [EntryOut(sku=sku, unit_price=MoneyOut.of(price)) for sku, price in record.entries])
        return cls(**{**record.__dict__, "entries": entries})


class PriceBookPage(BaseModel):
    items: list[PriceBookOut]
    next_cursor: str | None


# -- quotes -------------------------------------------------------------------------------------

class DiscountIn(BaseModel):
    """Exactly one of percent (of the line) or amount (off the line, in the quote's currency)."""

    model_config = ConfigDict(extra="forbid")

    percent: Decimal | StrictInt | None = Field(default=None, description='0..100, e.g. "10"')
    amount: Decimal | MoneyIn | None = Field(default=None, description=(
        'In the quote\'s currency: "5.00", or {"amount": "5.00", "currency": "EUR"}'))


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku = Field(description="A product in the quote's price book")
    quantity: Decimal | StrictInt = Field(description="Positive; whole unless the product takes decimal quantities")
    discount: DiscountIn | None = None
    tax_rate: Decimal | StrictInt = Field(description='A fraction 0..1: "0.20" is 20%, "0" none')


class NewQuote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opportunity_id: UUID = Field(description="An open opportunity the caller can see")
    price_book_id: UUID = Field(description="A price book in the opportunity's currency")
    valid_until: Date = Field(description="The last day it can be accepted (UTC); today or later")
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)


class ReviseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    valid_until: Date | None = Field(default=None, description="Default: the revised quote's")


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    win_opportunity: StrictBool = Field(default=False, description=(
        "Also win the quote's opportunity (its amount becomes the quote's net total), in the same transaction"))


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=REASON_MAX)


class DiscountOut(BaseModel):
    percent: str | None = None
    amount: MoneyOut | None = None


class LineOut(BaseModel):
    sku: str
    quantity: str
    tax_rate: str
    discount: DiscountOut | None
    unit_price: MoneyOut
    list_amount: MoneyOut = Field(description="quantity x unit_price, rounded")
    discount_amount: MoneyOut = Field(description="list_amount - net")
    net: MoneyOut = Field(description="quantity x unit_price - discount, rounded half-even")
    tax: MoneyOut = Field(description="net x tax_rate, rounded half-even")
    gross: MoneyOut = Field(description="net + tax")


class TotalsOut(BaseModel):
    net: MoneyOut
    tax: MoneyOut
    gross: MoneyOut


class QuoteOut(BaseModel):
    id: str
    opportunity_id: str
    account_id: str
    owner_id: str
    price_book_id: str
    currency: str
    valid_until: str
    number: int = Field(description="1, and n + 1 for a revision of quote n")
    previous_quote_id: str | None
    next_quote_id: str | None = Field(description="The revision that superseded it")
    status: str = Field(description="draft, sent, accepted, rejected, expired (draft or sent past valid_until), "
                                    "superseded")
    lines: list[LineOut]
    totals: TotalsOut = Field(description="Sums of the rounded lines")
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: QuoteRecord) -> QuoteOut:
        def discount(raw: dict[str, str] | None) -> DiscountOut | None:
            if not raw:
                return None
            if "percent" in raw:
                return DiscountOut(percent=raw["percent"])
            return DiscountOut(amount=MoneyOut(amount=raw["amount"], currency=record.currency))

        lines = [LineOut(sku=line.sku, quantity=line.quantity, tax_rate=line.tax_rate,
                         discount=discount(line.discount),
                         **{name: MoneyOut.of(getattr(line, name)) for name in
                            ("unit_price", "list_amount", "discount_amount", "net", "tax", "gross")})
                 for line in record.lines]
        return cls(**{**record.__dict__, "lines": lines,
                      "totals": TotalsOut(**{name: MoneyOut.of(value) for name, value in record.totals.items()})})


class QuotePage(BaseModel):
    items: list[QuoteOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


# -- shared parameters ----------------------------------------------------------------------------

IdempotencyKey = Annotated[str | None, Header(max_length=200, description=
                           "The same key (per caller) creates the record once; a repeat answers 200")]
IfMatch = Annotated[str | None, Header(max_length=40, description='Optional: the version you read, e.g. "3"')]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}")]
Cursor = Annotated[str | None, Query(max_length=CURSOR_MAX, description="next_cursor of the previous page")]
CREATE_ERRORS = error_responses(404, 409, 422)
COMMAND_ERRORS = error_responses(404, 409, 422)


def _lines(lines: list[LineIn]) -> list[dict[str, Any]]:
    return [line.model_dump(exclude_unset=True) for line in lines]


def _created(response: Response, created: bool, location: str, version: int) -> None:
    response.status_code = 201 if created else 200
    response.headers["Location"] = location
    tag(response, version)


def routers(app: SalesApplication) -> list[APIRouter]:
    return [pipeline_router(app), opportunities_router(app), products_router(app), price_books_router(app),
            quotes_router(app)]


def pipeline_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/pipeline", tags=["pipeline"])

    @api.get("", response_model=PipelineOut)
    async def get_pipeline(response: Response, _caller: Principal = require(PIPELINE.view)):
        record = await asyncio.to_thread(app.get_pipeline)
        tag(response, record.version)
        return PipelineOut.of(record)

    @api.put("", response_model=PipelineOut, responses=error_responses(409, 422))
    async def put_pipeline(body: PipelineIn, response: Response, caller: Principal = require(PIPELINE.edit),
                           if_match: IfMatch = None):
        record = await asyncio.to_thread(app.configure_pipeline, ConfigurePipeline(
            stages=[stage.model_dump() for stage in body.stages], expected_version=expected_version(if_match),
            caller=caller))
        tag(response, record.version)
        return PipelineOut.of(record)

    return api


def opportunities_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/opportunities", tags=["opportunities"])

    @api.post("", status_code=201, response_model=OpportunityOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first opportunity",
                               "model": OpportunityOut}, **error_responses(403, 409, 422)})
    async def open_opportunity(body: NewOpportunity, response: Response,
                               caller: Principal = require(OPPORTUNITIES.create),
                               idempotency_key: IdempotencyKey = None):
        record, created = await asyncio.to_thread(app.open_opportunity, OpenOpportunity(
            name=body.name, account_id=str(body.account_id), amount=body.amount.model_dump(),
            expected_close_on=body.expected_close_on, owner_id=body.owner_id, stage=body.stage,
            request_key=idempotency_key, caller=caller))
        _created(response, created, f"/v1/opportunities/{record.id}", record.version)
        return OpportunityOut.of(record)

    @api.get("", response_model=OpportunityPage, responses=error_responses(422))
    async def list_opportunities(caller: Principal = require(OPPORTUNITIES.view), limit: Limit = DEFAULT_LIMIT,
                                 cursor: Cursor = None,
                                 stage: Annotated[str | None, Query(max_length=64)] = None,
                                 owner_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
                                 account_id: Annotated[UUID | None, Query()] = None,
                                 close_month: Annotated[str | None, Query(
                                     max_length=7, description="YYYY-MM: expected to close in that month")] = None):
        page = await asyncio.to_thread(app.list_opportunities, ListOpportunities(
            limit=limit, cursor=cursor, owner_id=owner_id, stage=stage,
            account_id=str(account_id) if account_id else None, close_month=close_month, caller=caller))
        return OpportunityPage(items=[OpportunityOut.of(o) for o in page.items], next_cursor=page.next_cursor)

    @api.get("/{opportunity_id}", response_model=OpportunityOut, responses=error_responses(404, 422))
    async def get_opportunity(opportunity_id: UUID, response: Response,
                              caller: Principal = require(OPPORTUNITIES.view)):
        record = await asyncio.to_thread(app.get_opportunity, opportunity_id, caller)
        tag(response, record.version)
        return OpportunityOut.of(record)

    async def work(opportunity_id: UUID, action: str, caller: Principal, if_match: str | None,
                   response: Response, **fields: Any) -> OpportunityOut:
        record = await asyncio.to_thread(app.work_opportunity, WorkOpportunity(
            opportunity_id=opportunity_id, action=action, expected_version=expected_version(if_match),
            caller=caller, **fields))
        tag(response, record.version)
        return OpportunityOut.of(record)

    @api.post("/{opportunity_id}/stage", response_model=OpportunityOut, responses=COMMAND_ERRORS,
              summary="Move to another open stage of the pipeline")
    async def move_stage(opportunity_id: UUID, body: StageBody, response: Response,
                         caller: Principal = require(OPPORTUNITIES.edit), if_match: IfMatch = None):
        return await work(opportunity_id, "stage", caller, if_match, response, stage=body.stage)

    @api.post("/{opportunity_id}/win", response_model=OpportunityOut, responses=COMMAND_ERRORS,
              summary="Win it (closed_won, final)")
    async def win(opportunity_id: UUID, response: Response, caller: Principal = require(OPPORTUNITIES.edit),
                  if_match: IfMatch = None):
        return await work(opportunity_id, "win", caller, if_match, response)

    @api.post("/{opportunity_id}/lose", response_model=OpportunityOut, responses=COMMAND_ERRORS,
              summary="Lose it, with a reason (closed_lost, final)")
    async def lose(opportunity_id: UUID, body: LoseBody, response: Response,
                   caller: Principal = require(OPPORTUNITIES.edit), if_match: IfMatch = None):
        return await work(opportunity_id, "lose", caller, if_match, response, reason=body.reason)

    return api


def products_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/products", tags=["products"])

    @api.post("", status_code=201, response_model=ProductOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first product", "model": ProductOut},
                         409: error_responses(409)[409] | {"description": "A product with this SKU exists"},
                         **error_responses(422)})
    async def add_product(body: NewProduct, response: Response, caller: Principal = require(PRODUCTS.create),
                          idempotency_key: IdempotencyKey = None):
        record, created = await asyncio.to_thread(app.add_product, AddProduct(
            sku=body.sku, name=body.name, family=body.family, active=body.active,
            decimal_quantities=body.decimal_quantities, request_key=idempotency_key, caller=caller))
        _created(response, created, f"/v1/products/{record.id}", record.version)
        return ProductOut.of(record)

    @api.get("", response_model=ProductPage, responses=error_responses(422))
    async def list_products(_caller: Principal = require(PRODUCTS.view), limit: Limit = DEFAULT_LIMIT,
                            cursor: Cursor = None,
                            family: Annotated[str | None, Query(max_length=FAMILY_MAX)] = None,
                            active: Annotated[bool | None, Query()] = None):
        page = await asyncio.to_thread(app.list_products, ListProducts(
            limit=limit, cursor=cursor, family=family, active=active))
        return ProductPage(items=[ProductOut.of(p) for p in page.items], next_cursor=page.next_cursor)

    @api.get("/{product_id}", response_model=ProductOut, responses=error_responses(404, 422))
    async def get_product(product_id: UUID, response: Response, _caller: Principal = require(PRODUCTS.view)):
        record = await asyncio.to_thread(app.get_product, product_id)
        tag(response, record.version)
        return ProductOut.of(record)

    return api


def price_books_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/price-books", tags=["price books"])

    @api.post("", status_code=201, response_model=PriceBookOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first book", "model": PriceBookOut},
                         **error_responses(409, 422)})
    async def publish_price_book(body: NewPriceBook, response: Response,
                                 caller: Principal = require(PRICE_BOOKS.create),
                                 idempotency_key: IdempotencyKey = None):
        entries = [{"sku": entry.sku, "unit_price": entry.unit_price if isinstance(entry.unit_price, str)
                    else entry.unit_price.model_dump()} for entry in body.entries]
        record, created = await asyncio.to_thread(app.publish_price_book, PublishPriceBook(
            name=body.name, currency=body.currency, entries=entries, request_key=idempotency_key, caller=caller))
        _created(response, created, f"/v1/price-books/{record.id}", record.version)
        return PriceBookOut.of(record)

    @api.get("", response_model=PriceBookPage, responses=error_responses(422))
    async def list_price_books(_caller: Principal = require(PRICE_BOOKS.view), limit: Limit = DEFAULT_LIMIT,
                               cursor: Cursor = None,
                               currency: Annotated[str | None, Query(max_length=3)] = None,
                               name_prefix: Annotated[str | None, Query(max_length=PRODUCT_NAME_MAX)] = None):
        page = await asyncio.to_thread(app.list_price_books, ListPriceBooks(
            limit=limit, cursor=cursor, currency=currency, name_prefix=name_prefix))
        return PriceBookPage(items=[PriceBookOut.of(b) for b in page.items], next_cursor=page.next_cursor)

    @api.get("/{price_book_id}", response_model=PriceBookOut, responses=error_responses(404, 422))
    async def get_price_book(price_book_id: UUID, response: Response,
                             _caller: Principal = require(PRICE_BOOKS.view)):
        record = await asyncio.to_thread(app.get_price_book, price_book_id)
        tag(response, record.version)
        return PriceBookOut.of(record)

    return api


def quotes_router(app: SalesApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/quotes", tags=["quotes"])

    @api.post("", status_code=201, response_model=QuoteOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first quote", "model": QuoteOut},
                         **CREATE_ERRORS})
    async def draft_quote(body: NewQuote, response: Response, caller: Principal = require(QUOTES.create),
                          idempotency_key: IdempotencyKey = None):
        record, created = await asyncio.to_thread(app.draft_quote, DraftQuote(
            opportunity_id=str(body.opportunity_id), price_book_id=str(body.price_book_id),
            valid_until=body.valid_until, lines=_lines(body.lines), request_key=idempotency_key, caller=caller))
        _created(response, created, f"/v1/quotes/{record.id}", record.version)
        return QuoteOut.of(record)

    @api.get("", response_model=QuotePage, responses=error_responses(422),
             summary="Quotes by valid_until, then id; a sales_rep lists their own")
    async def list_quotes(caller: Principal = require(QUOTES.view), limit: Limit = DEFAULT_LIMIT,
                          cursor: Cursor = None,
                          opportunity_id: Annotated[UUID | None, Query()] = None,
                          account_id: Annotated[UUID | None, Query()] = None,
                          owner_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
                          status: Annotated[str | None, Query(max_length=20, description=(
                              "draft, sent, accepted, rejected, expired (draft or sent past valid_until, today), "
                              "superseded"))] = None,
                          valid_until_after: Annotated[str | None, Query(
                              max_length=10, description="ISO date: valid_until after it (exclusive)")] = None,
                          valid_until_before: Annotated[str | None, Query(
                              max_length=10, description="ISO date: valid_until before it (exclusive); "
                                                         "with status=sent, the quotes about to lapse")] = None):
        page = await asyncio.to_thread(app.list_quotes, ListQuotes(
            limit=limit, cursor=cursor, owner_id=owner_id,
            opportunity_id=str(opportunity_id) if opportunity_id else None,
            account_id=str(account_id) if account_id else None, status=status, valid_until_after=valid_until_after,
            valid_until_before=valid_until_before, caller=caller))
        return QuotePage(items=[QuoteOut.of(q) for q in page.items], next_cursor=page.next_cursor)

    @api.get("/{quote_id}", response_model=QuoteOut, responses=error_responses(404, 422))
    async def get_quote(quote_id: UUID, response: Response, caller: Principal = require(QUOTES.view)):
        record = await asyncio.to_thread(app.get_quote, quote_id, caller)
        tag(response, record.version)
        return QuoteOut.of(record)

    async def work(quote_id: UUID, action: str, caller: Principal, if_match: str | None, response: Response,
                   **fields: Any) -> QuoteOut:
        result = await asyncio.to_thread(app.work_quote, WorkQuote(
            quote_id=quote_id, action=action, expected_version=expected_version(if_match), caller=caller, **fields))
        tag(response, result.quote.version)
        return QuoteOut.of(result.quote)

    @api.post("/{quote_id}/send", response_model=QuoteOut, responses=COMMAND_ERRORS, summary="draft -> sent")
    async def send_quote(quote_id: UUID, response: Response, caller: Principal = require(QUOTES.edit),
                         if_match: IfMatch = None):
        return await work(quote_id, "send", caller, if_match, response)

    @api.post("/{quote_id}/accept", response_model=QuoteOut, responses=COMMAND_ERRORS,
              summary="sent -> accepted (on or before valid_until); optionally wins the opportunity")
    async def accept_quote(quote_id: UUID, response: Response, body: AcceptBody | None = None,
                           caller: Principal = require(QUOTES.edit), if_match: IfMatch = None):
        win = body.win_opportunity if body is not None else False
        return await work(quote_id, "accept", caller, if_match, response, win_opportunity=win)

    @api.post("/{quote_id}/reject", response_model=QuoteOut, responses=COMMAND_ERRORS, summary="sent -> rejected")
    async def reject_quote(quote_id: UUID, response: Response, body: RejectBody | None = None,
                           caller: Principal = require(QUOTES.edit), if_match: IfMatch = None):
        return await work(quote_id, "reject", caller, if_match, response,
                          reason=body.reason if body is not None else None)

    @api.post("/{quote_id}/revise", status_code=201, response_model=QuoteOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first revision", "model": QuoteOut},
                         **COMMAND_ERRORS},
              summary="A new quote (number + 1) with new lines; this one becomes superseded")
    async def revise_quote(quote_id: UUID, body: ReviseBody, response: Response,
                           caller: Principal = require(QUOTES.create), if_match: IfMatch = None,
                           idempotency_key: IdempotencyKey = None):
        result = await asyncio.to_thread(app.revise_quote, ReviseQuote(
            quote_id=quote_id, lines=_lines(body.lines), valid_until=body.valid_until,
            expected_version=expected_version(if_match), request_key=idempotency_key, caller=caller))
        _created(response, result.created, f"/v1/quotes/{result.quote.id}", result.quote.version)
        return QuoteOut.of(result.quote)

    return api

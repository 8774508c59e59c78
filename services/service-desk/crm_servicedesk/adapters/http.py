"""HTTP adapter: /v1/calendars, /v1/sla-policies, /v1/tickets, /v1/articles and /v1/surveys.
Pydantic models live here, at the edge only; the domain validates again and names the field.

Times are RFC 3339 with an offset (answers in UTC), durations ISO 8601 (`PT4H`). Calendars
and policies are PUT whole (201 when new, 200 when redefined); their bodies are checked by
the domain's own parsers, so a refusal names the exact field (`hours.mon[1]`,
`targets.urgent.resolution`). Ticket commands answer the ticket after the command, with its
`ETag`; an optional `If-Match` on status and priority changes is checked (stale: 409).
Articles are changed with `PATCH` and a required `If-Match` (428 without), published and
archived with an optional one. `POST /v1/surveys/{token}` takes no bearer token (the token in
the path is the credential: crm_servicedesk.permissions) and a body of at most
SURVEY_BODY_MAX bytes.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Header, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm_runtime.auth import Principal, require
from crm_runtime.business_time import Calendar
from crm_runtime.http import (
    body_limit,
    error_responses,
    expected_version,
    given_fields,
    precondition_required,
    tag,
)
from crm_runtime.index import CURSOR_MAX, DEFAULT_LIMIT, MAX_LIMIT
from crm_servicedesk.application import (
    DraftArticle,
    ListArticles,
    ListTickets,
    OpenTicket,
    ServiceDeskApplication,
)
from crm_servicedesk.domain import (
    BODY_MAX,
    DESCRIPTION_MAX,
    ID_MAX,
    MAX_TAGS,
    NAME_MAX,
    SUBJECT_MAX,
    Channel,
    Ticket,
    TicketStatus,
)
from crm_servicedesk.knowledge import ARTICLE_BODY_MAX, LANGUAGE_MAX, QUERY_MAX, TITLE_MAX, Article, ArticleStatus
from crm_servicedesk.permissions import ANSWER_SURVEY, ARTICLES, CALENDARS, SLA_POLICIES, TICKETS
from crm_servicedesk.sla import Priority, SlaPolicy
from crm_servicedesk.surveys import COMMENT_MAX, Survey
from crm_servicedesk.views import ArticleSummary, TicketSummary

if TYPE_CHECKING:
    ChannelName = str
    PriorityName = str
    StatusName = str
    ArticleStatusName = str
else:  # the names, for the schema clients see
    ChannelName = Literal[tuple(c.value for c in Channel)]
    PriorityName = Literal[tuple(p.value for p in Priority)]
    StatusName = Literal[tuple(s.value for s in TicketStatus)]
    ArticleStatusName = Literal[tuple(s.value for s in ArticleStatus)]

Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Lower-case letters, digits, - and _")]
IdempotencyKey = Annotated[str | None, Header(max_length=200, description=
                           "The same key (per caller) creates the record once; a repeat answers 200")]
IfMatch = Annotated[str | None, Header(max_length=40, description='The version you read, e.g. "3"')]


# -- calendars ------------------------------------------------------------------------------

class CalendarBody(BaseModel):
    """A business calendar. Days left out are closed; `24:00` ends a day."""

    model_config = ConfigDict(json_schema_extra={"example": {
        "time_zone": "Europe/Berlin",
        "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]},
        "holidays": ["2026-12-25"]}})

    time_zone: str = Field(description="IANA time zone, e.g. Europe/Berlin")
    hours: dict[str, list[list[str]]] = Field(description='Day names (mon..sun) to [["HH:MM", "HH:MM"], ...]')
    holidays: list[str] = Field(default_factory=list, description="ISO 8601 dates")


class CalendarOut(CalendarBody):
    id: str


def calendar_out(calendar_id: str, calendar: Calendar) -> CalendarOut:
    return CalendarOut(id=calendar_id, **calendar.to_dict())  # type: ignore[arg-type]


class DueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    duration: str = Field(max_length=40, description="ISO 8601 business time, e.g. PT4H")


class DueAnswer(BaseModel):
    due: datetime


class ElapsedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime


class ElapsedAnswer(BaseModel):
    duration: str = Field(description="ISO 8601, in hours, minutes and seconds (PT26H30M)")


# -- SLA policies -----------------------------------------------------------------------------

class TargetsBody(BaseModel):
    first_response: str = Field(description="ISO 8601 business time, e.g. PT1H")
    resolution: str = Field(description="ISO 8601 business time, e.g. PT4H")


class AppliesTo(BaseModel):
    account_tier: list[str] = Field(default_factory=list, description="Empty: any tier")
    category: list[str] = Field(default_factory=list, description="Empty: any category")


class PolicyBody(BaseModel):
    calendar_id: str = Field(default="default")
    targets: dict[str, TargetsBody] = Field(description="One per priority: urgent, high, normal, low")
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    warn_at_percent: int = Field(default=75)
    escalation_steps: list[str] = Field(default_factory=list,
                                        description='Offsets after a breach, one level each, e.g. ["PT0S", "PT2H"]')


class PolicyOut(PolicyBody):
    id: str


class PolicyList(BaseModel):
    items: list[PolicyOut]


def policy_out(policy: SlaPolicy) -> PolicyOut:
    return PolicyOut(id=policy.id, **policy.to_dict())


# -- tickets ----------------------------------------------------------------------------------

class Requester(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    contact_id: str | None = Field(default=None, max_length=ID_MAX)


class NewTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(max_length=SUBJECT_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    channel: ChannelName
    priority: PriorityName = "normal"
    requester: Requester = Field(description="An email or a contact id (of the sales service), or both")
    account_id: str | None = Field(default=None, max_length=ID_MAX)
    account_tier: str | None = Field(default=None, max_length=NAME_MAX,
                                     description="With category, chooses the SLA policy")
    category: str | None = Field(default=None, max_length=NAME_MAX)
    tags: list[Annotated[str, Field(max_length=NAME_MAX)]] = Field(default_factory=list, max_length=MAX_TAGS)
    group: str | None = Field(default=None, max_length=NAME_MAX, description="The team it is routed to")


class SlaTargetOut(BaseModel):
    state: Literal["running", "paused", "met", "stopped"]
    target: str
    due: datetime | None = Field(description="Unset only while paused before reaching it")
    warn_at: datetime | None
    escalate_at: list[datetime] = Field(description="Escalation level i + 1 at index i")
    met_at: datetime | None


class SlaOut(BaseModel):
    policy_id: str
    calendar_id: str
    first_response_due: datetime | None
    resolution_due: datetime | None
    paused: bool = Field(description="The resolution clock is paused (pending)")
    warn_at_percent: int
    escalation_steps: list[str]
    first_response: SlaTargetOut
    resolution: SlaTargetOut


class RequesterOut(BaseModel):
    email: str | None
    contact_id: str | None


class TicketOut(BaseModel):
    id: str
    subject: str
    description: str
    channel: ChannelName
    priority: PriorityName
    status: StatusName
    requester: RequesterOut
    account_id: str | None
    account_tier: str | None
    category: str | None
    tags: list[str]
    group: str | None
    assignee_id: str | None
    escalation_level: int
    opened_by: str
    sla: SlaOut
    breached: bool = Field(description="Past an unmet due time now")
    version: int
    created_at: datetime
    updated_at: datetime


def ticket_out(ticket: Ticket, now: datetime) -> TicketOut:
    sla = ticket.sla
    return TicketOut(
        id=str(ticket.id), subject=ticket.subject, description=ticket.description,
        channel=ticket.channel.value, priority=ticket.priority.value, status=ticket.status.value,
        requester=RequesterOut(email=ticket.requester_email, contact_id=ticket.requester_contact_id),
        account_id=ticket.account_id, account_tier=ticket.account_tier, category=ticket.category,
        tags=list(ticket.tags), group=ticket.group, assignee_id=ticket.assignee_id,
        escalation_level=ticket.escalation_level, opened_by=ticket.opened_by,
        sla=SlaOut(**sla.to_dict()), breached=sla.first_response.breached(now) or sla.resolution.breached(now),
        version=ticket.version, created_at=ticket.opened_at, updated_at=ticket.updated_at)


class TicketSummaryOut(BaseModel):
    id: str
    subject: str
    channel: ChannelName
    status: StatusName
    priority: PriorityName
    group: str | None
    category: str | None
    account_id: str | None
    account_tier: str | None
    requester_email: str | None
    assignee_id: str | None
    escalation_level: int
    opened_by: str
    sla: SlaOut
    breached: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, summary: TicketSummary) -> TicketSummaryOut:
        return cls(**summary.__dict__)


class TicketPage(BaseModel):
    items: list[TicketSummaryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: StatusName


class PriorityChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: PriorityName


class NewComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(max_length=BODY_MAX)
    public: bool = Field(description="Seen by the requester; an agent's first public comment is the first response")
    author_id: str | None = Field(default=None, max_length=ID_MAX,
                                  description="Default: the caller; another author needs tickets:assign")


class CommentOut(BaseModel):
    id: str
    body: str
    public: bool
    author_id: str
    by_agent: bool
    at: datetime


class CommentAnswer(BaseModel):
    comment_id: str
    first_response: bool = Field(description="This comment was the ticket's first response")
    ticket: TicketOut


class CommentList(BaseModel):
    items: list[CommentOut]


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee_id: str = Field(max_length=ID_MAX)
    idempotency_key: str = Field(max_length=ID_MAX, description="A repeated key changes nothing")


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: int = Field(ge=1, le=100)
    idempotency_key: str = Field(max_length=ID_MAX, description="A repeated key changes nothing")
    reason: str | None = Field(default=None, max_length=200)


# -- knowledge base ---------------------------------------------------------------------------

Tag = Annotated[str, Field(max_length=NAME_MAX)]


class NewArticle(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "title": "Resetting your password", "body": "Open Settings, then Security ...",
        "tags": ["accounts", "how-to"], "language": "en"}})

    title: str = Field(max_length=TITLE_MAX)
    body: str = Field(max_length=ARTICLE_BODY_MAX, description="Plain text; line breaks are kept")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    language: str = Field(max_length=LANGUAGE_MAX, description="BCP 47 language tag, e.g. en, de-CH, zh-Hant")


class ArticleChanges(BaseModel):
    """Only the fields to change (absent: unchanged; null tags: none)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=TITLE_MAX)
    body: str | None = Field(default=None, max_length=ARTICLE_BODY_MAX)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    language: str | None = Field(default=None, max_length=LANGUAGE_MAX)


class ArticleOut(BaseModel):
    id: str
    title: str
    body: str
    tags: list[str]
    language: str
    status: ArticleStatusName
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None

    @classmethod
    def of(cls, article: Article) -> ArticleOut:
        return cls(id=str(article.id), title=article.title, body=article.body, tags=list(article.tags),
                   language=article.language, status=article.status.value, created_by=article.created_by,
                   version=article.version, created_at=article.created_at, updated_at=article.updated_at,
                   published_at=article.published_at)


class ArticleSummaryOut(BaseModel):
    id: str
    title: str
    excerpt: str = Field(description="The body's beginning")
    tags: list[str]
    language: str
    status: ArticleStatusName
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    score: float | None = Field(description="Relevance to `q`, higher is better; null without `q`")

    @classmethod
    def of(cls, summary: ArticleSummary) -> ArticleSummaryOut:
        return cls(**summary.__dict__)


class ArticlePage(BaseModel):
    items: list[ArticleSummaryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


# -- surveys ------------------------------------------------------------------------------------

SURVEY_BODY_MAX = 16 * 1024


class SurveyAnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"rating": 5, "comment": "Quick!"}})

    rating: int = Field(ge=1, le=5, strict=True, description="1 (bad) to 5 (very good), a JSON integer")
    comment: str | None = Field(default=None, max_length=COMMENT_MAX)


class SurveyAnswerOut(BaseModel):
    survey_id: str
    ticket_id: str
    round: int = Field(description="Which solve of the ticket it is about: 1, 2 after a reopen, ...")
    rating: int
    comment: str | None
    answered_at: datetime

    @classmethod
    def of(cls, survey: Survey) -> SurveyAnswerOut:
        assert survey.rating is not None and survey.answered_at is not None
        return cls(survey_id=str(survey.id), ticket_id=survey.ticket_id, round=survey.round,
                   rating=survey.rating, comment=survey.comment, answered_at=survey.answered_at)


def routers(app: ServiceDeskApplication) -> list[APIRouter]:
    return [calendars_router(app), policies_router(app), tickets_router(app), articles_router(app),
            surveys_router(app)]


def calendars_router(app: ServiceDeskApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/calendars", tags=["calendars"])

    @api.put("/{calendar_id}", response_model=CalendarOut,
             responses={201: {"description": "Defined", "model": CalendarOut}, **error_responses(409, 422)})
    async def put_calendar(calendar_id: Slug, response: Response,
                           body: Annotated[dict[str, Any], Body(openapi_examples={"berlin": {"value": {
                               "time_zone": "Europe/Berlin",
                               "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]},
                               "holidays": ["2026-12-25"]}}})],
                           caller: Principal = require(CALENDARS.edit)):
        calendar, created = await asyncio.to_thread(app.define_calendar, calendar_id, body, caller)
        response.status_code = 201 if created else 200
        return calendar_out(calendar_id, calendar)

    @api.get("/{calendar_id}", response_model=CalendarOut, responses=error_responses(404, 422))
    async def get_calendar(calendar_id: Slug, caller: Principal = require(CALENDARS.view)):
        return calendar_out(calendar_id, await asyncio.to_thread(app.calendar, calendar_id))

    @api.post("/{calendar_id}/due", response_model=DueAnswer, responses=error_responses(404, 422))
    async def compute_due(calendar_id: Slug, body: DueRequest, caller: Principal = require(CALENDARS.view)):
        return DueAnswer(due=await asyncio.to_thread(app.calendar_due, calendar_id, body.start, body.duration))

    @api.post("/{calendar_id}/elapsed", response_model=ElapsedAnswer, responses=error_responses(404, 422))
    async def compute_elapsed(calendar_id: Slug, body: ElapsedRequest, caller: Principal = require(CALENDARS.view)):
        return ElapsedAnswer(duration=await asyncio.to_thread(app.calendar_elapsed, calendar_id,
                                                              body.start, body.end))

    return api


def policies_router(app: ServiceDeskApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/sla-policies", tags=["sla-policies"])

    @api.put("/{policy_id}", response_model=PolicyOut,
             responses={201: {"description": "Defined", "model": PolicyOut}, **error_responses(409, 422)})
    async def put_policy(policy_id: Slug, response: Response, body: Annotated[dict[str, Any], Body()],
                         caller: Principal = require(SLA_POLICIES.edit)):
        policy, created = await asyncio.to_thread(app.define_policy, policy_id, body, caller)
        response.status_code = 201 if created else 200
        return policy_out(policy)

    @api.get("/{policy_id}", response_model=PolicyOut, responses=error_responses(404, 422))
    async def get_policy(policy_id: Slug, caller: Principal = require(SLA_POLICIES.view)):
        return policy_out(await asyncio.to_thread(app.policy, policy_id))

    @api.get("", response_model=PolicyList)
    async def list_policies(caller: Principal = require(SLA_POLICIES.view)):
        return PolicyList(items=[policy_out(p) for p in await asyncio.to_thread(app.list_policies)])

    return api


def tickets_router(app: ServiceDeskApplication) -> APIRouter:
    @asynccontextmanager
    async def lifespan(_api):
        # Lists and the choice of a policy read the index: bring it up to date first.
        await asyncio.to_thread(app.catch_up_views)
        yield

    api = APIRouter(prefix="/v1/tickets", tags=["tickets"], lifespan=lifespan)

    def answer(response: Response, ticket: Ticket) -> TicketOut:
        tag(response, ticket.version)
        return ticket_out(ticket, app.clock.now())

    @api.post("", status_code=201, response_model=TicketOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first ticket", "model": TicketOut},
                         **error_responses(404, 409, 422)})
    async def open_ticket(body: NewTicket, response: Response, caller: Principal = require(TICKETS.create),
                          idempotency_key: IdempotencyKey = None):
        ticket, created = await asyncio.to_thread(app.open_ticket, OpenTicket(
            subject=body.subject, description=body.description, channel=body.channel, priority=body.priority,
            requester_email=body.requester.email, requester_contact_id=body.requester.contact_id,
            account_id=body.account_id, account_tier=body.account_tier, category=body.category,
            tags=body.tags, group=body.group, request_key=idempotency_key, caller=caller))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/tickets/{ticket.id}"
        return answer(response, ticket)

    @api.get("/{ticket_id}", response_model=TicketOut, responses=error_responses(404, 422))
    async def get_ticket(ticket_id: UUID, response: Response, caller: Principal = require(TICKETS.view)):
        return answer(response, await asyncio.to_thread(app.get_ticket, ticket_id, caller))

    @api.get("", response_model=TicketPage, responses=error_responses(422))
    async def list_tickets(caller: Principal = require(TICKETS.view),
                           limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
                           cursor: Annotated[str | None, Query(max_length=CURSOR_MAX)] = None,
                           status: StatusName | None = None,
                           assignee_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
                           group: Annotated[str | None, Query(max_length=NAME_MAX)] = None,
                           priority: PriorityName | None = None,
                           breached: Annotated[bool | None, Query(
                               description="true: past an unmet due time now; false: not")] = None):
        page = await asyncio.to_thread(app.list_tickets, ListTickets(
            limit=limit, cursor=cursor, status=status, assignee_id=assignee_id, group=group,
            priority=priority, breached=breached, caller=caller))
        return TicketPage(items=[TicketSummaryOut.of(s) for s in page.items], next_cursor=page.next_cursor)

    @api.post("/{ticket_id}/status", response_model=TicketOut, responses=error_responses(404, 409, 422))
    async def change_status(ticket_id: UUID, body: StatusChange, response: Response,
                            caller: Principal = require(TICKETS.edit), if_match: IfMatch = None):
        ticket = await asyncio.to_thread(app.move_ticket, ticket_id, body.status, expected_version(if_match), caller)
        return answer(response, ticket)

    @api.post("/{ticket_id}/priority", response_model=TicketOut, responses=error_responses(404, 409, 422))
    async def change_priority(ticket_id: UUID, body: PriorityChange, response: Response,
                              caller: Principal = require(TICKETS.edit), if_match: IfMatch = None):
        ticket = await asyncio.to_thread(app.change_priority, ticket_id, body.priority,
                                         expected_version(if_match), caller)
        return answer(response, ticket)

    @api.post("/{ticket_id}/comments", status_code=201, response_model=CommentAnswer,
              responses=error_responses(403, 404, 409, 422))
    async def add_comment(ticket_id: UUID, body: NewComment, response: Response,
                          caller: Principal = require(TICKETS.edit), idempotency_key: IdempotencyKey = None):
        ticket, comment_id, first = await asyncio.to_thread(
            app.add_comment, ticket_id, body.body, body.public, body.author_id, idempotency_key, caller)
        return CommentAnswer(comment_id=comment_id, first_response=first, ticket=answer(response, ticket))

    @api.get("/{ticket_id}/comments", response_model=CommentList, responses=error_responses(404, 422))
    async def list_comments(ticket_id: UUID, caller: Principal = require(TICKETS.view)):
        ticket = await asyncio.to_thread(app.get_ticket, ticket_id, caller)
        return CommentList(items=[CommentOut(**comment) for comment in ticket.comments])

    @api.post("/{ticket_id}/sla/reapply", response_model=TicketOut, responses=error_responses(404, 409, 422))
    async def reapply_sla(ticket_id: UUID, response: Response, caller: Principal = require(TICKETS.edit)):
        return answer(response, await asyncio.to_thread(app.reapply_sla, ticket_id, caller))

    @api.post("/{ticket_id}/assign", response_model=TicketOut, responses=error_responses(404, 409, 422))
    async def assign(ticket_id: UUID, body: Assignment, response: Response,
                     caller: Principal = require(TICKETS.assign), if_match: IfMatch = None):
        ticket = await asyncio.to_thread(app.assign_ticket, ticket_id, body.assignee_id, body.idempotency_key,
                                         expected_version(if_match))
        return answer(response, ticket)

    @api.post("/{ticket_id}/escalate", response_model=TicketOut, responses=error_responses(404, 422))
    async def escalate(ticket_id: UUID, body: Escalation, response: Response,
                       caller: Principal = require(TICKETS.assign)):
        ticket = await asyncio.to_thread(app.escalate_ticket, ticket_id, body.level, body.idempotency_key,
                                         body.reason)
        return answer(response, ticket)

    return api


def articles_router(app: ServiceDeskApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/articles", tags=["articles"])

    def answer(response: Response, article: Article) -> ArticleOut:
        tag(response, article.version)
        return ArticleOut.of(article)

    @api.post("", status_code=201, response_model=ArticleOut,
              responses={200: {"description": "Repeated Idempotency-Key: the first article", "model": ArticleOut},
                         **error_responses(409, 422)})
    async def draft_article(body: NewArticle, response: Response, caller: Principal = require(ARTICLES.create),
                            idempotency_key: IdempotencyKey = None):
        article, created = await asyncio.to_thread(app.draft_article, DraftArticle(
            title=body.title, body=body.body, tags=body.tags, language=body.language,
            request_key=idempotency_key, caller=caller))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/articles/{article.id}"
        return answer(response, article)

    @api.get("", response_model=ArticlePage, responses=error_responses(422))
    async def list_articles(caller: Principal = require(ARTICLES.view),
                            q: Annotated[str | None, Query(max_length=QUERY_MAX, description=(
                                "Words to search for, ranked best first (title matches above body matches); "
                                "plain terms: quotes and operators are not syntax"))] = None,
                            status: ArticleStatusName | None = None,
                            tag_: Annotated[str | None, Query(alias="tag", max_length=NAME_MAX)] = None,
                            language: Annotated[str | None, Query(max_length=LANGUAGE_MAX, description=(
                                "BCP 47; en also matches en-GB"))] = None,
                            limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
                            cursor: Annotated[str | None, Query(max_length=CURSOR_MAX)] = None):
        page = await asyncio.to_thread(app.list_articles, ListArticles(
            q=q, limit=limit, cursor=cursor, status=status, tag=tag_, language=language, caller=caller))
        return ArticlePage(items=[ArticleSummaryOut.of(s) for s in page.items], next_cursor=page.next_cursor)

    @api.get("/{article_id}", response_model=ArticleOut, responses=error_responses(404, 422))
    async def get_article(article_id: UUID, response: Response, caller: Principal = require(ARTICLES.view)):
        return answer(response, await asyncio.to_thread(app.get_article, article_id, caller))

    @api.patch("/{article_id}", response_model=ArticleOut, responses=error_responses(404, 409, 422, 428))
    async def change_article(article_id: UUID, body: ArticleChanges, response: Response,
                             caller: Principal = require(ARTICLES.edit), if_match: IfMatch = None):
        expected = expected_version(if_match)
        if expected is None:
            return precondition_required("article")
        article = await asyncio.to_thread(app.change_article, article_id, given_fields(body), expected, caller)
        return answer(response, article)

    @api.post("/{article_id}/publish", response_model=ArticleOut, responses=error_responses(404, 409, 422),
              summary="draft -> published")
    async def publish_article(article_id: UUID, response: Response, caller: Principal = require(ARTICLES.edit),
                              if_match: IfMatch = None):
        article = await asyncio.to_thread(app.publish_article, article_id, expected_version(if_match), caller)
        return answer(response, article)

    @api.post("/{article_id}/archive", response_model=ArticleOut, responses=error_responses(404, 409, 422),
              summary="published -> archived")
    async def archive_article(article_id: UUID, response: Response, caller: Principal = require(ARTICLES.edit),
                              if_match: IfMatch = None):
        article = await asyncio.to_thread(app.archive_article, article_id, expected_version(if_match), caller)
        return answer(response, article)

    return api


def surveys_router(app: ServiceDeskApplication) -> APIRouter:
    api = APIRouter(prefix="/v1/surveys", tags=["surveys"])

    @api.post("/{token}", status_code=201, response_model=SurveyAnswerOut,
              responses=error_responses(404, 409, 422),
              summary="Answer a satisfaction survey (no bearer token: the survey's token is the credential)")
    @body_limit(SURVEY_BODY_MAX)
    async def answer_survey(token: str, body: SurveyAnswerBody, caller: None = require(ANSWER_SURVEY)):
        survey = await asyncio.to_thread(app.answer_survey, token, body.rating, body.comment)
        return SurveyAnswerOut.of(survey)

    return api

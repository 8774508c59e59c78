"""gRPC adapter: crm.servicedesk.v1.ServiceDeskService. Each method names its permission
once (`@rpc`); errors map to status codes through the runtime's one table. Durations are
google.protobuf.Duration, times google.protobuf.Timestamp; the rules are the HTTP API's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from google.protobuf.duration_pb2 import Duration

from crm.servicedesk.v1 import servicedesk_pb2, servicedesk_pb2_grpc
from crm_runtime.auth import current_principal
from crm_runtime.business_time import format_duration, parse_duration
from crm_runtime.cloudevents import timestamp
from crm_runtime.errors import InvalidField, ServiceError
from crm_runtime.grpc_server import Registration, apply_batch, rpc
from crm_runtime.index import DEFAULT_LIMIT, MAX_LIMIT
from crm_servicedesk.adapters.messages import (
    PROTO_TO_ARTICLE_STATUS,
    PROTO_TO_CHANNEL,
    PROTO_TO_PRIORITY,
    PROTO_TO_STATUS,
    article_summary_to_message,
    article_to_message,
    calendar_from_message,
    calendar_to_message,
    policy_to_message,
    summary_to_message,
    survey_to_message,
    ticket_to_message,
)
from crm_servicedesk.application import (
    AssignTicket,
    DraftArticle,
    EscalateTicket,
    ListArticles,
    ListTickets,
    OpenTicket,
    ServiceDeskApplication,
)
from crm_servicedesk.permissions import ANSWER_SURVEY, ARTICLES, CALENDARS, SLA_POLICIES, TICKETS

ARTICLE_FIELDS = ("title", "body", "tags", "language")  # what UpdateArticle's mask may name


def _enum(field_name: str, value: int, table: dict[int, str], required: bool = True) -> str | None:
    if value == 0:
        if required:
            raise InvalidField(field_name, "is required")
        return None
    if value not in table:
        raise InvalidField(field_name, f"{value} is not a known value")
    return table[value]


def _time(field_name: str, message: Any, value: Any) -> datetime:
    if not message.HasField(field_name):
        raise InvalidField(field_name, "is required")
    return value.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def _iso(value: Duration) -> str:
    return format_duration(value.ToTimedelta()) if value.ToNanoseconds() >= 0 else "-PT1S"


def _policy_body(policy: servicedesk_pb2.SlaPolicy) -> dict[str, Any]:
    """The JSON form SlaPolicy.parse reads."""
    targets: dict[str, Any] = {}
    for index, target in enumerate(policy.targets):
        name = _enum(f"targets[{index}].priority", target.priority, PROTO_TO_PRIORITY)
        targets[str(name)] = {"first_response": _iso(target.first_response), "resolution": _iso(target.resolution)}
    return {"calendar_id": policy.calendar_id or "default", "targets": targets,
            "applies_to": {"account_tier": list(policy.account_tiers), "category": list(policy.categories)},
            "warn_at_percent": policy.warn_at_percent or 75,
            "escalation_steps": [_iso(step) for step in policy.escalation_steps]}


class ServiceDeskServicer(servicedesk_pb2_grpc.ServiceDeskServiceServicer):
    def __init__(self, app: ServiceDeskApplication):
        self.app = app

    def _ticket(self, ticket: Any) -> servicedesk_pb2.Ticket:
        return ticket_to_message(ticket, self.app.clock.now())

    # -- calendars ------------------------------------------------------------------------------

    @rpc(CALENDARS.edit)
    async def PutCalendar(self, request, context):
        calendar_id = request.calendar.calendar_id
        calendar, _ = await asyncio.to_thread(self.app.define_calendar, calendar_id,
                                              calendar_from_message(request.calendar), current_principal())
        return calendar_to_message(calendar_id, calendar)

    @rpc(CALENDARS.view)
    async def GetCalendar(self, request, context):
        calendar = await asyncio.to_thread(self.app.calendar, request.calendar_id)
        return calendar_to_message(request.calendar_id, calendar)

    @rpc(CALENDARS.view)
    async def ComputeDue(self, request, context):
        start = _time("start", request, request.start)
        due = await asyncio.to_thread(self.app.calendar_due, request.calendar_id, start, _iso(request.duration))
        return servicedesk_pb2.ComputeDueResponse(due=timestamp(due))

    @rpc(CALENDARS.view)
    async def ComputeElapsed(self, request, context):
        text = await asyncio.to_thread(self.app.calendar_elapsed, request.calendar_id,
                                       _time("start", request, request.start), _time("end", request, request.end))
        answer = Duration()
        answer.FromTimedelta(parse_duration(text))
        return servicedesk_pb2.ComputeElapsedResponse(duration=answer)

    # -- SLA policies ----------------------------------------------------------------------------

    @rpc(SLA_POLICIES.edit)
    async def PutSlaPolicy(self, request, context):
        policy, _ = await asyncio.to_thread(self.app.define_policy, request.policy.policy_id,
                                            _policy_body(request.policy), current_principal())
        return policy_to_message(policy)

    @rpc(SLA_POLICIES.view)
    async def GetSlaPolicy(self, request, context):
        return policy_to_message(await asyncio.to_thread(self.app.policy, request.policy_id))

    @rpc(SLA_POLICIES.view)
    async def ListSlaPolicies(self, request, context):
        policies = await asyncio.to_thread(self.app.list_policies)
        return servicedesk_pb2.ListSlaPoliciesResponse(policies=[policy_to_message(p) for p in policies])

    # -- tickets ----------------------------------------------------------------------------------

    @rpc(TICKETS.create)
    async def CreateTicket(self, request, context):
        ticket, created = await asyncio.to_thread(self.app.open_ticket, OpenTicket(
            subject=request.subject, description=request.description,
            channel=_enum("channel", request.channel, PROTO_TO_CHANNEL),
            priority=_enum("priority", request.priority, PROTO_TO_PRIORITY, required=False) or "normal",
            requester_email=request.requester_email or None,
            requester_contact_id=request.requester_contact_id or None,
            account_id=request.account_id or None, account_tier=request.account_tier or None,
            category=request.category or None, tags=list(request.tags), group=request.group or None,
            request_key=request.request_id or None, caller=current_principal()))
        return servicedesk_pb2.CreateTicketResponse(ticket=self._ticket(ticket), created=created)

    @rpc(TICKETS.view)
    async def GetTicket(self, request, context):
        return self._ticket(await asyncio.to_thread(self.app.get_ticket, request.ticket_id, current_principal()))

    @rpc(TICKETS.view)
    async def ListTickets(self, request, context):
        if request.page_size < 0:
            raise InvalidField("page_size", "must not be negative")
        page = await asyncio.to_thread(self.app.list_tickets, ListTickets(
            limit=min(request.page_size, MAX_LIMIT) or DEFAULT_LIMIT, cursor=request.page_token or None,
            status=_enum("status", request.status, PROTO_TO_STATUS, required=False),
            assignee_id=request.assignee_id or None, group=request.group or None,
            priority=_enum("priority", request.priority, PROTO_TO_PRIORITY, required=False),
            breached=request.breached if request.HasField("breached") else None,
            caller=current_principal()))
        return servicedesk_pb2.ListTicketsResponse(tickets=[summary_to_message(s) for s in page.items],
                                                   next_page_token=page.next_cursor or "")

    @rpc(TICKETS.edit)
    async def ChangeTicketStatus(self, request, context):
        ticket = await asyncio.to_thread(self.app.move_ticket, request.ticket_id,
                                         _enum("status", request.status, PROTO_TO_STATUS),
                                         request.expected_version or None, current_principal())
        return self._ticket(ticket)

    @rpc(TICKETS.edit)
    async def ChangeTicketPriority(self, request, context):
        ticket = await asyncio.to_thread(self.app.change_priority, request.ticket_id,
                                         _enum("priority", request.priority, PROTO_TO_PRIORITY),
                                         request.expected_version or None, current_principal())
        return self._ticket(ticket)

    @rpc(TICKETS.edit)
    async def AddComment(self, request, context):
        ticket, comment_id, first = await asyncio.to_thread(
            self.app.add_comment, request.ticket_id, request.body, request.public, request.author_id or None,
            request.request_id or None, current_principal())
        return servicedesk_pb2.AddCommentResponse(ticket=self._ticket(ticket), comment_id=comment_id,
                                                  first_response=first)

    @rpc(TICKETS.edit)
    async def ReapplySla(self, request, context):
        return self._ticket(await asyncio.to_thread(self.app.reapply_sla, request.ticket_id, current_principal()))

    @rpc(TICKETS.assign)
    async def AssignTicket(self, request, context):
        ticket = await asyncio.to_thread(self.app.assign_ticket, request.ticket_id, request.assignee_id,
                                         request.idempotency_key, request.expected_version or None)
        return self._ticket(ticket)

    @rpc(TICKETS.assign)
    async def EscalateTicket(self, request, context):
        ticket = await asyncio.to_thread(self.app.escalate_ticket, request.ticket_id, request.level,
                                         request.idempotency_key, request.reason or None)
        return self._ticket(ticket)

    @rpc(TICKETS.assign)
    async def AssignTickets(self, request, context):
        def assign(items: list[Any], contexts: list[dict[str, str]]) -> tuple[int, ServiceError | None]:
            return self.app.assign_tickets([AssignTicket(
                ticket_id=item.ticket_id, assignee_id=item.assignee_id, idempotency_key=item.idempotency_key,
                expected_version=item.expected_version or None) for item in items], contexts)

        return servicedesk_pb2.AssignTicketsResponse(results=await apply_batch(request, assign))

    @rpc(TICKETS.assign)
    async def EscalateTickets(self, request, context):
        def escalate(items: list[Any], contexts: list[dict[str, str]]) -> tuple[int, ServiceError | None]:
            return self.app.escalate_tickets([EscalateTicket(
                ticket_id=item.ticket_id, level=item.level, idempotency_key=item.idempotency_key,
                reason=item.reason or None) for item in items], contexts)

        return servicedesk_pb2.EscalateTicketsResponse(results=await apply_batch(request, escalate))


    # -- knowledge base -----------------------------------------------------------------------------

    @rpc(ARTICLES.create)
    async def DraftArticle(self, request, context):
        article, created = await asyncio.to_thread(self.app.draft_article, DraftArticle(
            title=request.title, body=request.body, tags=list(request.tags), language=request.language,
            request_key=request.request_id or None, caller=current_principal()))
        return servicedesk_pb2.DraftArticleResponse(article=article_to_message(article), created=created)

    @rpc(ARTICLES.view)
    async def GetArticle(self, request, context):
        return article_to_message(await asyncio.to_thread(self.app.get_article, request.article_id,
                                                          current_principal()))

    @rpc(ARTICLES.edit)
    async def UpdateArticle(self, request, context):
        if request.expected_version <= 0:
            raise InvalidField("expected_version", "is required: the version you read")
        paths = list(request.update_mask.paths)
        unknown = [path for path in paths if path not in ARTICLE_FIELDS]
        if unknown:
            raise InvalidField("update_mask", f"{unknown[0]!r} is not one of: {', '.join(ARTICLE_FIELDS)}")
        given = request.article
        changes = {path: list(given.tags) if path == "tags" else getattr(given, path) for path in paths}
        article = await asyncio.to_thread(self.app.change_article, given.article_id, changes,
                                          request.expected_version, current_principal())
        return article_to_message(article)

    @rpc(ARTICLES.edit)
    async def PublishArticle(self, request, context):
        return article_to_message(await asyncio.to_thread(
            self.app.publish_article, request.article_id, request.expected_version or None, current_principal()))

    @rpc(ARTICLES.edit)
    async def ArchiveArticle(self, request, context):
        return article_to_message(await asyncio.to_thread(
            self.app.archive_article, request.article_id, request.expected_version or None, current_principal()))

    @rpc(ARTICLES.view)
    async def SearchArticles(self, request, context):
        if request.page_size < 0:
            raise InvalidField("page_size", "must not be negative")
        page = await asyncio.to_thread(self.app.list_articles, ListArticles(
            q=request.query if request.query.strip() else None,
            limit=min(request.page_size, MAX_LIMIT) or DEFAULT_LIMIT, cursor=request.page_token or None,
            status=_enum("status", request.status, PROTO_TO_ARTICLE_STATUS, required=False),
            tag=request.tag or None, language=request.language or None, caller=current_principal()))
        return servicedesk_pb2.SearchArticlesResponse(
            articles=[article_summary_to_message(s) for s in page.items], next_page_token=page.next_cursor or "")

    # -- satisfaction surveys -----------------------------------------------------------------------

    @rpc(ANSWER_SURVEY)
    async def AnswerSurvey(self, request, context):
        survey = await asyncio.to_thread(self.app.answer_survey, request.token, request.rating,
                                         request.comment or None)
        return survey_to_message(survey)


def registrations(app: ServiceDeskApplication) -> list[Registration]:
    return [Registration(servicedesk_pb2_grpc.add_ServiceDeskServiceServicer_to_server, ServiceDeskServicer(app),
                         servicedesk_pb2.DESCRIPTOR.services_by_name["ServiceDeskService"])]


# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Ticket.Opened`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""Service-desk domain events to their protobuf messages (crm.servicedesk.v1): the events
published on crm.servicedesk.events.v1, and the resources the gRPC API answers with.

Every ticket event's message carries `ticket` (TicketState), built from the state the
event itself stores (`snapshot`), so the message is the same whenever it is re-sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration

from crm.servicedesk.v1 import events_pb2, servicedesk_pb2, types_pb2
from crm_runtime.business_time import Calendar, parse_duration
from crm_runtime.cloudevents import timestamp
from crm_runtime.events import EventMap
from crm_servicedesk.domain import BusinessCalendar, Channel, Policy, Ticket, TicketStatus
from crm_servicedesk.knowledge import Article, ArticleStatus
from crm_servicedesk.sla import Priority, SlaPolicy, TargetState
from crm_servicedesk.surveys import Survey

STATUS_TO_PROTO = {status.value: types_pb2.TicketStatus.Value(f"TICKET_STATUS_{status.name}")
                   for status in TicketStatus}
PROTO_TO_STATUS = {value: status for status, value in STATUS_TO_PROTO.items()}
PRIORITY_TO_PROTO = {priority.value: types_pb2.TicketPriority.Value(f"TICKET_PRIORITY_{priority.name}")
                     for priority in Priority}
PROTO_TO_PRIORITY = {value: priority for priority, value in PRIORITY_TO_PROTO.items()}
CHANNEL_TO_PROTO = {channel.value: types_pb2.TicketChannel.Value(f"TICKET_CHANNEL_{channel.name}")
                    for channel in Channel}
PROTO_TO_CHANNEL = {value: channel for channel, value in CHANNEL_TO_PROTO.items()}
ARTICLE_STATUS_TO_PROTO = {status.value: types_pb2.ArticleStatus.Value(f"ARTICLE_STATUS_{status.name}")
                           for status in ArticleStatus}
PROTO_TO_ARTICLE_STATUS = {value: status for status, value in ARTICLE_STATUS_TO_PROTO.items()}
TARGET_STATE_TO_PROTO = {state.value: types_pb2.SlaTargetState.Value(f"SLA_TARGET_STATE_{state.name}")
                         for state in TargetState}

EVENTS = EventMap(events_pb2)


def duration(value: timedelta | str) -> Duration:
    message = Duration()
    message.FromTimedelta(parse_duration(value, "duration") if isinstance(value, str) else value)
    return message


def _ts(text: str | None) -> Any:
    return timestamp(datetime.fromisoformat(text)) if text else None


def target_message(data: Mapping[str, Any]) -> types_pb2.SlaTarget:
    return types_pb2.SlaTarget(
        state=TARGET_STATE_TO_PROTO[data["state"]], target=duration(data["target"]),
        due=_ts(data["due"]), warn_at=_ts(data["warn_at"]),
        escalate_at=[_ts(at) for at in data["escalate_at"]], met_at=_ts(data["met_at"]))


def sla_message(sla: Mapping[str, Any]) -> types_pb2.Sla:
    return types_pb2.Sla(
        policy_id=sla["policy_id"], calendar_id=sla["calendar_id"],
        warn_at_percent=sla["warn_at_percent"],
        escalation_steps=[duration(step) for step in sla["escalation_steps"]], paused=sla["paused"],
        first_response_due=_ts(sla["first_response_due"]), resolution_due=_ts(sla["resolution_due"]),
        first_response=target_message(sla["first_response"]), resolution=target_message(sla["resolution"]))


def state_message(ticket_id: Any, version: int, snapshot: Mapping[str, Any]) -> types_pb2.TicketState:
    return types_pb2.TicketState(
        ticket_id=str(ticket_id), version=version, status=STATUS_TO_PROTO[snapshot["status"]],
        priority=PRIORITY_TO_PROTO[snapshot["priority"]], group=snapshot["group"] or "",
        category=snapshot["category"] or "", account_id=snapshot.get("account_id") or "",
        account_tier=snapshot["account_tier"] or "", tags=list(snapshot.get("tags") or ()),
        channel=CHANNEL_TO_PROTO.get(snapshot.get("channel", ""), types_pb2.TICKET_CHANNEL_UNSPECIFIED),
        assignee_id=snapshot["assignee_id"] or "", escalation_level=snapshot["escalation_level"],
        sla=sla_message(snapshot["sla"]))


def _state(event: Any) -> types_pb2.TicketState:
    return state_message(event.originator_id, event.originator_version, event.snapshot)


@EVENTS.publishes(Ticket.Opened)
def ticket_opened(event: Ticket.Opened) -> events_pb2.TicketOpened:
    return events_pb2.TicketOpened(
        ticket=_state(event), subject=event.subject, description=event.description,
        requester_email=event.requester_email or "", requester_contact_id=event.requester_contact_id or "",
        opened_by=event.opened_by, occurred_at=timestamp(event.at))


def _moved(message: type) -> Any:
    def convert(event: Any) -> Any:
        return message(ticket=_state(event), from_status=STATUS_TO_PROTO[event.from_status],
                       changed_by=event.by, occurred_at=timestamp(event.at))

    return convert


EVENTS.publishes(Ticket.StatusChanged)(_moved(events_pb2.TicketStatusChanged))
EVENTS.publishes(Ticket.Solved)(_moved(events_pb2.TicketSolved))
EVENTS.publishes(Ticket.Closed)(_moved(events_pb2.TicketClosed))
EVENTS.publishes(Ticket.Reopened)(_moved(events_pb2.TicketReopened))


@EVENTS.publishes(Ticket.PriorityChanged)
def priority_changed(event: Ticket.PriorityChanged) -> events_pb2.TicketPriorityChanged:
    return events_pb2.TicketPriorityChanged(
        ticket=_state(event), from_priority=PRIORITY_TO_PROTO[event.from_priority],
        changed_by=event.by, occurred_at=timestamp(event.at))


@EVENTS.publishes(Ticket.SlaDueTimesChanged)
def sla_changed(event: Ticket.SlaDueTimesChanged) -> events_pb2.SlaDueTimesChanged:
    return events_pb2.SlaDueTimesChanged(ticket=_state(event), changed_by=event.by,
                                         occurred_at=timestamp(event.at))


@EVENTS.publishes(Ticket.CommentAdded)
def commented(event: Ticket.CommentAdded) -> events_pb2.TicketCommented:
    return events_pb2.TicketCommented(
        ticket=_state(event), comment_id=event.comment_id, body=event.body, public=event.public,
        author_id=event.author_id, by_agent=event.by_agent, occurred_at=timestamp(event.at))


@EVENTS.publishes(Ticket.FirstResponded)
def first_responded(event: Ticket.FirstResponded) -> events_pb2.FirstResponded:
    return events_pb2.FirstResponded(ticket=_state(event), comment_id=event.comment_id,
                                     author_id=event.author_id, occurred_at=timestamp(event.at))


@EVENTS.publishes(Ticket.Assigned)
def assigned(event: Ticket.Assigned) -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(ticket=_state(event), previous_assignee_id=event.previous_assignee_id or "",
                                     idempotency_key=event.idempotency_key, occurred_at=timestamp(event.at))


@EVENTS.publishes(Ticket.Escalated)
def escalated(event: Ticket.Escalated) -> events_pb2.TicketEscalated:
    return events_pb2.TicketEscalated(ticket=_state(event), previous_level=event.previous_level,
                                      reason=event.reason, idempotency_key=event.idempotency_key,
                                      occurred_at=timestamp(event.at))


# -- calendars and policies ------------------------------------------------------------------

def hours_message(data: Mapping[str, Any]) -> dict[str, types_pb2.DayHours]:
    return {day: types_pb2.DayHours(intervals=[types_pb2.Interval(start=start, end=end)
                                               for start, end in intervals])
            for day, intervals in data["hours"].items() if intervals}


@EVENTS.publishes(BusinessCalendar.Defined, BusinessCalendar.Changed)
def calendar_changed(event: Any) -> events_pb2.CalendarChanged:
    return events_pb2.CalendarChanged(
        calendar_id=event.calendar_id, time_zone=event.calendar["time_zone"],
        hours=hours_message(event.calendar), holidays=list(event.calendar["holidays"]),
        version=event.originator_version, changed_by=event.by, occurred_at=timestamp(event.timestamp))


def targets_message(data: Mapping[str, Any]) -> list[types_pb2.PriorityTargets]:
    return [types_pb2.PriorityTargets(priority=PRIORITY_TO_PROTO[priority],
                                      first_response=duration(target["first_response"]),
                                      resolution=duration(target["resolution"]))
            for priority, target in data["targets"].items()]


@EVENTS.publishes(Policy.Defined, Policy.Changed)
def policy_changed(event: Any) -> events_pb2.SlaPolicyChanged:
    data = event.policy
    return events_pb2.SlaPolicyChanged(
        policy_id=event.policy_id, calendar_id=data["calendar_id"], targets=targets_message(data),
        account_tiers=data["applies_to"]["account_tier"], categories=data["applies_to"]["category"],
        warn_at_percent=data["warn_at_percent"],
        escalation_steps=[duration(step) for step in data["escalation_steps"]],
        version=event.originator_version, changed_by=event.by, occurred_at=timestamp(event.timestamp))


# -- knowledge base and surveys ---------------------------------------------------------------

@EVENTS.publishes(Article.Drafted)
def article_drafted(event: Article.Drafted) -> events_pb2.ArticleDrafted:
    return events_pb2.ArticleDrafted(
        article_id=str(event.originator_id), version=event.originator_version, title=event.title,
        body=event.body, tags=list(event.tags), language=event.language, drafted_by=event.by,
        occurred_at=timestamp(event.at))


@EVENTS.publishes(Article.Changed)
def article_changed(event: Article.Changed) -> events_pb2.ArticleChanged:
    return events_pb2.ArticleChanged(
        article_id=str(event.originator_id), version=event.originator_version, title=event.title,
        body=event.body, tags=list(event.tags), language=event.language, changed_by=event.by,
        occurred_at=timestamp(event.at))


@EVENTS.publishes(Article.Published)
def article_published(event: Article.Published) -> events_pb2.ArticlePublished:
    return events_pb2.ArticlePublished(article_id=str(event.originator_id), version=event.originator_version,
                                       published_by=event.by, occurred_at=timestamp(event.at))


@EVENTS.publishes(Article.Archived)
def article_archived(event: Article.Archived) -> events_pb2.ArticleArchived:
    return events_pb2.ArticleArchived(article_id=str(event.originator_id), version=event.originator_version,
                                      archived_by=event.by, occurred_at=timestamp(event.at))


@EVENTS.publishes(Survey.Requested)
def survey_requested(event: Survey.Requested) -> events_pb2.SurveyRequested:
    return events_pb2.SurveyRequested(
        survey_id=str(event.originator_id), ticket_id=event.ticket_id, round=event.round, token=event.token,
        requester_email=event.requester_email or "", requester_contact_id=event.requester_contact_id or "",
        occurred_at=timestamp(event.at))


@EVENTS.publishes(Survey.Answered)
def survey_answered(event: Survey.Answered) -> events_pb2.SurveyAnswered:
    return events_pb2.SurveyAnswered(
        survey_id=str(event.originator_id), ticket_id=event.ticket_id, round=event.round, rating=event.rating,
        comment=event.comment or "", occurred_at=timestamp(event.at))


# -- API resources ------------------------------------------------------------------------------

def calendar_to_message(calendar_id: str, calendar: Calendar) -> servicedesk_pb2.Calendar:
    data = calendar.to_dict()
    return servicedesk_pb2.Calendar(calendar_id=calendar_id, time_zone=calendar.time_zone,
                                    hours=hours_message(data), holidays=list(calendar.to_dict()["holidays"]))  # type: ignore[call-overload]


def calendar_from_message(message: servicedesk_pb2.Calendar) -> dict[str, Any]:
    """The JSON form Calendar.parse reads."""
    return {"time_zone": message.time_zone,
            "hours": {day: [[interval.start, interval.end] for interval in hours.intervals]
                      for day, hours in message.hours.items()},
            "holidays": list(message.holidays)}


def policy_to_message(policy: SlaPolicy) -> servicedesk_pb2.SlaPolicy:
    data = policy.to_dict()
    return servicedesk_pb2.SlaPolicy(
        policy_id=policy.id, calendar_id=policy.calendar_id, targets=targets_message(data),
        account_tiers=data["applies_to"]["account_tier"], categories=data["applies_to"]["category"],
        warn_at_percent=policy.warn_at_percent, escalation_steps=[duration(s) for s in policy.escalation_steps])


def ticket_to_message(ticket: Ticket, now: datetime) -> servicedesk_pb2.Ticket:
    sla = ticket.sla
    return servicedesk_pb2.Ticket(
        state=state_message(ticket.id, ticket.version, ticket.snapshot), subject=ticket.subject,
        description=ticket.description, requester_email=ticket.requester_email or "",
        requester_contact_id=ticket.requester_contact_id or "", opened_by=ticket.opened_by,
        created_at=timestamp(ticket.opened_at), updated_at=timestamp(ticket.updated_at),
        breached=sla.first_response.breached(now) or sla.resolution.breached(now))


def summary_to_message(summary: Any) -> servicedesk_pb2.Ticket:
    snapshot = {"status": summary.status, "priority": summary.priority, "group": summary.group,
                "category": summary.category, "account_id": summary.account_id,
                "account_tier": summary.account_tier, "tags": [], "channel": summary.channel,
                "assignee_id": summary.assignee_id, "escalation_level": summary.escalation_level,
                "sla": summary.sla}
    return servicedesk_pb2.Ticket(
        state=state_message(summary.id, summary.version, snapshot), subject=summary.subject,
        requester_email=summary.requester_email or "", opened_by=summary.opened_by,
        created_at=timestamp(summary.created_at), updated_at=timestamp(summary.updated_at),
        breached=summary.breached)


def article_to_message(article: Article) -> servicedesk_pb2.Article:
    return servicedesk_pb2.Article(
        article_id=str(article.id), version=article.version, title=article.title, body=article.body,
        tags=list(article.tags), language=article.language, status=ARTICLE_STATUS_TO_PROTO[article.status.value],
        created_by=article.created_by, created_at=timestamp(article.created_at),
        updated_at=timestamp(article.updated_at),
        published_at=timestamp(article.published_at) if article.published_at is not None else None)


def article_summary_to_message(summary: Any) -> servicedesk_pb2.ArticleSummary:
    return servicedesk_pb2.ArticleSummary(
        article_id=summary.id, version=summary.version, title=summary.title, excerpt=summary.excerpt,
        tags=summary.tags, language=summary.language, status=ARTICLE_STATUS_TO_PROTO[summary.status],
        created_at=timestamp(summary.created_at), updated_at=timestamp(summary.updated_at),
        published_at=timestamp(summary.published_at) if summary.published_at is not None else None,
        score=summary.score or 0.0)


def survey_to_message(survey: Survey) -> servicedesk_pb2.SurveyAnswer:
    return servicedesk_pb2.SurveyAnswer(
        survey_id=str(survey.id), ticket_id=survey.ticket_id, round=survey.round, rating=survey.rating or 0,
        comment=survey.comment or "",
        answered_at=timestamp(survey.answered_at) if survey.answered_at is not None else None)

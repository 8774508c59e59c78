"""Service-desk application: commands and queries over its event store (tickets, business
calendars, SLA policies, knowledge-base articles, satisfaction surveys).

Commands are small dataclasses the HTTP and gRPC adapters both build. Each loads the
aggregate, checks the caller may see it (crm_runtime.ownership: a `sales_rep` sees the
tickets they opened, an `agent` those they opened, those of the groups their token names
and those assigned to them; lists are narrowed by the same rule), calls the domain with
the instant from the application's `Clock` (`SystemClock` in the service, a `ManualClock`
in tests) and saves the new events in one transaction. A stale expected version or a concurrent write is a Conflict.

A calendar or policy that was never defined but is named `default` is the built-in one
(crm_servicedesk.sla: DEFAULT_CALENDAR, a 24x7 UTC calendar, and DEFAULT_POLICY);
defining `default` replaces it. Lists and the choice of a new ticket's policy read the
query model (crm_servicedesk.views), caught up after every command.

Solving a ticket requests a satisfaction survey in the same transaction (the ticket's
`Solved` and the survey's `Requested` are saved together): the token is drawn here, from
`secrets` (256 random bits), and handed to the pure domain (crm_servicedesk.surveys).
Articles a caller may not edit are visible to them only when published
(crm_servicedesk.permissions.sees_unpublished): a draft is NotFound to them, by id and in
lists.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from crm_runtime import logs
from crm_runtime.auth import Action, Principal, current_principal
from crm_runtime.business_time import Calendar, Clock, SystemClock, due, elapsed, format_duration, parse_duration
from crm_runtime.errors import Conflict, FailedPrecondition, InvalidField, NotFound, ServiceError
from crm_runtime.eventstore import ServiceApplication, caller_scoped, check_version, parse_id
from crm_runtime.index import Page, ViewsOf, check_limit
from crm_runtime.ownership import check_visible, scope
from crm_runtime.settings import PlatformSettings
from crm_runtime.text import plain_identifier
from crm_servicedesk.domain import (
    BusinessCalendar,
    Policy,
    Ticket,
    TicketStatus,
    comment_id_for,
    parse_priority,
    parse_status,
    ticket_id_for,
    validate_ticket,
)
from crm_servicedesk.knowledge import (
    Article,
    ArticleStatus,
    article_id_for,
    language_tag,
    parse_article_status,
    search_terms,
    validate_article,
)
from crm_servicedesk.permissions import AGENT_ROLES, TICKETS, sees_unpublished
from crm_servicedesk.sla import (
    DEFAULT_CALENDAR,
    DEFAULT_CALENDAR_ID,
    DEFAULT_POLICY,
    DEFAULT_POLICY_ID,
    SlaPolicy,
    check_name,
    check_slug,
    choose_policy,
)
from crm_servicedesk.surveys import Survey, check_rating, survey_id_for
from crm_servicedesk.views import (
    ArticleQuery,
    ArticleSummary,
    ServiceDeskViews,
    TicketQuery,
    TicketSummary,
    decode_article_cursor,
    decode_ticket_cursor,
    open_views,
)

log = logs.get(__name__)


@dataclass(frozen=True)
class OpenTicket:
    subject: Any
    description: Any = None
    channel: Any = None
    priority: Any = "normal"
    requester_email: Any = None
    requester_contact_id: Any = None
    account_id: Any = None
    account_tier: Any = None
    category: Any = None
    tags: Any = None
    group: Any = None
    # The caller's Idempotency-Key (HTTP) or request_id (gRPC).
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class AssignTicket:
    """The workflow's routing decision (also sent one at a time: AssignTicket)."""

    ticket_id: str | UUID
    assignee_id: Any
    idempotency_key: Any
    expected_version: int | None = None


@dataclass(frozen=True)
class EscalateTicket:
    """The workflow's escalation step (also sent one at a time: EscalateTicket)."""

    ticket_id: str | UUID
    level: Any
    idempotency_key: Any
    reason: Any = None


@dataclass(frozen=True)
class ListTickets:
    limit: int | None = None
    cursor: str | None = None
    status: str | None = None
    assignee_id: str | None = None
    group: str | None = None
    priority: str | None = None
    breached: bool | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class DraftArticle:
    title: Any
    body: Any
    language: Any
    tags: Any = None
    request_key: str | None = None  # Idempotency-Key (HTTP) or request_id (gRPC)
    caller: Principal | None = None


@dataclass(frozen=True)
class ListArticles:
    q: str | None = None  # set: a ranked search of these words
    limit: int | None = None
    cursor: str | None = None
    status: str | None = None
    tag: str | None = None
    language: str | None = None
    caller: Principal | None = None


SURVEY_TOKEN_BYTES = 32  # 256 random bits: secrets.token_urlsafe gives 43 characters


def _who(caller: Principal | None) -> Principal | None:
    return caller if caller is not None else current_principal()


def _subject(who: Principal | None) -> str:
    return who.subject if who is not None else ""


class ServiceDeskApplication(ViewsOf[ServiceDeskViews], ServiceApplication):
    name = "ServiceDesk"

    def __init__(self, platform: PlatformSettings, clock: Clock | None = None):
        super().__init__(platform)
        self.clock: Clock = clock or SystemClock()

    def make_views(self) -> ServiceDeskViews:
        return open_views(self, self.platform)

    # -- calendars ------------------------------------------------------------------------------

    def calendar(self, calendar_id: str) -> Calendar:
        """The calendar named `calendar_id` (the built-in 24x7 one for an undefined `default`)."""
        calendar_id = check_slug("calendar_id", calendar_id)
        stored = self.find(BusinessCalendar, BusinessCalendar.id_for(calendar_id))
        if stored is not None:
            return stored.parsed()
        if calendar_id == DEFAULT_CALENDAR_ID:
            return DEFAULT_CALENDAR
        raise NotFound(f"calendar {calendar_id} does not exist")

    def define_calendar(self, calendar_id: str, body: Any, caller: Principal | None = None) -> tuple[Calendar, bool]:
        """Defines or redefines a calendar (PUT); returns (calendar, created). Refusals name the field."""
        calendar_id = check_slug("id", calendar_id)
        calendar = Calendar.parse(body)
        by = _subject(_who(caller))
        stored = self.find(BusinessCalendar, BusinessCalendar.id_for(calendar_id))
        if stored is None:
            self.save_changes(BusinessCalendar.define(calendar_id, calendar, by))
            log.info("calendar.defined", calendar_id=calendar_id)
            return calendar, True
        if stored.redefine(calendar, by):
            self.save_changes(stored)
            log.info("calendar.changed", calendar_id=calendar_id)
        return calendar, False

    def calendar_due(self, calendar_id: str, start: datetime, duration: Any) -> datetime:
        found = due(self.calendar(calendar_id), start, parse_duration(duration, "duration"))
        assert found is not None  # no pauses: always found
        return found

    def calendar_elapsed(self, calendar_id: str, start: datetime, end: datetime) -> str:
        return format_duration(elapsed(self.calendar(calendar_id), start, end))

    # -- SLA policies ---------------------------------------------------------------------------

    def policy(self, policy_id: str) -> SlaPolicy:
        policy_id = check_slug("policy_id", policy_id)
        stored = self.find(Policy, Policy.id_for(policy_id))
        if stored is not None:
            return stored.parsed()
        if policy_id == DEFAULT_POLICY_ID:
            return DEFAULT_POLICY
        raise NotFound(f"SLA policy {policy_id} does not exist")

    def define_policy(self, policy_id: str, body: Any, caller: Principal | None = None) -> tuple[SlaPolicy, bool]:
        policy = SlaPolicy.parse(policy_id, body)
        try:
            self.calendar(policy.calendar_id)
        except NotFound:
            raise InvalidField("calendar_id", f"calendar {policy.calendar_id} does not exist") from None
        by = _subject(_who(caller))
        stored = self.find(Policy, Policy.id_for(policy.id))
        if stored is None:
            self.save_changes(Policy.define(policy, by))
            created = True
            log.info("sla_policy.defined", policy_id=policy.id)
        else:
            created = False
            if stored.redefine(policy, by):
                self.save_changes(stored)
                log.info("sla_policy.changed", policy_id=policy.id)
        self._refresh_views()
        return policy, created

    def list_policies(self) -> list[SlaPolicy]:
        """Every policy by id, the built-in default included unless redefined."""
        self.views.catch_up()
        defined = {policy.id: policy for policy in self.views.policies()}
        defined.setdefault(DEFAULT_POLICY_ID, DEFAULT_POLICY)
        return [defined[key] for key in sorted(defined)]

    def policy_for(self, account_tier: str | None, category: str | None) -> SlaPolicy:
        self.views.catch_up()
        return choose_policy(self.views.policies(), account_tier, category)

    # -- tickets --------------------------------------------------------------------------------

    def open_ticket(self, command: OpenTicket) -> tuple[Ticket, bool]:
        """Opens a ticket under the policy that applies; returns (ticket, created). A repeated
        request key returns the first ticket (a different request with it: Conflict)."""
        who = _who(command.caller)
        details = validate_ticket(command.subject, command.description, command.channel, command.priority,
                                  command.requester_email, command.requester_contact_id, command.account_id,
                                  command.account_tier, command.category, command.tags, command.group)
        key = caller_scoped(who.subject if who else None, command.request_key)
        ticket_id = ticket_id_for(key)
        existing = self.find(Ticket, ticket_id)
        if existing is not None:  # a repeat: no policy look-up, no clock
            if not existing.same_opening(details):
                raise Conflict("Idempotency-Key was already used for a different request")
            return check_visible(existing, "ticket", who), False
        policy = self.policy_for(details.account_tier, details.category)
        calendar = self.calendar(policy.calendar_id)
        ticket, created = self.create_once(
            Ticket.open(details, ticket_id, policy, calendar, self.clock.now(), by=_subject(who)),
            same=lambda first: first.same_opening(details))
        if created:
            log.info("ticket.opened", ticket_id=str(ticket.id), policy_id=policy.id,
                     priority=ticket.priority.value)
            self._refresh_views()
        return check_visible(ticket, "ticket", who), created

    def _visible(self, ticket_id: str | UUID, who: Principal | None) -> Ticket:
        return check_visible(self.get(Ticket, ticket_id, "ticket"), "ticket", who)

    def get_ticket(self, ticket_id: str | UUID, caller: Principal | None = None) -> Ticket:
        return self._visible(ticket_id, _who(caller))

    def _saved(self, ticket: Ticket, what: str, *with_: Any) -> Ticket:
        self.save_changes(ticket, *with_)
        log.info(f"ticket.{what}", ticket_id=str(ticket.id), status=ticket.status.value,
                 version=ticket.version)
        self._refresh_views()
        return ticket

    def move_ticket(self, ticket_id: str | UUID, status: Any, expected_version: int | None = None,
                    caller: Principal | None = None) -> Ticket:
        who = _who(caller)
        target = parse_status(status)
        ticket = self._visible(ticket_id, who)
        check_version(ticket, expected_version)
        now = self.clock.now()
        ticket.move(target, _subject(who), now)
        if target != TicketStatus.SOLVED:
            return self._saved(ticket, "status_changed")
        # Every solve asks the requester how it went: one survey per solve (its round).
        survey = Survey.request(ticket.id, ticket.solves, secrets.token_urlsafe(SURVEY_TOKEN_BYTES),
                                ticket.requester_email, ticket.requester_contact_id, now)
        self._saved(ticket, "status_changed", survey)
        log.info("survey.requested", survey_id=str(survey.id), ticket_id=str(ticket.id), round=survey.round)
        return ticket

    def change_priority(self, ticket_id: str | UUID, priority: Any, expected_version: int | None = None,
                        caller: Principal | None = None) -> Ticket:
        who = _who(caller)
        new = parse_priority(priority)
        ticket = self._visible(ticket_id, who)
        check_version(ticket, expected_version)
        if ticket.change_priority(new, _subject(who), self.clock.now()):
            self._saved(ticket, "priority_changed")
        return ticket

    def add_comment(self, ticket_id: str | UUID, body: Any, public: Any, author_id: Any = None,
                    request_key: str | None = None, caller: Principal | None = None) -> tuple[Ticket, str, bool]:
        """Adds a comment; returns (ticket, comment id, first response). The first public
        comment of an agent (a caller with the agent or admin role) is the first response.
        Commenting for another author needs tickets:assign (a gateway relaying a customer)."""
        who = _who(caller)
        if not isinstance(public, bool):
            raise InvalidField("public", "must be true or false")
        author = plain_identifier("author_id", author_id) if author_id else _subject(who)
        if not author:
            raise InvalidField("author_id", "is required")
        if who is not None and author != who.subject:
            who.check(TICKETS.name, Action.ASSIGN)
        by_agent = who is not None and bool(who.roles & AGENT_ROLES) and author == who.subject
        ticket = self._visible(ticket_id, who)
        key = caller_scoped(who.subject if who else None, request_key)
        comment_id = comment_id_for(ticket.id, key)
        first = ticket.comment(comment_id, body, public, author, by_agent, _subject(who), self.clock.now())
        if ticket.pending_events:
            self._saved(ticket, "commented")
        return ticket, comment_id, first

    def reapply_sla(self, ticket_id: str | UUID, caller: Principal | None = None) -> Ticket:
        """Puts the ticket under the policy that applies now, with its calendar as it is now."""
        who = _who(caller)
        ticket = self._visible(ticket_id, who)
        policy = self.policy_for(ticket.account_tier, ticket.category)
        if ticket.reapply(policy, self.calendar(policy.calendar_id), _subject(who), self.clock.now()):
            self._saved(ticket, "sla_reapplied")
        return ticket

    # -- the workflow's commands ------------------------------------------------------------------

    def assign_ticket(self, ticket_id: str | UUID, assignee_id: Any, idempotency_key: Any,
                      expected_version: int | None = None) -> Ticket:
        ticket = self._visible(ticket_id, current_principal())
        check_version(ticket, expected_version)
        if ticket.assign(assignee_id, idempotency_key, self.clock.now()):
            self._saved(ticket, "assigned")
        return ticket

    def escalate_ticket(self, ticket_id: str | UUID, level: Any, idempotency_key: Any,
                        reason: Any = None) -> Ticket:
        ticket = self._visible(ticket_id, current_principal())
        if ticket.escalate(level, idempotency_key, reason, self.clock.now()):
            self._saved(ticket, "escalated")
        return ticket

    def assign_tickets(self, commands: Sequence[AssignTicket],
                       contexts: Sequence[Mapping[str, str]] = ()) -> tuple[int, ServiceError | None]:
        """The workflow's routing decisions in order, saved in one transaction; stops at the
        first one refused. Returns how many were applied and the refusal (None: all were).
        `contexts`, parallel to `commands`, is each one's trace context."""
        now = self.clock.now()

        def assign(ticket: Ticket, command: AssignTicket) -> bool:
            check_version(ticket, command.expected_version)
            return ticket.assign(command.assignee_id, command.idempotency_key, now)

        return self._tickets_in_order(commands, contexts, assign, "assigned")

    def escalate_tickets(self, commands: Sequence[EscalateTicket],
                         contexts: Sequence[Mapping[str, str]] = ()) -> tuple[int, ServiceError | None]:
        """The workflow's escalations, as `assign_tickets`."""
        now = self.clock.now()

        def escalate(ticket: Ticket, command: EscalateTicket) -> bool:
            return ticket.escalate(command.level, command.idempotency_key, command.reason, now)

        return self._tickets_in_order(commands, contexts, escalate, "escalated")

    def _tickets_in_order(self, commands: Sequence[Any], contexts: Sequence[Mapping[str, str]],
                          act: Callable[[Ticket, Any], bool], what: str) -> tuple[int, ServiceError | None]:
        who = current_principal()
        applied, refused, changed = self.apply_in_order(
            commands, contexts, lambda command: parse_id("ticket_id", command.ticket_id),
            lambda ticket_id: self._visible(ticket_id, who), act, read_ahead=Ticket)
        for ticket in changed:
            log.info(f"ticket.{what}", ticket_id=str(ticket.id), status=ticket.status.value,
                     version=ticket.version)
        if changed:
            self._refresh_views()
        return applied, refused

    # -- lists ------------------------------------------------------------------------------------

    def list_tickets(self, request: ListTickets) -> Page[TicketSummary]:
        who = _who(request.caller)
        query = TicketQuery(
            limit=check_limit(request.limit), now=self.clock.now(),
            after=decode_ticket_cursor(request.cursor) if request.cursor else None,
            status=parse_status(request.status).value if request.status else None,
            assignee_id=plain_identifier("assignee_id", request.assignee_id) if request.assignee_id else None,
            group=check_name("group", request.group) if request.group else None,
            priority=parse_priority(request.priority).value if request.priority else None,
            breached=request.breached, scope=scope(who))
        self.views.catch_up()
        return self.views.list_tickets(query)


    # -- knowledge base ---------------------------------------------------------------------------

    def draft_article(self, command: DraftArticle) -> tuple[Article, bool]:
        """Drafts an article; returns (article, created). A repeated request key returns the
        first article (a different request with it: Conflict)."""
        who = _who(command.caller)
        text = validate_article(command.title, command.body, command.tags, command.language)
        key = caller_scoped(who.subject if who else None, command.request_key)
        article, created = self.create_once(
            Article.draft(text, article_id_for(key), _subject(who), self.clock.now()),
            same=lambda first: first.same_draft(text))
        if created:
            log.info("article.drafted", article_id=str(article.id), language=article.language)
            self._refresh_views()
        return self._visible_article(article, who), created

    def _visible_article(self, article: Article, who: Principal | None) -> Article:
        if article.status != ArticleStatus.PUBLISHED and not sees_unpublished(who):
            raise NotFound(f"article {article.id} does not exist")
        return article

    def get_article(self, article_id: str | UUID, caller: Principal | None = None) -> Article:
        who = _who(caller)
        return self._visible_article(self.get(Article, article_id, "article"), who)

    def change_article(self, article_id: str | UUID, changes: dict[str, Any], expected_version: int | None,
                       caller: Principal | None = None) -> Article:
        """Changes the given fields (PATCH: absent is unchanged); If-Match checked."""
        who = _who(caller)
        article = self.get_article(article_id, who)
        check_version(article, expected_version)
        if article.change(changes, _subject(who), self.clock.now()):
            self._saved_article(article, "changed")
        return article

    def publish_article(self, article_id: str | UUID, expected_version: int | None = None,
                        caller: Principal | None = None) -> Article:
        who = _who(caller)
        article = self.get_article(article_id, who)
        check_version(article, expected_version)
        article.publish(_subject(who), self.clock.now())
        return self._saved_article(article, "published")

    def archive_article(self, article_id: str | UUID, expected_version: int | None = None,
                        caller: Principal | None = None) -> Article:
        who = _who(caller)
        article = self.get_article(article_id, who)
        check_version(article, expected_version)
        article.archive(_subject(who), self.clock.now())
        return self._saved_article(article, "archived")

    def _saved_article(self, article: Article, what: str) -> Article:
        self.save_changes(article)
        log.info(f"article.{what}", article_id=str(article.id), status=article.status.value,
                 version=article.version)
        self._refresh_views()
        return article

    def list_articles(self, request: ListArticles) -> Page[ArticleSummary]:
        """A ranked search when `q` is given (its words, as plain terms), else the articles
        newest first; callers who do not edit articles see published ones only."""
        who = _who(request.caller)
        searching = request.q is not None and request.q.strip() != ""  # a blank q: no search
        terms = search_terms(request.q) if searching else None
        query = ArticleQuery(
            limit=check_limit(request.limit), terms=terms,
            after=decode_article_cursor(request.cursor, search=terms is not None) if request.cursor else None,
            status=parse_article_status(request.status).value if request.status else None,
            tag=check_name("tag", request.tag) if request.tag else None,
            language=language_tag("language", request.language) if request.language else None,
            only_published=not sees_unpublished(who))
        self.views.catch_up()
        return self.views.list_articles(query)

    # -- satisfaction surveys ---------------------------------------------------------------------

    def answer_survey(self, token: Any, rating: Any, comment: Any = None) -> Survey:
        """Records the answer of the survey `token` opens, once. A bad rating is InvalidField,
        an unknown token NotFound, a survey answered already FailedPrecondition (as is the
        loser of two racing answers); none of them changes anything."""
        check_rating(rating)
        survey = self.find(Survey, survey_id_for(token))
        if survey is None:
            raise NotFound("no survey has this token")
        survey.answer(rating, comment, self.clock.now())
        try:
            self.save_changes(survey)
        except Conflict:
            raise FailedPrecondition(f"survey {survey.id} was answered meanwhile; "
                                     "a survey takes one answer") from None
        log.info("survey.answered", survey_id=str(survey.id), ticket_id=survey.ticket_id, rating=survey.rating)
        return survey

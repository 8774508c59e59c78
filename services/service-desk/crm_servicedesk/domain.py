"""Tickets, business calendars and SLA policies: pure domain, no I/O, no clock reads (every
command is given the instant it happens at). Fields are validated before any event; a
refused field is an `InvalidField` naming it.

A ticket's life is one table, `TRANSITIONS`:

    new -> open | pending | on_hold | solved
    open -> pending | on_hold | solved
    pending -> open | on_hold | solved      (pending: waiting on the customer)
    on_hold -> open | pending | solved      (waiting on a third party; the clock runs)
    solved -> closed | reopened
    reopened -> open | pending | on_hold | solved
    closed: final

A move the status does not allow is a FailedPrecondition naming the current status, and
records nothing. Every ticket event carries the ticket's state after it (`snapshot`:
status, priority, group, category, account tier, assignee, escalation level, the facts the
SLA clocks depend on, and the SLA computed from them: crm_servicedesk.sla), so any single
event tells a consumer where every clock stands; the aggregate applies the snapshot.

The ticket keeps the SLA policy and calendar that applied when it was opened (or when the
SLA was last reapplied): editing a policy or calendar never moves the clocks of tickets
already open, until `POST /v1/tickets/{id}/sla/reapply` says so.

Assignments and escalations come from the workflow with idempotency keys: a key already
applied changes nothing, and the escalation level only rises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime import contact_points
from crm_runtime.business_time import Calendar
from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.text import IDENTIFIER_MAX as ID_MAX  # noqa: F401 - the adapters' limit
from crm_runtime.text import check_text, plain_identifier, text_field
from crm_servicedesk.sla import (
    NAME_MAX,  # noqa: F401 - the adapters' limit
    ClockFacts,
    Priority,
    Sla,
    SlaPolicy,
    check_name,
    check_slug,
    compute,
)

SUBJECT_MAX = 250
DESCRIPTION_MAX = 32_000
BODY_MAX = 32_000
MAX_TAGS = 20
MAX_LEVEL = 100
_TICKET_NAMESPACE = uuid5(NAMESPACE_URL, "crm:servicedesk:ticket")
_CALENDAR_NAMESPACE = uuid5(NAMESPACE_URL, "crm:servicedesk:calendar")
_POLICY_NAMESPACE = uuid5(NAMESPACE_URL, "crm:servicedesk:sla-policy")
_COMMENT_NAMESPACE = uuid5(NAMESPACE_URL, "crm:servicedesk:comment")


class Channel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CHAT = "chat"
    WEB = "web"
    SOCIAL = "social"
    API = "api"


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"
    REOPENED = "reopened"


S = TicketStatus
_WORKING = frozenset({S.OPEN, S.PENDING, S.ON_HOLD, S.SOLVED})
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.NEW: _WORKING,
    S.OPEN: _WORKING - {S.OPEN},
    S.PENDING: _WORKING - {S.PENDING},
    S.ON_HOLD: _WORKING - {S.ON_HOLD},
    S.SOLVED: frozenset({S.CLOSED, S.REOPENED}),
    S.REOPENED: _WORKING,
    S.CLOSED: frozenset(),
}


def _choice(field_name: str, raw: object, kind: type[StrEnum]) -> Any:
    try:
        return kind(raw.strip().lower() if isinstance(raw, str) else str(raw))
    except ValueError:
        allowed = ", ".join(member.value for member in kind)  # type: ignore[attr-defined]
        raise InvalidField(field_name, f"{str(raw)[:40]!r} is not one of: {allowed}") from None


def parse_priority(raw: object) -> Priority:
    return _choice("priority", raw, Priority)  # type: ignore[no-any-return]


def parse_status(raw: object) -> TicketStatus:
    return _choice("status", raw, TicketStatus)  # type: ignore[no-any-return]


def long_text(field_name: str, raw: object, maximum: int, required: bool) -> str:
    """A multi-line text: line breaks and tabs are kept, other control characters refused."""
    if raw is not None and not isinstance(raw, str):
        raise InvalidField(field_name, "must be a string")
    value = (raw or "").strip()
    if not value and required:
        raise InvalidField(field_name, "is required")
    if len(value) > maximum:
        raise InvalidField(field_name, f"must be at most {maximum} characters")
    for line in value.replace("\t", " ").split("\n"):
        if line.strip():
            check_text(field_name, line.rstrip("\r"))
    return value


def _optional_name(field_name: str, raw: object) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return check_name(field_name, raw)


@dataclass(frozen=True)
class TicketDetails:
    """A new ticket's fields after validation."""

    subject: str
    description: str
    channel: Channel
    priority: Priority
    requester_email: str | None
    requester_contact_id: str | None
    account_id: str | None
    account_tier: str | None
    category: str | None
    tags: tuple[str, ...]
    group: str | None


def validate_ticket(subject: Any, description: Any, channel: Any, priority: Any = "normal",
                    requester_email: Any = None, requester_contact_id: Any = None,
                    account_id: Any = None, account_tier: Any = None, category: Any = None,
                    tags: Any = None, group: Any = None) -> TicketDetails:
    if tags is None:
        tags = []
    if not isinstance(tags, list | tuple) or len(tags) > MAX_TAGS:
        raise InvalidField("tags", f"must be a list of at most {MAX_TAGS} names")
    email = contact_points.normalise_email(requester_email, required=False) if requester_email else None
    contact_id = (plain_identifier("requester.contact_id", requester_contact_id)
                  if requester_contact_id else None)
    if email is None and contact_id is None:
        raise InvalidField("requester", "needs an email or a contact_id")
    return TicketDetails(
        subject=text_field("subject", subject, SUBJECT_MAX, required=True),  # type: ignore[arg-type]
        description=long_text("description", description, DESCRIPTION_MAX, required=False),
        channel=_choice("channel", channel, Channel),
        priority=parse_priority(priority if priority is not None else "normal"),
        requester_email=email, requester_contact_id=contact_id,
        account_id=plain_identifier("account_id", account_id) if account_id else None,
        account_tier=_optional_name("account_tier", account_tier),
        category=_optional_name("category", category),
        tags=tuple(sorted({check_name(f"tags[{i}]", tag) for i, tag in enumerate(tags)})),
        group=_optional_name("group", group))


def ticket_id_for(request_key: str | None) -> UUID:
    """The same idempotency key always names the same ticket; no key, a new ticket."""
    return uuid5(_TICKET_NAMESPACE, request_key) if request_key else uuid4()


def comment_id_for(ticket_id: UUID, request_key: str | None) -> str:
    return str(uuid5(_COMMENT_NAMESPACE, f"{ticket_id}\n{request_key}") if request_key else uuid4())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


class Ticket(Aggregate):
    """A customer's request and the SLA clocks running on it (module docstring)."""

    @event("Opened")
    def __init__(self, id: UUID, subject: str, description: str, channel: str,  # noqa: A002
                 requester_email: str | None, requester_contact_id: str | None,
                 account_id: str | None, tags: list[str], opened_by: str,
                 policy: dict[str, Any], calendar: dict[str, Any], at: datetime,
                 snapshot: dict[str, Any]):
        self.subject = subject
        self.description = description
        self.channel = Channel(channel)
        self.requester_email = requester_email
        self.requester_contact_id = requester_contact_id
        self.account_id = account_id
        self.tags = list(tags)
        self.opened_by = opened_by
        self.opened_at = at
        self.updated_at = at
        self.assignment_keys: list[str] = []
        self.escalation_keys: list[str] = []
        self.comments: list[dict[str, Any]] = []
        self.solves = 0  # how many times it was solved: the round of its satisfaction survey
        self._set_policy(policy, calendar)
        self._apply(snapshot, at)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def open(cls, details: TicketDetails, ticket_id: UUID, policy: SlaPolicy, calendar: Calendar,
             at: datetime, by: str) -> Ticket:
        facts = ClockFacts(opened_at=at, priority=details.priority)
        snapshot = {"status": S.NEW.value, "priority": details.priority.value, "group": details.group,
                    "category": details.category, "account_tier": details.account_tier,
                    # never changed, but every event's state carries them (routing by skills)
                    "channel": details.channel.value, "account_id": details.account_id,
                    "tags": list(details.tags),
                    "assignee_id": None, "escalation_level": 0, "clock": _clock_dict(facts),
                    "sla": compute(policy, calendar, facts).to_dict()}
        return cls(id=ticket_id, subject=details.subject, description=details.description,
                   channel=details.channel.value, requester_email=details.requester_email,
                   requester_contact_id=details.requester_contact_id, account_id=details.account_id,
                   tags=list(details.tags), opened_by=by, policy={"id": policy.id, **policy.to_dict()},
                   calendar={"id": policy.calendar_id, **calendar.to_dict()}, at=at, snapshot=snapshot)

    def same_opening(self, details: TicketDetails) -> bool:
        return (self.subject, self.description, self.channel, self.requester_email,
                self.requester_contact_id, self.account_id, tuple(self.tags)) == (
            details.subject, details.description, details.channel, details.requester_email,
            details.requester_contact_id, details.account_id, details.tags)

    # -- state ----------------------------------------------------------------------------------

    def _set_policy(self, policy: Mapping[str, Any], calendar: Mapping[str, Any]) -> None:
        self.policy_data = dict(policy)
        self.calendar_data = dict(calendar)
        self._policy = SlaPolicy.parse(policy["id"], {k: v for k, v in policy.items() if k != "id"})
        self._calendar = Calendar.parse({k: v for k, v in calendar.items() if k != "id"})

    def _apply(self, snapshot: Mapping[str, Any], at: datetime) -> None:
        self.snapshot = dict(snapshot)
        self.status = TicketStatus(snapshot["status"])
        self.priority = Priority(snapshot["priority"])
        self.group = snapshot["group"]
        self.category = snapshot["category"]
        self.account_tier = snapshot["account_tier"]
        self.assignee_id = snapshot["assignee_id"]
        self.escalation_level = snapshot["escalation_level"]
        self.clock = _clock_facts(snapshot["clock"])
        self.sla = Sla.from_dict(snapshot["sla"])
        self.updated_at = at

    def _next(self, at: datetime, **changes: Any) -> dict[str, Any]:
        """The snapshot after `changes` (fields, or `clock` facts), with the SLA recomputed."""
        clock: ClockFacts = changes.pop("clock", self.clock)
        snapshot = {**self.snapshot, **changes}
        if "priority" in changes:
            clock = ClockFacts(clock.opened_at, Priority(changes["priority"]), clock.pauses,
                               clock.paused_since, clock.first_responded_at, clock.solved_at)
        snapshot["clock"] = _clock_dict(clock)
        snapshot["sla"] = compute(self._policy, self._calendar, clock).to_dict()
        return snapshot

    @property
    def owner_id(self) -> str:
        """Who owns the record for the visibility rule (crm_runtime.ownership): its opener."""
        return self.opened_by  # type: ignore[no-any-return]

    # -- status -----------------------------------------------------------------------------------

    def check_move(self, target: TicketStatus) -> None:
        allowed = TRANSITIONS[self.status]
        if target not in allowed:
            reach = ", ".join(sorted(s.value for s in allowed)) or "nothing: it is final"
            raise FailedPrecondition(f"ticket {self.id} is {self.status.value}; it can move to {reach}, "
                                     f"not to {target.value}")

    def move(self, target: TicketStatus, by: str, at: datetime) -> None:
        """Moves the ticket to `target` (one event), pausing or resuming the resolution clock."""
        self.check_move(target)
        clock = self.clock
        pauses = list(clock.pauses)
        paused_since, solved_at = clock.paused_since, clock.solved_at
        if paused_since is not None and target != S.PENDING:
            pauses.append((paused_since, at))  # resumes (or is solved)
            paused_since = None
        if target == S.PENDING:
            paused_since = at
        elif target == S.SOLVED:
            solved_at = at
        elif target == S.REOPENED and solved_at is not None:
            pauses.append((solved_at, at))  # the time it was thought solved does not count
            solved_at = None
        facts = ClockFacts(clock.opened_at, clock.priority, tuple(pauses), paused_since,
                           clock.first_responded_at, solved_at)
        snapshot = self._next(at, status=target.value, clock=facts)
        moved = {S.SOLVED: self._solved, S.CLOSED: self._closed, S.REOPENED: self._reopened}
        trigger = moved.get(target, self._status_changed)
        trigger(from_status=self.status.value, by=by, at=at, snapshot=snapshot)

    @event("StatusChanged")
    def _status_changed(self, from_status: str, by: str, at: datetime, snapshot: dict[str, Any]) -> None:
        self._apply(snapshot, at)

    @event("Solved")
    def _solved(self, from_status: str, by: str, at: datetime, snapshot: dict[str, Any]) -> None:
        self.solves += 1
        self._apply(snapshot, at)

    @event("Closed")
    def _closed(self, from_status: str, by: str, at: datetime, snapshot: dict[str, Any]) -> None:
        self._apply(snapshot, at)

    @event("Reopened")
    def _reopened(self, from_status: str, by: str, at: datetime, snapshot: dict[str, Any]) -> None:
        self._apply(snapshot, at)

    def _check_not_closed(self, what: str) -> None:
        if self.status == S.CLOSED:
            raise FailedPrecondition(f"ticket {self.id} is closed; {what} needs it not to be")

    # -- priority -------------------------------------------------------------------------------

    def change_priority(self, priority: Priority, by: str, at: datetime) -> bool:
        """Changes the priority and so the targets; False (no event) when it is the same."""
        self._check_not_closed("changing the priority")
        if priority == self.priority:
            return False
        self._priority_changed(from_priority=self.priority.value, by=by, at=at,
                               snapshot=self._next(at, priority=priority.value))
        return True

    @event("PriorityChanged")
    def _priority_changed(self, from_priority: str, by: str, at: datetime, snapshot: dict[str, Any]) -> None:
        self._apply(snapshot, at)

    # -- comments -------------------------------------------------------------------------------

    def comment(self, comment_id: str, body: Any, public: bool, author_id: str, by_agent: bool,
                by: str, at: datetime) -> bool:
        """Adds a comment; the first public comment of an agent is the first response (a
        second event). Returns whether it was the first response. A comment id already
        present (a repeated idempotency key) adds nothing."""
        self._check_not_closed("commenting")
        if any(c["id"] == comment_id for c in self.comments):
            return False
        body = long_text("body", body, BODY_MAX, required=True)
        self._commented(comment_id=comment_id, body=body, public=bool(public), author_id=author_id,
                        by_agent=by_agent, by=by, at=at, snapshot=self.snapshot)
        if public and by_agent and self.clock.first_responded_at is None and self.clock.solved_at is None:
            clock = self.clock
            facts = ClockFacts(clock.opened_at, clock.priority, clock.pauses, clock.paused_since, at,
                               clock.solved_at)
            self._first_responded(comment_id=comment_id, author_id=author_id, at=at,
                                  snapshot=self._next(at, clock=facts))
            return True
        return False

    @event("CommentAdded")
    def _commented(self, comment_id: str, body: str, public: bool, author_id: str, by_agent: bool,
                   by: str, at: datetime, snapshot: dict[str, Any]) -> None:
        self.comments.append({"id": comment_id, "body": body, "public": public, "author_id": author_id,
                              "by_agent": by_agent, "at": at})
        self._apply(snapshot, at)

    @event("FirstResponded")
    def _first_responded(self, comment_id: str, author_id: str, at: datetime, snapshot: dict[str, Any]) -> None:
        self._apply(snapshot, at)

    # -- the workflow's commands ----------------------------------------------------------------

    def assign(self, assignee_id: Any, idempotency_key: Any, at: datetime) -> bool:
        """Assigns the ticket; False when this key was already applied."""
        assignee_id = plain_identifier("assignee_id", assignee_id)
        key = plain_identifier("idempotency_key", idempotency_key)
        if key in self.assignment_keys:
            return False
        self._check_not_closed("assigning")
        self._assigned(previous_assignee_id=self.assignee_id, idempotency_key=key, at=at,
                       snapshot=self._next(at, assignee_id=assignee_id))
        return True

    @event("Assigned")
    def _assigned(self, previous_assignee_id: str | None, idempotency_key: str, at: datetime,
                  snapshot: dict[str, Any]) -> None:
        self.assignment_keys.append(idempotency_key)
        self._apply(snapshot, at)

    def escalate(self, level: Any, idempotency_key: Any, reason: Any, at: datetime) -> bool:
        """Raises the escalation level; False (no event) for a key already applied, a level
        not above the current one, or a ticket already solved or closed (a late timer)."""
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= MAX_LEVEL:
            raise InvalidField("level", f"must be a whole number from 1 to {MAX_LEVEL}")
        key = plain_identifier("idempotency_key", idempotency_key)
        reason = text_field("reason", reason, 200, required=False) or ""
        if key in self.escalation_keys or level <= self.escalation_level or self.status in (S.SOLVED, S.CLOSED):
            return False
        self._escalated(previous_level=self.escalation_level, reason=reason, idempotency_key=key, at=at,
                        snapshot=self._next(at, escalation_level=level))
        return True

    @event("Escalated")
    def _escalated(self, previous_level: int, reason: str, idempotency_key: str, at: datetime,
                   snapshot: dict[str, Any]) -> None:
        self.escalation_keys.append(idempotency_key)
        self._apply(snapshot, at)

    # -- the SLA --------------------------------------------------------------------------------

    def reapply(self, policy: SlaPolicy, calendar: Calendar, by: str, at: datetime) -> bool:
        """Puts the ticket under `policy` and `calendar` as they are now (the clocks keep their
        facts: opened at, pauses, first response, solve); False when nothing changes."""
        self._check_not_closed("reapplying the SLA")
        policy_data = {"id": policy.id, **policy.to_dict()}
        calendar_data = {"id": policy.calendar_id, **calendar.to_dict()}
        if policy_data == self.policy_data and calendar_data == self.calendar_data:
            return False
        sla = compute(policy, calendar, self.clock).to_dict()
        snapshot = {**self.snapshot, "sla": sla}
        self._sla_changed(policy=policy_data, calendar=calendar_data, by=by, at=at, snapshot=snapshot)
        return True

    @event("SlaDueTimesChanged")
    def _sla_changed(self, policy: dict[str, Any], calendar: dict[str, Any], by: str, at: datetime,
                     snapshot: dict[str, Any]) -> None:
        self._set_policy(policy, calendar)
        self._apply(snapshot, at)


def _clock_dict(facts: ClockFacts) -> dict[str, Any]:
    return {"opened_at": _iso(facts.opened_at), "priority": facts.priority.value,
            "pauses": [[_iso(begin), _iso(end)] for begin, end in facts.pauses],
            "paused_since": _iso(facts.paused_since), "first_responded_at": _iso(facts.first_responded_at),
            "solved_at": _iso(facts.solved_at)}


def _clock_facts(data: Mapping[str, Any]) -> ClockFacts:
    return ClockFacts(
        opened_at=_dt(data["opened_at"]),  # type: ignore[arg-type]
        priority=Priority(data["priority"]),
        pauses=tuple((_dt(begin), _dt(end)) for begin, end in data["pauses"]),  # type: ignore[misc]
        paused_since=_dt(data["paused_since"]), first_responded_at=_dt(data["first_responded_at"]),
        solved_at=_dt(data["solved_at"]))


# -- calendars and policies -------------------------------------------------------------------

class BusinessCalendar(Aggregate):
    """A named business calendar (`PUT /v1/calendars/{id}`); its id derives from the name."""

    @event("Defined")
    def __init__(self, id: UUID, calendar_id: str, calendar: dict[str, Any], by: str):  # noqa: A002
        self.calendar_id = calendar_id
        self.calendar = calendar

    @staticmethod
    def id_for(calendar_id: str) -> UUID:
        return uuid5(_CALENDAR_NAMESPACE, check_slug("id", calendar_id))

    @classmethod
    def define(cls, calendar_id: str, calendar: Calendar, by: str) -> BusinessCalendar:
        return cls(id=cls.id_for(calendar_id), calendar_id=calendar_id, calendar=calendar.to_dict(), by=by)

    def redefine(self, calendar: Calendar, by: str) -> bool:
        data = calendar.to_dict()
        if data == self.calendar:
            return False
        self._changed(calendar_id=self.calendar_id, calendar=data, by=by)
        return True

    @event("Changed")
    def _changed(self, calendar_id: str, calendar: dict[str, Any], by: str) -> None:
        self.calendar = calendar

    def parsed(self) -> Calendar:
        return Calendar.parse(self.calendar)


class Policy(Aggregate):
    """A named SLA policy (`PUT /v1/sla-policies/{id}`); its id derives from the name."""

    @event("Defined")
    def __init__(self, id: UUID, policy_id: str, policy: dict[str, Any], by: str):  # noqa: A002
        self.policy_id = policy_id
        self.policy = policy

    @staticmethod
    def id_for(policy_id: str) -> UUID:
        return uuid5(_POLICY_NAMESPACE, check_slug("id", policy_id))

    @classmethod
    def define(cls, policy: SlaPolicy, by: str) -> Policy:
        return cls(id=cls.id_for(policy.id), policy_id=policy.id, policy=policy.to_dict(), by=by)

    def redefine(self, policy: SlaPolicy, by: str) -> bool:
        data = policy.to_dict()
        if data == self.policy:
            return False
        self._changed(policy_id=self.policy_id, policy=data, by=by)
        return True

    @event("Changed")
    def _changed(self, policy_id: str, policy: dict[str, Any], by: str) -> None:
        self.policy = policy

    def parsed(self) -> SlaPolicy:
        return SlaPolicy.parse(self.policy_id, self.policy)

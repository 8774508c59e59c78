"""Leads application: commands and queries over the leads event store (leads, campaigns).

Commands are small dataclasses that the HTTP and gRPC adapters both build. Each loads the
aggregate, checks the caller may see it (crm_runtime.ownership: a `sales_rep` sees and
works the leads it owns; any other lead is answered as missing), calls the domain, and
saves the new events in one transaction; a stale expected version, or a concurrent write
to the same lead, is a Conflict. A capture answers the lead to the caller who captured it
(with its own idempotency key, a repeat too) whoever it is assigned to afterwards.

Lists and look-ups are answered by the query model (crm_leads.views), which catches up with
the store before each of them, so a caller lists what it has just written. Working a lead
(status, changes, activities) and launching a campaign also catch it up afterwards; capture
catches it up before its duplicate look-up (crm_leads.merging), and assignment, the hot
path of the workflow's AssignLead, leaves it to the next read.

Duplicates, merge and conversion are in crm_leads.merging and crm_leads.conversion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from crm_leads import merging
from crm_leads.domain import (
    Activity,
    Campaign,
    CaptureDetails,
    Channel,
    Grade,
    Lead,
    LeadStatus,
    activity_id_for,
    campaign_id_for,
    lead_id_for,
    plain_identifier,
    record_id,
    validate_campaign,
    validate_capture,
)
from crm_leads.scoring import RuleSet
from crm_leads.scoring_rules import ScoringRulesMixin
from crm_leads.views import (
    CampaignQuery,
    CampaignRecord,
    LeadQuery,
    LeadRecord,
    LeadsViews,
    decode_campaign_cursor,
    decode_lead_cursor,
    open_views,
)
from crm_runtime import logs, tracing
from crm_runtime.auth import Principal, current_principal
from crm_runtime.errors import FailedPrecondition, InvalidField, ServiceError
from crm_runtime.eventstore import ServiceApplication, caller_scoped, check_version, parse_id, stamp_trace
from crm_runtime.group_commit import GroupCommit
from crm_runtime.index import Page, ViewsOf, check_limit, check_since, decode_cursor, encode_cursor, page_of
from crm_runtime.ownership import check_visible, owner_filter
from crm_runtime.settings import PlatformSettings

log = logs.get(__name__)
Q_MAX = 200


@dataclass(frozen=True)
class CaptureLead:
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    channel: str | None
    # The caller's Idempotency-Key (HTTP) or request_id (gRPC), and who the caller is.
    request_key: str | None = None
    caller: str | None = None
    title: Any = None
    industry: Any = None
    company_size: Any = None
    country: Any = None
    campaign_id: Any = None


@dataclass(frozen=True)
class _Capture:
    """A capture waiting for its group commit: the lead it would save, and its caller's trace."""
    command: CaptureLead
    lead: Lead
    details: CaptureDetails
    trace: dict[str, str]


@dataclass(frozen=True)
class AssignLead:
    lead_id: str
    owner_id: str
    idempotency_key: str
    expected_version: int | None = None


@dataclass(frozen=True)
class MoveLead:
    """A status command: contact, qualify, disqualify (with a reason) or reopen."""

    lead_id: str | UUID
    action: str
    reason: Any = None  # disqualify only
    expected_version: int | None = None  # optional here: the status itself guards the move
    caller: Principal | None = None


@dataclass(frozen=True)
class ChangeLead:
    lead_id: str | UUID
    # Required: the version the caller read (HTTP If-Match, gRPC expected_version).
    expected_version: int | None
    # Only the fields to change; None clears an optional field.
    changes: Mapping[str, Any] = field(default_factory=dict)
    caller: Principal | None = None


@dataclass(frozen=True)
class LogActivity:
    lead_id: str | UUID
    kind: Any
    at: Any
    note: Any = None
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ListLeads:
    limit: int | None = None
    cursor: str | None = None
    status: str | None = None
    owner_id: str | None = None
    channel: str | None = None
    campaign_id: str | None = None
    grade: str | None = None
    updated_since: datetime | None = None
    q: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class LaunchCampaign:
    name: Any
    channel: Any
    budget_amount: Any
    budget_currency: Any
    starts_on: Any
    ends_on: Any
    request_key: str | None = None
    caller: Principal | None = None


def _who(caller: Principal | None) -> Principal | None:
    return caller if caller is not None else current_principal()


def _subject(who: Principal | None) -> str:
    return who.subject if who is not None else ""


def _choice(field_name: str, raw: str | None, allowed: type[Any]) -> str | None:
    if raw is None or raw == "":
        return None
    names = [member.value for member in allowed]
    if raw not in names:
        raise InvalidField(field_name, f"{raw[:40]!r} is not one of: {', '.join(names)}")
    return raw


def _activity_position(cursor: str) -> tuple[datetime, int]:
    at, seq = decode_cursor("activity", cursor, (str, int))
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        when = None
    if when is None or when.utcoffset() is None:
        raise InvalidField("cursor", "is not a cursor this list gave out; start again without one")
    return when, seq


class LeadsApplication(ScoringRulesMixin, ViewsOf[LeadsViews], ServiceApplication):
    name = "Leads"

    def __init__(self, platform: PlatformSettings, default_phone_region: str = "US"):
        super().__init__(platform)
        self.default_phone_region = default_phone_region
        # Captures arriving together share one look-up and one transaction.
        self._captures: GroupCommit[_Capture, tuple[Lead, bool]] = GroupCommit(
            "leads.capture", self._capture_together)

    # -- the query model ----------------------------------------------------------------------

    def make_views(self) -> LeadsViews:
        return open_views(self, self.platform)

    # -- leads ----------------------------------------------------------------------------------

    def new_lead(self, command: CaptureLead,
                 scoring: tuple[RuleSet, int] | None = None) -> tuple[Lead, CaptureDetails]:
        """The lead a capture would save, validated and scored (by `scoring`, else the active
        rules), not saved yet: a capture and each row of an import (crm_leads.importer)."""
        details = validate_capture(command.name, command.email, command.phone, command.company,
                                   command.channel, self.default_phone_region,
                                   title=command.title, industry=command.industry,
                                   company_size=command.company_size, country=command.country,
                                   campaign_id=command.campaign_id)
        if details.campaign_id is not None and self.find(Campaign, UUID(details.campaign_id)) is None:
            raise InvalidField("campaign_id", f"campaign {details.campaign_id} does not exist")
        key = caller_scoped(command.caller, command.request_key)
        return Lead.capture(details, lead_id_for(key), scoring or self.capture_scoring()), details

    def capture_lead(self, command: CaptureLead) -> tuple[Lead, bool]:
        """Captures a lead; returns (lead, created). A repeated request key returns the first lead.

        A lead whose email or phone matches an open lead is captured as its duplicate
        (`duplicate_of`, see crm_leads.merging; the importer marks its batches the same way)."""
        new, details = self.new_lead(command)  # refused here, in the caller's own thread
        lead, created = self._captures.submit(_Capture(command, new, details, tracing.current()))
        if created:
            log.info("lead.captured", lead_id=str(lead.id), channel=lead.channel.value,
                     duplicate_of=lead.duplicate_of)
        return lead, created

    def _capture_together(self, captures: list[_Capture]) -> list[tuple[Lead, bool] | BaseException]:
        """Captures in arrival order, in one duplicate look-up and one transaction. When that
        transaction is refused before it commits (a repeated request key, an event too
        large), each is captured again on its own, from a fresh lead: the others' duplicate
        marks may name it. Any other failure is every caller's, as it would be alone."""
        if len(captures) == 1:
            return [self._capture_alone(captures[0], captures[0].lead)]
        leads = [capture.lead for capture in captures]
        for capture in captures:
            stamp_trace(capture.lead, capture.trace)
        with merging.contact_point_guard(*leads):  # look-up and save, apart from imports
            try:
                merging.flag_duplicates(self, leads)
                self.save(*leads)
                return [(lead, True) for lead in leads]
            except (IntegrityError, ServiceError):
                pass  # nothing was saved: each one again, alone, gets its own answer
        return [self._capture_alone(capture) for capture in captures]

    def _capture_alone(self, capture: _Capture, lead: Lead | None = None) -> tuple[Lead, bool] | BaseException:
        try:
            if lead is None:
                lead, _ = self.new_lead(capture.command)
            stamp_trace(lead, capture.trace)
            with merging.contact_point_guard(lead):
                merging.flag_duplicates(self, [lead])
                return self.create_once(lead, same=lambda first: first.same_capture(capture.details))
        except Exception as exc:  # noqa: BLE001 - this caller's answer
            return exc

    def _visible_lead(self, lead_id: str | UUID, who: Principal | None) -> Lead:
        return check_visible(self.get(Lead, lead_id, "lead"), "lead", who)

    def get_lead(self, lead_id: str | UUID, caller: Principal | None = None) -> Lead:
        return self._visible_lead(lead_id, _who(caller))

    def assign_lead(self, command: AssignLead) -> Lead:
        lead = self._visible_lead(command.lead_id, current_principal())
        check_version(lead, command.expected_version)
        if lead.assign(command.owner_id, command.idempotency_key):
            self.save_changes(lead)
            log.info("lead.assigned", lead_id=str(lead.id), owner_id=lead.owner_id)
        return lead

    def assign_leads(self, commands: Sequence[AssignLead],
                     contexts: Sequence[Mapping[str, str]] = ()) -> tuple[int, ServiceError | None]:
        """Assignments in order, saved in one transaction; stops at the first one refused.
        Returns how many were applied and the refusal (None: all were). `contexts`, parallel
        to `commands`, is each one's trace context, stored with its event."""
        who = current_principal()

        def assign(lead: Lead, command: AssignLead) -> bool:
            check_version(lead, command.expected_version)
            return lead.assign(command.owner_id, command.idempotency_key)

        applied, refused, changed = self.apply_in_order(
            commands, contexts, lambda command: parse_id("lead_id", command.lead_id),
            lambda lead_id: self._visible_lead(lead_id, who), assign, read_ahead=Lead)
        for lead in changed:
            log.info("lead.assigned", lead_id=str(lead.id), owner_id=lead.owner_id)
        return applied, refused

    def move_lead(self, command: MoveLead) -> Lead:
        """contact, qualify, disqualify or reopen: one event, or FailedPrecondition and none."""
        who = _who(command.caller)
        if command.expected_version is not None and command.expected_version < 1:
            raise InvalidField("expected_version", "versions start at 1")
        lead = self._visible_lead(command.lead_id, who)
        check_version(lead, command.expected_version)
        by = _subject(who)
        if command.action == "contact":
            lead.contact(by)
        elif command.action == "qualify":
            lead.qualify(by)
        elif command.action == "disqualify":
            lead.disqualify(command.reason, by)
        elif command.action == "reopen":
            lead.reopen(by)
        else:
            raise InvalidField("action", f"{command.action!r} is not a lead command")
        self.score_changes(lead)
        self.save_changes(lead)
        log.info(f"lead.{command.action}", lead_id=str(lead.id), status=lead.status.value)
        self._refresh_views()
        return lead

    def change_lead(self, command: ChangeLead) -> Lead:
        who = _who(command.caller)
        if command.expected_version is None:
            raise FailedPrecondition("changing a lead needs the version it was read at "
                                     "(HTTP If-Match, gRPC expected_version)")
        if command.expected_version < 1:
            raise InvalidField("expected_version", "versions start at 1")
        lead = self._visible_lead(command.lead_id, who)
        lead.differences(command.changes, self.default_phone_region)  # bad fields first: 422
        check_version(lead, command.expected_version)
        changed = lead.change(command.changes, by=_subject(who), default_region=self.default_phone_region)
        if changed:
            self.score_changes(lead)
            self.save_changes(lead)
            log.info("lead.changed", lead_id=str(lead.id), changed=changed)
            self._refresh_views()
        return lead

    def list_leads(self, request: ListLeads) -> Page[LeadRecord]:
        q = (request.q or "").strip() or None
        if q is not None and (len(q) > Q_MAX or not q.isprintable()):
            raise InvalidField("q", f"must be at most {Q_MAX} printable characters")
        query = LeadQuery(
            limit=check_limit(request.limit),
            after=decode_lead_cursor(request.cursor) if request.cursor else None,
            status=_choice("status", request.status, LeadStatus),
            owner_id=plain_identifier("owner_id", request.owner_id) if request.owner_id else None,
            channel=_choice("channel", request.channel, Channel),
            campaign_id=record_id("campaign_id", request.campaign_id),
            grade=_choice("grade", request.grade, Grade),
            updated_since=check_since("updated_since", request.updated_since),
            q=q)
        self.views.catch_up()
        return self.views.list_leads(query, owner_filter(_who(request.caller)))

    def open_leads_matching(self, email: str | None, phone: str | None,
                            exclude: str | None = None) -> list[LeadRecord]:
        """Open leads with this normalised email or E.164 phone (for de-duplication)."""
        self.views.catch_up()
        return self.views.open_leads_matching(email, phone, exclude)

    # -- activities -----------------------------------------------------------------------------

    def log_activity(self, command: LogActivity) -> tuple[Activity, bool]:
        """Logs an activity on a lead; returns (activity, logged). A repeated request key
        returns the activity it logged."""
        who = _who(command.caller)
        lead = self._visible_lead(command.lead_id, who)
        key = caller_scoped(_subject(who) or None, command.request_key)
        activity, logged = lead.log_activity(activity_id_for(lead.id, key), command.kind,
                                             command.at, command.note, by=_subject(who))
        if logged:
            self.score_changes(lead)
            self.save_changes(lead)
            log.info("lead.activity_logged", lead_id=str(lead.id), kind=activity.kind.value)
            self._refresh_views()
        return activity, logged

    def list_activities(self, lead_id: str | UUID, limit: int | None = None, cursor: str | None = None,
                        caller: Principal | None = None) -> Page[Activity]:
        """A lead's activities by when they happened, then by the order they were logged."""
        size = check_limit(limit)
        lead = self._visible_lead(lead_id, _who(caller))
        ordered = sorted(lead.activities, key=lambda a: (a.at, a.seq))
        if cursor:
            after = _activity_position(cursor)
            ordered = [a for a in ordered if (a.at, a.seq) > after]
        return page_of(ordered[:size + 1], size,
                       lambda last: encode_cursor("activity", last.at.isoformat(), last.seq))

    # -- campaigns ------------------------------------------------------------------------------

    def launch_campaign(self, command: LaunchCampaign) -> tuple[CampaignRecord, bool]:
        """Creates a campaign; returns (campaign, created). A repeated request key returns the first."""
        who = _who(command.caller)
        details = validate_campaign(command.name, command.channel, command.budget_amount,
                                    command.budget_currency, command.starts_on, command.ends_on)
        key = caller_scoped(_subject(who) or None, command.request_key)
        campaign, created = self.create_once(
            Campaign.launch(details, campaign_id_for(key), launched_by=_subject(who)),
            same=lambda first: first.same_launch(details))
        if created:
            log.info("campaign.launched", campaign_id=str(campaign.id), budget=str(campaign.budget))
            self._refresh_views()
        return CampaignRecord.of(campaign), created

    def get_campaign(self, campaign_id: str | UUID) -> CampaignRecord:
        return CampaignRecord.of(self.get(Campaign, campaign_id, "campaign"))

    def list_campaigns(self, limit: int | None = None, cursor: str | None = None,
                       channel: str | None = None) -> Page[CampaignRecord]:
        query = CampaignQuery(limit=check_limit(limit),
                              after=decode_campaign_cursor(cursor) if cursor else None,
                              channel=_choice("channel", channel, Channel))
        self.views.catch_up()
        return self.views.list_campaigns(query)

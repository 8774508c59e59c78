# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""Lead and campaign domain events to their protobuf messages (crm.leads.v1): the events
the leads context publishes, and the Lead, Activity and Campaign resources the gRPC API
answers with. Absent optional text is the empty string; an unknown company size is unset."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from crm.common.v1 import money_pb2
from crm.leads.v1 import events_pb2, leads_pb2
from crm_leads.domain import Activity, ActivityKind, Campaign, Channel, Lead, LeadStatus
from crm_leads.scoring import ScoringRules
from crm_leads.views import CampaignRecord, LeadRecord
from crm_runtime.cloudevents import timestamp
from crm_runtime.events import EventMap

CHANNEL_TO_PROTO = {channel: events_pb2.Channel.Value(f"CHANNEL_{channel.name}") for channel in Channel}
PROTO_TO_CHANNEL = {value: channel.value for channel, value in CHANNEL_TO_PROTO.items()}
STATUS_TO_PROTO = {status: leads_pb2.LeadStatus.Value(f"LEAD_STATUS_{status.name}") for status in LeadStatus}
PROTO_TO_STATUS = {value: status.value for status, value in STATUS_TO_PROTO.items()}
KIND_TO_PROTO = {kind: events_pb2.ActivityKind.Value(f"ACTIVITY_KIND_{kind.name}") for kind in ActivityKind}
PROTO_TO_KIND = {value: kind.value for kind, value in KIND_TO_PROTO.items()}

EVENTS = EventMap(events_pb2)


@EVENTS.publishes(Lead.Captured)
def captured(event: Lead.Captured) -> events_pb2.LeadCaptured:
    message = events_pb2.LeadCaptured(
        lead_id=str(event.originator_id), name=event.name, email=event.email, phone=event.phone,
        company=event.company, channel=CHANNEL_TO_PROTO[Channel(event.channel)],
        captured_at=timestamp(event.timestamp),
        # Leads captured before these fields existed have none of them.
        title=getattr(event, "title", None) or "", industry=getattr(event, "industry", None) or "",
        country=getattr(event, "country", None) or "",
        campaign_id=getattr(event, "campaign_id", None) or "", version=event.originator_version)
    size = getattr(event, "company_size", None)
    if size is not None:
        message.company_size = size
    if getattr(event, "score", None) is not None:  # leads captured before scoring have none
        message.score = event.score
        message.grade = event.grade or ""
        message.rule_set_version = event.rule_set_version or 0
        message.score_reasons.extend(_reasons(event.score_reasons))
    return message


@EVENTS.publishes(Lead.Assigned)
def assigned(event: Lead.Assigned) -> events_pb2.LeadAssigned:
    return events_pb2.LeadAssigned(
        lead_id=str(event.originator_id), owner_id=event.owner_id,
        idempotency_key=event.idempotency_key, assigned_at=timestamp(event.timestamp))


@EVENTS.publishes(Lead.Contacted)
def contacted(event: Lead.Contacted) -> events_pb2.LeadContacted:
    return events_pb2.LeadContacted(
        lead_id=str(event.originator_id), version=event.originator_version,
        contacted_at=timestamp(event.timestamp), contacted_by=event.by)


@EVENTS.publishes(Lead.Qualified)
def qualified(event: Lead.Qualified) -> events_pb2.LeadQualified:
    return events_pb2.LeadQualified(
        lead_id=str(event.originator_id), version=event.originator_version,
        qualified_at=timestamp(event.timestamp), qualified_by=event.by)


@EVENTS.publishes(Lead.Disqualified)
def disqualified(event: Lead.Disqualified) -> events_pb2.LeadDisqualified:
    return events_pb2.LeadDisqualified(
        lead_id=str(event.originator_id), reason=event.reason,
        previous_status=LeadStatus(event.previous_status).value,
        version=event.originator_version, disqualified_at=timestamp(event.timestamp),
        disqualified_by=event.by)


@EVENTS.publishes(Lead.Reopened)
def reopened(event: Lead.Reopened) -> events_pb2.LeadReopened:
    return events_pb2.LeadReopened(
        lead_id=str(event.originator_id), status=LeadStatus(event.status).value,
        version=event.originator_version, reopened_at=timestamp(event.timestamp),
        reopened_by=event.by)


@EVENTS.publishes(Lead.ActivityLogged)
def activity_logged(event: Lead.ActivityLogged) -> events_pb2.LeadActivityLogged:
    return events_pb2.LeadActivityLogged(
        lead_id=str(event.originator_id), activity_id=event.activity_id,
        kind=KIND_TO_PROTO[ActivityKind(event.kind)], at=timestamp(datetime.fromisoformat(event.at)),
        note=event.note, version=event.originator_version,
        logged_at=timestamp(datetime.fromisoformat(event.logged_at)), logged_by=event.by)


@EVENTS.publishes(Lead.Changed)
def changed(event: Lead.Changed) -> events_pb2.LeadChanged:
    message = events_pb2.LeadChanged(
        lead_id=str(event.originator_id), name=event.name, phone=event.phone,
        company=event.company, title=event.title or "", industry=event.industry or "",
        country=event.country or "", follow_up_on=event.follow_up_on or "",
        changed_fields=list(event.changed_fields), version=event.originator_version,
        changed_at=timestamp(event.timestamp), changed_by=event.by)
    if event.company_size is not None:
        message.company_size = event.company_size
    return message


@EVENTS.publishes(Campaign.Launched)
def campaign_launched(event: Campaign.Launched) -> events_pb2.CampaignLaunched:
    return events_pb2.CampaignLaunched(
        campaign_id=str(event.originator_id), name=event.name,
        channel=CHANNEL_TO_PROTO[Channel(event.channel)], budget_amount=event.budget_amount,
        budget_currency=event.budget_currency, starts_on=event.starts_on, ends_on=event.ends_on,
        version=event.originator_version, launched_at=timestamp(event.timestamp),
        launched_by=event.launched_by)


def _reasons(reasons: Iterable[Mapping[str, Any]] | None) -> list[events_pb2.LeadScored.Reason]:
    return [events_pb2.LeadScored.Reason(rule_id=reason["rule_id"], description=reason["description"],
                                         points=reason["points"]) for reason in reasons or ()]


@EVENTS.publishes(Lead.Scored)
def scored(event: Lead.Scored) -> events_pb2.LeadScored:
    message = events_pb2.LeadScored(
        lead_id=str(event.originator_id), score=event.score, grade=event.grade,
        rule_set_version=event.rule_set_version, reasons=_reasons(event.reasons),
        previous_grade=event.previous_grade or "", version=event.originator_version,
        scored_at=timestamp(event.timestamp))
    if event.previous_score is not None:
        message.previous_score = event.previous_score
    return message


# The reasons alone changed (same score and grade): kept in the lead, not published.
EVENTS.internal(Lead.ScoreExplained)


@EVENTS.publishes(ScoringRules.Introduced, ScoringRules.Replaced)
def scoring_rules_replaced(event: Any) -> events_pb2.ScoringRulesReplaced:
    return events_pb2.ScoringRulesReplaced(
        version=event.originator_version, rules_json=json.dumps(event.rules, separators=(",", ":")),
        replaced_by=event.by, replaced_at=timestamp(event.timestamp))


# -- duplicates, merge and conversion ------------------------------------------------------------

@EVENTS.publishes(Lead.DuplicateDetected)
def duplicate_detected(event: Lead.DuplicateDetected) -> events_pb2.LeadDuplicateDetected:
    return events_pb2.LeadDuplicateDetected(
        lead_id=str(event.originator_id), duplicate_of=event.duplicate_of, matched_on=event.matched_on,
        version=event.originator_version, detected_at=timestamp(event.timestamp))


@EVENTS.publishes(Lead.DuplicateMerged)
def leads_merged(event: Lead.DuplicateMerged) -> events_pb2.LeadsMerged:
    """The survivor's side; the values are those it gained (the rest did not change)."""
    fields = event.fields
    message = events_pb2.LeadsMerged(
        lead_id=str(event.originator_id), merged_lead_id=event.merged_lead_id,
        gained_fields=list(fields), gained_activity_ids=[activity["id"] for activity in event.activities],
        version=event.originator_version, merged_at=timestamp(event.timestamp), merged_by=event.by)
    for name in ("phone", "company", "title", "industry", "country", "follow_up_on", "campaign_id"):
        setattr(message, name, fields.get(name) or "")
    if fields.get("company_size") is not None:
        message.company_size = fields["company_size"]
    return message


@EVENTS.publishes(Lead.MergedInto)
def merged_into(event: Lead.MergedInto) -> events_pb2.LeadMergedInto:
    return events_pb2.LeadMergedInto(
        lead_id=str(event.originator_id), merged_into=event.survivor_id,
        previous_status=LeadStatus(event.previous_status).value, version=event.originator_version,
        merged_at=timestamp(event.timestamp), merged_by=event.by)


@EVENTS.publishes(Lead.Converted)
def converted(event: Lead.Converted) -> events_pb2.LeadConverted:
    return events_pb2.LeadConverted(
        lead_id=str(event.originator_id), account_id=event.account_id, contact_id=event.contact_id,
        name=event.name, email=event.email, phone=event.phone, company=event.company,
        title=event.title or "", industry=event.industry or "", company_size=event.company_size or 0,
        country=event.country or "", owner_id=event.owner_id or "",
        email_domain=event.email_domain or "", converted_at=timestamp(event.timestamp),
        opportunity_name=getattr(event, "opportunity_name", None) or "",
        opportunity_amount=_opportunity_amount(event))


def _opportunity_amount(event: Lead.Converted) -> money_pb2.Money | None:
    amount, currency = getattr(event, "opportunity_amount", None), getattr(event, "opportunity_currency", None)
    return money_pb2.Money(amount=amount, currency_code=currency) if amount and currency else None


@EVENTS.publishes(Lead.AccountLinked)
def account_linked(event: Lead.AccountLinked) -> events_pb2.LeadAccountLinked:
    return events_pb2.LeadAccountLinked(
        lead_id=str(event.originator_id), account_id=event.account_id, contact_id=event.contact_id,
        account_reused=event.account_reused, version=event.originator_version,
        linked_at=timestamp(event.timestamp))


def lead_to_message(lead: Lead | LeadRecord) -> leads_pb2.Lead:
    record = LeadRecord.of(lead) if isinstance(lead, Lead) else lead
    message = leads_pb2.Lead(
        id=record.id, name=record.name, email=record.email, phone=record.phone,
        company=record.company, channel=CHANNEL_TO_PROTO[Channel(record.channel)],
        status=STATUS_TO_PROTO[LeadStatus(record.status)], owner_id=record.owner_id or "",
        version=record.version, captured_at=timestamp(record.created_at),
        title=record.title or "", industry=record.industry or "", country=record.country or "",
        campaign_id=record.campaign_id or "", follow_up_on=record.follow_up_on or "",
        grade=record.grade or "", disqualified_reason=record.disqualified_reason or "",
        updated_at=timestamp(record.updated_at), duplicate_of=record.duplicate_of or "",
        merged_into=record.merged_into or "", account_id=record.account_id or "",
        contact_id=record.contact_id or "")
    if record.company_size is not None:
        message.company_size = record.company_size
    if record.score is not None:
        message.score = record.score
    message.score_reasons.extend(_reasons(record.score_reasons))
    return message


def activity_to_message(lead_id: Any, activity: Activity) -> leads_pb2.Activity:
    return leads_pb2.Activity(
        id=activity.id, lead_id=str(lead_id), kind=KIND_TO_PROTO[activity.kind],
        at=timestamp(activity.at), note=activity.note, logged_by=activity.logged_by,
        logged_at=timestamp(activity.logged_at))


def campaign_to_message(campaign: CampaignRecord) -> leads_pb2.Campaign:
    return leads_pb2.Campaign(
        id=campaign.id, name=campaign.name, channel=CHANNEL_TO_PROTO[Channel(campaign.channel)],
        budget=campaign.budget.to_proto(),
        starts_on=campaign.starts_on, ends_on=campaign.ends_on, version=campaign.version,
        created_at=timestamp(campaign.created_at))

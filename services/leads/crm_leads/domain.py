"""Leads and campaigns: pure domain, no I/O. Validation and normalisation happen before
any event; a refused field is an `InvalidField` naming it.

Who owns a lead is the workflow service's decision; the lead records it. An assignment
carries the idempotency key of the command that made it, so a repeated command is a no-op.

A lead's life is one table, `TRANSITIONS`: new -> contacted -> qualified -> converted,
disqualified (with a reason) from any open status, reopened from disqualified (back to
contacted if it was ever contacted, else to new: the work done is not forgotten, and a
lead nobody reached starts over), merged into another lead. A command its status does not
allow is a FailedPrecondition naming the status, and records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pycountry
from eventsourcing.domain import Aggregate, event

from crm_leads.scoring import LeadFacts, RuleSet, Score, score
from crm_runtime import contact_points
from crm_runtime.email_domains import email_domain_of
from crm_runtime.errors import Conflict, FailedPrecondition, InvalidField
from crm_runtime.money import Money, parse_money
from crm_runtime.text import IDENTIFIER_MAX as ID_MAX  # noqa: F401 - the adapters' limit
from crm_runtime.text import check_text, plain_identifier, text_field

NAME_MAX = 200
COMPANY_MAX = 200
TITLE_MAX = 200
INDUSTRY_MAX = 100
COMPANY_SIZE_MAX = 10_000_000
NOTE_MAX = 4000
REASON_MAX = 1000
_CAPTURE_NAMESPACE = uuid5(NAMESPACE_URL, "crm:leads:capture")
_ACTIVITY_NAMESPACE = uuid5(NAMESPACE_URL, "crm:leads:activity")


class Channel(StrEnum):
    WEB = "web"
    EMAIL = "email"
    PHONE = "phone"
    REFERRAL = "referral"
    EVENT = "event"
    SOCIAL = "social"
    PARTNER = "partner"


class LeadStatus(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    CONVERTED = "converted"
    DISQUALIFIED = "disqualified"
    MERGED = "merged"  # folded into another lead (the merge is built on this table)


OPEN_STATUSES = frozenset({LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED})


class Grade(StrEnum):
    """What scoring makes of a lead. A lead has no grade (None) until it is scored."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class ActivityKind(StrEnum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    NOTE = "note"
    EMAIL_OPENED = "email_opened"
    PAGE_VISITED = "page_visited"
    FORM_SUBMITTED = "form_submitted"


# The lifecycle, in one table: command -> (the statuses it may start from, where it goes).
# `reopen` goes back to contacted when the lead was ever contacted, else to new (None here:
# the lead decides). `convert` and `merge` are the commands of the conversion and merge
# work; they are declared so that the table is the whole lifecycle.
TRANSITIONS: dict[str, tuple[frozenset[LeadStatus], LeadStatus | None]] = {
    "contact": (frozenset({LeadStatus.NEW}), LeadStatus.CONTACTED),
    "qualify": (frozenset({LeadStatus.CONTACTED}), LeadStatus.QUALIFIED),
    "disqualify": (OPEN_STATUSES, LeadStatus.DISQUALIFIED),
    "reopen": (frozenset({LeadStatus.DISQUALIFIED}), None),
    "convert": (frozenset({LeadStatus.QUALIFIED}), LeadStatus.CONVERTED),
    "merge": (OPEN_STATUSES | {LeadStatus.DISQUALIFIED}, LeadStatus.MERGED),
}


@dataclass(frozen=True)
class CaptureDetails:
    """A lead's details after validation: trimmed name, normalised email, E.164 phone."""

    name: str
    email: str
    phone: str
    company: str
    channel: Channel
    title: str | None = None
    industry: str | None = None
    company_size: int | None = None
    country: str | None = None
    campaign_id: str | None = None


def normalise_email(raw: str | None) -> str:
    return contact_points.normalise_email(raw) or ""  # required: never blank


def normalise_phone(raw: Any, default_region: str) -> str:
    return contact_points.normalise_phone(raw, default_region) or ""


def parse_channel(raw: str | None) -> Channel:
    try:
        return Channel((raw or "").strip().lower())
    except ValueError:
        allowed = ", ".join(channel.value for channel in Channel)
        raise InvalidField("channel", f"{raw!r} is not a known channel; use one of: {allowed}") from None


def _optional_text(field: str, raw: Any, maximum: int) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise InvalidField(field, "must be a string")
    value = " ".join((raw or "").split())
    if not value:
        return None
    if len(value) > maximum:
        raise InvalidField(field, f"must be at most {maximum} characters")
    return check_text(field, value)


def normalise_title(raw: Any) -> str | None:
    return _optional_text("title", raw, TITLE_MAX)


def normalise_industry(raw: Any) -> str | None:
    return _optional_text("industry", raw, INDUSTRY_MAX)


def normalise_company_size(raw: Any) -> int | None:
    """A number of employees: a whole number from 1 (None or absent: unknown)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidField("company_size", "must be a whole number of employees")
    if not 1 <= raw <= COMPANY_SIZE_MAX:
        raise InvalidField("company_size", f"must be between 1 and {COMPANY_SIZE_MAX}")
    return raw


def normalise_country(raw: Any) -> str | None:
    """An ISO 3166-1 alpha-2 code, upper case ("de" -> "DE"); names are refused."""
    if raw is not None and not isinstance(raw, str):
        raise InvalidField("country", "must be a string")
    value = (raw or "").strip()
    if not value:
        return None
    code = value.upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha() \
            or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidField("country", f"{value[:40]!r} is not an ISO 3166-1 alpha-2 country code, e.g. DE")
    return code


def normalise_name(raw: Any) -> str:
    if raw is not None and not isinstance(raw, str):
        raise InvalidField("name", "must be a string")
    clean_name = (raw or "").strip()
    if not clean_name:
        raise InvalidField("name", "is required")
    if len(clean_name) > NAME_MAX:
        raise InvalidField("name", f"must be at most {NAME_MAX} characters")
    return check_text("name", clean_name)


def normalise_company(raw: Any) -> str:
    if raw is not None and not isinstance(raw, str):
        raise InvalidField("company", "must be a string")
    clean_company = (raw or "").strip()
    if len(clean_company) > COMPANY_MAX:
        raise InvalidField("company", f"must be at most {COMPANY_MAX} characters")
    return check_text("company", clean_company)


def record_id(field: str, raw: Any) -> str | None:
    """A record id in its canonical form (a UUID); empty: None."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return str(raw if isinstance(raw, UUID) else UUID(str(raw).strip()))
    except ValueError:
        raise InvalidField(field, f"{str(raw)[:80]!r} is not a UUID") from None


def validate_capture(name: str | None, email: str | None, phone: str | None,
                     company: str | None, channel: str | None,
                     default_region: str = "US", *, title: Any = None, industry: Any = None,
                     company_size: Any = None, country: Any = None,
                     campaign_id: Any = None) -> CaptureDetails:
    return CaptureDetails(
        name=normalise_name(name),
        company=normalise_company(company),
        email=normalise_email(email),
        phone=normalise_phone(phone, default_region),
        channel=parse_channel(channel),
        title=normalise_title(title),
        industry=normalise_industry(industry),
        company_size=normalise_company_size(company_size),
        country=normalise_country(country),
        campaign_id=record_id("campaign_id", campaign_id),
    )


def lead_id_for(request_key: str | None) -> UUID:
    """The same idempotency key always names the same lead; no key, a new lead."""
    return uuid5(_CAPTURE_NAMESPACE, request_key) if request_key else uuid4()


def email_key(email: str) -> str:
    """The form two addresses are compared in to find duplicates: the normalised address,
    case-folded (mailbox names are case-insensitive in practice)."""
    return email.casefold()


def parse_follow_up(raw: Any) -> str | None:
    """An ISO 8601 calendar date ("2025-03-31"), kept as that text; None clears it."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw.isoformat()
    if not isinstance(raw, str):
        raise InvalidField("follow_up_on", "must be a date such as 2025-03-31")
    text = raw.strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidField("follow_up_on", "must be an ISO 8601 date such as 2025-03-31") from None


def parse_activity_kind(raw: Any) -> ActivityKind:
    try:
        return ActivityKind(str(raw or "").strip().lower())
    except ValueError:
        allowed = ", ".join(kind.value for kind in ActivityKind)
        raise InvalidField("kind", f"{str(raw)[:40]!r} is not an activity kind; use one of: {allowed}") from None


def parse_activity_time(raw: Any) -> datetime:
    """When an activity happened: RFC 3339 with an offset (a datetime must be aware); UTC."""
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise InvalidField("at", "must be an RFC 3339 time such as 2025-03-31T09:30:00+02:00") from None
    if not isinstance(raw, datetime):
        raise InvalidField("at", "is required: an RFC 3339 time such as 2025-03-31T09:30:00Z")
    if raw.utcoffset() is None:
        raise InvalidField("at", "needs a time zone offset (RFC 3339), e.g. 2025-03-31T09:30:00Z")
    return raw.astimezone(UTC)


def normalise_note(raw: Any) -> str:
    if raw is not None and not isinstance(raw, str):
        raise InvalidField("note", "must be a string")
    note = (raw or "").strip()
    if len(note) > NOTE_MAX:
        raise InvalidField("note", f"must be at most {NOTE_MAX} characters")
    return check_text("note", note, multiline=True)


def normalise_reason(raw: Any) -> str:
    if raw is not None and not isinstance(raw, str):
        raise InvalidField("reason", "must be a string")
    reason = (raw or "").strip()
    if not reason:
        raise InvalidField("reason", "is required: say why the lead is disqualified")
    if len(reason) > REASON_MAX:
        raise InvalidField("reason", f"must be at most {REASON_MAX} characters")
    return check_text("reason", reason, multiline=True)


def activity_id_for(lead_id: UUID, request_key: str | None) -> UUID:
    """The same idempotency key on the same lead names the same activity; no key, a new one."""
    return uuid5(_ACTIVITY_NAMESPACE, f"{lead_id}\n{request_key}") if request_key else uuid4()


@dataclass(frozen=True)
class Activity:
    id: str
    kind: ActivityKind
    at: datetime  # UTC
    note: str
    logged_by: str
    logged_at: datetime
    seq: int  # the order it was logged in, from 1


# The fields PATCH may change, and their rules (phone's rule needs the default region).
EDITABLE_FIELDS = ("name", "phone", "company", "title", "industry", "company_size", "country",
                   "follow_up_on")


def _edit_rules(default_region: str) -> dict[str, Any]:
    return {
        "name": normalise_name,
        "phone": lambda raw: normalise_phone(raw, default_region),
        "company": normalise_company,
        "title": normalise_title,
        "industry": normalise_industry,
        "company_size": normalise_company_size,
        "country": normalise_country,
        "follow_up_on": parse_follow_up,
    }


@dataclass(frozen=True)
class OpportunityToOpen:
    """What a conversion asks sales to open: a name and, optionally, an amount."""

    name: str
    amount: Money | None = None

    @classmethod
    def parse(cls, name: object, amount: Money | None) -> OpportunityToOpen:
        clean = text_field("opportunity.name", name, NAME_MAX, required=True)
        assert clean is not None  # required
        return cls(clean, amount)


class Lead(Aggregate):
    """A prospective customer and where it is in its life (TRANSITIONS).

    Every command refuses, before any event, what the lead's status does not allow
    (FailedPrecondition naming the status); each transition records one event.
    """

    @event("Captured")
    def __init__(self, id: UUID, name: str, email: str, phone: str, company: str,  # noqa: A002
                 channel: str, title: str | None = None, industry: str | None = None,
                 company_size: int | None = None, country: str | None = None,
                 campaign_id: str | None = None, score: int | None = None,
                 grade: str | None = None, score_reasons: list[dict[str, Any]] | None = None,
                 rule_set_version: int | None = None):
        # (Leads captured before title..campaign_id, or scoring, existed replay with the defaults.)
        self.name = name
        self.email = email
        self.phone = phone
        self.company = company
        self.channel = Channel(channel)
        self.title = title
        self.industry = industry
        self.company_size = company_size
        self.country = country
        self.campaign_id = campaign_id
        self.status = LeadStatus.NEW
        self.owner_id: str | None = None
        self.assignment_keys: list[str] = []
        self.follow_up_on: str | None = None
        self.disqualified_reason: str | None = None
        self.ever_contacted = False
        self.activities: list[Activity] = []
        # Scoring (crm_leads.scoring): the first score comes with the capture, later ones
        # with Scored (score or grade changed) or ScoreExplained (only the reasons did).
        self.score: int | None = score
        self.grade: Grade | None = Grade(grade) if grade else None
        self.score_reasons: list[dict[str, Any]] = list(score_reasons or [])
        self.rule_set_version: int | None = rule_set_version

    @classmethod
    def capture(cls, details: CaptureDetails, lead_id: UUID,
                scoring: tuple[RuleSet, int] | None = None) -> Lead:
        """A new lead; with `scoring` (the active rule set and its version) it is scored too."""
        first: dict[str, Any] = {}
        if scoring is not None:
            rule_set, version = scoring
            result = score(rule_set, LeadFacts.of(
                email=details.email, channel=details.channel.value, industry=details.industry,
                company_size=details.company_size, title=details.title, country=details.country))
            first = {"score": result.points, "grade": result.grade.value,
                     "score_reasons": _reasons(result), "rule_set_version": version}
        return cls(id=lead_id, name=details.name, email=details.email, phone=details.phone,
                   company=details.company, channel=details.channel.value, title=details.title,
                   industry=details.industry, company_size=details.company_size,
                   country=details.country, campaign_id=details.campaign_id, **first)

    def same_capture(self, details: CaptureDetails) -> bool:
        return (self.name, self.email, self.phone, self.company, self.channel, self.title,
                self.industry, self.company_size, self.country, self.campaign_id) == (
            details.name, details.email, details.phone, details.company, details.channel,
            details.title, details.industry, details.company_size, details.country,
            details.campaign_id)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    # -- assignment -------------------------------------------------------------------------

    def assign(self, owner_id: str, idempotency_key: str) -> bool:
        """Assigns the lead; returns False when this key was already applied."""
        owner_id = plain_identifier("owner_id", owner_id)
        idempotency_key = plain_identifier("idempotency_key", idempotency_key)
        if idempotency_key in self.assignment_keys:
            return False
        self._assigned(owner_id=owner_id, idempotency_key=idempotency_key)
        return True

    @event("Assigned")
    def _assigned(self, owner_id: str, idempotency_key: str) -> None:
        self.owner_id = owner_id
        self.assignment_keys.append(idempotency_key)

    # -- lifecycle --------------------------------------------------------------------------

    def check_transition(self, command: str) -> LeadStatus:
        """Where `command` takes the lead, or FailedPrecondition naming its current status."""
        allowed, target = TRANSITIONS[command]
        if self.status not in allowed:
            starts = " or ".join(sorted(status.value for status in allowed))
            raise FailedPrecondition(f"lead {self.id} is {self.status.value}; "
                                     f"{command} needs it to be {starts}")
        if target is None:  # reopen
            return LeadStatus.CONTACTED if self.ever_contacted else LeadStatus.NEW
        return target

    def contact(self, by: str) -> None:
        self.check_transition("contact")
        self._contacted(by=by)

    @event("Contacted")
    def _contacted(self, by: str) -> None:
        self.status = LeadStatus.CONTACTED
        self.ever_contacted = True

    def qualify(self, by: str) -> None:
        self.check_transition("qualify")
        self._qualified(by=by)

    @event("Qualified")
    def _qualified(self, by: str) -> None:
        self.status = LeadStatus.QUALIFIED

    def disqualify(self, reason: Any, by: str) -> None:
        self.check_transition("disqualify")
        self._disqualified(reason=normalise_reason(reason), previous_status=self.status.value, by=by)

    @event("Disqualified")
    def _disqualified(self, reason: str, previous_status: str, by: str) -> None:
        self.status = LeadStatus.DISQUALIFIED
        self.disqualified_reason = reason

    def reopen(self, by: str) -> None:
        self._reopened(status=self.check_transition("reopen").value, by=by)

    @event("Reopened")
    def _reopened(self, status: str, by: str) -> None:
        self.status = LeadStatus(status)
        self.disqualified_reason = None

    # -- activities -------------------------------------------------------------------------

    def activity(self, activity_id: UUID | str) -> Activity | None:
        wanted = str(activity_id)
        return next((found for found in self.activities if found.id == wanted), None)

    def log_activity(self, activity_id: UUID, kind: Any, at: Any, note: Any, by: str) -> tuple[Activity, bool]:
        """Logs an activity; returns (activity, logged). An id already logged returns that
        activity (a repeated request), provided it is the same one (else InvalidField)."""
        clean_kind, clean_at, clean_note = parse_activity_kind(kind), parse_activity_time(at), normalise_note(note)
        existing = self.activity(activity_id)
        if existing is not None:
            if (existing.kind, existing.at, existing.note) != (clean_kind, clean_at, clean_note):
                raise Conflict("Idempotency-Key was already used for a different activity")
            return existing, False
        if self.status == LeadStatus.MERGED:
            raise FailedPrecondition(f"lead {self.id} is merged into {self.merged_into}; "
                                     "log activities on that lead")
        self._activity_logged(activity_id=str(activity_id), kind=clean_kind.value,
                              at=clean_at.isoformat(), note=clean_note, by=by,
                              logged_at=datetime.now(UTC).isoformat())
        return self.activities[-1], True

    @event("ActivityLogged")
    def _activity_logged(self, activity_id: str, kind: str, at: str, note: str, by: str,
                         logged_at: str) -> None:
        self.activities.append(Activity(
            id=activity_id, kind=ActivityKind(kind), at=datetime.fromisoformat(at), note=note,
            logged_by=by, logged_at=datetime.fromisoformat(logged_at), seq=len(self.activities) + 1))

    # -- changes ------------------------------------------------------------------------------

    def editable_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in EDITABLE_FIELDS}

    def differences(self, changes: Mapping[str, Any], default_region: str = "US") -> dict[str, Any]:
        """The given fields, validated, that differ from the lead's (an unknown field, or one
        PATCH may not change, is refused by name)."""
        rules = _edit_rules(default_region)
        unknown = sorted(set(changes) - set(rules))
        if unknown:
            raise InvalidField(unknown[0], "is not a field of a lead that can be changed; "
                                           f"use: {', '.join(EDITABLE_FIELDS)}")
        clean = {name: rules[name](value) for name, value in changes.items()}
        if clean.get("phone") is None and "phone" in clean:
            clean["phone"] = ""  # no phone is the empty string, as at capture
        if clean.get("company") is None and "company" in clean:
            clean["company"] = ""
        return {name: value for name, value in clean.items() if value != getattr(self, name)}

    def change(self, changes: Mapping[str, Any], by: str, default_region: str = "US") -> list[str]:
        """Applies the given fields; returns the names of those that changed (none: no event)."""
        if self.status in (LeadStatus.CONVERTED, LeadStatus.MERGED):
            raise FailedPrecondition(f"lead {self.id} is {self.status.value}; it can no longer be changed")
        differences = self.differences(changes, default_region)
        if not differences:
            return []
        changed = [name for name in EDITABLE_FIELDS if name in differences]
        self._changed(**{**self.editable_state(), **differences}, changed_fields=changed, by=by)
        return changed

    @event("Changed")
    def _changed(self, name: str, phone: str, company: str, title: str | None,
                 industry: str | None, company_size: int | None, country: str | None,
                 follow_up_on: str | None, changed_fields: list[str], by: str) -> None:
        self.name = name
        self.phone = phone
        self.company = company
        self.title = title
        self.industry = industry
        self.company_size = company_size
        self.country = country
        self.follow_up_on = follow_up_on

    # -- scoring ------------------------------------------------------------------------------

    def facts(self) -> LeadFacts:
        return LeadFacts.of(email=self.email, channel=self.channel.value, industry=self.industry,
                            company_size=self.company_size, title=self.title, country=self.country,
                            activities=[activity.kind.value for activity in self.activities])

    def rescore(self, rule_set: RuleSet, rule_set_version: int) -> bool:
        """Scores the lead by `rule_set`; returns True when its score or grade changed (a
        Scored event). Reasons that changed alone are a ScoreExplained event; nothing that
        changed, no event: rescoring again is a no-op."""
        result = score(rule_set, self.facts())
        reasons = _reasons(result)
        if (result.points, result.grade.value) != (self.score, self.grade.value if self.grade else None):
            self._scored(score=result.points, grade=result.grade.value, reasons=reasons,
                         rule_set_version=rule_set_version, previous_score=self.score,
                         previous_grade=self.grade.value if self.grade else None)
            return True
        if reasons != self.score_reasons:
            self._score_explained(reasons=reasons, rule_set_version=rule_set_version)
        return False

    @event("Scored")
    def _scored(self, score: int, grade: str, reasons: list[dict[str, Any]], rule_set_version: int,
                previous_score: int | None, previous_grade: str | None) -> None:
        self.score = score
        self.grade = Grade(grade)
        self.score_reasons = reasons
        self.rule_set_version = rule_set_version

    @event("ScoreExplained")
    def _score_explained(self, reasons: list[dict[str, Any]], rule_set_version: int) -> None:
        self.score_reasons = reasons
        self.rule_set_version = rule_set_version

    # -- duplicates, merge and conversion (crm_leads.merging, crm_leads.conversion) ------------
    # Class defaults, so that leads recorded before these existed replay as they were.
    duplicate_of: str | None = None  # the earliest open lead it matched when captured
    matched_on: str | None = None  # "email" or "phone"
    merged_into: str | None = None  # the lead that survived the merge of this one
    account_id: str | None = None  # conversion: the account named, then the one joined
    contact_id: str | None = None
    account_linked: bool = False  # sales reported the account the contact joined

    def mark_duplicate(self, duplicate_of: str, matched_on: str) -> None:
        """Records that an open lead with the same email or phone was there first."""
        if matched_on not in MATCHED_ON:
            raise ValueError(f"matched_on must be one of {MATCHED_ON}")
        if str(self.id) == duplicate_of:
            raise ValueError("a lead is not a duplicate of itself")
        self._duplicate_detected(duplicate_of=duplicate_of, matched_on=matched_on)

    @event("DuplicateDetected")
    def _duplicate_detected(self, duplicate_of: str, matched_on: str) -> None:
        self.duplicate_of = duplicate_of
        self.matched_on = matched_on

    def merge(self, duplicate: Lead, by: str) -> MergeGains:
        """Merges `duplicate` into this lead (MERGE_RULES): this lead gains the other's
        activities and the fields it lacks; the other ends merged into this one. Both record
        one event; the caller saves both in one transaction."""
        check_merge(self, duplicate)
        gains = merge_gains(self, duplicate)
        self._duplicate_merged(
            merged_lead_id=str(duplicate.id), fields=dict(gains.fields),
            activities=[_activity_state(activity) for activity in gains.activities], by=by)
        duplicate._merged_into(survivor_id=str(self.id), previous_status=duplicate.status.value, by=by)
        return gains

    @event("DuplicateMerged")
    def _duplicate_merged(self, merged_lead_id: str, fields: dict[str, Any],
                          activities: list[dict[str, Any]], by: str) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        for state in activities:
            self.activities.append(Activity(
                id=state["id"], kind=ActivityKind(state["kind"]), at=datetime.fromisoformat(state["at"]),
                note=state["note"], logged_by=state["logged_by"],
                logged_at=datetime.fromisoformat(state["logged_at"]), seq=len(self.activities) + 1))
        if self.duplicate_of == merged_lead_id:
            self.duplicate_of = self.matched_on = None  # it is this lead now

    @event("MergedInto")
    def _merged_into(self, survivor_id: str, previous_status: str, by: str) -> None:
        self.status = LeadStatus.MERGED
        self.merged_into = survivor_id

    def convert(self, by: str, opportunity: OpportunityToOpen | None = None) -> tuple[str, str]:
        """Converts a qualified lead; returns the (account_id, contact_id) the sales service
        is to use, derived from the lead's id (conversion_ids). With `opportunity`, sales
        also opens that opportunity for the new customer."""
        self.check_transition("convert")
        account_id, contact_id = conversion_ids(self.id)
        amount = opportunity.amount if opportunity else None
        self._converted(account_id=str(account_id), contact_id=str(contact_id), name=self.name,
                        email=self.email, phone=self.phone, company=self.company, title=self.title,
                        industry=self.industry, company_size=self.company_size, country=self.country,
                        owner_id=self.owner_id, email_domain=email_domain_of(self.email), by=by,
                        opportunity_name=opportunity.name if opportunity else None,
                        opportunity_amount=amount.amount_text if amount else None,
                        opportunity_currency=amount.currency if amount else None)
        return str(account_id), str(contact_id)

    @event("Converted")
    def _converted(self, account_id: str, contact_id: str, name: str, email: str, phone: str,
                   company: str, title: str | None, industry: str | None, company_size: int | None,
                   country: str | None, owner_id: str | None, email_domain: str | None,
                   by: str, opportunity_name: str | None = None, opportunity_amount: str | None = None,
                   opportunity_currency: str | None = None) -> None:
        # The lead's details travel in the event: LeadConverted carries them to sales.
        self.status = LeadStatus.CONVERTED
        self.account_id = account_id
        self.contact_id = contact_id

    def link_account(self, account_id: str, contact_id: str, reused: bool) -> bool:
        """Records the account the lead's contact joined (sales' ContactAdded); returns
        False when that is already recorded. A contact this lead's conversion did not
        name is refused (FailedPrecondition)."""
        if self.status != LeadStatus.CONVERTED or self.contact_id != contact_id:
            raise FailedPrecondition(f"lead {self.id} is {self.status.value} and its conversion "
                                     f"named contact {self.contact_id}, not {contact_id}")
        if self.account_linked and self.account_id == account_id:
            return False
        self._account_linked(account_id=account_id, contact_id=contact_id, account_reused=reused)
        return True

    @event("AccountLinked")
    def _account_linked(self, account_id: str, contact_id: str, account_reused: bool) -> None:
        self.account_id = account_id
        self.account_linked = True


def _reasons(result: Score) -> list[dict[str, Any]]:
    return [reason.to_dict() for reason in result.reasons]


# -- merge rules (pure) -----------------------------------------------------------------------

MATCHED_ON = ("email", "phone")
# What a surviving lead takes from the merged one when it has no value of its own. Name and
# email are required, so never missing; the owner is the workflow's decision, the status the
# survivor's own, and neither moves.
MERGED_FIELDS = ("phone", "company", "title", "industry", "company_size", "country",
                 "follow_up_on", "campaign_id")
_CONVERSION_NAMESPACE = uuid5(NAMESPACE_URL, "crm:leads:conversion")


@dataclass(frozen=True)
class MergeGains:
    fields: Mapping[str, Any]  # name -> the merged lead's value, in MERGED_FIELDS order
    activities: tuple[Activity, ...]  # the merged lead's activities, in the order logged


def check_merge(survivor: Lead, duplicate: Lead) -> None:
    """The merge rules: two different leads, neither merged nor converted (the survivor may
    be open or disqualified, as may the merged lead: TRANSITIONS["merge"]). Else a
    FailedPrecondition naming the lead and its status."""
    if survivor.id == duplicate.id:
        raise FailedPrecondition(f"lead {survivor.id} cannot be merged into itself")
    allowed, _ = TRANSITIONS["merge"]
    if survivor.status not in allowed:
        starts = " or ".join(sorted(status.value for status in allowed))
        raise FailedPrecondition(f"lead {survivor.id} is {survivor.status.value}; "
                                 f"a merge needs the surviving lead to be {starts}")
    duplicate.check_transition("merge")


def _missing(value: Any) -> bool:
    return value is None or value == ""


def merge_gains(survivor: Lead, duplicate: Lead) -> MergeGains:
    fields = {name: getattr(duplicate, name) for name in MERGED_FIELDS
              if _missing(getattr(survivor, name)) and not _missing(getattr(duplicate, name))}
    known = {activity.id for activity in survivor.activities}
    return MergeGains(fields, tuple(a for a in duplicate.activities if a.id not in known))


def _activity_state(activity: Activity) -> dict[str, Any]:
    return {"id": activity.id, "kind": activity.kind.value, "at": activity.at.isoformat(),
            "note": activity.note, "logged_by": activity.logged_by,
            "logged_at": activity.logged_at.isoformat()}


def conversion_ids(lead_id: UUID | str) -> tuple[UUID, UUID]:
    """The account and contact ids a lead's conversion names: stable, derived from its id."""
    return (uuid5(_CONVERSION_NAMESPACE, f"account/{lead_id}"),
            uuid5(_CONVERSION_NAMESPACE, f"contact/{lead_id}"))


# -- campaigns ----------------------------------------------------------------------------------

CAMPAIGN_NAME_MAX = 200
_CAMPAIGN_NAMESPACE = uuid5(NAMESPACE_URL, "crm:leads:campaign")


@dataclass(frozen=True)
class CampaignDetails:
    name: str
    channel: Channel
    budget: Money
    starts_on: str  # ISO 8601 dates
    ends_on: str


def _campaign_date(field: str, raw: Any) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidField(field, "is required: an ISO 8601 date such as 2025-03-31")
    try:
        if len(raw.strip()) != 10:
            raise ValueError
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidField(field, f"{raw[:40]!r} is not an ISO 8601 date such as 2025-03-31") from None


def validate_campaign(name: Any, channel: Any, budget_amount: Any, budget_currency: Any,
                      starts_on: Any, ends_on: Any) -> CampaignDetails:
    if name is not None and not isinstance(name, str):
        raise InvalidField("name", "must be a string")
    clean_name = " ".join((name or "").split())
    if not clean_name:
        raise InvalidField("name", "is required")
    if len(clean_name) > CAMPAIGN_NAME_MAX:
        raise InvalidField("name", f"must be at most {CAMPAIGN_NAME_MAX} characters")
    check_text("name", clean_name)
    clean_channel = parse_channel(channel)
    budget = parse_money("budget", budget_amount, budget_currency)
    starts, ends = _campaign_date("starts_on", starts_on), _campaign_date("ends_on", ends_on)
    if ends < starts:
        raise InvalidField("ends_on", f"{ends.isoformat()} is before starts_on {starts.isoformat()}")
    return CampaignDetails(name=clean_name, channel=clean_channel, budget=budget,
                           starts_on=starts.isoformat(), ends_on=ends.isoformat())


def campaign_id_for(request_key: str | None) -> UUID:
    return uuid5(_CAMPAIGN_NAMESPACE, request_key) if request_key else uuid4()


class Campaign(Aggregate):
    """A marketing campaign leads are attributed to (campaign_id on a lead)."""

    @event("Launched")
    def __init__(self, id: UUID, name: str, channel: str, budget_amount: str,  # noqa: A002
                 budget_currency: str, starts_on: str, ends_on: str, launched_by: str):
        self.name = name
        self.channel = Channel(channel)
        self.budget = Money(Decimal(budget_amount), budget_currency)
        self.starts_on = starts_on
        self.ends_on = ends_on
        self.launched_by = launched_by

    @classmethod
    def launch(cls, details: CampaignDetails, campaign_id: UUID, launched_by: str) -> Campaign:
        return cls(id=campaign_id, name=details.name, channel=details.channel.value,
                   budget_amount=details.budget.amount_text, budget_currency=details.budget.currency,
                   starts_on=details.starts_on, ends_on=details.ends_on, launched_by=launched_by)

    def same_launch(self, details: CampaignDetails) -> bool:
        return (self.name, self.channel, self.budget, self.starts_on, self.ends_on) == (
            details.name, details.channel, details.budget, details.starts_on, details.ends_on)

# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Lead.Captured`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The leads query model: index tables of leads and campaigns, for lists and look-ups.

Built on the runtime's log index (crm_runtime.index): the tables follow the leads store's
notification log, with their position in the same transaction as the rows; the API
catches up at start, after each command and before each list. A capture writes a lead's
whole row; every later event patches the columns it changes (status, owner, fields).

- Leads are listed newest captured first: by `seq`, the position of the lead's capture in
  the log (unique and fixed, so a cursor is one number), with filters on status, owner,
  channel, campaign, grade, last change and `q` (name, email or company contains it,
  case-insensitive: a scan of the folded columns, fine for tens of thousands of
  leads; a trigram index is the next step beyond).
- `open_leads_matching(email, phone)` answers "open leads whose normalised email or E.164
  phone equals these", from indexed columns (`email_key`, `phone`): what de-duplication at
  the door asks on every capture.
- `score`, `grade` and `score_reasons` (JSON) come with the capture and are patched by
  `Scored` / `ScoreExplained`; they are null for leads captured before scoring existed,
  until they are scored.
- A lead's links (`duplicate_of`, `merged_into`, `account_id`, `contact_id`) are columns
  too, patched by the events of de-duplication, merge and conversion.

`python -m crm_leads.views rebuild` rebuilds the index of the configured store.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    or_,
    select,
)

from crm_leads.domain import ID_MAX, OPEN_STATUSES, Campaign, Lead, email_key
from crm_runtime.errors import InvalidField
from crm_runtime.index import (
    Change,
    Condition,
    LogIndex,
    Page,
    Patch,
    SortKey,
    Upsert,
    decode_cursor,
    encode_cursor,
    fold,
    like_pattern,
    one_owner,
    open_engine,
    page_of,
    position_table,
    rebuild_command,
    utc,
)
from crm_runtime.money import Money
from crm_runtime.settings import PlatformSettings

metadata = MetaData()
leads = Table(
    "leads_lead_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),  # the capture's log position
    Column("name", String, nullable=False),
    Column("email", String, nullable=False),
    Column("email_key", String, nullable=False),  # case-folded: duplicates
    Column("phone", String, nullable=False),  # E.164 or empty
    Column("company", String, nullable=False),
    Column("name_key", String, nullable=False),  # name and company folded: `q`
    Column("company_key", String, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("owner_id", String(ID_MAX)),
    Column("title", String),
    Column("industry", String),
    Column("company_size", Integer),
    Column("country", String(2)),
    Column("campaign_id", String(36)),
    Column("follow_up_on", String(10)),
    Column("grade", String(10)),
    Column("score", Integer),
    Column("score_reasons", Text),  # JSON: [{"rule_id", "description", "points"}]
    Column("disqualified_reason", String),
    Column("duplicate_of", String(36)),
    Column("merged_into", String(36)),
    Column("account_id", String(36)),
    Column("contact_id", String(36)),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("leads_lead_index_by_owner", "owner_id", "seq"),
    Index("leads_lead_index_by_status", "status", "seq"),
    Index("leads_lead_index_by_campaign", "campaign_id", "seq"),
    Index("leads_lead_index_by_update", "updated_at"),
    # The duplicate look-up: the earliest open lead with an email or phone (crm_leads.merging).
    Index("leads_lead_index_by_email_seq", "email_key", "seq"),
    Index("leads_lead_index_by_phone_seq", "phone", "seq"),
    Index("leads_lead_index_by_grade", "grade", "seq"),
)
campaigns = Table(
    "leads_campaign_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("name", String, nullable=False),
    Column("name_key", SortKey, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("budget_amount", String(40), nullable=False),  # a decimal string: exact
    Column("budget_currency", String(3), nullable=False),
    Column("starts_on", String(10), nullable=False),
    Column("ends_on", String(10), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("leads_campaign_index_by_name", "name_key", "id"),
)
positions = position_table(metadata, "leads_index_position")
POSITION_NAME = "leads-index"


# -- what queries answer ------------------------------------------------------------------

@dataclass(frozen=True)
class LeadRecord:
    id: str
    name: str
    email: str
    phone: str
    company: str
    channel: str
    status: str
    owner_id: str | None
    title: str | None
    industry: str | None
    company_size: int | None
    country: str | None
    campaign_id: str | None
    follow_up_on: str | None
    grade: str | None
    disqualified_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    score: int | None = None
    score_reasons: tuple[dict[str, Any], ...] = ()
    duplicate_of: str | None = None
    merged_into: str | None = None
    account_id: str | None = None
    contact_id: str | None = None

    @classmethod
    def of(cls, lead: Lead) -> LeadRecord:
        return cls(id=str(lead.id), name=lead.name, email=lead.email, phone=lead.phone,
                   company=lead.company, channel=lead.channel.value, status=lead.status.value,
                   owner_id=lead.owner_id, title=lead.title, industry=lead.industry,
                   company_size=lead.company_size, country=lead.country,
                   campaign_id=lead.campaign_id, follow_up_on=lead.follow_up_on,
                   grade=lead.grade.value if lead.grade else None,
                   disqualified_reason=lead.disqualified_reason, version=lead.version,
                   created_at=lead.created_on, updated_at=lead.modified_on,
                   score=getattr(lead, "score", None),
                   score_reasons=tuple(getattr(lead, "score_reasons", ())),
                   duplicate_of=lead.duplicate_of, merged_into=lead.merged_into,
                   account_id=lead.account_id, contact_id=lead.contact_id)

    @classmethod
    def of_row(cls, row: Any) -> LeadRecord:
        return cls(**{name: row[name] for name in _LEAD_FIELDS},
                   created_at=utc(row["created_at"]), updated_at=utc(row["updated_at"]),
                   score=row["score"], score_reasons=tuple(json.loads(row["score_reasons"] or "[]")))


_LEAD_FIELDS = ("id", "name", "email", "phone", "company", "channel", "status", "owner_id",
                "title", "industry", "company_size", "country", "campaign_id", "follow_up_on",
                "grade", "disqualified_reason", "version", "duplicate_of", "merged_into",
                "account_id", "contact_id")


@dataclass(frozen=True)
class CampaignRecord:
    id: str
    name: str
    channel: str
    budget: Money
    starts_on: str
    ends_on: str
    version: int
    created_at: datetime

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignRecord:
        return cls(id=str(campaign.id), name=campaign.name, channel=campaign.channel.value,
                   budget=campaign.budget, starts_on=campaign.starts_on, ends_on=campaign.ends_on,
                   version=campaign.version, created_at=campaign.created_on)


@dataclass(frozen=True)
class LeadQuery:
    """A list request, validated (crm_leads.application builds it)."""

    limit: int
    after: int | None = None  # the decoded cursor: the last lead's seq
    status: str | None = None
    owner_id: str | None = None
    channel: str | None = None
    campaign_id: str | None = None
    grade: str | None = None
    updated_since: datetime | None = None
    q: str | None = None


@dataclass(frozen=True)
class CampaignQuery:
    limit: int
    after: tuple[str, str] | None = None  # (name_key, id)
    channel: str | None = None


# -- the index ------------------------------------------------------------------------------

def rows_of(event: Any, position: int) -> Iterator[Change]:
    """The rows a leads event writes."""
    lead_id, version, at = str(event.originator_id), event.originator_version, utc(event.timestamp)
    if isinstance(event, Lead.Captured):
        yield Upsert(leads, {
            "id": lead_id, "seq": position, "name": event.name, "email": event.email,
            "email_key": email_key(event.email), "phone": event.phone, "company": event.company,
            "name_key": fold(event.name), "company_key": fold(event.company), "channel": event.channel,
            "status": "new", "owner_id": None, "title": getattr(event, "title", None),
            "industry": getattr(event, "industry", None),
            "company_size": getattr(event, "company_size", None),
            "country": getattr(event, "country", None),
            "campaign_id": getattr(event, "campaign_id", None), "follow_up_on": None,
            "grade": getattr(event, "grade", None), "score": getattr(event, "score", None),
            "score_reasons": _json(getattr(event, "score_reasons", None)),
            "disqualified_reason": None, "duplicate_of": None, "merged_into": None,
            "account_id": None, "contact_id": None, "version": version,
            "created_at": at, "updated_at": at}, keep=("id", "created_at", "seq"))
        return
    if isinstance(event, Campaign.Launched):
        yield Upsert(campaigns, {
            "id": lead_id, "name": event.name, "name_key": fold(event.name),
            "channel": event.channel, "budget_amount": event.budget_amount,
            "budget_currency": event.budget_currency, "starts_on": event.starts_on,
            "ends_on": event.ends_on, "version": version, "created_at": at, "updated_at": at})
        return
    values: dict[str, Any] = {"updated_at": at}
    if isinstance(event, Lead.Assigned):
        values["owner_id"] = event.owner_id
    elif isinstance(event, Lead.Contacted):
        values["status"] = "contacted"
    elif isinstance(event, Lead.Qualified):
        values["status"] = "qualified"
    elif isinstance(event, Lead.Disqualified):
        values.update(status="disqualified", disqualified_reason=event.reason)
    elif isinstance(event, Lead.Reopened):
        values.update(status=event.status, disqualified_reason=None)
    elif isinstance(event, Lead.Changed):
        values.update({name: getattr(event, name) for name in (
            "name", "phone", "company", "title", "industry", "company_size", "country", "follow_up_on")})
        values.update(name_key=fold(event.name), company_key=fold(event.company))
    elif isinstance(event, Lead.Scored):
        values.update(score=event.score, grade=event.grade, score_reasons=_json(event.reasons))
    elif isinstance(event, Lead.ScoreExplained):
        values.update(score_reasons=_json(event.reasons))
    elif isinstance(event, Lead.DuplicateDetected):
        values["duplicate_of"] = event.duplicate_of
    elif isinstance(event, Lead.DuplicateMerged):
        values.update(event.fields)
        if "company" in event.fields:
            values["company_key"] = fold(event.fields["company"])
        # A survivor that was the merged lead's duplicate is no longer anyone's.
        values["duplicate_of"] = case((leads.c.duplicate_of == event.merged_lead_id, None),
                                      else_=leads.c.duplicate_of)
    elif isinstance(event, Lead.MergedInto):
        values.update(status="merged", merged_into=event.survivor_id)
    elif isinstance(event, Lead.Converted):
        values.update(status="converted", account_id=event.account_id, contact_id=event.contact_id)
    elif isinstance(event, Lead.AccountLinked):
        values["account_id"] = event.account_id
    elif not isinstance(event, Lead.ActivityLogged):
        return  # an event of a kind the index does not follow
    yield Patch(leads, lead_id, version, values)


def _json(reasons: Any) -> str | None:
    return None if reasons is None else json.dumps(reasons, separators=(",", ":"))


class LeadsViews(LogIndex):
    def __init__(self, app: Application, engine: Any, serialised: bool = False):
        super().__init__(app, engine, metadata, positions, POSITION_NAME, rows_of, serialised)

    # -- queries --------------------------------------------------------------------------

    def list_leads(self, query: LeadQuery, only_owner: str | None) -> Page[LeadRecord]:
        owner = one_owner(query.owner_id, only_owner)
        if owner is False:
            return Page([], None)
        conditions: list[Condition] = []
        if owner is not None:
            conditions.append(leads.c.owner_id == owner)
        for name in ("status", "channel", "campaign_id", "grade"):
            value = getattr(query, name)
            if value is not None:
                conditions.append(leads.c[name] == value)
        if query.updated_since is not None:
            conditions.append(leads.c.updated_at >= utc(query.updated_since))
        if query.q:
            pattern = like_pattern(fold(query.q))
            conditions.append(or_(*(column.like(pattern, escape="\\") for column in (
                leads.c.name_key, leads.c.email_key, leads.c.company_key))))
        if query.after is not None:
            conditions.append(leads.c.seq < query.after)
        statement = (select(leads).where(*conditions).order_by(leads.c.seq.desc())
                     .limit(query.limit + 1))
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        seqs = {row["id"]: int(row["seq"]) for row in rows}
        items = [LeadRecord.of_row(row) for row in rows]
        return page_of(items, query.limit, lambda last: encode_cursor("lead", seqs[last.id]))

    def open_leads_matching(self, email: str | None, phone: str | None,
                            exclude: str | None = None) -> list[LeadRecord]:
        """Open leads whose normalised email or E.164 phone equals these, earliest first."""
        matches: list[Condition] = []
        if email:
            matches.append(leads.c.email_key == email_key(email))
        if phone:
            matches.append(leads.c.phone == phone)
        if not matches:
            return []
        conditions: list[Condition] = [or_(*matches),
                                       leads.c.status.in_(sorted(s.value for s in OPEN_STATUSES))]
        if exclude is not None:
            conditions.append(leads.c.id != exclude)
        statement = select(leads).where(and_(*conditions)).order_by(leads.c.seq)
        with self.read() as conn:
            return [LeadRecord.of_row(row) for row in conn.execute(statement).mappings()]

    def list_campaigns(self, query: CampaignQuery) -> Page[CampaignRecord]:
        conditions: list[Condition] = []
        if query.channel is not None:
            conditions.append(campaigns.c.channel == query.channel)
        if query.after is not None:
            key, record_id = query.after
            conditions.append(or_(campaigns.c.name_key > key,
                                  and_(campaigns.c.name_key == key, campaigns.c.id > record_id)))
        statement = (select(campaigns).where(*conditions)
                     .order_by(campaigns.c.name_key, campaigns.c.id).limit(query.limit + 1))
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [CampaignRecord(
            id=row["id"], name=row["name"], channel=row["channel"],
            budget=Money(Decimal(row["budget_amount"]), row["budget_currency"]),
            starts_on=row["starts_on"], ends_on=row["ends_on"], version=row["version"],
            created_at=utc(row["created_at"])) for row in rows]
        return page_of(items, query.limit,
                       lambda last: encode_cursor("campaign", fold(last.name), last.id))


def decode_lead_cursor(cursor: str) -> int:
    (seq,) = decode_cursor("lead", cursor, (int,))
    if not 0 <= seq < 2**63:
        raise InvalidField("cursor", "is not a cursor this list gave out; start again without one")
    return int(seq)


def decode_campaign_cursor(cursor: str) -> tuple[str, str]:
    key, record_id = decode_cursor("campaign", cursor, (str, str))
    return key, record_id


def open_views(app: Application, platform: PlatformSettings) -> LeadsViews:
    """The index of `app`'s store under these settings, its tables created."""
    engine, serialised = open_engine(platform, "leads_index")
    views = LeadsViews(app, engine, serialised=serialised)
    views.create_tables()
    return views


def main(argv: list[str] | None = None) -> int:
    """`python -m crm_leads.views rebuild`: drops the index and rebuilds it from the store."""
    return rebuild_command("leads", "crm_leads.views", argv)


if __name__ == "__main__":
    sys.exit(main())

# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Ticket.Opened`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The service desk's query model: index tables of tickets and SLA policies.

The machinery (following the store's notification log with a position written in the same
transaction as the rows, rows that only move forward in version, cursors) is the
runtime's (crm_runtime.index). `TicketOpened` writes a ticket's whole row; every later
ticket event carries the ticket's state after it (`snapshot`), so it patches the columns
that can change. A policy's row is its latest definition: choosing the policy of a new
ticket reads them all (policies are few).

Tickets list newest first (opened at, then id), paged with an opaque cursor. Two columns
hold the due times not yet met (`first_response_open_due`: the first response while it
runs; `resolution_open_due`: the resolution while it runs or is paused after its due
time), so `breached` (past an unmet due time now) is a condition on them at query time.
Knowledge-base articles (`servicedesk_article_index`) are searched with the store's own
full-text engine, kept in step with the article rows by the database itself (triggers), so
the rows and their search index change in the same transaction as the position:

- SQLite: an FTS5 table over the rows' title, body and tags (external content, its rowid
  the drafting event's log position `doc`), tokenised by `porter unicode61
  remove_diacritics 2` (case- and accent-insensitive, English stemming whatever the
  language); ranked by bm25 with the title weighted 10, tags 4 and the body 1.
- PostgreSQL: a `search` tsvector column (title weight A, tags B, body D) filled by a
  trigger with the text search configuration of the article's language (`search_config`:
  `english`, `german`, ... from the language subtag, `simple` for the others), with a GIN
  index; matched with `websearch_to_tsquery` and ranked by `ts_rank`. A search filtered by
  language uses that language's configuration as a constant (the GIN index applies); an
  unfiltered one parses the query per row with each row's configuration.

Both are created and dropped with the table (DDL events), so `rebuild` rebuilds them too.
The caller's text reaches the engine only as quoted plain terms
(crm_servicedesk.knowledge.search_terms). Searches page by (score, id), lists without a
query by drafting time, newest first.

`python -m crm_servicedesk.views rebuild` rebuilds the index from the store.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    cast,
    event,
    func,
    inspect,
    literal,
    literal_column,
    null,
    or_,
    select,
    table,
)
from sqlalchemy import (
    column as sql_column,
)
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR

from crm_runtime.index import (
    Change,
    LogIndex,
    Page,
    Patch,
    SortKey,
    Upsert,
    decode_cursor,
    encode_cursor,
    open_engine,
    page_of,
    position_table,
    rebuild_command,
    utc,
)
from crm_runtime.ownership import Scope, scope_condition
from crm_runtime.settings import PlatformSettings
from crm_servicedesk.domain import Policy, Ticket
from crm_servicedesk.knowledge import Article, primary_language
from crm_servicedesk.sla import SlaPolicy

metadata = MetaData()
tickets = Table(
    "servicedesk_ticket_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("subject", String, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("group_name", String(64)),
    Column("category", String(64)),
    Column("account_id", String(200)),
    Column("account_tier", String(64)),
    Column("requester_email", String),
    Column("assignee_id", String(200)),
    Column("escalation_level", Integer, nullable=False),
    Column("opened_by", String(200), nullable=False),
    Column("sla", Text, nullable=False),  # JSON: the SLA as the ticket answers it
    Column("first_response_open_due", DateTime(timezone=True)),
    Column("resolution_open_due", DateTime(timezone=True)),
    Column("opened_key", SortKey, nullable=False),  # opened at, UTC, fixed width: the order
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("servicedesk_ticket_index_by_opened", "opened_key", "id"),
    Index("servicedesk_ticket_index_by_status", "status", "opened_key", "id"),
    Index("servicedesk_ticket_index_by_assignee", "assignee_id", "opened_key", "id"),
    Index("servicedesk_ticket_index_by_group", "group_name", "opened_key", "id"),
    Index("servicedesk_ticket_index_by_fr_due", "first_response_open_due"),
    Index("servicedesk_ticket_index_by_res_due", "resolution_open_due"),
)
policies = Table(
    "servicedesk_policy_index", metadata,
    Column("id", SortKey, primary_key=True),  # the policy's name, e.g. "gold"
    Column("policy", Text, nullable=False),  # JSON, as PUT takes it
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
articles = Table(
    "servicedesk_article_index", metadata,
    Column("id", SortKey, primary_key=True),
    # The drafting event's position in the log: unique, never changes, the FTS5 rowid.
    Column("doc", BigInteger, nullable=False, unique=True),
    Column("title", String, nullable=False),
    Column("body", Text, nullable=False),
    Column("tags", String, nullable=False),  # "|billing|how-to|" (names never hold "|")
    Column("language", String(64), nullable=False),
    Column("search_config", String(32), nullable=False),  # PostgreSQL's text search configuration
    Column("status", String(16), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_key", SortKey, nullable=False),  # drafted at, UTC, fixed width: the order
    Column("published_at", DateTime(timezone=True)),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("servicedesk_article_index_by_created", "created_key", "id"),
    Index("servicedesk_article_index_by_status", "status", "created_key", "id"),
)
positions = position_table(metadata, "servicedesk_index_position")

ARTICLE_FTS = "servicedesk_article_fts"
_SQLITE_SEARCH = [
    f"""CREATE VIRTUAL TABLE {ARTICLE_FTS} USING fts5(title, body, tags,
        content='servicedesk_article_index', content_rowid='doc',
        tokenize='porter unicode61 remove_diacritics 2')""",
    f"""CREATE TRIGGER {ARTICLE_FTS}_inserted AFTER INSERT ON servicedesk_article_index BEGIN
        INSERT INTO {ARTICLE_FTS}(rowid, title, body, tags) VALUES (new.doc, new.title, new.body, new.tags);
    END""",
    f"""CREATE TRIGGER {ARTICLE_FTS}_deleted AFTER DELETE ON servicedesk_article_index BEGIN
        INSERT INTO {ARTICLE_FTS}({ARTICLE_FTS}, rowid, title, body, tags)
        VALUES ('delete', old.doc, old.title, old.body, old.tags);
    END""",
    f"""CREATE TRIGGER {ARTICLE_FTS}_updated AFTER UPDATE OF title, body, tags ON servicedesk_article_index BEGIN
        INSERT INTO {ARTICLE_FTS}({ARTICLE_FTS}, rowid, title, body, tags)
        VALUES ('delete', old.doc, old.title, old.body, old.tags);
        INSERT INTO {ARTICLE_FTS}(rowid, title, body, tags) VALUES (new.doc, new.title, new.body, new.tags);
    END""",
]
_POSTGRES_SEARCH = [
    "ALTER TABLE servicedesk_article_index ADD COLUMN search tsvector",
    """CREATE OR REPLACE FUNCTION servicedesk_article_search() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.search := setweight(to_tsvector(CAST(NEW.search_config AS regconfig), NEW.title), 'A')
            || setweight(to_tsvector(CAST(NEW.search_config AS regconfig), replace(NEW.tags, '|', ' ')), 'B')
            || setweight(to_tsvector(CAST(NEW.search_config AS regconfig), NEW.body), 'D');
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER servicedesk_article_search BEFORE INSERT OR UPDATE OF title, body, tags, search_config
        ON servicedesk_article_index FOR EACH ROW EXECUTE FUNCTION servicedesk_article_search()""",
    "CREATE INDEX servicedesk_article_index_search ON servicedesk_article_index USING gin (search)",
]
for _statement in _SQLITE_SEARCH:
    event.listen(articles, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
event.listen(articles, "before_drop", DDL(f"DROP TABLE IF EXISTS {ARTICLE_FTS}").execute_if(dialect="sqlite"))
for _statement in _POSTGRES_SEARCH:
    event.listen(articles, "after_create", DDL(_statement).execute_if(dialect="postgresql"))
_fts = table(ARTICLE_FTS, sql_column("rowid"))
_search_vector = literal_column("servicedesk_article_index.search", TSVECTOR)

# PostgreSQL's built-in text search configurations, by language subtag; others: simple.
SEARCH_CONFIGS = {"da": "danish", "nl": "dutch", "en": "english", "fi": "finnish", "fr": "french",
                  "de": "german", "hu": "hungarian", "it": "italian", "nb": "norwegian", "nn": "norwegian",
                  "no": "norwegian", "pt": "portuguese", "ro": "romanian", "ru": "russian", "es": "spanish",
                  "sv": "swedish", "tr": "turkish"}


def search_config(language: str) -> str:
    return SEARCH_CONFIGS.get(primary_language(language), "simple")


def tags_column(tags: list[str] | tuple[str, ...]) -> str:
    return "|" + "|".join(tags) + "|" if tags else ""
POSITION_NAME = "servicedesk-index"


@dataclass(frozen=True)
class TicketSummary:
    id: str
    subject: str
    channel: str
    status: str
    priority: str
    group: str | None
    category: str | None
    account_id: str | None
    account_tier: str | None
    requester_email: str | None
    assignee_id: str | None
    escalation_level: int
    opened_by: str
    sla: dict[str, Any]
    breached: bool
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TicketQuery:
    """A list request, validated (crm_servicedesk.application builds it)."""

    limit: int
    now: datetime
    after: tuple[str, str] | None = None
    status: str | None = None
    assignee_id: str | None = None
    group: str | None = None
    priority: str | None = None
    breached: bool | None = None
    # The visibility rule (crm_runtime.ownership): a sales_rep's own tickets; an agent's own,
    # their groups' and those assigned to them. None: every ticket.
    scope: Scope | None = None


@dataclass(frozen=True)
class ArticleSummary:
    id: str
    title: str
    excerpt: str  # the body's beginning, white space made single spaces
    tags: list[str]
    language: str
    status: str
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    score: float | None  # relevance to the search terms (higher is better); None in a plain list


@dataclass(frozen=True)
class ArticleQuery:
    """A list or search request, validated (crm_servicedesk.application builds it)."""

    limit: int
    terms: list[str] | None = None  # None: no search, a list newest first
    after: tuple[Any, str] | None = None
    status: str | None = None
    tag: str | None = None
    language: str | None = None
    only_published: bool = False  # the visibility rule: callers who do not edit articles


def opened_key(at: datetime) -> str:
    return utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def open_dues(sla: dict[str, Any]) -> dict[str, datetime | None]:
    """The due times not met yet (None: met, stopped, or paused before its due time)."""
    first, resolution = sla["first_response"], sla["resolution"]
    return {
        "first_response_open_due": _instant(first["due"]) if first["state"] == "running" else None,
        "resolution_open_due": (_instant(resolution["due"])
                                if resolution["state"] in ("running", "paused") else None),
    }


def _snapshot_columns(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {"status": snapshot["status"], "priority": snapshot["priority"], "group_name": snapshot["group"],
            "category": snapshot["category"], "account_tier": snapshot["account_tier"],
            "assignee_id": snapshot["assignee_id"], "escalation_level": snapshot["escalation_level"],
            "sla": json.dumps(snapshot["sla"]), **open_dues(snapshot["sla"])}


def rows_of(event: Any, position: int) -> Iterator[Change]:
    if isinstance(event, Ticket.Opened):
        yield Upsert(tickets, {
            "id": str(event.originator_id), "subject": event.subject, "channel": event.channel,
            "account_id": event.account_id, "requester_email": event.requester_email,
            "opened_by": event.opened_by, "opened_key": opened_key(event.at),
            "version": event.originator_version, "created_at": utc(event.at), "updated_at": utc(event.at),
            **_snapshot_columns(event.snapshot)})
    elif isinstance(event, Ticket.Event) and hasattr(event, "snapshot"):
        yield Patch(tickets, str(event.originator_id), event.originator_version,
                    {**_snapshot_columns(event.snapshot), "updated_at": utc(event.at)})
    elif isinstance(event, Article.Drafted):
        yield Upsert(articles, {
            "id": str(event.originator_id), "doc": position, "title": event.title, "body": event.body,
            "tags": tags_column(event.tags), "language": event.language,
            "search_config": search_config(event.language), "status": "draft", "created_by": event.by,
            "created_key": opened_key(event.at), "published_at": None, "version": event.originator_version,
            "created_at": utc(event.at), "updated_at": utc(event.at)},
            keep=("id", "created_at", "doc", "created_key"))
    elif isinstance(event, Article.Changed):
        yield Patch(articles, str(event.originator_id), event.originator_version, {
            "title": event.title, "body": event.body, "tags": tags_column(event.tags),
            "language": event.language, "search_config": search_config(event.language),
            "updated_at": utc(event.at)})
    elif isinstance(event, Article.Published):
        yield Patch(articles, str(event.originator_id), event.originator_version, {
            "status": "published", "published_at": utc(event.at), "updated_at": utc(event.at)})
    elif isinstance(event, Article.Archived):
        yield Patch(articles, str(event.originator_id), event.originator_version, {
            "status": "archived", "updated_at": utc(event.at)})
    elif isinstance(event, (Policy.Defined, Policy.Changed)):
        yield Upsert(policies, {
            "id": event.policy_id,
            "policy": json.dumps(event.policy), "version": event.originator_version,
            "created_at": utc(event.timestamp), "updated_at": utc(event.timestamp)})


class ServiceDeskViews(LogIndex):
    def __init__(self, app: Application, engine: Any, serialised: bool = False):
        super().__init__(app, engine, metadata, positions, POSITION_NAME, rows_of, serialised)

    def _outdated(self) -> bool:
        """Also outdated: an article table without its search (SQLite runs DDL outside a
        transaction, so a crash between the two creations could leave one without the
        other); the index is then dropped and rebuilt like any outdated one."""
        if super()._outdated():
            return True
        stored = inspect(self.engine)
        if not stored.has_table(articles.name):
            return False
        if self.engine.dialect.name == "sqlite":
            return not stored.has_table(ARTICLE_FTS)
        return "search" not in {c["name"] for c in stored.get_columns(articles.name)}

    def list_tickets(self, query: TicketQuery) -> Page[TicketSummary]:
        t = tickets.c
        conditions: list[ColumnElement[bool]] = []
        for column, value in ((t.status, query.status), (t.assignee_id, query.assignee_id),
                              (t.group_name, query.group), (t.priority, query.priority)):
            if value is not None:
                conditions.append(column == value)
        visible = scope_condition(query.scope, owner=t.opened_by, group=t.group_name, assignee=t.assignee_id)
        if visible is not None:
            conditions.append(visible)
        now = utc(query.now)
        if query.breached is True:
            conditions.append(or_(t.first_response_open_due <= now, t.resolution_open_due <= now))
        elif query.breached is False:
            conditions.append(and_(or_(t.first_response_open_due.is_(None), t.first_response_open_due > now),
                                   or_(t.resolution_open_due.is_(None), t.resolution_open_due > now)))
        if query.after is not None:
            key, ticket_id = query.after
            conditions.append(or_(t.opened_key < key, and_(t.opened_key == key, t.id < ticket_id)))
        statement = (select(tickets).where(*conditions)
                     .order_by(t.opened_key.desc(), t.id.desc()).limit(query.limit + 1))
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [_summary(row, now) for row in rows]
        return page_of(items, query.limit,
                       lambda last: encode_cursor("ticket", opened_key(last.created_at), last.id))

    def list_articles(self, query: ArticleQuery) -> Page[ArticleSummary]:
        """Articles matching the filters: by relevance to `terms` (best first), or without
        terms by drafting time, newest first."""
        a = articles.c
        conditions: list[ColumnElement[bool]] = []
        if query.status is not None:
            conditions.append(a.status == query.status)
        if query.only_published:
            conditions.append(a.status == "published")
        if query.tag is not None:
            conditions.append(a.tags.like(f"%|{_escape_like(query.tag)}|%", escape="\\"))
        if query.language is not None:  # RFC 4647 basic filtering: "en" matches en and en-GB
            conditions.append(or_(a.language == query.language,
                                  a.language.like(f"{_escape_like(query.language)}-%", escape="\\")))
        if query.terms is None:
            return self._newest(query, conditions)
        if not query.terms:
            return Page([], None)  # text without a single word: nothing can match it
        with self.read() as conn:
            dialect = conn.dialect.name
            scored = (self._sqlite_search(query, conditions) if dialect == "sqlite"
                      else self._postgres_search(query, conditions)).subquery()
            statement = select(scored)
            if query.after is not None:
                score, article_id = query.after
                statement = statement.where(or_(scored.c.score < score,
                                                and_(scored.c.score == score, scored.c.id > article_id)))
            statement = statement.order_by(scored.c.score.desc(), scored.c.id).limit(query.limit + 1)
            rows = conn.execute(statement).mappings().all()
        items = [_article(row) for row in rows]
        return page_of(items, query.limit,
                       lambda last: encode_cursor("article-search", last.score, last.id))  # type: ignore[arg-type]

    def _sqlite_search(self, query: ArticleQuery, conditions: list[ColumnElement[bool]]) -> Any:
        match = " ".join(f'"{term}"' for term in query.terms or ())  # quoted: plain terms, never syntax
        score = (-func.bm25(literal_column(ARTICLE_FTS), 10.0, 1.0, 4.0)).label("score")
        return (select(articles, score).select_from(_fts.join(articles, articles.c.doc == _fts.c.rowid))
                .where(literal_column(ARTICLE_FTS).op("MATCH")(literal(match)), *conditions))

    def _postgres_search(self, query: ArticleQuery, conditions: list[ColumnElement[bool]]) -> Any:
        text = " ".join(f'"{term}"' for term in query.terms or ())  # each a phrase of one word
        config = (literal(search_config(query.language)) if query.language is not None
                  else articles.c.search_config)
        tsquery = func.websearch_to_tsquery(cast(config, REGCONFIG), literal(text))
        score = cast(func.ts_rank(_search_vector, tsquery), Float).label("score")
        return select(articles, score).where(_search_vector.op("@@")(tsquery), *conditions)

    def _newest(self, query: ArticleQuery, conditions: list[ColumnElement[bool]]) -> Page[ArticleSummary]:
        a = articles.c
        if query.after is not None:
            key, article_id = query.after
            conditions = [*conditions, or_(a.created_key < key, and_(a.created_key == key, a.id < article_id))]
        statement = (select(articles, cast(null(), Float).label("score")).where(*conditions)
                     .order_by(a.created_key.desc(), a.id.desc()).limit(query.limit + 1))
        with self.read() as conn:
            rows = conn.execute(statement).mappings().all()
        items = [_article(row) for row in rows]
        return page_of(items, query.limit,
                       lambda last: encode_cursor("article", opened_key(last.created_at), last.id))

    def policies(self) -> list[SlaPolicy]:
        """Every defined policy (a redefined `default` among them)."""
        with self.read() as conn:
            rows = conn.execute(select(policies.c.id, policies.c.policy).order_by(policies.c.id)).all()
        return [SlaPolicy.parse(row.id, json.loads(row.policy)) for row in rows]


def _summary(row: Any, now: datetime) -> TicketSummary:
    dues = [row["first_response_open_due"], row["resolution_open_due"]]
    return TicketSummary(
        id=row["id"], subject=row["subject"], channel=row["channel"], status=row["status"],
        priority=row["priority"], group=row["group_name"], category=row["category"],
        account_id=row["account_id"], account_tier=row["account_tier"],
        requester_email=row["requester_email"], assignee_id=row["assignee_id"],
        escalation_level=row["escalation_level"], opened_by=row["opened_by"], sla=json.loads(row["sla"]),
        breached=any(due is not None and utc(due) <= now for due in dues), version=row["version"],
        created_at=utc(row["created_at"]), updated_at=utc(row["updated_at"]))


EXCERPT_MAX = 280


def _article(row: Any) -> ArticleSummary:
    body = " ".join(row["body"].split())
    return ArticleSummary(
        id=row["id"], title=row["title"],
        excerpt=body if len(body) <= EXCERPT_MAX else body[:EXCERPT_MAX - 1].rstrip() + "\u2026",
        tags=[tag for tag in row["tags"].split("|") if tag], language=row["language"], status=row["status"],
        created_by=row["created_by"], version=row["version"], created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        published_at=utc(row["published_at"]) if row["published_at"] is not None else None,
        score=row["score"])


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def decode_article_cursor(cursor: str, search: bool) -> tuple[Any, str]:
    """A list's cursor: (drafted-at key, id), or a search's (score, id)."""
    if search:
        score, article_id = decode_cursor("article-search", cursor, (float, str))
        return score, article_id
    key, article_id = decode_cursor("article", cursor, (str, str))
    return key, article_id


def decode_ticket_cursor(cursor: str) -> tuple[str, str]:
    key, ticket_id = decode_cursor("ticket", cursor, (str, str))
    return key, ticket_id


def open_views(app: Application, platform: PlatformSettings) -> ServiceDeskViews:
    engine, serialised = open_engine(platform, "servicedesk_index")
    views = ServiceDeskViews(app, engine, serialised=serialised)
    views.create_tables()
    return views


def main(argv: list[str] | None = None) -> int:
    """`python -m crm_servicedesk.views rebuild`: drops the index and rebuilds it from the store."""
    return rebuild_command("service-desk", "crm_servicedesk.views", argv)


if __name__ == "__main__":
    sys.exit(main())

"""The knowledge base: articles. Pure domain, no I/O, no clock reads (commands are given
the instant they happen at); a refused field is an `InvalidField` naming it.

An article has a title (one line), a body (multi-line text), tags (lower-case names, as a
ticket's) and a language (a BCP 47 tag, `language_tag`). Its life is one table,
`TRANSITIONS`:

    draft -> published -> archived      (archived: final, read-only)

A move the status does not allow is a FailedPrecondition naming the current status, and
records nothing. Drafts and published articles can be edited (`Changed` carries the
article's whole text after the change, so a downstream search index needs no other event);
an archived one cannot.

Search text is the caller's, and never a query language: `search_terms` keeps the words of
it (letters and digits, NFKC-normalised) and nothing else, so quotes, FTS operators
(`NEAR`, `*`, `-`, `OR`, `^`), NUL and other control characters are separators, never
syntax. The query model (crm_servicedesk.views) quotes each term for its store's engine.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.text import text_field
from crm_servicedesk.domain import MAX_TAGS, long_text
from crm_servicedesk.sla import check_name

TITLE_MAX = 250
ARTICLE_BODY_MAX = 32_000
LANGUAGE_MAX = 64
QUERY_MAX = 500
MAX_TERMS = 32
TERM_MAX = 64
_ARTICLE_NAMESPACE = uuid5(NAMESPACE_URL, "crm:servicedesk:article")


class ArticleStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


A = ArticleStatus
TRANSITIONS: dict[ArticleStatus, frozenset[ArticleStatus]] = {
    A.DRAFT: frozenset({A.PUBLISHED}),
    A.PUBLISHED: frozenset({A.ARCHIVED}),
    A.ARCHIVED: frozenset(),
}
EDITABLE = frozenset({A.DRAFT, A.PUBLISHED})


def parse_article_status(raw: object) -> ArticleStatus:
    try:
        return ArticleStatus(raw.strip().lower() if isinstance(raw, str) else str(raw))
    except ValueError:
        allowed = ", ".join(status.value for status in ArticleStatus)
        raise InvalidField("status", f"{str(raw)[:40]!r} is not one of: {allowed}") from None


# -- language tags (BCP 47, RFC 5646) ----------------------------------------------------------

_ALNUM = "[a-z0-9]"
_LANGTAG = re.compile(
    rf"""
    (?P<language>[a-z]{{2,3}}(?:-[a-z]{{3}}){{0,3}}|[a-z]{{4,8}})
    (?:-(?P<script>[a-z]{{4}}))?
    (?:-(?P<region>[a-z]{{2}}|[0-9]{{3}}))?
    (?P<variants>(?:-(?:{_ALNUM}{{5,8}}|[0-9]{_ALNUM}{{3}}))*)
    (?P<extensions>(?:-[0-9a-wy-z](?:-{_ALNUM}{{2,8}})+)*)
    (?P<private>-x(?:-{_ALNUM}{{1,8}})+)?
    """, re.VERBOSE)


def language_tag(field_name: str, raw: object) -> str:
    """A well-formed BCP 47 language tag (RFC 5646 `langtag`: language, extlang, script,
    region, variants, extensions, private use), in its conventional case: `en`, `en-GB`,
    `zh-Hant-TW`, `sr-Latn`, `de-CH-1996`. `_` is read as `-`. Whether the subtags are
    registered is not checked (no registry is bundled); their shape is."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidField(field_name, "is required: a BCP 47 language tag such as en, de-CH or zh-Hant")
    text = raw.strip().replace("_", "-").lower()
    found = _LANGTAG.fullmatch(text) if len(text) <= LANGUAGE_MAX and text.isascii() else None
    if found is None:
        raise InvalidField(field_name, f"{raw[:40]!r} is not a BCP 47 language tag (e.g. en, de-CH, zh-Hant)")
    parts = [found["language"]]
    if found["script"]:
        parts.append(found["script"].title())
    if found["region"]:
        parts.append(found["region"].upper())
    variants = [v for v in (found["variants"] or "").split("-") if v]
    if len(set(variants)) != len(variants):
        raise InvalidField(field_name, f"{raw[:40]!r} repeats a variant")
    parts.extend(variants)
    singletons = re.findall(r"(?:^|-)([0-9a-wy-z])(?=-)", found["extensions"] or "")
    if len(set(singletons)) != len(singletons):
        raise InvalidField(field_name, f"{raw[:40]!r} repeats an extension")
    tail = (found["extensions"] or "") + (found["private"] or "")
    return "-".join(parts) + tail


def primary_language(tag: str) -> str:
    """The language subtag of a tag: `de` of `de-CH-1996`."""
    return tag.split("-", 1)[0]


# -- search terms ---------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def search_terms(raw: object) -> list[str]:
    """The plain words of a caller's search text: letters, digits and `_` runs after NFKC
    normalisation, lower-cased, at most MAX_TERMS of them (each at most TERM_MAX characters),
    without repeats. Everything else separates words; nothing is syntax."""
    if raw is None:
        return []
    if not isinstance(raw, str):
        raise InvalidField("q", "must be a string")
    if len(raw) > QUERY_MAX:
        raise InvalidField("q", f"must be at most {QUERY_MAX} characters")
    terms: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", raw).casefold()):
        word = word.strip("_")[:TERM_MAX]
        if word and word not in terms:
            terms.append(word)
    return terms[:MAX_TERMS]


# -- articles ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArticleText:
    """An article's fields after validation."""

    title: str
    body: str
    tags: tuple[str, ...]
    language: str


def _tags(raw: Any) -> tuple[str, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list | tuple) or len(raw) > MAX_TAGS:
        raise InvalidField("tags", f"must be a list of at most {MAX_TAGS} names")
    return tuple(sorted({check_name(f"tags[{i}]", tag) for i, tag in enumerate(raw)}))


def validate_article(title: Any, body: Any, tags: Any, language: Any) -> ArticleText:
    return ArticleText(
        title=text_field("title", title, TITLE_MAX, required=True),  # type: ignore[arg-type]
        body=long_text("body", body, ARTICLE_BODY_MAX, required=True),
        tags=_tags(tags), language=language_tag("language", language))


def article_id_for(request_key: str | None) -> UUID:
    """The same idempotency key always names the same article; no key, a new article."""
    return uuid5(_ARTICLE_NAMESPACE, request_key) if request_key else uuid4()


class Article(Aggregate):
    """A knowledge-base article (module docstring)."""

    @event("Drafted")
    def __init__(self, id: UUID, title: str, body: str, tags: list[str], language: str,  # noqa: A002
                 by: str, at: datetime):
        self.title = title
        self.body = body
        self.tags = list(tags)
        self.language = language
        self.status = ArticleStatus.DRAFT
        self.created_by = by
        self.created_at = at
        self.updated_at = at
        self.published_at: datetime | None = None
        self.drafted = self.text()  # what a repeated drafting request is compared with

    @classmethod
    def draft(cls, text: ArticleText, article_id: UUID, by: str, at: datetime) -> Article:
        return cls(id=article_id, title=text.title, body=text.body, tags=list(text.tags),
                   language=text.language, by=by, at=at)

    def text(self) -> ArticleText:
        return ArticleText(self.title, self.body, tuple(self.tags), self.language)

    def same_draft(self, text: ArticleText) -> bool:
        """Whether a repeated drafting request (the same idempotency key) asks for this article."""
        return self.drafted == text

    # -- editing ---------------------------------------------------------------------------------

    def change(self, changes: dict[str, Any], by: str, at: datetime) -> bool:
        """Changes the given fields (title, body, tags, language; absent: unchanged); False
        (no event) when nothing changes. Archived articles are read-only."""
        unknown = set(changes) - {"title", "body", "tags", "language"}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidField(name, "is not a field of an article (title, body, tags, language)")
        if self.status not in EDITABLE:
            raise FailedPrecondition(f"article {self.id} is {self.status.value}; only draft and published "
                                     "articles can be changed")
        current = self.text()
        text = validate_article(changes.get("title", current.title), changes.get("body", current.body),
                                changes.get("tags", list(current.tags)), changes.get("language", current.language))
        if text == current:
            return False
        self._changed(title=text.title, body=text.body, tags=list(text.tags), language=text.language,
                      by=by, at=at)
        return True

    @event("Changed")
    def _changed(self, title: str, body: str, tags: list[str], language: str, by: str, at: datetime) -> None:
        self.title, self.body, self.tags, self.language = title, body, list(tags), language
        self.updated_at = at

    # -- status ----------------------------------------------------------------------------------

    def check_move(self, target: ArticleStatus) -> None:
        if target not in TRANSITIONS[self.status]:
            reach = ", ".join(sorted(s.value for s in TRANSITIONS[self.status])) or "nothing: it is final"
            raise FailedPrecondition(f"article {self.id} is {self.status.value}; it can move to {reach}, "
                                     f"not to {target.value}")

    def publish(self, by: str, at: datetime) -> None:
        self.check_move(A.PUBLISHED)
        self._published(by=by, at=at)

    @event("Published")
    def _published(self, by: str, at: datetime) -> None:
        self.status = A.PUBLISHED
        self.published_at = at
        self.updated_at = at

    def archive(self, by: str, at: datetime) -> None:
        self.check_move(A.ARCHIVED)
        self._archived(by=by, at=at)

    @event("Archived")
    def _archived(self, by: str, at: datetime) -> None:
        self.status = A.ARCHIVED
        self.updated_at = at

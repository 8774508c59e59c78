"""The knowledge base and satisfaction surveys: the pure rules (crm_servicedesk.knowledge,
crm_servicedesk.surveys) and the application on the in-memory store."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_runtime.auth import Principal
from crm_runtime.business_time import ManualClock
from crm_runtime.errors import FailedPrecondition, InvalidField, NotFound
from crm_runtime.settings import PlatformSettings
from crm_servicedesk.application import DraftArticle, ListArticles, OpenTicket, ServiceDeskApplication
from crm_servicedesk.knowledge import (
    Article,
    ArticleStatus,
    language_tag,
    search_terms,
    validate_article,
)
from crm_servicedesk.surveys import Survey, survey_id_for, token_digest

AT = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
AGENT = Principal("ann", frozenset({"agent"}))
REP = Principal("rep-ada", frozenset({"sales_rep"}))
MANAGER = Principal("boss", frozenset({"sales_manager"}))
TOKEN = "x" * 43


def article(**fields) -> Article:
    text = validate_article(fields.get("title", "Reset a password"), fields.get("body", "Open settings."),
                            fields.get("tags", ["accounts"]), fields.get("language", "en"))
    return Article.draft(text, uuid4(), "ann", AT)


# -- language tags ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw,tag", [
    ("en", "en"), ("EN-gb", "en-GB"), ("de_CH", "de-CH"), ("zh-hant-tw", "zh-Hant-TW"),
    ("sr-latn", "sr-Latn"), ("es-419", "es-419"), ("de-CH-1996", "de-CH-1996"),
    ("en-US-x-twain", "en-US-x-twain"), ("zh-yue-HK", "zh-yue-HK"), (" fr ", "fr"),
])
def test_language_tags_are_bcp_47_in_their_conventional_case(raw, tag):
    assert language_tag("language", raw) == tag


@pytest.mark.parametrize("raw", ["", "e", "englishlanguage", "en--GB", "en-GB-", "123", "en GB",
                                 "en-a", "de-1996-1996", "en-a-bbb-a-ccc", "ен", None, 7])
def test_malformed_language_tags_are_refused_naming_the_field(raw):
    with pytest.raises(InvalidField) as refused:
        language_tag("language", raw)
    assert refused.value.field == "language"


# -- search terms ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw,terms", [
    ('printer "on fire"', ["printer", "on", "fire"]),
    ('a* OR b NEAR(c d) -e ^f "', ["a", "or", "b", "near", "c", "d", "e", "f"]),
    ("nul\x00byte\x1b[31m", ["nul", "byte", "31m"]),
    ("Ｐｒｉｎｔｅｒ Café CAFÉ", ["printer", "café"]),
    ("'; DROP TABLE x; --", ["drop", "table", "x"]),
    ('""', []), ("   ", []),
])
def test_search_text_becomes_plain_words(raw, terms):
    assert search_terms(raw) == terms


def test_search_text_is_bounded():
    assert len(search_terms(" ".join(f"w{i}" for i in range(100)))) == 32
    assert search_terms("a" * 100) == ["a" * 64]
    with pytest.raises(InvalidField):
        search_terms("a" * 501)


@given(st.text(max_size=500))
def test_any_text_gives_words_without_quotes_or_operators(raw):
    for term in search_terms(raw):
        assert term and all(ch.isalnum() or ch == "_" for ch in term), term


# -- articles ------------------------------------------------------------------------------------

def test_an_article_is_drafted_published_and_archived_each_once():
    draft = article(tags=["how-to", "accounts", "accounts"])
    assert (draft.status, draft.tags, draft.language) == (ArticleStatus.DRAFT, ["accounts", "how-to"], "en")
    with pytest.raises(FailedPrecondition, match="is draft; it can move to published, not to archived"):
        draft.archive("ann", AT)
    draft.publish("ann", AT + timedelta(minutes=1))
    assert draft.status == ArticleStatus.PUBLISHED and draft.published_at == AT + timedelta(minutes=1)
    with pytest.raises(FailedPrecondition, match="is published; it can move to archived, not to published"):
        draft.publish("ann", AT)
    draft.archive("ann", AT)
    with pytest.raises(FailedPrecondition, match="is archived; it can move to nothing: it is final"):
        draft.publish("ann", AT)
    assert [type(e).__name__ for e in draft.collect_events()] == ["Drafted", "Published", "Archived"]


def test_changes_record_the_whole_text_and_nothing_when_nothing_changes():
    draft = article()
    assert not draft.change({"title": "  Reset a   password "}, "ann", AT)
    assert draft.change({"body": "Line one.\nLine two.", "language": "en-gb"}, "ann", AT)
    changed = draft.collect_events()[-1]
    assert (changed.title, changed.body, changed.tags, changed.language) == (
        "Reset a password", "Line one.\nLine two.", ["accounts"], "en-GB")
    assert draft.change({"tags": None}, "ann", AT) and draft.tags == []


@pytest.mark.parametrize("changes,field", [
    ({"title": ""}, "title"), ({"title": "a\u202eb"}, "title"), ({"body": None}, "body"),
    ({"body": "x" * 32_001}, "body"), ({"language": "en-abcdefghi"}, "language"),
    ({"tags": ["Not A Name"]}, "tags[0]"), ({"tags": ["a"] * 21}, "tags"), ({"status": "published"}, "status"),
])
def test_bad_changes_name_the_field_and_record_nothing(changes, field):
    draft = article()
    draft.collect_events()
    with pytest.raises(InvalidField) as refused:
        draft.change(changes, "ann", AT)
    assert refused.value.field == field
    assert draft.collect_events() == []


def test_an_archived_article_is_read_only():
    done = article()
    done.publish("ann", AT)
    done.archive("ann", AT)
    with pytest.raises(FailedPrecondition, match="is archived; only draft and published"):
        done.change({"title": "New"}, "ann", AT)


# -- surveys ---------------------------------------------------------------------------------------

def test_a_survey_is_named_by_its_token_digest_and_keeps_no_token():
    survey = Survey.request(uuid4(), 1, TOKEN, "ada@example.com", None, AT)
    assert survey.id == survey_id_for(TOKEN) != survey_id_for("y" * 43)
    (requested,) = survey.collect_events()
    assert requested.token == TOKEN  # the event carries it (it is published) ...
    assert TOKEN not in repr(vars(survey))  # ... the survey keeps none of it
    assert len(token_digest(TOKEN)) == 64
    for bad in ["", "short", "x" * 129, "has space" * 3, "ünïcode" * 3, None, 42]:
        with pytest.raises(NotFound):
            survey_id_for(bad)


def test_a_survey_takes_one_answer_with_a_rating_from_1_to_5():
    survey = Survey.request(uuid4(), 2, TOKEN, None, "contact-1", AT)
    for rating in (0, 6, -1, True, 4.5, "5", None):
        with pytest.raises(InvalidField, match="rating"):
            survey.answer(rating, None, AT)
    with pytest.raises(InvalidField, match="comment"):
        survey.answer(5, "bad\x00text", AT)
    survey.answer(5, "  Quick and kind. ", AT)
    assert (survey.rating, survey.comment, survey.answered_at) == (5, "Quick and kind.", AT)
    with pytest.raises(FailedPrecondition, match="a survey takes one answer"):
        survey.answer(1, None, AT)
    answered = survey.collect_events()[-1]
    assert (answered.ticket_id, answered.round, answered.rating) == (survey.ticket_id, 2, 5)


# -- the application -----------------------------------------------------------------------------

@pytest.fixture
def desk():
    return ServiceDeskApplication(PlatformSettings(store="memory"), ManualClock(AT))


def requested_surveys(app: ServiceDeskApplication, ticket_id) -> list:
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(start=1, limit=1000)]
    return [e for e in events if isinstance(e, Survey.Requested) and e.ticket_id == str(ticket_id)]


def test_drafts_are_invisible_to_those_who_do_not_edit_articles(desk):
    draft, created = desk.draft_article(DraftArticle("Printer jams", "Open tray two.", "en", caller=AGENT))
    assert created
    for who in (REP, MANAGER):
        with pytest.raises(NotFound):
            desk.get_article(draft.id, who)
        assert desk.list_articles(ListArticles(q="printer", caller=who)).items == []
    assert [a.id for a in desk.list_articles(ListArticles(q="printer", caller=AGENT)).items] == [str(draft.id)]
    desk.publish_article(draft.id, 1, AGENT)
    assert desk.get_article(draft.id, REP).status == ArticleStatus.PUBLISHED
    assert len(desk.list_articles(ListArticles(q="printer", caller=REP)).items) == 1
    assert desk.list_articles(ListArticles(q="printer", status="draft", caller=REP)).items == []


def test_solving_requests_a_survey_per_solve_each_answered_once(desk):
    ticket, _ = desk.open_ticket(OpenTicket("Printer", channel="email", requester_email="ada@example.com",
                                            caller=AGENT))
    desk.move_ticket(ticket.id, "solved", caller=AGENT)
    (first,) = requested_surveys(desk, ticket.id)
    assert (first.round, first.requester_email) == (1, "ada@example.com")
    assert len(first.token) >= 43
    desk.move_ticket(ticket.id, "reopened", caller=AGENT)
    desk.move_ticket(ticket.id, "solved", caller=AGENT)
    first, second = requested_surveys(desk, ticket.id)
    assert second.round == 2 and second.token != first.token
    answered = desk.answer_survey(second.token, 4, "Fine")
    assert (answered.ticket_id, answered.round, answered.rating) == (str(ticket.id), 2, 4)
    last = desk.recorder.max_notification_id()
    with pytest.raises(FailedPrecondition):
        desk.answer_survey(second.token, 5)
    with pytest.raises(InvalidField):
        desk.answer_survey(first.token, 9)
    with pytest.raises(NotFound):
        desk.answer_survey("z" * 43, 5)
    assert desk.recorder.max_notification_id() == last
    assert desk.answer_survey(first.token, 2).round == 1  # the earlier solve's survey, still open once


def test_an_index_without_its_search_table_is_rebuilt_when_opened(tmp_path):
    from sqlalchemy import text

    from crm_servicedesk.views import ARTICLE_FTS, ServiceDeskViews

    platform = PlatformSettings(store="sqlite", data_dir=tmp_path)
    app = ServiceDeskApplication(platform, ManualClock(AT))
    draft, _ = app.draft_article(DraftArticle("Printer jams", "Pull the sheet.", "en", caller=AGENT))
    with app.views.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {ARTICLE_FTS}"))  # as if a crash came between the creations
    views = ServiceDeskViews(app, app.views.engine)
    views.create_tables()
    views.catch_up()
    app._views = views
    assert [a.id for a in app.list_articles(ListArticles(q="printer", caller=AGENT)).items] == [str(draft.id)]

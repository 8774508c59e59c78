"""The knowledge base and satisfaction surveys over HTTP and gRPC, on SQLite (FTS5) and
PostgreSQL (tsvector): ranked search with filters and cursors, hostile search text, drafts
invisible to those who do not edit articles, PATCH with If-Match, the status table, and
survey tokens answered once without a bearer token."""

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from fastapi.testclient import TestClient
from google.protobuf.field_mask_pb2 import FieldMask

from crm.servicedesk.v1 import servicedesk_pb2, servicedesk_pb2_grpc, types_pb2
from crm_runtime import http
from crm_runtime.business_time import ManualClock
from crm_servicedesk.adapters.grpc import registrations
from crm_servicedesk.adapters.http import routers
from crm_servicedesk.application import ServiceDeskApplication
from crm_servicedesk.surveys import Survey
from tests.conftest import TOKENS, bearer, grpc_auth
from tests.grpc_harness import refused, serve_and_call

PROBLEM = "application/problem+json"
AGENT = bearer("agent", subject="ann")
REP = bearer("sales_rep", subject="rep-ada")
ANALYST = bearer("analyst", subject="ana")
AT = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
HOSTILE = ['"', '""', "'", "printer\"", 'printer" OR "1"="1', "NEAR(printer jam)", "printer*", "-printer",
           "^printer", "printer AND", "OR", "(", ")", "{title}: printer", "title:printer", "printer\x00jam",
           "\x00", "\\", "%", "_", "&|!:*", "printer & jam | !x", "<->", "'; DROP TABLE servicedesk_article_index; --",
           "\u202eprinter", "🖨️ printer", "a" * 500]


@pytest.fixture
def clock():
    return ManualClock(AT)


@pytest.fixture
def desk(any_platform, clock):
    return ServiceDeskApplication(any_platform, clock)


@pytest.fixture
def client(desk):
    api = http.create_app("service-desk", "1", checks={"store": desk.check_store}, tokens=TOKENS)
    for router in routers(desk):
        api.include_router(router)
    with TestClient(api, headers=AGENT) as test_client:
        yield test_client


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    return response.json()


def draft(client, clock=None, **fields) -> dict:
    body = {"title": "Untitled", "body": "Nothing yet.", "tags": [], "language": "en", **fields}
    response = client.post("/v1/articles", json=body)
    assert response.status_code == 201, response.text
    if clock is not None:
        clock.advance(timedelta(seconds=1))
    return response.json()


def publish(client, article: dict) -> dict:
    response = client.post(f"/v1/articles/{article['id']}/publish")
    assert response.status_code == 200, response.text
    return response.json()


def titles(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


# -- articles ------------------------------------------------------------------------------------

def test_search_ranks_title_matches_above_body_matches_and_filters(client, clock):
    body_only = publish(client, draft(client, clock, title="Network basics", tags=["network"],
                                      body="When the printer is offline, check the cable. The printer "
                                           "needs power, and the printer needs paper."))
    in_title = publish(client, draft(client, clock, title="Printer jams", tags=["hardware", "how-to"],
                                     body="Open tray two and pull the sheet out gently."))
    publish(client, draft(client, clock, title="Drucker einrichten", language="de-CH", tags=["hardware"],
                          body="Den Drucker anschliessen und einschalten."))
    publish(client, draft(client, clock, title="Invoices", body="Download them as PDF.", tags=["billing"]))
    found = client.get("/v1/articles", params={"q": "printer"}).json()["items"]
    assert [item["id"] for item in found] == [in_title["id"], body_only["id"]]
    assert found[0]["score"] > found[1]["score"] > 0
    assert found[0]["excerpt"] == "Open tray two and pull the sheet out gently."
    assert titles(client.get("/v1/articles", params={"q": "PRINTERS jam"})) == ["Printer jams"]  # any case, stems
    assert titles(client.get("/v1/articles", params={"q": "printer", "tag": "network"})) == ["Network basics"]
    assert titles(client.get("/v1/articles", params={"q": "drucker", "language": "de"})) == ["Drucker einrichten"]
    assert titles(client.get("/v1/articles", params={"q": "printer", "language": "de"})) == []
    assert titles(client.get("/v1/articles", params={"tag": "hardware", "language": "en"})) == ["Printer jams"]
    assert titles(client.get("/v1/articles", params={"tag": "how-to"})) == ["Printer jams"]
    # no q: newest first; a blank q is no search
    assert titles(client.get("/v1/articles")) == titles(client.get("/v1/articles", params={"q": " "})) == [
        "Invoices", "Drucker einrichten", "Printer jams", "Network basics"]
    # search pages by (score, id)
    first = client.get("/v1/articles", params={"q": "printer", "limit": 1}).json()
    assert [i["title"] for i in first["items"]] == ["Printer jams"] and first["next_cursor"]
    second = client.get("/v1/articles", params={"q": "printer", "limit": 1, "cursor": first["next_cursor"]}).json()
    assert [i["title"] for i in second["items"]] == ["Network basics"] and second["next_cursor"] is None
    for params, field in (({"cursor": first["next_cursor"]}, "cursor"), ({"language": "not a tag"}, "language"),
                          ({"tag": "Not A Tag"}, "tag"), ({"status": "gone"}, "status")):
        assert problem_of(client.get("/v1/articles", params=params), 422)["errors"][0]["field"] == field


def test_hostile_search_text_is_plain_terms_and_never_fails(client, clock):
    publish(client, draft(client, clock, title="Printer jams", body="Pull the sheet.", tags=["hardware"]))
    publish(client, draft(client, clock, title="Paper", body="The printer jam guide is elsewhere."))
    for text in HOSTILE:
        response = client.get("/v1/articles", params={"q": text})
        assert response.status_code == 200, (text, response.text)
    assert titles(client.get("/v1/articles", params={"q": 'printer" OR "1"="1'})) == []  # AND of its words
    assert titles(client.get("/v1/articles", params={"q": "printer*"})) == ["Printer jams", "Paper"]
    assert titles(client.get("/v1/articles", params={"q": "printer\x00jam"})) == ["Printer jams", "Paper"]
    assert titles(client.get("/v1/articles", params={"q": "NEAR(printer jam)"})) == []  # "near" is a word
    assert problem_of(client.get("/v1/articles", params={"q": "a" * 501}), 422)["errors"][0]["field"] == "q"


def test_drafts_and_archived_articles_are_for_those_who_edit_articles(client, desk):
    article = draft(client, title="Printer recall", body="Not public yet.")
    for who in (REP, ANALYST):
        problem_of(client.get(f"/v1/articles/{article['id']}", headers=who), 404)
        assert titles(client.get("/v1/articles", params={"q": "printer"}, headers=who)) == []
        assert titles(client.get("/v1/articles", params={"status": "draft"}, headers=who)) == []
        problem_of(client.post("/v1/articles", json={"title": "x", "body": "y", "language": "en"}, headers=who), 403)
        problem_of(client.post(f"/v1/articles/{article['id']}/publish", headers=who), 403)
    assert titles(client.get("/v1/articles", params={"status": "draft"})) == ["Printer recall"]
    publish(client, article)
    assert client.get(f"/v1/articles/{article['id']}", headers=REP).json()["status"] == "published"
    assert titles(client.get("/v1/articles", params={"q": "printer"}, headers=REP)) == ["Printer recall"]
    assert client.post(f"/v1/articles/{article['id']}/archive").json()["status"] == "archived"
    problem_of(client.get(f"/v1/articles/{article['id']}", headers=REP), 404)
    assert titles(client.get("/v1/articles", params={"q": "printer"}, headers=REP)) == []
    assert titles(client.get("/v1/articles", params={"q": "printer", "status": "archived"})) == ["Printer recall"]


def test_patch_needs_if_match_and_the_status_table_holds(client, desk):
    created = client.post("/v1/articles", headers={"Idempotency-Key": "kb-1"}, json={
        "title": "Reset a password", "body": "Open settings.", "tags": ["accounts"], "language": "EN-gb"})
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    article = created.json()
    assert (article["language"], article["status"], article["published_at"]) == ("en-GB", "draft", None)
    again = client.post("/v1/articles", headers={"Idempotency-Key": "kb-1"}, json={
        "title": "Reset a password", "body": "Open settings.", "tags": ["accounts"], "language": "en-GB"})
    assert again.status_code == 200 and again.json()["id"] == article["id"]
    problem_of(client.post("/v1/articles", headers={"Idempotency-Key": "kb-1"}, json={
        "title": "Other", "body": "Open settings.", "language": "en"}), 409)
    url = f"/v1/articles/{article['id']}"
    problem_of(client.patch(url, json={"title": "Resetting a password"}), 428)
    problem_of(client.patch(url, json={"title": "x"}, headers={"If-Match": '"7"'}), 409)
    last = desk.recorder.max_notification_id()
    for body, field in (({"title": "a\u202eb"}, "title"), ({"language": "xx-"}, "language"),
                        ({"tags": ["not a name"]}, "tags[0]"), ({"status": "published"}, "status")):
        assert problem_of(client.patch(url, json=body, headers={"If-Match": '"1"'}), 422)["errors"][0]["field"] == field
    assert desk.recorder.max_notification_id() == last
    changed = client.patch(url, json={"title": "Resetting a password", "tags": ["accounts", "security"]},
                           headers={"If-Match": '"1"'})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"', changed.text
    assert titles(client.get("/v1/articles", params={"q": "security"})) == ["Resetting a password"]
    problem = problem_of(client.post(f"{url}/archive"), 409)
    assert "is draft; it can move to published, not to archived" in problem["detail"]
    problem_of(client.post(f"{url}/publish", headers={"If-Match": '"1"'}), 409)  # stale
    assert client.post(f"{url}/publish", headers={"If-Match": '"2"'}).json()["published_at"] is not None
    problem = problem_of(client.post(f"{url}/publish"), 409)
    assert "is published" in problem["detail"]
    client.post(f"{url}/archive")
    problem = problem_of(client.patch(url, json={"body": "New."}, headers={"If-Match": '"4"'}), 409)
    assert "is archived" in problem["detail"]
    problem_of(client.get("/v1/articles/8f1c1c8e-0000-4000-8000-000000000000"), 404)


def test_the_index_is_rebuilt_with_its_search(client, desk, clock):
    publish(client, draft(client, clock, title="Printer jams", body="Pull the sheet."))
    publish(client, draft(client, clock, title="Paper", body="The printer guide."))
    before = client.get("/v1/articles", params={"q": "printer"}).json()["items"]
    assert desk.views.rebuild() > 0
    assert client.get("/v1/articles", params={"q": "printer"}).json()["items"] == before


# -- surveys -------------------------------------------------------------------------------------

def requested(desk, ticket_id: str) -> list:
    events = [desk.mapper.to_domain_event(n) for n in desk.recorder.select_notifications(start=1, limit=1000)]
    return [e for e in events if isinstance(e, Survey.Requested) and e.ticket_id == ticket_id]


def test_a_survey_token_answers_once_without_a_bearer_token(client, desk):
    ticket = client.post("/v1/tickets", json={"subject": "Printer", "channel": "email",
                                              "requester": {"email": "ada@example.com"}}).json()
    assert client.post(f"/v1/tickets/{ticket['id']}/status", json={"status": "solved"}).status_code == 200
    (survey,) = requested(desk, ticket["id"])
    assert (survey.round, survey.requester_email) == (1, "ada@example.com")
    anonymous = {"Authorization": ""}
    last = desk.recorder.max_notification_id()
    for body in ({"rating": 0}, {"rating": 6}, {"rating": "5"}, {"rating": 4.5}, {"rating": 5, "extra": 1},
                 {"rating": 5, "comment": "x" * 2001}, {}):
        assert problem_of(client.post(f"/v1/surveys/{survey.token}", json=body, headers=anonymous), 422)["errors"]
    problem_of(client.post(f"/v1/surveys/{survey.token}", json={"rating": 5, "comment": "bad\x00"},
                           headers=anonymous), 422)
    problem_of(client.post("/v1/surveys/" + "q" * 43, json={"rating": 5}, headers=anonymous), 404)
    problem_of(client.post("/v1/surveys/not-a-token", json={"rating": 5}, headers=anonymous), 404)
    problem_of(client.post(f"/v1/surveys/{survey.token}", headers=anonymous,
                           content=b'{"rating": 5, "comment": "' + b"x" * 20_000 + b'"}'), 413)
    assert desk.recorder.max_notification_id() == last
    answered = client.post(f"/v1/surveys/{survey.token}", json={"rating": 5, "comment": "Quick!"}, headers=anonymous)
    assert answered.status_code == 201, answered.text
    assert {k: answered.json()[k] for k in ("ticket_id", "round", "rating", "comment")} == {
        "ticket_id": ticket["id"], "round": 1, "rating": 5, "comment": "Quick!"}
    last = desk.recorder.max_notification_id()
    problem = problem_of(client.post(f"/v1/surveys/{survey.token}", json={"rating": 1}, headers=anonymous), 409)
    assert "a survey takes one answer" in problem["detail"]
    assert desk.recorder.max_notification_id() == last
    # reopened and solved again: a new survey, about the second solve
    client.post(f"/v1/tickets/{ticket['id']}/status", json={"status": "reopened"})
    client.post(f"/v1/tickets/{ticket['id']}/status", json={"status": "solved"})
    first, second = requested(desk, ticket["id"])
    assert second.round == 2 and second.token != first.token
    assert client.post(f"/v1/surveys/{second.token}", json={"rating": 3}).json()["round"] == 2


# -- gRPC ----------------------------------------------------------------------------------------

def test_articles_and_surveys_over_grpc(desk, address):
    agent, rep = grpc_auth("agent", subject="ann"), grpc_auth("sales_rep", subject="rep-ada")
    S = servicedesk_pb2

    async def scenario(stub):
        detail = await refused(stub.DraftArticle(S.DraftArticleRequest(title="x", body="y", language="english!"),
                                                 metadata=agent), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("language:")
        await refused(stub.DraftArticle(S.DraftArticleRequest(title="x", body="y", language="en"), metadata=rep),
                      grpc.StatusCode.PERMISSION_DENIED)
        body_only = (await stub.DraftArticle(S.DraftArticleRequest(
            title="Network basics", body="If the printer is offline, check the cable.", language="en"),
            metadata=agent)).article
        drafted = await stub.DraftArticle(S.DraftArticleRequest(
            title="Printer jams", body="Pull the sheet.", tags=["hardware"], language="en", request_id="g-1"),
            metadata=agent)
        assert drafted.created and drafted.article.status == types_pb2.ARTICLE_STATUS_DRAFT
        article = drafted.article
        await refused(stub.GetArticle(S.GetArticleRequest(article_id=article.article_id), metadata=rep),
                      grpc.StatusCode.NOT_FOUND)
        await refused(stub.UpdateArticle(S.UpdateArticleRequest(
            article=S.Article(article_id=article.article_id, title="New"), update_mask=FieldMask(paths=["title"])),
            metadata=agent), grpc.StatusCode.INVALID_ARGUMENT)  # no expected_version
        await refused(stub.UpdateArticle(S.UpdateArticleRequest(
            article=S.Article(article_id=article.article_id), update_mask=FieldMask(paths=["status"]),
            expected_version=1), metadata=agent), grpc.StatusCode.INVALID_ARGUMENT)
        await refused(stub.UpdateArticle(S.UpdateArticleRequest(
            article=S.Article(article_id=article.article_id, title="New"), update_mask=FieldMask(paths=["title"]),
            expected_version=5), metadata=agent), grpc.StatusCode.ABORTED)
        changed = await stub.UpdateArticle(S.UpdateArticleRequest(
            article=S.Article(article_id=article.article_id, title="Printer jams and smears", tags=["paper"]),
            update_mask=FieldMask(paths=["title", "tags"]), expected_version=1), metadata=agent)
        assert (changed.version, changed.title, list(changed.tags), changed.body) == (
            2, "Printer jams and smears", ["paper"], "Pull the sheet.")
        await refused(stub.ArchiveArticle(S.ArchiveArticleRequest(article_id=article.article_id), metadata=agent),
                      grpc.StatusCode.FAILED_PRECONDITION)
        for one in (article, body_only):
            await stub.PublishArticle(S.PublishArticleRequest(article_id=one.article_id), metadata=agent)
        found = await stub.SearchArticles(S.SearchArticlesRequest(query='printer" NEAR(*', page_size=10),
                                          metadata=rep)
        assert found.articles == []
        found = await stub.SearchArticles(S.SearchArticlesRequest(query="printer"), metadata=rep)
        assert [a.title for a in found.articles] == ["Printer jams and smears", "Network basics"]
        assert found.articles[0].score > found.articles[1].score > 0
        page = await stub.SearchArticles(S.SearchArticlesRequest(query="printer", page_size=1), metadata=rep)
        rest = await stub.SearchArticles(S.SearchArticlesRequest(query="printer", page_token=page.next_page_token),
                                         metadata=rep)
        assert [a.title for a in rest.articles] == ["Network basics"] and not rest.next_page_token

        ticket = (await stub.CreateTicket(S.CreateTicketRequest(
            subject="Printer", channel=types_pb2.TICKET_CHANNEL_EMAIL, requester_email="ada@example.com"),
            metadata=agent)).ticket
        await stub.ChangeTicketStatus(S.ChangeTicketStatusRequest(
            ticket_id=ticket.state.ticket_id, status=types_pb2.TICKET_STATUS_SOLVED), metadata=agent)
        (survey,) = requested(desk, ticket.state.ticket_id)
        await refused(stub.AnswerSurvey(S.AnswerSurveyRequest(token=survey.token, rating=6)),
                      grpc.StatusCode.INVALID_ARGUMENT)
        await refused(stub.AnswerSurvey(S.AnswerSurveyRequest(token="nope" * 10, rating=5)),
                      grpc.StatusCode.NOT_FOUND)
        answer = await stub.AnswerSurvey(S.AnswerSurveyRequest(token=survey.token, rating=4, comment="Fine"))
        assert (answer.ticket_id, answer.round, answer.rating, answer.comment) == (
            ticket.state.ticket_id, 1, 4, "Fine")
        await refused(stub.AnswerSurvey(S.AnswerSurveyRequest(token=survey.token, rating=5)),
                      grpc.StatusCode.FAILED_PRECONDITION)

    serve_and_call(registrations(desk), servicedesk_pb2_grpc.ServiceDeskServiceStub, address, scenario)

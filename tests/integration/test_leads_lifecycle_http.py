"""The leads HTTP API on SQLite and PostgreSQL: the lifecycle, activities, PATCH with
If-Match, campaigns and their money, lists with filters and cursors, and the
record-visibility rule (a rep sees and works only the leads assigned to them)."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from crm_leads.adapters.http import routers
from crm_leads.application import AssignLead, LeadsApplication
from crm_runtime import http
from tests.conftest import TOKENS, bearer

PROBLEM = "application/problem+json"
ANN = bearer("sales_rep", subject="ann")
BOB = bearer("sales_rep", subject="bob")
BOSS = bearer("sales_manager", subject="boss")
ADA = {"name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "+44 20 7183 8750",
       "company": "Analytical Engines", "channel": "web"}
FAIR = {"name": "Spring fair", "channel": "event", "budget": {"amount": "5000.00", "currency": "EUR"},
        "starts_on": "2025-03-01", "ends_on": "2025-03-31"}


@pytest.fixture
def leads(any_platform):
    return LeadsApplication(any_platform)


@pytest.fixture
def client(leads):
    api = http.create_app("leads", "1", checks={"store": leads.check_store}, tokens=TOKENS)
    for router in routers(leads):
        api.include_router(router)
    with TestClient(api, headers=BOSS) as test_client:
        yield test_client


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    return body


def capture(client, **fields) -> dict:
    response = client.post("/v1/leads", json={**ADA, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def assigned(leads, lead: dict, owner: str) -> dict:
    leads.assign_lead(AssignLead(lead_id=lead["id"], owner_id=owner, idempotency_key=f"k-{uuid4()}"))
    return lead


def test_capture_with_the_new_fields_and_a_campaign(client, leads):
    campaign = client.post("/v1/campaigns", json=FAIR).json()
    lead = capture(client, title="CTO", industry="Machinery", company_size=120, country="gb",
                   campaign_id=campaign["id"])
    assert (lead["title"], lead["industry"], lead["company_size"], lead["country"]) == ("CTO", "Machinery", 120, "GB")
    assert lead["campaign_id"] == campaign["id"] and lead["status"] == "new"
    assert (lead["score"], lead["grade"], lead["score_reasons"]) == (0, "cold", [])
    stored = leads.recorder.max_notification_id()
    for change, field in [({"campaign_id": str(uuid4())}, "campaign_id"), ({"campaign_id": "nope"}, "campaign_id"),
                          ({"country": "Britain"}, "country"), ({"country": "XX"}, "country"),
                          ({"company_size": 0}, "company_size"), ({"company_size": "ten"}, "company_size"),
                          ({"channel": "fax"}, "channel"), ({"surprise": 1}, "surprise"),
                          ({"title": "CTO\u202e"}, "title")]:
        problem = problem_of(client.post("/v1/leads", json={**ADA, **change}), 422)
        assert problem["errors"][0]["field"] == field, problem
        if field == "campaign_id" and "does not exist" in problem["detail"]:
            assert change["campaign_id"] in problem["detail"]
    assert leads.recorder.max_notification_id() == stored  # nothing stored


def test_the_lifecycle_and_its_illegal_moves(client, leads):
    lead = assigned(leads, capture(client), "ann")
    lead_id = lead["id"]

    def post(action, headers=ANN, **kwargs):
        return client.post(f"/v1/leads/{lead_id}/{action}", headers=headers, **kwargs)

    for action in ("qualify", "reopen"):
        problem = problem_of(post(action), 409)
        assert "is new" in problem["detail"] and action in problem["detail"]
    contacted = post("contact")
    assert contacted.status_code == 200 and contacted.json()["status"] == "contacted"
    assert contacted.headers["ETag"] == f'"{contacted.json()["version"]}"'
    before = leads.recorder.max_notification_id()
    assert "is contacted" in problem_of(post("contact"), 409)["detail"]
    assert leads.recorder.max_notification_id() == before
    problem_of(post("qualify", headers={**ANN, "If-Match": '"1"'}), 409)  # stale: nothing happens
    assert post("qualify").json()["status"] == "qualified"
    problem_of(post("disqualify", json={}), 422)
    problem_of(post("disqualify", json={"reason": " "}), 422)
    gone = post("disqualify", json={"reason": "Chose a competitor"}).json()
    assert gone["status"] == "disqualified" and gone["disqualified_reason"] == "Chose a competitor"
    assert "is disqualified" in problem_of(post("contact"), 409)["detail"]
    back = post("reopen").json()
    assert back["status"] == "contacted" and back["disqualified_reason"] is None  # it had been contacted
    fresh = assigned(leads, capture(client, email="new@example.com"), "ann")
    client.post(f"/v1/leads/{fresh['id']}/disqualify", headers=ANN, json={"reason": "spam"})
    assert client.post(f"/v1/leads/{fresh['id']}/reopen", headers=ANN).json()["status"] == "new"


def test_a_rep_sees_and_works_only_their_leads(client, leads):
    ann_lead = assigned(leads, capture(client), "ann")
    bob_lead = assigned(leads, capture(client, email="bob-lead@example.com"), "bob")
    nobody = capture(client, email="nobody@example.com")
    lead_id = ann_lead["id"]
    before = leads.recorder.max_notification_id()
    problem_of(client.get(f"/v1/leads/{lead_id}", headers=BOB), 404)
    problem_of(client.post(f"/v1/leads/{lead_id}/contact", headers=BOB), 404)
    problem_of(client.patch(f"/v1/leads/{lead_id}", headers={**BOB, "If-Match": '"2"'}, json={"title": "X"}), 404)
    problem_of(client.post(f"/v1/leads/{lead_id}/activities", headers=BOB,
                           json={"kind": "call", "at": "2025-03-31T09:00:00Z"}), 404)
    problem_of(client.get(f"/v1/leads/{lead_id}/activities", headers=BOB), 404)
    assert leads.recorder.max_notification_id() == before
    assert client.get(f"/v1/leads/{lead_id}", headers=ANN).status_code == 200
    assert [item["id"] for item in client.get("/v1/leads", headers=ANN).json()["items"]] == [lead_id]
    assert client.get("/v1/leads?owner_id=bob", headers=ANN).json()["items"] == []
    everyone = {item["id"] for item in client.get("/v1/leads").json()["items"]}
    assert everyone == {ann_lead["id"], bob_lead["id"], nobody["id"]}


def test_patch_needs_the_version_and_changes_only_what_is_sent(client, leads):
    lead = assigned(leads, capture(client), "ann")
    url = f"/v1/leads/{lead['id']}"
    problem_of(client.patch(url, headers=ANN, json={"title": "CTO"}), 428)
    before = leads.recorder.max_notification_id()
    problem_of(client.patch(url, headers={**ANN, "If-Match": '"1"'}, json={"title": "CTO"}), 409)
    for body, field in [({"email": "x@example.com"}, "email"), ({"status": "qualified"}, "status"),
                        ({"follow_up_on": "31.03.2025"}, "follow_up_on"),
                        ({"follow_up_on": "2025-02-30"}, "follow_up_on"),
                        ({"phone": "12"}, "phone"), ({"name": None}, "name"), ({"country": "ZZ"}, "country")]:
        problem = problem_of(client.patch(url, headers={**ANN, "If-Match": '"2"'}, json=body), 422)
        assert problem["errors"][0]["field"] == field, problem
    assert leads.recorder.max_notification_id() == before  # nothing stored
    changed = client.patch(url, headers={**ANN, "If-Match": '"2"'},
                           json={"follow_up_on": "2025-04-01", "title": "CTO", "company_size": 50})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["follow_up_on"], body["title"], body["company_size"], body["version"]) == ("2025-04-01", "CTO", 50, 3)
    assert body["name"] == ADA["name"] and changed.headers["ETag"] == '"3"'
    cleared = client.patch(url, headers={**ANN, "If-Match": '"3"'}, json={"follow_up_on": None}).json()
    assert cleared["follow_up_on"] is None and cleared["title"] == "CTO"


def test_activities_are_logged_and_listed_by_time(client, leads):
    lead = assigned(leads, capture(client), "ann")
    url = f"/v1/leads/{lead['id']}/activities"
    times = ["2025-03-02T10:00:00+01:00", "2025-03-01T10:00:00Z", "2025-03-03T10:00:00-05:00"]
    for i, at in enumerate(times):
        response = client.post(url, headers={**ANN, "Idempotency-Key": f"a-{i}"},
                               json={"kind": "call", "at": at, "note": f"call {i}"})
        assert response.status_code == 201, response.text
    again = client.post(url, headers={**ANN, "Idempotency-Key": "a-0"},
                        json={"kind": "call", "at": times[0], "note": "call 0"})
    assert again.status_code == 200
    assert again.json()["at"].startswith("2025-03-02T09:00:00") and again.json()["logged_by"] == "ann"
    first = client.get(url + "?limit=2", headers=ANN).json()
    assert [a["note"] for a in first["items"]] == ["call 1", "call 0"] and first["next_cursor"]
    rest = client.get(url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=ANN).json()
    assert [a["note"] for a in rest["items"]] == ["call 2"] and rest["next_cursor"] is None
    before = leads.recorder.max_notification_id()
    for body, field in [({"kind": "fax", "at": times[0]}, "kind"),
                        ({"kind": "call", "at": "2025-03-01T10:00:00"}, "at"),
                        ({"kind": "call"}, "at"), ({"kind": "call", "at": times[0], "mood": "good"}, "mood")]:
        problem = problem_of(client.post(url, headers=ANN, json=body), 422)
        assert problem["errors"][0]["field"] == field, problem
    problem_of(client.get(url, params={"cursor": "bm9wZQ"}, headers=ANN), 422)
    assert leads.recorder.max_notification_id() == before


def test_campaigns_money_and_idempotency(client, leads):
    created = client.post("/v1/campaigns", json={**FAIR, "budget": {"amount": "1234.560", "currency": "EUR"}},
                          headers={"Idempotency-Key": "c-1"})
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["budget"] == {"amount": "1234.56", "currency": "EUR"}  # the currency's digits
    assert created.headers["Location"] == f"/v1/campaigns/{campaign['id']}"
    again = client.post("/v1/campaigns", json={**FAIR, "budget": {"amount": "1234.560", "currency": "EUR"}},
                        headers={"Idempotency-Key": "c-1"})
    assert again.status_code == 200 and again.json() == campaign
    problem_of(client.post("/v1/campaigns", json=FAIR, headers={"Idempotency-Key": "c-1"}), 409)
    assert client.get(f"/v1/campaigns/{campaign['id']}", headers=ANN).json() == campaign
    problem_of(client.get(f"/v1/campaigns/{uuid4()}"), 404)
    before = leads.recorder.max_notification_id()
    for change, field in [({"budget": {"amount": 5000.0, "currency": "EUR"}}, "budget.amount"),
                          ({"budget": {"amount": "5,000", "currency": "EUR"}}, "budget.amount"),
                          ({"budget": {"amount": "-1", "currency": "EUR"}}, "budget.amount"),
                          ({"budget": {"amount": "10", "currency": "EUX"}}, "budget.currency"),
                          ({"budget": {"amount": "10", "currency": "XAU"}}, "budget.currency"),
                          ({"budget": {"amount": "1234.565", "currency": "EUR"}}, "budget.amount"),
                          ({"budget": {"amount": "10", "currency": "eur"}}, "budget.currency"),
                          ({"ends_on": "2025-02-01"}, "ends_on"), ({"channel": "tv"}, "channel")]:
        problem = problem_of(client.post("/v1/campaigns", json={**FAIR, **change}), 422)
        assert problem["errors"][0]["field"] == field, problem
    problem_of(client.post("/v1/campaigns", json=FAIR, headers=ANN), 403)  # reps view campaigns only
    assert leads.recorder.max_notification_id() == before
    for i in range(3):
        client.post("/v1/campaigns", json={**FAIR, "name": f"Webinar {i}", "channel": "web"})
    page = client.get("/v1/campaigns?limit=2&channel=web").json()
    assert [c["name"] for c in page["items"]] == ["Webinar 0", "Webinar 1"]
    rest = client.get("/v1/campaigns", params={"limit": 2, "channel": "web", "cursor": page["next_cursor"]}).json()
    assert [c["name"] for c in rest["items"]] == ["Webinar 2"] and rest["next_cursor"] is None


def test_lists_filter_and_page(client, leads):
    campaign = client.post("/v1/campaigns", json=FAIR).json()
    start = datetime.now(UTC) - timedelta(seconds=1)
    made = []
    for i in range(5):
        made.append(capture(client, name=f"Lead {i}", email=f"lead{i}@example.com",
                            company="Globex" if i % 2 else "Initech", channel="web" if i < 3 else "email",
                            campaign_id=campaign["id"] if i == 4 else None, phone=None))
    assigned(leads, made[0], "ann")
    client.post(f"/v1/leads/{made[1]['id']}/contact")
    ids = lambda response: [item["id"] for item in response.json()["items"]]  # noqa: E731
    newest_first = [lead["id"] for lead in reversed(made)]
    first = client.get("/v1/leads?limit=2")
    assert ids(first) == newest_first[:2]
    second = client.get("/v1/leads", params={"limit": 2, "cursor": first.json()["next_cursor"]})
    third = client.get("/v1/leads", params={"limit": 2, "cursor": second.json()["next_cursor"]})
    assert ids(second) + ids(third) == newest_first[2:] and third.json()["next_cursor"] is None
    assert ids(client.get("/v1/leads?status=contacted")) == [made[1]["id"]]
    assert ids(client.get("/v1/leads?owner_id=ann")) == [made[0]["id"]]
    assert set(ids(client.get("/v1/leads?channel=email"))) == {made[3]["id"], made[4]["id"]}
    assert ids(client.get(f"/v1/leads?campaign_id={campaign['id']}")) == [made[4]["id"]]
    assert set(ids(client.get("/v1/leads?q=GLOBEX"))) == {made[1]["id"], made[3]["id"]}
    assert ids(client.get("/v1/leads?q=lead2@EXAMPLE")) == [made[2]["id"]]
    assert ids(client.get("/v1/leads?q=%25")) == []  # a wildcard is a character
    assert ids(client.get("/v1/leads?grade=hot")) == []  # nobody is scored yet
    since = client.get("/v1/leads", params={"updated_since": start.isoformat()})
    assert len(ids(since)) == 5
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert ids(client.get("/v1/leads", params={"updated_since": later})) == []
    for params, field in [({"status": "open"}, "status"), ({"grade": "lukewarm"}, "grade"),
                          ({"cursor": "bm9wZQ"}, "cursor"), ({"updated_since": "2025-01-01T00:00:00"}, "updated_since"),
                          ({"limit": 0}, "limit"), ({"campaign_id": "x"}, "campaign_id")]:
        problem = problem_of(client.get("/v1/leads", params=params), 422)
        assert problem["errors"][0]["field"] == field, problem


def test_open_leads_are_found_by_email_or_phone(client, leads):
    first = capture(client)
    second = capture(client, email="ADA@example.com", phone=None)
    capture(client, email="other@example.com", phone="+44 20 7183 8750")
    closed = capture(client, email="ada@EXAMPLE.com")
    client.post(f"/v1/leads/{closed['id']}/disqualify", json={"reason": "duplicate"})
    found = leads.open_leads_matching("ada@example.com", None)
    assert [lead.id for lead in found] == [first["id"], second["id"]]  # earliest first, open only
    by_phone = leads.open_leads_matching(None, "+442071838750", exclude=first["id"])
    assert [lead.email for lead in by_phone] == ["other@example.com"]
    assert leads.open_leads_matching(None, None) == []

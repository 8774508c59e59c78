"""The service-desk HTTP API on SQLite and PostgreSQL, with a manual clock: calendars and
their refusals, SLA policies, tickets opened with due times, pauses moving resolution_due,
the first response, the workflow's idempotent commands, lists with breached."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from crm_runtime import http
from crm_runtime.business_time import ManualClock
from crm_servicedesk.adapters.http import routers
from crm_servicedesk.application import ServiceDeskApplication
from tests.conftest import TOKENS, bearer

PROBLEM = "application/problem+json"
ADMIN = bearer("admin", subject="root")
AGENT = bearer("agent", subject="ann")
WORKFLOW = bearer("service", subject="service:workflow")
REP = bearer("sales_rep", subject="rep-ada")
OTHER_REP = bearer("sales_rep", subject="rep-bob")
MANAGER = bearer("sales_manager", subject="boss")
SUPPORT_AGENT = bearer("agent", subject="sam", groups=("support",))
FRIDAY_4PM = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
BERLIN = {"time_zone": "Europe/Berlin",
          "hours": {day: [["09:00", "12:00"], ["13:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
          "holidays": ["2026-12-25"]}
TARGETS = {"urgent": {"first_response": "PT1H", "resolution": "PT4H"},
           "high": {"first_response": "PT2H", "resolution": "PT8H"},
           "normal": {"first_response": "PT4H", "resolution": "PT16H"},
           "low": {"first_response": "PT8H", "resolution": "PT40H"}}
TICKET = {"subject": "Printer on fire", "description": "It smokes.\nPlease hurry.", "channel": "email",
          "priority": "urgent", "requester": {"email": "Ada@Example.com"}, "account_id": "acc-1",
          "account_tier": "enterprise", "category": "hardware", "tags": ["printer"], "group": "support"}


@pytest.fixture
def clock():
    return ManualClock(FRIDAY_4PM)


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


def utc(*args) -> str:
    return datetime(*args, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def same_instant(text: str | None, expected: str) -> bool:
    return text is not None and datetime.fromisoformat(text) == datetime.fromisoformat(expected)


def gold(client) -> None:
    assert client.put("/v1/calendars/berlin", json=BERLIN, headers=ADMIN).status_code == 201
    response = client.put("/v1/sla-policies/gold", headers=ADMIN, json={
        "calendar_id": "berlin", "targets": TARGETS, "applies_to": {"account_tier": ["enterprise"]},
        "warn_at_percent": 50, "escalation_steps": ["PT0S", "PT2H"]})
    assert response.status_code == 201, response.text


def open_ticket(client, headers=AGENT, **fields) -> dict:
    response = client.post("/v1/tickets", json={**TICKET, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


# -- calendars ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body,field", [
    ({**BERLIN, "hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "hours.mon[1]"),
    ({**BERLIN, "hours": {"tue": [["17:00", "09:00"]]}}, "hours.tue[0]"),
    ({**BERLIN, "time_zone": "Mars/Olympus_Mons"}, "time_zone"),
    ({**BERLIN, "holidays": ["2026-02-30"]}, "holidays[0]"),
    ({**BERLIN, "hours": {"someday": [["09:00", "17:00"]]}}, "hours.someday"),
    ({**BERLIN, "hours": {"mon": [["9am", "5pm"]]}}, "hours.mon[0]"),
])
def test_bad_calendars_are_422_naming_the_field_and_store_nothing(client, desk, body, field):
    problem = problem_of(client.put("/v1/calendars/berlin", json=body, headers=ADMIN), 422)
    assert problem["errors"][0]["field"] == field, problem
    assert field in problem["detail"]
    assert desk.recorder.max_notification_id() in (None, 0)
    problem_of(client.get("/v1/calendars/berlin"), 404)


def test_calendars_define_read_and_answer_due_and_elapsed(client):
    assert client.get("/v1/calendars/default").json()["hours"]["sun"] == [["00:00", "24:00"]]
    problem_of(client.put("/v1/calendars/berlin", json=BERLIN), 403)  # agents read calendars only
    created = client.put("/v1/calendars/berlin", json=BERLIN, headers=ADMIN)
    assert created.status_code == 201 and created.json()["time_zone"] == "Europe/Berlin"
    again = client.put("/v1/calendars/berlin", json={**BERLIN, "holidays": []}, headers=ADMIN)
    assert again.status_code == 200 and client.get("/v1/calendars/berlin").json()["holidays"] == []
    due = client.post("/v1/calendars/berlin/due", json={"start": "2026-03-06T16:00:00+01:00", "duration": "PT4H"})
    assert due.status_code == 200 and same_instant(due.json()["due"], utc(2026, 3, 9, 11))
    span = client.post("/v1/calendars/berlin/elapsed",
                       json={"start": "2026-03-06T16:00:00+01:00", "end": "2026-03-09T12:00:00+01:00"})
    assert span.json() == {"duration": "PT4H"}
    def refused(url, body):
        return problem_of(client.post(url, json=body), 422)["errors"][0]["field"]

    assert refused("/v1/calendars/berlin/due", {"start": "2026-03-06T16:00:00", "duration": "PT1H"}) == "start"
    assert refused("/v1/calendars/berlin/due", {"start": "2026-03-06T16:00:00Z", "duration": "P1M"}) == "duration"
    assert refused("/v1/calendars/berlin/elapsed", {"start": "2026-03-09T12:00:00Z",
                                                    "end": "2026-03-06T16:00:00Z"}) == "end"
    problem_of(client.post("/v1/calendars/nowhere/due",
                           json={"start": "2026-03-06T16:00:00Z", "duration": "PT1H"}), 404)


# -- policies ------------------------------------------------------------------------------------

def test_policies_define_list_and_refuse(client, desk):
    listed = client.get("/v1/sla-policies").json()["items"]
    assert [p["id"] for p in listed] == ["default"]
    assert listed[0]["targets"]["urgent"] == {"first_response": "PT1H", "resolution": "PT4H"}
    problem = problem_of(client.put("/v1/sla-policies/gold", headers=ADMIN, json={
        "calendar_id": "berlin", "targets": TARGETS}), 422)
    assert problem["errors"][0]["field"] == "calendar_id"
    problem = problem_of(client.put("/v1/sla-policies/gold", headers=ADMIN, json={
        "targets": {**TARGETS, "low": {"first_response": "PT8H", "resolution": "soon"}}}), 422)
    assert problem["errors"][0]["field"] == "targets.low.resolution"
    assert desk.recorder.max_notification_id() in (None, 0)
    gold(client)
    assert [p["id"] for p in client.get("/v1/sla-policies").json()["items"]] == ["default", "gold"]
    assert client.get("/v1/sla-policies/gold").json()["escalation_steps"] == ["PT0S", "PT2H"]
    problem_of(client.get("/v1/sla-policies/silver"), 404)


# -- tickets -------------------------------------------------------------------------------------

def test_a_ticket_opens_with_its_sla_due_times_and_honours_the_idempotency_key(client):
    gold(client)
    response = client.post("/v1/tickets", json=TICKET, headers={"Idempotency-Key": "mail-1"})
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert response.headers["Location"] == f"/v1/tickets/{ticket['id']}" and response.headers["ETag"] == '"1"'
    assert (ticket["status"], ticket["priority"], ticket["requester"]["email"]) == ("new", "urgent", "Ada@example.com")
    sla = ticket["sla"]
    assert (sla["policy_id"], sla["paused"], sla["warn_at_percent"], sla["escalation_steps"]) == \
        ("gold", False, 50, ["PT0S", "PT2H"])
    assert same_instant(sla["first_response_due"], utc(2026, 3, 6, 16))
    assert same_instant(sla["resolution_due"], utc(2026, 3, 9, 11))
    assert same_instant(sla["resolution"]["warn_at"], utc(2026, 3, 9, 9))
    assert ticket["assignee_id"] is None and ticket["escalation_level"] == 0 and not ticket["breached"]
    again = client.post("/v1/tickets", json=TICKET, headers={"Idempotency-Key": "mail-1"})
    assert again.status_code == 200 and again.json()["id"] == ticket["id"]
    problem_of(client.post("/v1/tickets", json={**TICKET, "subject": "Other"},
                           headers={"Idempotency-Key": "mail-1"}), 409)
    # Without a tier the default policy (24x7) applies.
    plain = open_ticket(client, account_tier=None, priority="high")
    assert plain["sla"]["policy_id"] == "default"
    assert same_instant(plain["sla"]["first_response_due"], utc(2026, 3, 6, 19))


@pytest.mark.parametrize("change,field", [
    ({"channel": "fax"}, "channel"), ({"priority": "asap"}, "priority"), ({"subject": " "}, "subject"),
    ({"requester": {}}, "requester"), ({"requester": {"email": "nope"}}, "email"),
    ({"tags": ["a b"]}, "tags[0]"), ({"surprise": 1}, "surprise")])
def test_bad_tickets_are_422_and_store_nothing(client, desk, change, field):
    problem = problem_of(client.post("/v1/tickets", json={**TICKET, **change}), 422)
    assert field in problem["errors"][0]["field"], problem
    assert desk.recorder.max_notification_id() in (None, 0)


def test_pending_pauses_and_resuming_moves_resolution_due(client, clock):
    gold(client)
    ticket = open_ticket(client)
    clock.advance(timedelta(minutes=30))  # Friday 16:30 Berlin
    pending = client.post(f"/v1/tickets/{ticket['id']}/status", json={"status": "pending"})
    assert pending.status_code == 200, pending.text
    sla = pending.json()["sla"]
    assert sla["paused"] and sla["resolution_due"] is None and sla["resolution"]["state"] == "paused"
    clock.set(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))  # Monday 10:00 Berlin
    resumed = client.post(f"/v1/tickets/{ticket['id']}/status", json={"status": "open"},
                          headers={"If-Match": '"2"'})
    sla = resumed.json()["sla"]
    assert not sla["paused"] and same_instant(sla["resolution_due"], utc(2026, 3, 9, 13, 30))
    problem_of(client.post(f"/v1/tickets/{ticket['id']}/status", json={"status": "open"},
                           headers={"If-Match": '"2"'}), 409)  # stale
    problem = problem_of(client.post(f"/v1/tickets/{ticket['id']}/status", json={"status": "closed"}), 409)
    assert "is open" in problem["detail"]


def test_priority_change_recomputes_due_times(client):
    gold(client)
    ticket = open_ticket(client, priority="low")
    changed = client.post(f"/v1/tickets/{ticket['id']}/priority", json={"priority": "high"})
    assert changed.status_code == 200 and changed.json()["priority"] == "high"
    assert same_instant(changed.json()["sla"]["first_response_due"], utc(2026, 3, 9, 9))
    assert same_instant(changed.json()["sla"]["resolution_due"], utc(2026, 3, 9, 16))


def test_the_first_public_agent_comment_is_the_first_response(client, clock):
    ticket = open_ticket(client)
    url = f"/v1/tickets/{ticket['id']}/comments"
    internal = client.post(url, json={"body": "Looking", "public": False})
    assert internal.status_code == 201 and not internal.json()["first_response"]
    relayed = client.post(url, json={"body": "Any news?", "public": True, "author_id": "ada@example.com"},
                          headers=WORKFLOW)
    assert not relayed.json()["first_response"]
    problem_of(client.post(url, json={"body": "x", "public": True, "author_id": "bob"}), 403)
    clock.advance(timedelta(minutes=10))
    first = client.post(url, json={"body": "We are on it", "public": True}, headers={"Idempotency-Key": "c1"})
    assert first.json()["first_response"]
    sla = first.json()["ticket"]["sla"]["first_response"]
    assert sla["state"] == "met" and same_instant(sla["met_at"], utc(2026, 3, 6, 15, 10))
    repeat = client.post(url, json={"body": "We are on it", "public": True}, headers={"Idempotency-Key": "c1"})
    assert repeat.json()["comment_id"] == first.json()["comment_id"] and not repeat.json()["first_response"]
    comments = client.get(url).json()["items"]
    assert [(c["public"], c["by_agent"]) for c in comments] == [(False, True), (True, False), (True, True)]


def test_assign_and_escalate_are_idempotent(client):
    ticket = open_ticket(client)
    url = f"/v1/tickets/{ticket['id']}"
    problem_of(client.post(f"{url}/assign", json={"assignee_id": "bob", "idempotency_key": "k1"}), 403)
    first = client.post(f"{url}/assign", json={"assignee_id": "bob", "idempotency_key": "k1"}, headers=WORKFLOW)
    assert first.json()["assignee_id"] == "bob" and first.json()["version"] == 2
    repeat = client.post(f"{url}/assign", json={"assignee_id": "carol", "idempotency_key": "k1"}, headers=WORKFLOW)
    assert repeat.json()["assignee_id"] == "bob" and repeat.json()["version"] == 2
    up = client.post(f"{url}/escalate", json={"level": 1, "idempotency_key": "e1"}, headers=WORKFLOW)
    assert up.json()["escalation_level"] == 1 and up.json()["version"] == 3
    again = client.post(f"{url}/escalate", json={"level": 1, "idempotency_key": "e1"}, headers=WORKFLOW)
    assert again.json()["version"] == 3


def test_lists_filter_page_and_compute_breached_now(client, clock):
    tickets = [open_ticket(client, priority="urgent", group="support", account_tier=None)]
    clock.advance(timedelta(minutes=1))
    tickets.append(open_ticket(client, priority="low", group="billing", account_tier=None))
    clock.advance(timedelta(minutes=1))
    tickets.append(open_ticket(client, priority="urgent", group="support", account_tier=None))
    client.post(f"/v1/tickets/{tickets[2]['id']}/assign", json={"assignee_id": "bob", "idempotency_key": "k"},
                headers=WORKFLOW)
    everything = client.get("/v1/tickets").json()
    assert [t["id"] for t in everything["items"]] == [t["id"] for t in reversed(tickets)]  # newest first
    first = client.get("/v1/tickets?limit=2").json()
    second = client.get(f"/v1/tickets?limit=2&cursor={first['next_cursor']}").json()
    assert [t["id"] for t in first["items"] + second["items"]] == [t["id"] for t in reversed(tickets)]
    assert second["next_cursor"] is None
    assert [t["id"] for t in client.get("/v1/tickets?group=billing").json()["items"]] == [tickets[1]["id"]]
    assert [t["id"] for t in client.get("/v1/tickets?assignee_id=bob").json()["items"]] == [tickets[2]["id"]]
    assert len(client.get("/v1/tickets?priority=urgent&status=new").json()["items"]) == 2
    assert client.get("/v1/tickets?breached=true").json()["items"] == []
    clock.advance(timedelta(minutes=61))  # both urgent first responses (1 h) are past due now
    breached = client.get("/v1/tickets?breached=true").json()["items"]
    assert {t["id"] for t in breached} == {tickets[0]["id"], tickets[2]["id"]} and all(t["breached"] for t in breached)
    assert [t["id"] for t in client.get("/v1/tickets?breached=false").json()["items"]] == [tickets[1]["id"]]
    # A first response meets the target: no longer breached.
    client.post(f"/v1/tickets/{tickets[0]['id']}/comments", json={"body": "Hi", "public": True})
    assert [t["id"] for t in client.get("/v1/tickets?breached=true").json()["items"]] == [tickets[2]["id"]]
    problem_of(client.get("/v1/tickets?cursor=garbage"), 422)
    problem_of(client.get("/v1/tickets?status=lost"), 422)


def test_sales_reps_see_the_tickets_they_opened(client):
    mine = open_ticket(client, headers=REP)
    open_ticket(client)
    assert [t["id"] for t in client.get("/v1/tickets", headers=REP).json()["items"]] == [mine["id"]]
    assert client.get("/v1/tickets", headers=OTHER_REP).json()["items"] == []
    problem_of(client.get(f"/v1/tickets/{mine['id']}", headers=OTHER_REP), 404)
    problem_of(client.post(f"/v1/tickets/{mine['id']}/status", json={"status": "open"}, headers=REP), 403)


def test_agents_see_and_change_only_their_groups_assigned_and_own_tickets(client, desk, clock):
    def ids(path: str, headers=SUPPORT_AGENT) -> list[str]:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    support = open_ticket(client, headers=WORKFLOW, group="support", account_tier=None)
    clock.advance(timedelta(minutes=1))
    billing = open_ticket(client, headers=WORKFLOW, group="billing", account_tier=None)
    clock.advance(timedelta(minutes=1))
    ungrouped = open_ticket(client, headers=WORKFLOW, group=None, account_tier=None)
    clock.advance(timedelta(minutes=1))
    handed = open_ticket(client, headers=WORKFLOW, group="billing", account_tier=None)
    client.post(f"/v1/tickets/{handed['id']}/assign", json={"assignee_id": "sam", "idempotency_key": "k"},
                headers=WORKFLOW)
    clock.advance(timedelta(minutes=1))
    forwarded = open_ticket(client, headers=SUPPORT_AGENT, group="billing", account_tier=None)  # opened by sam

    # Lists: the support group's, the one assigned to sam and the one sam opened, newest first.
    assert ids("/v1/tickets") == [forwarded["id"], handed["id"], support["id"]]
    first = client.get("/v1/tickets?limit=2", headers=SUPPORT_AGENT).json()
    rest = client.get(f"/v1/tickets?limit=2&cursor={first['next_cursor']}", headers=SUPPORT_AGENT).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == ids("/v1/tickets") and rest["next_cursor"] is None
    assert ids("/v1/tickets?group=billing") == [forwarded["id"], handed["id"]]  # filters narrow further
    assert ids("/v1/tickets?assignee_id=bob") == []
    everyone = [forwarded["id"], handed["id"], ungrouped["id"], billing["id"], support["id"]]
    assert ids("/v1/tickets", MANAGER) == everyone == ids("/v1/tickets", WORKFLOW) == ids("/v1/tickets", ADMIN)
    assert ids("/v1/tickets", bearer("agent", subject="sam")) == [forwarded["id"], handed["id"]]  # no groups
    both = bearer("agent", subject="sam", groups=("support", "billing"))
    assert ids("/v1/tickets", both) == [forwarded["id"], handed["id"], billing["id"], support["id"]]

    # Gets and commands: a ticket outside the rule is missing, and nothing is stored.
    for visible in (support, handed, forwarded):
        assert client.get(f"/v1/tickets/{visible['id']}", headers=SUPPORT_AGENT).status_code == 200
    stored = desk.recorder.max_notification_id()
    for hidden in (billing, ungrouped):
        url = f"/v1/tickets/{hidden['id']}"
        problem = problem_of(client.get(url, headers=SUPPORT_AGENT), 404)
        assert hidden["id"] in problem["detail"]
        problem_of(client.get(f"{url}/comments", headers=SUPPORT_AGENT), 404)
        problem_of(client.post(f"{url}/status", json={"status": "open"}, headers=SUPPORT_AGENT), 404)
        problem_of(client.post(f"{url}/priority", json={"priority": "low"}, headers=SUPPORT_AGENT), 404)
        problem_of(client.post(f"{url}/comments", json={"body": "Mine now", "public": True},
                               headers=SUPPORT_AGENT), 404)
        problem_of(client.post(f"{url}/sla/reapply", headers=SUPPORT_AGENT), 404)
        assert client.get(url, headers=MANAGER).json()["version"] == 1
    assert desk.recorder.max_notification_id() == stored
    moved = client.post(f"/v1/tickets/{support['id']}/status", json={"status": "open"}, headers=SUPPORT_AGENT)
    assert moved.status_code == 200 and moved.json()["status"] == "open"
    commented = client.post(f"/v1/tickets/{handed['id']}/comments", json={"body": "On it", "public": True},
                            headers=SUPPORT_AGENT)
    assert commented.status_code == 201 and commented.json()["first_response"]

    # Handed to someone else: no longer sam's.
    client.post(f"/v1/tickets/{handed['id']}/assign", json={"assignee_id": "bob", "idempotency_key": "k2"},
                headers=WORKFLOW)
    problem_of(client.get(f"/v1/tickets/{handed['id']}", headers=SUPPORT_AGENT), 404)
    assert ids("/v1/tickets") == [forwarded["id"], support["id"]]


def test_reapplying_the_sla_moves_open_tickets_to_a_new_policy(client):
    ticket = open_ticket(client)
    assert ticket["sla"]["policy_id"] == "default"
    gold(client)
    unchanged = client.get(f"/v1/tickets/{ticket['id']}").json()
    assert unchanged["sla"]["policy_id"] == "default"  # a new policy does not move open tickets
    moved = client.post(f"/v1/tickets/{ticket['id']}/sla/reapply").json()
    assert moved["sla"]["policy_id"] == "gold" and moved["version"] == 2
    assert same_instant(moved["sla"]["resolution_due"], utc(2026, 3, 9, 11))
    assert client.post(f"/v1/tickets/{ticket['id']}/sla/reapply").json()["version"] == 2

"""The sales HTTP API on SQLite and PostgreSQL: problem+json naming the field, If-Match,
idempotent creation, pagination with filters, and the record-visibility rule."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from crm_runtime import http
from crm_sales.adapters.http import routers
from crm_sales.application import SalesApplication
from crm_sales.domain import Account, validate_account
from tests.conftest import TOKENS, bearer

PROBLEM = "application/problem+json"
ANN = bearer("sales_rep", subject="ann")
BOB = bearer("sales_rep", subject="bob")
BOSS = bearer("sales_manager", subject="boss")
ACME = {"name": "Acme Corp", "domain": "Acme.Example", "industry": "Manufacturing",
        "region": "EMEA", "tier": "enterprise"}


@pytest.fixture
def sales(any_platform):
    return SalesApplication(any_platform)


@pytest.fixture
def client(sales):
    api = http.create_app("sales", "1", checks={"store": sales.check_store}, tokens=TOKENS)
    for router in routers(sales):
        api.include_router(router)
    with TestClient(api, headers=ANN) as test_client:
        yield test_client


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    return body


def create_account(client, headers=ANN, **fields) -> dict:
    response = client.post("/v1/accounts", json={**ACME, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def create_contact(client, account_id, headers=ANN, **fields) -> dict:
    response = client.post("/v1/contacts", json={"account_id": account_id, "name": "Ada Lovelace", **fields},
                           headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("change,field", [
    ({"name": " "}, "name"),
    ({"name": None}, "name"),
    ({"domain": "https://acme.example/about"}, "domain"),
    ({"domain": "acme"}, "domain"),
    ({"tier": "gold"}, "tier"),
    ({"region": "r" * 65}, "region"),
    ({"owner_id": "o" * 201}, "owner_id"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_accounts_are_problems_naming_the_field_and_store_nothing(client, sales, change, field):
    body = {**ACME, **change}
    if change.get("name", "") is None:
        del body["name"]
    problem = problem_of(client.post("/v1/accounts", json=body), 422)
    assert field in problem["detail"] and problem["errors"][0]["field"] == field
    assert sales.recorder.max_notification_id() in (None, 0)


def test_bad_contacts_are_problems_naming_the_field(client, sales):
    account = create_account(client)
    for change, field in [({"email": "not-an-email"}, "email"), ({"phone": "12345"}, "phone"),
                          ({"account_id": "nope"}, "account_id"),
                          ({"account_id": str(uuid4())}, "account_id"), ({"owner_id": "x"}, "owner_id")]:
        body = {"account_id": account["id"], "name": "Ada", **change}
        problem = problem_of(client.post("/v1/contacts", json=body), 422)
        assert problem["errors"][0]["field"] == field, problem
    assert sales.recorder.max_notification_id() == 1


def test_create_get_and_idempotency_key(client):
    first = client.post("/v1/accounts", json=ACME, headers={"Idempotency-Key": "crm-7"})
    assert first.status_code == 201
    account = first.json()
    assert account["domain"] == "acme.example" and account["owner_id"] == "ann" and account["version"] == 1
    assert first.headers["Location"] == f"/v1/accounts/{account['id']}"
    assert first.headers["ETag"] == '"1"'
    again = client.post("/v1/accounts", json=ACME, headers={"Idempotency-Key": "crm-7"})
    assert again.status_code == 200 and again.json() == account
    problem_of(client.post("/v1/accounts", json={**ACME, "tier": "smb"}, headers={"Idempotency-Key": "crm-7"}), 409)
    other = client.post("/v1/accounts", json=ACME, headers={**BOB, "Idempotency-Key": "crm-7"})
    assert other.status_code == 201 and other.json()["id"] != account["id"]
    fetched = client.get(f"/v1/accounts/{account['id']}")
    assert fetched.json() == account and fetched.headers["ETag"] == '"1"'

    contact = client.post("/v1/contacts", json={"account_id": account["id"], "name": "Ada",
                                                "email": "Ada@Example.COM", "phone": "+44 20 7183 8750"},
                          headers={"Idempotency-Key": "c-1"})
    assert contact.status_code == 201
    body = contact.json()
    assert (body["email"], body["phone"], body["owner_id"]) == ("Ada@example.com", "+442071838750", "ann")
    assert contact.headers["Location"] == f"/v1/contacts/{body['id']}"
    assert client.get(f"/v1/contacts/{body['id']}").json() == body


def test_the_owner_defaults_to_the_caller_and_a_manager_may_choose(client):
    problem = problem_of(client.post("/v1/accounts", json={**ACME, "owner_id": "bob"}), 403)
    assert "may not assign accounts" in problem["detail"]
    assert create_account(client, headers=BOSS, owner_id="bob")["owner_id"] == "bob"
    assert create_account(client, headers=BOSS)["owner_id"] == "boss"


def test_patch_changes_only_the_given_fields_at_the_given_version(client):
    account = create_account(client)
    path = f"/v1/accounts/{account['id']}"
    missing = problem_of(client.patch(path, json={"tier": "smb"}), 428)
    assert "If-Match" in missing["detail"]
    problem_of(client.patch(path, json={"tier": "smb"}, headers={"If-Match": "soon"}), 422)
    stale = problem_of(client.patch(path, json={"tier": "smb"}, headers={"If-Match": '"7"'}), 409)
    assert "version 1, not 7" in stale["detail"]
    changed = client.patch(path, json={"tier": "smb", "industry": None}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    after = changed.json()
    assert (after["tier"], after["industry"], after["version"]) == ("smb", None, 2)
    assert {k: after[k] for k in ("name", "domain", "region", "owner_id")} == \
        {k: account[k] for k in ("name", "domain", "region", "owner_id")}
    assert after["updated_at"] > account["updated_at"] and after["created_at"] == account["created_at"]
    problem_of(client.patch(path, json={"tier": "enterprise"}, headers={"If-Match": "1"}), 409)
    for body, field in [({"name": None}, "name"), ({"owner_id": None}, "owner_id"),
                        ({"colour": "red"}, "colour"), ({"domain": "acme"}, "domain")]:
        assert problem_of(client.patch(path, json=body, headers={"If-Match": "2"}), 422)["errors"][0]["field"] == field
    unchanged = client.patch(path, json={}, headers={"If-Match": "2"})
    assert unchanged.status_code == 200 and unchanged.json()["version"] == 2
    problem_of(client.patch(f"/v1/accounts/{uuid4()}", json={}, headers={"If-Match": "1"}), 404)

    contact = create_contact(client, account["id"], email="ada@example.com")
    contact_path = f"/v1/contacts/{contact['id']}"
    problem_of(client.patch(contact_path, json={"phone": "+1 202 555 0143"}), 428)
    moved = client.patch(contact_path, json={"phone": "+1 202 555 0143", "email": None},
                         headers={"If-Match": '"1"'})
    assert moved.status_code == 200
    assert (moved.json()["phone"], moved.json()["email"], moved.json()["version"]) == ("+12025550143", None, 2)


def test_a_rep_cannot_see_or_change_another_reps_records(client):
    anns = create_account(client, name="Ann's")
    bobs = create_account(client, headers=BOB, name="Bob's")
    bobs_contact = create_contact(client, bobs["id"], headers=BOB)
    for response in (client.get(f"/v1/accounts/{bobs['id']}"),
                     client.patch(f"/v1/accounts/{bobs['id']}", json={"name": "Mine"}, headers={"If-Match": "1"}),
                     client.get(f"/v1/contacts/{bobs_contact['id']}"),
                     client.patch(f"/v1/contacts/{bobs_contact['id']}", json={"name": "X"},
                                  headers={"If-Match": "1"})):
        assert "does not exist" in problem_of(response, 404)["detail"]
    problem_of(client.post("/v1/contacts", json={"account_id": bobs["id"], "name": "Eve"}), 422)
    assert [a["id"] for a in client.get("/v1/accounts").json()["items"]] == [anns["id"]]
    assert client.get("/v1/accounts", params={"owner_id": "bob"}).json()["items"] == []
    assert client.get("/v1/contacts").json()["items"] == []
    everything = client.get("/v1/accounts", headers=BOSS).json()["items"]
    assert {a["id"] for a in everything} == {anns["id"], bobs["id"]}
    analyst = bearer("analyst", subject="ana")
    assert client.get(f"/v1/accounts/{bobs['id']}", headers=analyst).status_code == 200
    problem_of(client.post("/v1/accounts", json=ACME, headers=analyst), 403)
    problem_of(client.get("/v1/accounts", headers={"Authorization": ""}), 401)


def test_lists_page_across_pages_with_filters(client):
    ids = {}
    for i in range(12):
        owner = BOB if i % 3 == 0 else ANN
        name = f"{'Acme' if i % 2 == 0 else 'Bolt'} {i:02d}"
        ids[name] = create_account(client, headers=BOSS, name=name,
                                   owner_id="bob" if owner is BOB else "ann")["id"]

    def every_page(path, headers=BOSS, **params):
        items, cursor, pages = [], None, 0
        while True:
            response = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})},
                                  headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                return items, pages

    items, pages = every_page("/v1/accounts", limit=5)
    assert [a["name"] for a in items] == sorted(ids) and pages == 3
    acme, pages = every_page("/v1/accounts", limit=2, name_prefix="aCmE")
    assert [a["name"] for a in acme] == sorted(n for n in ids if n.startswith("Acme")) and pages == 3
    bobs, _ = every_page("/v1/accounts", limit=1, owner_id="bob", name_prefix="acme")
    assert [a["name"] for a in bobs] == ["Acme 00", "Acme 06"]
    anns, _ = every_page("/v1/accounts", headers=ANN, limit=3)
    assert {a["owner_id"] for a in anns} == {"ann"} and len(anns) == 8

    cutoff = datetime.now(UTC)
    later = client.patch(f"/v1/accounts/{ids['Bolt 05']}", json={"region": "APAC"},
                         headers={**BOSS, "If-Match": "1"}).json()
    since, _ = every_page("/v1/accounts", limit=1, updated_since=cutoff.isoformat())
    assert [a["id"] for a in since] == [later["id"]]
    problem_of(client.get("/v1/accounts", params={"updated_since": "2025-01-01T00:00:00"}), 422)
    assert client.get("/v1/accounts", params={
        "updated_since": (cutoff + timedelta(hours=1)).isoformat()}).json()["items"] == []

    for name in ("Zed", "Ada", "Mo"):
        create_contact(client, ids["Acme 00"], headers=BOB, name=name)
    create_contact(client, ids["Bolt 01"], name="Kim")
    contacts, pages = every_page("/v1/contacts", limit=2)
    assert [c["name"] for c in contacts] == ["Ada", "Kim", "Mo", "Zed"] and pages == 2
    of_account, _ = every_page("/v1/contacts", limit=2, account_id=ids["Acme 00"])
    assert [c["name"] for c in of_account] == ["Ada", "Mo", "Zed"]
    assert {c["owner_id"] for c in of_account} == {"bob"}
    ann_sees, _ = every_page("/v1/contacts", headers=ANN)
    assert [c["name"] for c in ann_sees] == ["Kim"]


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"cursor": "bogus"}, "cursor"),
    ({"updated_since": "yesterday"}, "updated_since"), ({"account_id": "nope"}, "account_id"),
])
def test_bad_list_parameters_are_problems(client, params, field):
    path = "/v1/contacts" if "account_id" in params else "/v1/accounts"
    problem = problem_of(client.get(path, params=params), 422)
    assert problem["errors"][0]["field"] == field


def test_the_index_is_caught_up_when_the_api_starts(any_platform):
    writer = SalesApplication(any_platform)
    for i in range(3):  # saved straight to the store: nothing told the index
        writer.save(Account.open(validate_account(f"Early {i}", "ann"), uuid4(), opened_by="ann"))
    sales = SalesApplication(any_platform)
    api = http.create_app("sales", "1", checks={}, tokens=TOKENS)
    for router in routers(sales):
        api.include_router(router)
    with TestClient(api, headers=BOSS):
        assert sales.views.position() == writer.recorder.max_notification_id()
    # A list catches up with writes another process made meanwhile.
    writer.save(Account.open(validate_account("Late", "ann"), uuid4(), opened_by="ann"))
    with TestClient(api, headers=BOSS) as client:
        assert [a["name"] for a in client.get("/v1/accounts").json()["items"]] == \
            ["Early 0", "Early 1", "Early 2", "Late"]

"""The leads HTTP adapter: problem+json for bad input, nothing stored, honest readiness."""

import pytest
from fastapi.testclient import TestClient

from crm_leads.adapters.http import routers
from crm_leads.application import LeadsApplication
from crm_runtime import http
from crm_runtime.auth import TokenCodec
from crm_runtime.kafka_admin import KafkaProbe
from tests.conftest import TOKENS, bearer

GOOD = {"name": "Linus", "email": "linus@example.org", "phone": "+358 40 1234567",
        "company": "Kernel", "channel": "email"}


@pytest.fixture
def leads(sqlite_platform):
    return LeadsApplication(sqlite_platform)


@pytest.fixture
def client(leads):
    # Kafka here is a closed port: readiness must say so.
    api = http.create_app("leads", "1", checks={"store": leads.check_store,
                                                  "kafka": KafkaProbe("127.0.0.1:1").check},
                          tokens=TOKENS)
    for router in routers(leads):
        api.include_router(router)
    return TestClient(api, headers=bearer("sales_rep"))


@pytest.mark.parametrize("change,field", [
    ({"email": "not-an-email"}, "email"),
    ({"phone": "12345"}, "phone"),
    ({"name": " "}, "name"),
    ({"name": None}, "name"),
    ({"channel": "carrier-pigeon"}, "channel"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_input_is_a_problem_naming_the_field_and_stores_nothing(client, leads, change, field):
    body = {**GOOD, **change}
    if change.get("name", "") is None:
        del body["name"]
    response = client.post("/v1/leads", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and field in problem["detail"]
    assert problem["errors"][0]["field"] == field
    assert leads.recorder.max_notification_id() in (None, 0)


def test_malformed_json_is_a_problem_too(client):
    response = client.post("/v1/leads", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_capture_get_and_idempotency_key(client):
    first = client.post("/v1/leads", json=GOOD, headers={"Idempotency-Key": "abc"})
    assert first.status_code == 201
    lead = first.json()
    assert lead["phone"] == "+358401234567" and lead["status"] == "new"
    assert first.headers["Location"] == f"/v1/leads/{lead['id']}"
    again = client.post("/v1/leads", json=GOOD, headers={"Idempotency-Key": "abc"})
    assert again.status_code == 200 and again.json()["id"] == lead["id"]
    clash = client.post("/v1/leads", json={**GOOD, "name": "Other"}, headers={"Idempotency-Key": "abc"})
    assert clash.status_code == 409 and clash.headers["content-type"] == "application/problem+json"
    # The rep captured it, but sees only the leads assigned to them: this one is nobody's yet.
    assert client.get(f"/v1/leads/{lead['id']}").status_code == 404
    assert client.get(f"/v1/leads/{lead['id']}", headers=bearer("sales_manager")).json() == lead


def test_unknown_and_malformed_ids(client):
    missing = client.get("/v1/leads/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["title"] == "Not found"
    assert client.get("/v1/leads/nope").status_code == 422


def test_operations_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["store"] == "ok" and "unavailable" in ready.json()["checks"]["kafka"]
    client.get("/healthz")
    assert 'crm_http_requests_total{method="GET",route="/healthz",service="leads",status="200"}' \
        in client.get("/metrics").text
    assert "/v1/leads" in client.get("/openapi.json").json()["paths"]


def test_trace_context_and_correlation_id_are_echoed(client):
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = client.get("/healthz", headers={"traceparent": parent, "X-Correlation-ID": "corr-9"})
    assert response.headers["X-Correlation-ID"] == "corr-9"
    assert response.headers["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


def test_calls_need_a_valid_token_and_a_role_that_allows_them(client, leads):
    anonymous = client.post("/v1/leads", json=GOOD, headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.headers["content-type"] == "application/problem+json"
    forged = TokenCodec("another-secret-that-is-long-enough-000").issue("mallory", ["admin"])
    assert client.post("/v1/leads", json=GOOD, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    expired = TOKENS.issue("old", ["sales_rep"], ttl_seconds=-60)
    assert client.get("/v1/leads/00000000-0000-0000-0000-000000000000",
                      headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    denied = client.post("/v1/leads", json=GOOD, headers=bearer("analyst"))
    assert denied.status_code == 403 and "may not create leads" in denied.json()["detail"]
    assert leads.recorder.max_notification_id() in (None, 0)
    assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200


def test_idempotency_keys_belong_to_their_caller(client):
    first = client.post("/v1/leads", json=GOOD, headers={**bearer("sales_rep", subject="ann"), "Idempotency-Key": "1"})
    other = client.post("/v1/leads", json={**GOOD, "name": "Bob's lead"},
                        headers={**bearer("sales_rep", subject="bob"), "Idempotency-Key": "1"})
    assert first.status_code == 201 and other.status_code == 201
    assert first.json()["id"] != other.json()["id"]


def test_the_principal_is_in_the_handlers_log_context(client, capsys):
    client.post("/v1/leads", json=GOOD, headers=bearer("sales_rep", subject="carol"))
    captured = [line for line in capsys.readouterr().out.splitlines() if "lead.captured" in line]
    assert captured and "carol" in captured[-1]

"""Names, companies and email domains with control, invisible or look-alike characters are
422 problem+json naming the field, over HTTP; nothing is stored."""

import json

import pytest
from fastapi.testclient import TestClient

from crm_leads.adapters.http import routers
from crm_leads.application import LeadsApplication
from crm_runtime import http
from tests.conftest import TOKENS, bearer

GOOD = {"name": "Ada", "email": "ada@example.com", "channel": "web"}


@pytest.fixture
def leads(sqlite_platform):
    return LeadsApplication(sqlite_platform)


@pytest.fixture
def client(leads):
    api = http.create_app("leads", "1", checks={}, tokens=TOKENS)
    for router in routers(leads):
        api.include_router(router)
    return TestClient(api, headers=bearer("sales_rep"))


@pytest.mark.parametrize("field,value", [
    ("name", "Ada\u0000Lovelace"),
    ("name", "Ada \u202egnp.exe"),
    ("name", "Ada\ud800"),  # a lone surrogate, which JSON can carry
    ("company", "Acme\u200b Corp"),
    ("company", "Acme\u001b[2J"),
    ("email", "ada@раypal.com"),
])
def test_suspicious_text_is_a_problem_naming_the_field(client, leads, field, value):
    body = json.dumps({**GOOD, field: value})  # ASCII-escaped, as a client would send it
    response = client.post("/v1/leads", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field
    assert leads.recorder.max_notification_id() in (None, 0)


def test_honest_unicode_is_stored(client):
    response = client.post("/v1/leads", json={**GOOD, "name": "Zoë Ñúñez", "company": "Société",
                                              "email": "zoë@bücher.de"})
    assert response.status_code == 201 and response.json()["name"] == "Zoë Ñúñez"

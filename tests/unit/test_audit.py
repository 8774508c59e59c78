"""Refused calls leave an audit line too: who (when known), what they asked for, and why."""

from fastapi import APIRouter
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from crm_leads.permissions import LEADS
from crm_runtime import http
from crm_runtime.auth import require
from tests.conftest import TOKENS, bearer


def _client() -> TestClient:
    api = http.create_app("audit-test", "1", checks={}, tokens=TOKENS)
    router = APIRouter()

    @router.get("/v1/things", dependencies=[require(LEADS.view)])
    async def things() -> dict[str, str]:
        return {"ok": "yes"}

    api.include_router(router)
    return TestClient(api)


def _denied(logs: list[dict]) -> list[dict]:
    return [entry for entry in logs if entry["event"] == "audit.denied"]


def test_http_refusals_are_audited():
    client = _client()
    with capture_logs() as logs:
        assert client.get("/v1/things").status_code == 401
        assert client.get("/v1/things", headers={"Authorization": "Bearer forged.token.here"}).status_code == 401
        assert client.get("/v1/things", headers=bearer("analyst", subject="eve")).status_code == 403
        assert client.get("/v1/things", headers=bearer("sales_rep", subject="ann")).status_code == 200
    missing, forged, forbidden = _denied(logs)
    assert missing["log_level"] == "warning" and missing["status"] == 401
    assert missing["resource"] == "leads" and missing["action"] == "view"
    assert missing["request"] == "GET /v1/things" and "bearer token is required" in missing["reason"]
    assert "principal" not in missing and "invalid token" in forged["reason"]
    assert forbidden["status"] == 403 and forbidden["principal"] == "eve"
    assert "may not view leads" in forbidden["reason"]
    assert [entry["event"] for entry in logs].count("audit.access") == 1

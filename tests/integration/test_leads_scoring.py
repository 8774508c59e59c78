"""Scoring over HTTP and gRPC on SQLite and PostgreSQL: rules replaced, leads rescored in the
background with their reasons, LeadScored on the real topic only when score or grade move."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from fastapi.testclient import TestClient
from google.protobuf import struct_pb2

from crm.leads.v1 import events_pb2, leads_pb2
from crm_leads.adapters.http import routers
from crm_leads.adapters.messages import EVENTS
from crm_leads.application import LeadsApplication
from crm_runtime import http
from crm_runtime import relay as relay_module
from crm_runtime.cloudevents import EventRegistry
from tests.conftest import TOKENS, bearer
from tests.integration.test_leads_grpc import BOSS, refused, run
from tests.kafka_helpers import ensure_topics, read_topic

REGISTRY = EventRegistry.from_modules(events_pb2)
MANAGER = bearer("sales_manager", subject="boss")
REP = bearer("sales_rep", subject="ann")
RULES = {"rules": [
    {"id": "referral", "description": "Referred by a customer",
     "when": {"field": "channel", "op": "eq", "value": "referral"}, "points": 30},
    {"id": "big", "description": "200 people or more",
     "when": {"field": "company_size", "op": "gte", "value": 200}, "points": 20},
    {"id": "met", "description": "At least one meeting",
     "when": {"field": "activities.meeting", "op": "gte", "value": 1}, "points": 25}],
    "grades": {"hot": 50, "warm": 25}}


@pytest.fixture
def leads(any_platform):
    return LeadsApplication(any_platform)


@pytest.fixture
def client(leads):
    api = http.create_app("leads", "1", checks={}, tokens=TOKENS)
    for router in routers(leads):
        api.include_router(router)
    leads.rescorer.idle_seconds = 0.05
    with TestClient(api, headers=MANAGER) as client:  # the lifespan runs the rescorer
        yield client


def wait_rescored(client, version: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = client.get("/v1/scoring-rules").json()
        if shown["rescoring"]["version"] == version and shown["rescoring"]["done"]:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)


def test_rules_put_rescore_open_leads_with_reasons_and_lead_scored_only_on_change(
        leads, client, any_platform, kafka_bootstrap):
    ensure_topics(kafka_bootstrap, any_platform.topic_prefix)
    capture = lambda **body: client.post("/v1/leads", json={"name": "Ada", "channel": "web", **body}).json()  # noqa: E731
    referral = capture(email="ada@acme.example", channel="referral", company_size=500)
    web = capture(email="bob@acme.example")
    met = capture(email="cy@acme.example")
    client.post(f"/v1/leads/{met['id']}/activities", json={"kind": "meeting", "at": "2025-03-01T10:00:00Z"})
    gone = capture(email="dee@acme.example", channel="referral")
    client.post(f"/v1/leads/{gone['id']}/disqualify", json={"reason": "no budget"})

    shown = client.get("/v1/scoring-rules", headers=REP).json()  # reps may read
    assert shown["version"] == 0 and shown["rescoring"]["done"] and shown["rules"][0]["id"] == "referral"
    assert client.put("/v1/scoring-rules", json=RULES, headers=REP).status_code == 403

    put = client.put("/v1/scoring-rules", json=RULES)
    assert put.status_code == 200, put.text
    assert (put.json()["version"], put.json()["leads_to_rescore"]) == (1, 3)
    shown = wait_rescored(client, 1)
    assert (shown["rescoring"]["rescored"], shown["rescoring"]["pending"]) == (3, 0)
    # What GET answered can be put back as it is: the same rules, version 2.
    again = client.put("/v1/scoring-rules", json=shown)
    assert again.status_code == 200 and again.json()["version"] == 2 and again.json()["rules"] == shown["rules"]
    wait_rescored(client, 2)

    lead = client.get(f"/v1/leads/{referral['id']}").json()
    assert (lead["score"], lead["grade"]) == (50, "hot")
    assert lead["score_reasons"] == [
        {"rule_id": "referral", "description": "Referred by a customer", "points": 30},
        {"rule_id": "big", "description": "200 people or more", "points": 20}]
    assert (client.get(f"/v1/leads/{met['id']}").json()["grade"]) == "warm"
    assert client.get(f"/v1/leads/{web['id']}").json()["score"] == 0
    assert client.get(f"/v1/leads/{gone['id']}").json()["score"] == 20  # closed: kept its score
    hot = client.get("/v1/leads", params={"grade": "hot"}).json()["items"]
    assert [item["id"] for item in hot] == [referral["id"]] and hot[0]["score_reasons"][0]["rule_id"] == "referral"

    # The topic, read by a plain consumer: LeadScored only where the score or grade moved.
    relay = relay_module.for_context(leads, "leads", EVENTS.to_message, any_platform)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        topic = f"{any_platform.topic_prefix}crm.leads.events.v1"
        total = leads.recorder.max_notification_id()
        records = read_topic(kafka_bootstrap, topic, lambda found: len(found) >= total - _internal(leads))
    finally:
        relay.stop()
        thread.join(30)
        relay.close()
    scored = [REGISTRY.decode(r.headers, r.value).message for r in records
              if dict(r.headers)["ce_type"] == b"crm.leads.v1.LeadScored"]
    assert sorted((m.lead_id, m.score, m.grade, m.rule_set_version) for m in scored) == sorted(
        _expected_scored(referral, met))
    by_lead = {m.lead_id: m for m in scored if m.rule_set_version == 1}
    assert [r.rule_id for r in by_lead[referral["id"]].reasons] == ["referral", "big"]
    assert (by_lead[referral["id"]].previous_score, by_lead[referral["id"]].previous_grade) == (30, "warm")
    assert not any(m.rule_set_version == 2 for m in scored)  # the same rules again: nothing moved
    replaced = [REGISTRY.decode(r.headers, r.value).message for r in records
                if dict(r.headers)["ce_type"] == b"crm.leads.v1.ScoringRulesReplaced"]
    assert [m.version for m in replaced] == [1, 2] and '"referral"' in replaced[0].rules_json


def _internal(leads) -> int:
    """Stored events the relay does not publish (ScoreExplained)."""
    notifications = leads.recorder.select_notifications(start=1, limit=10_000)
    return sum(1 for n in notifications if n.topic.endswith("ScoreExplained"))


def _expected_scored(referral: dict, met: dict) -> list[tuple[str, int, str, int]]:
    # Under the defaults (their first scores are in LeadCaptured): referral 20+10 = 30 (warm),
    # web 0 (cold), met 0, then 25 with its meeting (still cold, but the score moved). Under
    # RULES (version 1): referral 50 hot, met 25 warm, web 0 cold (unchanged: no event).
    return [(met["id"], 25, "cold", 0), (referral["id"], 50, "hot", 1), (met["id"], 25, "warm", 1)]


@pytest.mark.parametrize("bad,field", [
    ({"field": "budget", "op": "eq", "value": 1}, "'budget' is not a known field"),
    ({"field": "channel", "op": "like", "value": "web"}, "'like' is not a known operator"),
])
def test_an_unknown_field_or_operator_is_422_naming_it(client, bad, field):
    body = {"rules": [{"id": "x", "description": "x", "when": bad, "points": 1}], "grades": {"hot": 2, "warm": 1}}
    response = client.put("/v1/scoring-rules", json=body)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert field in response.json()["detail"] and response.json()["errors"][0]["field"].startswith("rules[0].when.")
    assert client.get("/v1/scoring-rules").json()["version"] == 0


def test_scoring_rules_over_grpc(leads, address):  # noqa: F811 - the fixture
    async def scenario(stub):
        from crm_leads.application import CaptureLead
        lead, _ = leads.capture_lead(CaptureLead(name="Ada", email="ada@acme.example", phone=None, company=None,
                                                 channel="referral", company_size=300))
        shown = await stub.GetScoringRules(leads_pb2.GetScoringRulesRequest(), metadata=BOSS)
        assert shown.version == 0 and shown.rules[0].id == "referral"
        rules = []
        for rule in RULES["rules"]:
            value = struct_pb2.Value()
            if isinstance(rule["when"]["value"], str):
                value.string_value = rule["when"]["value"]
            else:
                value.number_value = rule["when"]["value"]
            rules.append(leads_pb2.ScoringRule(id=rule["id"], description=rule["description"], points=rule["points"],
                                               when=leads_pb2.ScoringCondition(field=rule["when"]["field"],
                                                                               op=rule["when"]["op"], value=value)))
        request = leads_pb2.ReplaceScoringRulesRequest(rules=rules, grades=leads_pb2.ScoringGrades(hot=50, warm=25))
        replaced = await stub.ReplaceScoringRules(request, metadata=BOSS)
        assert (replaced.version, replaced.leads_to_rescore, replaced.rescoring.pending) == (1, 1, 1)
        assert replaced.rules[1].when.value.number_value == 200
        leads.rescorer.run_until_done()
        got = await stub.GetLead(leads_pb2.GetLeadRequest(lead_id=str(lead.id)), metadata=BOSS)
        assert (got.score, got.grade, [r.rule_id for r in got.score_reasons]) == (50, "hot", ["referral", "big"])
        after = await stub.GetScoringRules(leads_pb2.GetScoringRulesRequest(), metadata=BOSS)
        assert after.rescoring.done and after.rescoring.rescored == 1
        listed = await stub.ListLeads(leads_pb2.ListLeadsRequest(grade="hot"), metadata=BOSS)
        assert [item.id for item in listed.leads] == [str(lead.id)]
        bad = leads_pb2.ReplaceScoringRulesRequest(rules=[leads_pb2.ScoringRule(
            id="x", description="x", points=1, when=leads_pb2.ScoringCondition(field="budget", op="eq", value=value))],
            grades=leads_pb2.ScoringGrades(hot=2, warm=1))
        detail = await refused(stub.ReplaceScoringRules(bad, metadata=BOSS), grpc.StatusCode.INVALID_ARGUMENT)
        assert "rules[0].when.field" in detail and "'budget'" in detail
        from tests.conftest import grpc_auth
        await refused(stub.ReplaceScoringRules(request, metadata=grpc_auth("sales_rep", subject="ann")),
                      grpc.StatusCode.PERMISSION_DENIED)

    run(leads, address, scenario)


def test_rules_replaced_by_another_process_score_its_captures_within_the_recheck_time(
        any_platform, monkeypatch):
    from crm_leads import scoring_rules
    from crm_leads.application import CaptureLead
    from crm_leads.scoring_rules import ReplaceScoringRules

    monkeypatch.setattr(scoring_rules, "RULES_RECHECK_SECONDS", 0.2)
    here, there = LeadsApplication(any_platform), LeadsApplication(any_platform)

    def capture(app, n):
        return app.capture_lead(CaptureLead(name=f"R{n}", email=f"r{n}@example.com", phone=None,
                                            company=None, channel="referral"))[0]

    assert capture(here, 0).rule_set_version == 0  # the default rules, now remembered here
    active, _ = there.replace_scoring_rules(ReplaceScoringRules(rules=RULES))
    assert capture(there, 1).rule_set_version == active.version  # the process that replaced them: at once
    time.sleep(0.25)
    lead = capture(here, 2)  # the other one: after at most the recheck time
    assert (lead.rule_set_version, lead.score) == (active.version, 30)

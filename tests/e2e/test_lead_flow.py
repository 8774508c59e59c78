"""One lead flowing through the platform: captured over HTTP and gRPC, assigned by the
workflow service, counted by analytics; all as separate processes on the real broker."""

import uuid
from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from crm.leads.v1 import events_pb2 as leads_events
from crm.leads.v1 import leads_pb2, leads_pb2_grpc
from crm.workflow.v1 import events_pb2 as workflow_events
from crm_leads.application import CaptureLead, LeadsApplication
from crm_runtime.settings import PlatformSettings
from tests.conftest import bearer, grpc_auth
from tests.kafka_helpers import at_least, headers, read_topic
from tests.platform_harness import grpc_target, log_text, start_platform, store_env, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
REPS = ["rep-ada", "rep-grace", "rep-linus"]


@pytest.fixture(params=["sqlite", "postgres"])
def platform(request, tmp_path, kafka_bootstrap, topic_prefix):
    env = {"CRM_WORKFLOW_SALES_REPS": ",".join(REPS), **store_env(request)}
    running = start_platform(tmp_path, kafka_bootstrap, topic_prefix, extra_env=env)
    yield running
    running.stop()


def test_leads_are_captured_assigned_and_reported(platform, kafka_bootstrap, topic_prefix):
    leads = url("leads")
    http = httpx.Client(timeout=10, headers=bearer("sales_manager"))
    assert http.get(url("analytics") + "/v1/reports/leads", headers={"Authorization": ""}).status_code == 401
    body = {"name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "+44 20 7183 8750",
            "company": "Analytical Engines", "channel": "web"}
    created = http.post(f"{leads}/v1/leads", json=body, headers={"Idempotency-Key": "signup-1"})
    assert created.status_code == 201, created.text
    lead = created.json()
    assert lead["status"] == "new" and lead["email"] == "Ada@example.com"
    assert lead["phone"] == "+442071838750" and lead["owner_id"] is None
    correlation_id = created.headers["X-Correlation-ID"]
    repeat = http.post(f"{leads}/v1/leads", json=body, headers={"Idempotency-Key": "signup-1"})
    assert repeat.status_code == 200 and repeat.json()["id"] == lead["id"]

    ids = [lead["id"]]
    for i, channel in enumerate(["email", "referral"]):
        response = http.post(f"{leads}/v1/leads", json={
            "name": f"HTTP Lead {i}", "email": f"h{i}@example.com", "channel": channel})
        assert response.status_code == 201
        ids.append(response.json()["id"])

    rep = grpc_auth("sales_rep")
    with grpc.insecure_channel(grpc_target("leads")) as channel:
        stub = leads_pb2_grpc.LeadsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as anonymous:
            stub.GetLead(leads_pb2.GetLeadRequest(lead_id=ids[0]), timeout=10)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for i in range(2):
            reply = stub.CaptureLead(leads_pb2.CaptureLeadRequest(
                name=f"gRPC Lead {i}", email=f"g{i}@example.com", phone=f"(202) 555-014{i}",
                channel=leads_events.CHANNEL_PARTNER), timeout=10, metadata=rep)
            assert reply.status == leads_pb2.LEAD_STATUS_NEW and reply.phone == f"+1202555014{i}"
            ids.append(reply.id)
        with pytest.raises(grpc.RpcError) as bad:
            stub.CaptureLead(leads_pb2.CaptureLeadRequest(name="X", email="nope",
                                                          channel=leads_events.CHANNEL_WEB),
                             timeout=10, metadata=rep)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "email" in bad.value.details()
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetLead(leads_pb2.GetLeadRequest(lead_id=str(uuid.uuid4())), timeout=10, metadata=rep)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as not_allowed:  # a rep may not assign leads
            stub.AssignLead(leads_pb2.AssignLeadRequest(lead_id=ids[-1], owner_id="rep-x",
                                                        idempotency_key="manual"), metadata=rep)
        assert not_allowed.value.code() == grpc.StatusCode.PERMISSION_DENIED
        manager = grpc_auth("sales_manager")
        with pytest.raises(grpc.RpcError) as stale:
            stub.AssignLead(leads_pb2.AssignLeadRequest(lead_id=ids[-1], owner_id="rep-x",
                                                        idempotency_key="manual", expected_version=7),
                            metadata=manager)
        assert stale.value.code() == grpc.StatusCode.ABORTED

        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="crm.leads.v1.LeadsService"), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "crm.leads.v1.LeadsService" in services and "grpc.health.v1.Health" in services

    def owners():
        found = {i: http.get(f"{leads}/v1/leads/{i}").json()["owner_id"] for i in ids}
        return found if all(found.values()) else None

    assigned = wait_for(owners, what="every lead assigned")
    # Round robin over three reps: five leads land 2/2/1, each rep at most one apart.
    counts = Counter(assigned.values())
    assert set(counts) <= set(REPS) and max(counts.values()) - min(counts.values()) <= 1

    def report():
        r = http.get(url("analytics") + "/v1/reports/leads").json()
        return r if r["captured"] == 5 and r["assigned"] == 5 else None

    final = wait_for(report, what="report counts every lead")
    assert final["by_channel"] == {"web": 1, "email": 1, "referral": 1, "partner": 2}
    assert final["by_owner"] == dict(counts)

    # The workflow's decision is readable, and the correlation id of the HTTP request
    # reached the consumers' logs through the event headers.
    decision = http.get(url("workflow") + f"/v1/assignments/{lead['id']}").json()
    assert decision["owner_id"] == assigned[lead["id"]]
    # ...and published on the workflow's own topic for downstream systems.
    decided = read_topic(kafka_bootstrap, f"{topic_prefix}crm.workflow.events.v1", at_least(5))
    messages = [workflow_events.AssignmentDecided.FromString(record.value) for record in decided]
    assert {(m.subject_id, m.owner_id) for m in messages} == set(assigned.items())
    assert all(headers(r)["ce_type"] == "crm.workflow.v1.AssignmentDecided" for r in decided)
    assert correlation_id in log_text(platform, "workflow-worker")
    assert correlation_id in log_text(platform, "analytics-worker")
    for service in ("sales", "service-desk"):
        assert httpx.get(url(service) + "/readyz").status_code == 200  # no token needed
        assert "crm_http_requests_total" in http.get(url(service) + "/metrics").text
    platform.check_alive()


def test_workflow_retries_while_the_leads_service_is_down(platform):
    leads = url("leads")
    platform.kill("leads")
    # Written straight to the leads store: the relay publishes it, and the workflow's
    # AssignLead has nowhere to go until the service is back.
    store = LeadsApplication(PlatformSettings(
        store=platform.env.get("CRM_STORE", "sqlite"), data_dir=Path(platform.env["CRM_DATA_DIR"]),
        postgres_dbname=platform.env.get("CRM_POSTGRES_DBNAME", "crm")))
    lead, _ = store.capture_lead(CaptureLead(name="Patient Lead", email="p@example.com", phone=None,
                                 company=None, channel="web"))
    lead = {"id": str(lead.id)}
    wait_for(lambda: "dispatcher.retrying" in log_text(platform, "workflow-dispatcher"),
             what="workflow retrying the assignment")
    platform.start("leads")
    auth = bearer("sales_manager")
    owner = wait_for(lambda: httpx.get(f"{leads}/v1/leads/{lead['id']}", headers=auth).json()["owner_id"],
                     what="assignment after the leads service came back")
    assert owner in REPS
    assert store.get_lead(lead["id"]).version == 2  # assigned once, though retried many times
    report = wait_for(lambda: (r := httpx.get(url("analytics") + "/v1/reports/leads", headers=auth).json())
                      ["assigned"] == 1 and r, what="assignment counted")
    assert report["captured"] == 1

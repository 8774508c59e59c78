"""docker-compose.yml describes the same platform the local run starts."""

from pathlib import Path

import yaml

from crm_devstack.processes import DEFAULT_PORTS, METRICS_PORTS, SPECS
from crm_runtime.topics import all_topics

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_every_process_has_a_container_running_its_module():
    for spec in SPECS:
        assert spec.name in SERVICES, f"{spec.name} missing from docker-compose.yml"
        assert SERVICES[spec.name]["command"] == ["python", *spec.argv]
        assert "healthcheck" in SERVICES[spec.name]


def test_services_publish_the_design_ports():
    for spec in SPECS:
        if spec.serves_http:
            http, grpc = DEFAULT_PORTS[spec.env_prefix]
            assert set(SERVICES[spec.name]["ports"]) == {f"{http}:{http}", f"{grpc}:{grpc}"}
            assert str(http) in SERVICES[spec.name]["healthcheck"]["test"]


def test_relays_and_workers_serve_metrics_for_their_health_check():
    for spec in SPECS:
        if not spec.serves_http:
            env = SERVICES[spec.name]["environment"]
            assert spec.metrics_env in METRICS_PORTS and spec.metrics_env in env, spec.name
            assert "/metrics" in SERVICES[spec.name]["healthcheck"]["test"]


def test_topics_created_are_every_topic_the_platform_uses():
    # Without names the admin command creates every topic of the declared contexts.
    assert SERVICES["kafka-init"]["command"] == ["python", "-m", "crm_runtime.kafka_admin"]
    assert set(all_topics()) >= {"crm.leads.events.v1", "crm.sales.events.v1",
                                 "crm.servicedesk.events.v1", "crm.workflow.events.v1",
                                 "crm.leads.events.v1.dlq"}


def test_no_container_runs_a_process_the_contexts_do_not_declare():
    declared = {spec.name for spec in SPECS}
    runs_platform = {name for name, svc in SERVICES.items()
                     if svc.get("command", [None, None, None])[2:3] == ["crm_runtime"]}
    assert runs_platform == declared


def test_kafka_is_kraft_and_stores_are_postgres():
    kafka = SERVICES["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # Topics live in the volume, not in the image's /tmp default.
    assert f"kafka-data:{kafka['KAFKA_LOG_DIRS']}" in SERVICES["kafka"]["volumes"]
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    leads_env = SERVICES["leads"]["environment"]
    assert leads_env["CRM_STORE"] == "postgres" and leads_env["CRM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert leads_env["CRM_WORKFLOW_LEADS_GRPC_TARGET"] == "leads:50051"

def test_deployments_must_bring_their_own_auth_secret():
    assert SERVICES["leads"]["environment"]["CRM_AUTH_SECRET"].startswith("${CRM_AUTH_SECRET:?")

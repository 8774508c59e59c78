import pytest
from pydantic import ValidationError

from crm_leads.settings import LeadsSettings
from crm_workflow.settings import WorkflowSettings


def test_services_read_their_own_prefix_and_the_shared_one(monkeypatch):
    monkeypatch.setenv("CRM_LEADS_HTTP_PORT", "9001")
    monkeypatch.setenv("CRM_STORE", "postgres")
    settings = LeadsSettings()
    assert settings.http_port == 9001 and settings.grpc_port == 50051
    assert settings.platform.store == "postgres"


def test_workflow_needs_someone_to_assign_to(monkeypatch):
    monkeypatch.setenv("CRM_WORKFLOW_SALES_REPS", "rep-a, rep-b ,")
    assert WorkflowSettings().sales_rep_ids == ["rep-a", "rep-b"]
    monkeypatch.setenv("CRM_WORKFLOW_SALES_REPS", " , ")
    with pytest.raises(ValidationError, match="at least one sales rep"):
        WorkflowSettings()


def test_a_bad_setting_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("CRM_STORE", "mongodb")
    with pytest.raises(ValidationError, match="store"):
        LeadsSettings()

"""Property-based calls generated from each service's OpenAPI (schemathesis): whatever a
caller sends, no service answers with a server error, and every answer matches the spec."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm_analytics.__main__ import router as analytics_router
from crm_analytics.lead_projection import open_store
from crm_leads.adapters.http import router as leads_router
from crm_leads.application import LeadsApplication
from crm_runtime import http
from crm_workflow.__main__ import router as workflow_router
from crm_workflow.application import WorkflowApplication
from tests.conftest import TOKENS, bearer


def _app(name, router):
    api = http.create_app(name, "1", checks={"store": lambda: None}, tokens=TOKENS)
    api.include_router(router)
    return api


@pytest.fixture
def api(service, sqlite_platform):
    routers = {
        "leads": lambda: leads_router(LeadsApplication(sqlite_platform)),
        "workflow": lambda: workflow_router(WorkflowApplication(sqlite_platform, ["rep-1"])),
        "analytics": lambda: analytics_router(open_store(sqlite_platform)),
    }
    return _app(service, routers[service]())


@pytest.mark.parametrize("service,mode", [
    ("leads", GenerationMode.POSITIVE), ("leads", GenerationMode.NEGATIVE),
    ("workflow", GenerationMode.POSITIVE), ("analytics", GenerationMode.POSITIVE)])
def test_no_input_makes_a_service_fail(api, service, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    exercised = 0

    for operation in operations:
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(case=operation.as_strategy(mode))
        def call(case):
            response = case.call(headers=bearer("admin"))
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
            case.validate_response(response, checks=[
                status_code_conformance, content_type_conformance, response_schema_conformance])

        try:
            call()
            exercised += 1
        except Unsatisfiable:
            # Negative mode only: no invalid input exists for, say, a bare GET /healthz.
            assert mode is GenerationMode.NEGATIVE
    assert exercised

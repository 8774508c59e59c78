"""gRPC against a real server in this process: malformed requests are INVALID_ARGUMENT with a
warning (no traceback), refusals are audited, and health and reflection keep working."""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from structlog.testing import capture_logs

from crm.leads.v1 import events_pb2 as leads_events
from crm.leads.v1 import leads_pb2
from crm_leads.adapters.grpc import registrations
from crm_leads.application import LeadsApplication
from crm_runtime import grpc_server
from tests.conftest import TOKENS, grpc_auth

CAPTURE = "/crm.leads.v1.LeadsService/CaptureLead"


def _with_server(platform, scenario):
    """Runs `scenario(channel)` against a leads gRPC server on a free loopback port."""

    async def main():
        server = grpc_server.build_server("127.0.0.1:0", registrations(LeadsApplication(platform)), TOKENS)
        await server.start()
        await grpc_server.mark_serving(server)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                return await scenario(channel)
        finally:
            await server.stop(grace=None)

    return asyncio.run(main())


async def _raw_call(channel, method: str, payload: bytes, metadata=None) -> grpc.StatusCode:
    call = channel.unary_unary(method)  # no serializers: the bytes go out as they are
    try:
        await call(payload, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


# field 1 (name, a string) holding bytes that are not UTF-8; then bytes that are no message at all
BAD_UTF8 = b"\x0a\x04\xff\xfe\xfd\xfc"
BAD_WIRE = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
TRUNCATED = leads_pb2.CaptureLeadRequest(name="Ada", email="ada@example.com").SerializeToString()[:-3]


def test_malformed_requests_are_invalid_argument_with_a_warning_and_no_traceback(sqlite_platform, caplog):
    async def scenario(channel):
        auth = grpc_auth("sales_rep")
        return {name: await _raw_call(channel, method, payload, auth) for name, method, payload in [
            ("utf8", CAPTURE, BAD_UTF8), ("wire", CAPTURE, BAD_WIRE), ("truncated", CAPTURE, TRUNCATED),
            ("get", "/crm.leads.v1.LeadsService/GetLead", BAD_UTF8),
            ("health", "/grpc.health.v1.Health/Check", BAD_WIRE)]}

    with caplog.at_level(logging.DEBUG), capture_logs() as logs:
        codes = _with_server(sqlite_platform, scenario)
    assert codes == dict.fromkeys(codes, grpc.StatusCode.INVALID_ARGUMENT)
    warnings = [entry for entry in logs if entry["event"] == "grpc.malformed_request"]
    assert len(warnings) == 5 and {entry["log_level"] for entry in warnings} == {"warning"}
    assert {entry["method"] for entry in warnings} >= {CAPTURE, "/grpc.health.v1.Health/Check"}
    assert not [entry for entry in logs if entry["log_level"] in ("error", "critical") or "exc_info" in entry]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]


def test_good_requests_health_and_reflection_still_work(sqlite_platform):
    async def scenario(channel):
        request = leads_pb2.CaptureLeadRequest(name="Ada", email="ada@example.com",
                                               channel=leads_events.CHANNEL_WEB)
        capture = channel.unary_unary(CAPTURE, request_serializer=leads_pb2.CaptureLeadRequest.SerializeToString,
                                      response_deserializer=leads_pb2.Lead.FromString)
        lead = await capture(request, metadata=grpc_auth("sales_rep"), timeout=10)
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="crm.leads.v1.LeadsService"), timeout=10)
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        services = [s.name async for response in reflection for s in response.list_services_response.service]
        return lead, health.status, services

    lead, health, services = _with_server(sqlite_platform, scenario)
    assert lead.name == "Ada" and lead.email == "ada@example.com"
    assert health == health_pb2.HealthCheckResponse.SERVING
    assert "crm.leads.v1.LeadsService" in services


def test_refused_calls_are_audited(sqlite_platform):
    async def scenario(channel):
        good = leads_pb2.GetLeadRequest(lead_id="00000000-0000-0000-0000-000000000000").SerializeToString()
        return [await _raw_call(channel, "/crm.leads.v1.LeadsService/GetLead", good,
                                [("x-correlation-id", "corr-denied-1")]),
                await _raw_call(channel, "/crm.leads.v1.LeadsService/AssignLead", good,
                                grpc_auth("sales_rep", subject="eve"))]

    with capture_logs() as logs:
        codes = _with_server(sqlite_platform, scenario)
    assert codes == [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED]
    anonymous, forbidden = [entry for entry in logs if entry["event"] == "audit.denied"]
    assert anonymous["log_level"] == "warning" and anonymous["code"] == "UNAUTHENTICATED"
    assert anonymous["method"] == "/crm.leads.v1.LeadsService/GetLead" and "principal" not in anonymous
    assert forbidden["principal"] == "eve" and forbidden["code"] == "PERMISSION_DENIED"
    assert "may not assign leads" in forbidden["reason"]

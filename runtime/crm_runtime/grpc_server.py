"""The gRPC side of every service: grpc.aio with health, reflection and error mapping."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from crm.common.v1 import commands_pb2
from crm_runtime import logs, tracing
from crm_runtime.auth import AuthInterceptor, Permission, TokenCodec, current_principal
from crm_runtime.errors import InvalidField, ServiceError, status_of

log = logs.get(__name__)
# A servicer method: (self, request, context) -> response.
Handler = Callable[..., Awaitable[Any]]

MAX_REQUEST_BYTES = 512 * 1024  # no command needs more; larger requests are refused
# Commands in one call of a batched form (crm.common.v1.CommandResult); dispatchers send 100.
MAX_COMMANDS_PER_BATCH = 500


def rpc(permission: Permission) -> Callable[[Handler], Handler]:
    """Declares a servicer method: the permission it needs (read by `Registration`, checked
    by the auth interceptor), the caller's trace context bound, errors mapped to codes."""

    def decorate(method: Handler) -> Handler:
        @functools.wraps(method)
        async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = {key: value for key, value in (context.invocation_metadata() or ())
                        if isinstance(value, str)}
            with tracing.bound(metadata.get("traceparent"), metadata.get("x-correlation-id")) as ctx:
                context.set_trailing_metadata((("x-correlation-id", ctx[tracing.CORRELATION_ID]),))
                if (principal := current_principal()) is not None or permission.public:
                    log.info("audit.access", method=method.__name__,
                             principal=principal.subject if principal is not None else None,
                             resource=permission.resource, action=str(permission.action))
                try:
                    return await method(self, request, context)
                except ServiceError as exc:
                    await context.abort(grpc.StatusCode[status_of(exc).grpc], str(exc))
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    log.exception("grpc.unhandled_error", method=method.__name__, error=repr(exc))
                    await context.abort(grpc.StatusCode.INTERNAL, "the service failed to handle the request")

        wrapper.permission = permission  # type: ignore[attr-defined]  # read by Registration
        return wrapper

    return decorate


# (the requests, each one's checked trace context) -> (how many applied, the refusal or None)
BatchApply = Callable[[list[Any], list[dict[str, str]]], tuple[int, ServiceError | None]]

# Peers' command batches run in threads of their own. In the event loop's shared pool they
# would queue behind every public request the process is serving: under load, a decision
# already taken would wait for captures not yet made, and work in progress should finish
# before new work is admitted. Two threads: the batches' writes take turns in the store.
_PEER_COMMANDS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="peer-commands")


async def apply_batch(request: Any, apply: BatchApply,
                      limit: int = MAX_COMMANDS_PER_BATCH) -> list[commands_pb2.CommandResult]:
    """The servicer side of a command's batched form: `request.requests` (at most `limit`,
    else INVALID_ARGUMENT naming `requests`) and `request.contexts`, each context checked as
    a call's own metadata is (a bad traceparent starts a new trace, nothing else is kept).
    `apply` runs in a thread; the answer is one OK per command applied, then the refusal's
    code and message."""
    if len(request.requests) > limit:
        raise InvalidField("requests", f"{len(request.requests)} commands; at most {limit} in one call")
    contexts = []
    for item in request.contexts:
        with tracing.bound(item.headers.get("traceparent"), item.headers.get("correlation_id")) as bound:
            contexts.append(dict(bound))
    call = functools.partial(contextvars.copy_context().run, apply, list(request.requests), contexts)
    applied, refused = await asyncio.get_running_loop().run_in_executor(_PEER_COMMANDS, call)
    ok = grpc.StatusCode.OK.value[0]
    results = [commands_pb2.CommandResult(code=ok) for _ in range(applied)]
    if refused is not None:
        code = grpc.StatusCode[status_of(refused).grpc].value[0]
        results.append(commands_pb2.CommandResult(code=code, message=str(refused)))
    return results


@dataclass(frozen=True)
class Registration:
    """One gRPC service of a process; each method's permission comes from its `@rpc`."""

    add_to_server: Callable[[Any, Any], None]
    servicer: object
    descriptor: ServiceDescriptor

    @property
    def name(self) -> str:
        return str(self.descriptor.full_name)

    def full_permissions(self) -> dict[str, Permission]:
        """Full method name -> permission, for every method the servicer implements with
        `@rpc`. A method without one is open to no role (the interceptor fails closed)."""
        permissions = {}
        for method in self.descriptor.methods_by_name:
            permission = getattr(getattr(self.servicer, method, None), "permission", None)
            if permission is not None:
                permissions[f"/{self.name}/{method}"] = permission
        return permissions


def build_server(address: str, registrations: Sequence[Registration], tokens: TokenCodec) -> grpc.aio.Server:
    """A server with the given servicers, the health service (SERVING) and reflection.

    Every method of a registered service needs a bearer token whose roles grant the
    method's permission (see crm_runtime.auth); health and reflection are open.
    """
    permissions: dict[str, Permission] = {}
    for registration in registrations:
        permissions.update(registration.full_permissions())
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(tokens, permissions, [r.name for r in registrations])],
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)])
    health_servicer = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    for registration in registrations:
        registration.add_to_server(registration.servicer, server)
        names.append(registration.name)
    reflection.enable_server_reflection(names, server)
    server.port = server.add_insecure_port(address)  # the bound port (":0" picks one)
    server.health = health_servicer
    server.service_names = names
    return server


async def mark_serving(server: grpc.aio.Server) -> None:
    health_servicer = server.health
    for name in ("", *server.service_names):
        result = health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        if hasattr(result, "__await__"):
            await result

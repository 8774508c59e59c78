"""The HTTP side of every service: FastAPI with health, readiness, metrics and problem+json.

Routers are the service's own; this module adds what they all share, in one place:
trace/correlation context per request, RFC 9457 error bodies, Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_runtime import logs, tracing
from crm_runtime.auth import TokenCodec
from crm_runtime.errors import InvalidField, ServiceError, Unauthenticated, status_of

log = logs.get(__name__)
PROBLEM = "application/problem+json"
CORRELATION_HEADER = "X-Correlation-ID"

REQUESTS = Counter("crm_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("crm_http_request_seconds", "HTTP request latency", ["service", "method", "route"])

ReadinessCheck = Callable[[], None]


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


def problem(status: int, title: str, detail: str, headers: Mapping[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Route `responses=` for the errors an operation can answer (bodies: problem+json)."""
    described = {400: "Malformed request body", 401: "Missing or invalid bearer token",
                 403: "The caller's roles do not allow this", 404: "No such resource",
                 409: "Conflicting or stale write", 422: "Invalid field"}
    return {code: {"description": described.get(code, "Error"), "model": Problem} for code in codes}


# -- conditional updates (PATCH with If-Match) ----------------------------------------------

_IF_MATCH = re.compile(r'\s*"?([0-9]{1,18})"?\s*')


def expected_version(if_match: str | None) -> int | None:
    """The version in If-Match (`"3"` or `3`); None when the header is missing."""
    if if_match is None or not if_match.strip():
        return None
    found = _IF_MATCH.fullmatch(if_match)
    if found is None or int(found.group(1)) < 1:
        raise InvalidField("If-Match", 'must be the version you read, e.g. "3"')
    return int(found.group(1))


def precondition_required(what: str) -> JSONResponse:
    return problem(428, "Precondition required",
                   f'changing a {what} needs If-Match with the version you read, e.g. If-Match: "3"')


def tag(response: Response, version: int) -> None:
    """The record's version as its ETag (what If-Match sends back)."""
    response.headers["ETag"] = f'"{version}"'


def given_fields(body: BaseModel) -> dict[str, Any]:
    """The fields the caller sent (JSON merge patch: absent means unchanged, null clears)."""
    values = body.model_dump(include=body.model_fields_set)
    return {name: str(value) if isinstance(value, UUID) else value for name, value in values.items()}


def _problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """OpenAPI where every error response is documented as application/problem+json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem_schema.pop("$defs", {}))
        schemas["Problem"] = problem_schema
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        ref = {"$ref": "#/components/schemas/Problem"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    responses.setdefault("400", {"description": "Malformed request body"})
                    responses.setdefault("413", {"description": "Request body too large"})
                if "security" in operation:
                    responses.setdefault("401", {"description": "Missing or invalid bearer token"})
                    responses.setdefault("403", {"description": "The caller's roles do not allow this"})
                for code, response in responses.items():
                    if code[0] == "4" or code == "500":
                        response["content"] = {PROBLEM: {"schema": ref}}
        app.openapi_schema = schema
        return schema

    return openapi


class ContextAndMetrics:
    """Per request: a child span of the caller's trace and a correlation id (echoed in the
    response), and the Prometheus request metrics. Plain ASGI, so it adds no task per call."""

    def __init__(self, app: ASGIApp, service: str):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        status = 500
        with tracing.bound(headers.get("traceparent"), headers.get(CORRELATION_HEADER)) as context:
            started = time.perf_counter()

            async def send_with_context(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    response_headers = MutableHeaders(scope=message)
                    response_headers[CORRELATION_HEADER] = context[tracing.CORRELATION_ID]
                    response_headers["traceparent"] = context[tracing.TRACEPARENT]
                await send(message)

            try:
                await self.app(scope, receive, send_with_context)
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                REQUESTS.labels(self.service, scope["method"], route, status).inc()
                LATENCY.labels(self.service, scope["method"], route).observe(time.perf_counter() - started)


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a streamed body passes the limit. An HTTPException, so that
    FastAPI's body reader lets it through (anything else it turns into a 400)."""

    title = "Content too large"

    def __init__(self, limit: int):
        # The rest of the body is never read: the connection cannot serve another request.
        super().__init__(413, f"the request body exceeds {limit} bytes", headers={"Connection": "close"})


BODY_LIMIT_ATTRIBUTE = "crm_max_body_bytes"
F = TypeVar("F", bound=Callable[..., Any])


def body_limit(max_bytes: int) -> Callable[[F], F]:
    """Marks a route's endpoint as taking bodies up to `max_bytes` instead of the service's
    `max_body_bytes` (an upload, say); put it under the route decorator:

        @router.post("/imports")
        @body_limit(50 * 1024 * 1024)
        async def upload(...): ...

    RequestLimits applies it, before anything is parsed, to requests that route matches."""
    if max_bytes < 1:
        raise ValueError("max_bytes must be positive")

    def mark(endpoint: F) -> F:
        setattr(endpoint, BODY_LIMIT_ATTRIBUTE, max_bytes)
        return endpoint

    return mark


class RequestLimits:
    """Refuses oversized requests before anything parses them: headers over `max_header_bytes`
    with 431, bodies over `max_body_bytes` (or the route's own `body_limit`) with 413, by
    Content-Length up front and, for a streamed (chunked) body, by counting what arrives.
    Plain ASGI, like ContextAndMetrics."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_header_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        # (path pattern, methods, limit) of the routes with their own limit; read from the
        # application's routes at the first request (they are all added by then).
        self._route_limits: list[tuple[re.Pattern[str], frozenset[str], int]] | None = None

    def _limit_for(self, scope: Scope) -> int:
        """The body limit of the route the request goes to: its own, else the service's (one
        pattern match per route that has its own limit: usually none or one)."""
        if self._route_limits is None:
            from fastapi.routing import iter_route_contexts
            from starlette.routing import compile_path

            found = []
            for route in iter_route_contexts(getattr(scope.get("app"), "routes", [])):
                limit = getattr(route.endpoint, BODY_LIMIT_ATTRIBUTE, None)
                if isinstance(limit, int) and route.path:
                    found.append((compile_path(route.path)[0], frozenset(route.methods or ()), limit))
            self._route_limits = found
        for pattern, methods, limit in self._route_limits:
            if scope["method"] in methods and pattern.match(scope["path"]):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = 0
        declared = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4  # as on the wire: ": " and CRLF
            if name == b"content-length" and value.isdigit():
                declared = int(value)
        if header_bytes > self.max_header_bytes:
            await _send_problem(send, 431, "Request header fields too large",
                                f"the request's headers exceed {self.max_header_bytes} bytes")
            return
        max_body_bytes = self._limit_for(scope)
        if declared is not None and declared > max_body_bytes:
            await _send_problem(send, 413, BodyTooLarge.title, BodyTooLarge(max_body_bytes).detail)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    raise BodyTooLarge(max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _send_problem(send, 413, exc.title, exc.detail)


async def _send_problem(send: Send, status: int, title: str, detail: str) -> None:
    """A problem+json answer straight from ASGI middleware (no app, no request parsed);
    the connection is closed afterwards, since the rest of the request is never read."""
    response = problem(status, title, detail, headers={"Connection": "close"})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def create_app(service: str, version: str, checks: dict[str, ReadinessCheck],
               tokens: TokenCodec, max_body_bytes: int = 1024 * 1024,
               max_header_bytes: int = 16 * 1024, **fastapi_kwargs: Any) -> FastAPI:
    """A FastAPI app with the platform's shared endpoints and error handling.

    `checks` name the dependencies /readyz probes (e.g. "store", "kafka"); each raises
    when its dependency is unreachable. They run in a thread: store and Kafka clients block.
    Requests with a body over `max_body_bytes` or headers over `max_header_bytes` are refused
    (413 / 431) before any of it is parsed.
    """
    app = FastAPI(title=f"CRM {service}", version=version, **fastapi_kwargs)
    app.state.tokens = tokens  # read by crm_runtime.auth.require

    # Added first, so it runs inside ContextAndMetrics: refusals get ids and metrics too.
    app.add_middleware(RequestLimits, max_body_bytes=max_body_bytes, max_header_bytes=max_header_bytes)
    app.add_middleware(ContextAndMetrics, service=service)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_name(tuple(err.get("loc", ()))), "message": err.get("msg", "")}
                  for err in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(ServiceError)
    async def on_service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        extra = {}
        if isinstance(exc, InvalidField):
            extra["errors"] = [{"field": exc.field, "message": exc.message}]
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        status = status_of(exc)
        return problem(status.http, status.title, str(exc), headers=headers, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Keep the exception's headers: a 405 must say which methods are allowed.
        return problem(exc.status_code, getattr(exc, "title", "HTTP error"), str(exc.detail),
                       headers=exc.headers)

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unhandled_error", error=repr(exc))
        return problem(500, "Internal error", "the service failed to handle the request")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={
        503: {"description": "A dependency (store or Kafka) is unreachable"}})
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(asyncio.to_thread(check), timeout=5)
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                results[name] = f"unavailable: {exc!r}"[:300]
        ready = all(value == "ok" for value in results.values())
        body = {"status": "ready" if ready else "not ready", "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.openapi = _problem_openapi(app)  # type: ignore[method-assign]
    return app

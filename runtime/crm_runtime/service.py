"""Runs one service process: uvicorn for HTTP and grpc.aio for gRPC on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import NoReturn

import uvicorn
from fastapi import APIRouter
from starlette.types import ASGIApp

from crm_runtime import grpc_server, http, logs, secret_file, stop_deadline
from crm_runtime.auth import TokenCodec
from crm_runtime.kafka_admin import KafkaProbe
from crm_runtime.settings import ServiceSettings

log = logs.get(__name__)


def configure_logging(settings: ServiceSettings, process: str | None = None) -> None:
    logs.configure(process or settings.name, settings.platform.log_level, settings.platform.log_json)


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising the stop signal after shutdown: that would end the process
    before the gRPC server has drained its in-flight calls; and with a stop deadline (a
    request stuck on a store that does not answer cannot hold the stop)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        stop_deadline.arm()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def token_codec(settings: ServiceSettings) -> TokenCodec:
    """The codec for the configured secret. Bound only to loopback, a service with none
    configured uses (and on first use creates) the data folder's secret file; bound to any
    other address it refuses to start: a secret made up by one process is no deployment's."""
    platform = settings.platform
    exposed = [host for host in (settings.http_host, settings.grpc_host) if not secret_file.is_loopback(host)]
    if exposed and platform.auth_secret is None and platform.auth_secret_file is None:
        _refuse_to_start(f"refusing to listen on {', '.join(sorted(set(exposed)))} without a token secret: "
                         "set CRM_AUTH_SECRET or CRM_AUTH_SECRET_FILE")
    path = secret_file.secret_file_path(platform)
    try:
        # Only a loopback-only service may make the file; an exposed one must find it.
        secret = secret_file.auth_secret(platform, create=not exposed)
    except OSError as exc:
        _refuse_to_start(f"cannot read or create the token secret file {path}: {exc.strerror or exc}")
    if secret is None:
        _refuse_to_start(f"the token secret file {path} does not exist")
    try:
        return TokenCodec(secret, max_ttl_seconds=platform.auth_max_token_ttl_seconds)
    except ValueError as exc:
        _refuse_to_start(str(exc))


def _refuse_to_start(reason: str) -> NoReturn:
    """One error line naming the reason, then exit status 2 (a configuration error)."""
    log.error("service.refused_to_start", reason=reason)
    raise SystemExit(2)


# Room for the request line (method, path, query) beside the headers in a request's head.
REQUEST_LINE_ALLOWANCE = 8 * 1024


def uvicorn_config(api: ASGIApp, settings: ServiceSettings) -> uvicorn.Config:
    """uvicorn for `api`, reading at most a bounded request head per request.

    The ASGI middleware answers 431 for headers over the limit, but only once the server has
    read them, and httptools (uvicorn's fast parser) reads a head of any size, copying it
    over and over. So the protocol stops reading a head past the limit (plus a request line).
    """
    head_limit = settings.platform.http_max_header_bytes + REQUEST_LINE_ALLOWANCE
    try:
        protocol: type | str = _bounded_httptools(head_limit)
    except ImportError:  # no httptools: h11, which has a limit of its own (400 past it)
        protocol = "h11"
    return uvicorn.Config(api, host=settings.http_host, port=settings.http_port, http=protocol,
                          h11_max_incomplete_event_size=head_limit,
                          log_config=None, access_log=False, lifespan="on")


def _bounded_httptools(max_head_bytes: int) -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    body = json.dumps({"type": "about:blank", "title": "Request header fields too large", "status": 431,
                       "detail": f"the request's head exceeds {max_head_bytes} bytes"}).encode()
    refusal = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
               b"content-type: " + http.PROBLEM.encode() + b"\r\ncontent-length: " + str(len(body)).encode()
               + b"\r\nconnection: close\r\n\r\n" + body)

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Counts what arrives while a request's head is incomplete; past the limit, 431 and close."""

        _in_head = True
        _head_bytes = 0

        def on_message_begin(self) -> None:
            self._in_head, self._head_bytes = True, 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # Still in the head after this chunk: all of it was head (a chunk that completed the
            # head may carry body bytes too, so it is not counted).
            if self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > max_head_bytes:
                    if self.cycle is None or self.cycle.response_complete:  # no answer under way
                        self.transport.write(refusal)
                    self.transport.close()

    return BoundedHttpToolsProtocol


def serve_metrics(host: str, port: int) -> None:
    """Serves Prometheus /metrics from a background thread (relays and consumers have no API)."""
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host)
        log.info("metrics.listening", url=f"http://{host}:{port}/metrics")


async def serve(settings: ServiceSettings, store_check: Callable[[], None],
                routers: Sequence[APIRouter] = (),
                registrations: Sequence[grpc_server.Registration] = ()) -> None:
    """Serves the HTTP and gRPC sides of a service until SIGTERM/SIGINT.

    `store_check` raises when the service's store is unreachable; with the Kafka probe it
    decides /readyz. Each registration is a gRPC service with its permission table.
    """
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(settings.platform.api_threads, thread_name_prefix="store-work"))
    tokens = token_codec(settings)
    api = http.create_app(settings.name, "1", checks={
        "store": store_check, "kafka": KafkaProbe(settings.platform.kafka_bootstrap).check},
        tokens=tokens, max_body_bytes=settings.platform.http_max_body_bytes,
        max_header_bytes=settings.platform.http_max_header_bytes)
    for router in routers:
        api.include_router(router)
    # grpc.aio binds to the running loop, so the server is built here, inside it.
    server = grpc_server.build_server(f"{settings.grpc_host}:{settings.grpc_port}", registrations, tokens)
    await server.start()
    await grpc_server.mark_serving(server)
    config = uvicorn_config(api, settings)
    log.info("service.listening", http=f"http://{settings.http_host}:{settings.http_port}",
             grpc=f"{settings.grpc_host}:{settings.grpc_port}")
    try:
        # SIGINT/SIGTERM end uvicorn's serve(); gRPC then stops with a grace period.
        await _Server(config).serve()
    finally:
        await server.stop(grace=5)
        log.info("service.stopped")


def launch(settings: ServiceSettings, store_check: Callable[[], None],
           routers: Sequence[APIRouter] = (),
           registrations: Sequence[grpc_server.Registration] = ()) -> None:
    asyncio.run(serve(settings, store_check, routers, registrations))

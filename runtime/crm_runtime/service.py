"""Runs one service process: uvicorn for HTTP and grpc.aio for gRPC on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

import uvicorn
from fastapi import APIRouter

from crm_runtime import grpc_server, http, logs, secret_file
from crm_runtime.auth import TokenCodec
from crm_runtime.kafka_admin import KafkaProbe
from crm_runtime.settings import ServiceSettings

log = logs.get(__name__)


def configure_logging(settings: ServiceSettings, process: str | None = None) -> None:
    logs.configure(process or settings.name, settings.platform.log_level, settings.platform.log_json)


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising the stop signal after shutdown: that would end the process
    before the gRPC server has drained its in-flight calls."""

    @contextlib.contextmanager
    def capture_signals(self):
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
    tokens = token_codec(settings)
    api = http.create_app(settings.name, "1", checks={
        "store": store_check, "kafka": KafkaProbe(settings.platform.kafka_bootstrap).check},
        tokens=tokens)
    for router in routers:
        api.include_router(router)
    # grpc.aio binds to the running loop, so the server is built here, inside it.
    server = grpc_server.build_server(f"{settings.grpc_host}:{settings.grpc_port}", registrations, tokens)
    await server.start()
    await grpc_server.mark_serving(server)
    config = uvicorn.Config(api, host=settings.http_host, port=settings.http_port,
                            log_config=None, access_log=False, lifespan="on")
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

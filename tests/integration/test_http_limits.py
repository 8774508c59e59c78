"""Oversized HTTP requests are refused before anything parses them: 413 for bodies, 431 for
headers, as problem+json, both through the ASGI stack and against a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient

from crm_leads.settings import LeadsSettings
from crm_runtime import http, service
from crm_runtime.settings import PlatformSettings
from tests.conftest import TOKENS

parsed: list[int] = []
sent_everything = False  # whether the last _exchange got all its bytes out


def _api(**limits) -> http.FastAPI:
    api = http.create_app("limits-test", "1", checks={}, tokens=TOKENS, **limits)
    router = APIRouter()

    @router.post("/v1/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        parsed.append(len(body))
        return {"received": len(body)}

    @router.post("/v1/json")
    async def json_body(payload: dict) -> dict[str, int]:
        parsed.append(len(payload))
        return {"keys": len(payload)}

    api.include_router(router)
    return api


def _is_problem(response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == http.PROBLEM
    assert response.json()["status"] == status


def test_bodies_and_headers_over_the_limits_are_refused_before_the_app_sees_them():
    parsed.clear()
    client = TestClient(_api(max_body_bytes=1000, max_header_bytes=2000))
    assert client.post("/v1/echo", content=b"x" * 1000).json() == {"received": 1000}
    too_big = client.post("/v1/json", content=b'{"a": "' + b"x" * 5000 + b'"}',
                          headers={"content-type": "application/json"})
    _is_problem(too_big, 413)
    assert too_big.json()["title"] == "Content too large" and "1000 bytes" in too_big.json()["detail"]
    assert too_big.headers["X-Correlation-ID"]  # refusals carry the request's ids like any answer
    _is_problem(client.get("/healthz", headers={"X-Padding": "p" * 3000}), 431)
    assert client.get("/healthz", headers={"X-Padding": "p" * 1500}).status_code == 200
    assert parsed == [1000]
    assert 'route="unmatched",service="limits-test",status="413"' in client.get("/metrics").text


def _chunks(*sizes: int) -> list[dict]:
    return [{"type": "http.request", "body": b"x" * size, "more_body": i < len(sizes) - 1}
            for i, size in enumerate(sizes)]


def _call(app, messages: list[dict], headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, bytes, int]:
    """Calls an ASGI app with a streamed body (no Content-Length); returns status, body and
    how many body messages the app pulled."""
    queue = list(messages)
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        pulled += 1
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/echo", "raw_path": b"/v1/echo",
             "query_string": b"", "headers": [(b"host", b"t"), *headers], "http_version": "1.1",
             "scheme": "http", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def test_a_streamed_body_is_counted_chunk_by_chunk():
    parsed.clear()
    api = _api(max_body_bytes=1000)
    assert _call(api, _chunks(400, 400, 200))[0] == 200
    status, body, pulled = _call(api, _chunks(400, 400, 400, 400, 400))
    assert status == 413 and json.loads(body)["status"] == 413
    assert pulled == 3  # stopped reading at the chunk that passed the limit
    assert parsed == [1000]

    # Middleware alone (no FastAPI body reader in between) answers the same way.
    async def reads_everything(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    limited = http.RequestLimits(reads_everything, max_body_bytes=1000, max_header_bytes=1000)
    assert _call(limited, _chunks(600, 600))[0] == 413
    status, body, pulled = _call(limited, _chunks(10), headers=[(b"x-big", b"b" * 2000)])
    assert status == 431 and json.loads(body)["title"] == "Request header fields too large" and pulled == 0
    status, _, pulled = _call(limited, _chunks(10), headers=[(b"content-length", b"5000")])
    assert status == 413 and pulled == 0  # refused on the declared length alone


@pytest.fixture
def server():
    """The leads service's uvicorn set-up (default limits) serving the test app on a free port."""
    settings = LeadsSettings(platform=PlatformSettings(auth_secret="s" * 40))
    config = service.uvicorn_config(_api(), settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(instance.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield sock.getsockname()[1], settings.platform
    instance.should_exit = True
    thread.join(10)


def _exchange(port: int, head: bytes, body_chunks=(), read_timeout: float = 20) -> tuple[int, dict, bytes]:
    """Sends a raw request (stopping when the server stops reading) and returns its answer."""
    global sent_everything
    sent_everything = False
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as conn:
        try:
            conn.sendall(head)
            for chunk in body_chunks:
                conn.sendall(chunk)
            sent_everything = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest: what we want
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    head_part, _, body = answer.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def _head(method: str, *headers: str) -> bytes:
    return (f"{method} /v1/echo HTTP/1.1\r\nhost: t\r\nconnection: close\r\n"
            + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def test_a_real_server_refuses_oversized_requests_without_reading_them(server):
    port, platform = server
    assert platform.http_max_body_bytes == 1024 * 1024 and platform.http_max_header_bytes == 16 * 1024
    status, _, body = _exchange(port, _head("POST", "content-length: 5") + b"hello")
    assert status == 200 and json.loads(body) == {"received": 5}
    # 50 MB announced: refused on the Content-Length, before a byte of it is read.
    status, headers, body = _exchange(port, _head("POST", f"content-length: {50 * 1024 * 1024}"),
                                      [b"{" * 65536] * 800)
    assert status == 413 and headers["content-type"] == http.PROBLEM and json.loads(body)["status"] == 413
    assert not sent_everything
    # 2 MB chunked: refused once the chunks passed 1 MiB.
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    status, _, body = _exchange(port, _head("POST", "transfer-encoding: chunked"), [chunk] * 32 + [b"0\r\n\r\n"])
    assert status == 413 and json.loads(body)["title"] == "Content too large"
    # A 20 KiB header: read by the server, refused by the middleware.
    status, headers, body = _exchange(port, _head("GET", "x-pad: " + "p" * 20 * 1024))
    assert status == 431 and headers["content-type"] == http.PROBLEM
    # A 16 MB header: the server stops reading it early (what it refused to read fills the
    # socket buffers, and the rest is reset) and answers 431 as well.
    status, headers, body = _exchange(port, b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-pad: ",
                                      [b"p" * 65536] * 256 + [b"\r\n\r\n"])
    assert status == 431 and json.loads(body)["status"] == 431
    assert not sent_everything
    assert _exchange(port, b"GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")[0] == 200

"""One service's gRPC API in the test's own process, at the `address` fixture's Unix socket
(tests/conftest.py), for the integration tests of every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import pytest

from crm_runtime import grpc_server
from tests.conftest import TOKENS


def serve_and_call(registrations: Sequence[grpc_server.Registration], stub_class: Callable[[Any], Any],
                   address: str, scenario: Callable[[Any], Awaitable[None]]) -> None:
    """Serves `registrations` at `address`, runs `scenario(stub)`, stops the server."""
    async def main() -> None:
        server = grpc_server.build_server(address, registrations, TOKENS)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                await scenario(stub_class(channel))
        finally:
            await server.stop(grace=None)

    asyncio.run(main())


async def refused(call: Awaitable[Any], code: grpc.StatusCode) -> str:
    """The details of a call that must fail with `code`."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details()

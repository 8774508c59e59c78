"""Shared fixtures. Integration tests use the real broker and PostgreSQL that `make test`
starts; they fail (never skip) when those are missing, so a green run means they ran."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_runtime.auth import TokenCodec
from crm_runtime.settings import PlatformSettings

TEST_AUTH_SECRET = "test-secret-for-the-suite-only-0123456789"
TOKENS = TokenCodec(TEST_AUTH_SECRET)


def bearer(*roles: str, subject: str = "tester", groups: tuple[str, ...] = ()) -> dict[str, str]:
    """Authorization header for a caller with these roles (and groups: an agent's)."""
    return {"Authorization": f"Bearer {TOKENS.issue(subject, roles, groups=groups)}"}


def grpc_auth(*roles: str, subject: str = "tester", groups: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The same, as gRPC call metadata."""
    return [("authorization", f"Bearer {TOKENS.issue(subject, roles, groups=groups)}")]


def _bootstrap() -> str:
    bootstrap = os.environ.get("CRM_KAFKA_BOOTSTRAP")
    if not bootstrap:
        pytest.fail("CRM_KAFKA_BOOTSTRAP is not set: run the suite with `make test`")
    return bootstrap


@pytest.fixture
def kafka_bootstrap() -> str:
    return _bootstrap()


@pytest.fixture
def topic_prefix() -> str:
    """Each test gets its own topics, so tests never see each other's events."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def sqlite_platform(tmp_path: Path, topic_prefix: str) -> PlatformSettings:
    return PlatformSettings(store="sqlite", data_dir=tmp_path / "stores", topic_prefix=topic_prefix,
                            kafka_bootstrap=os.environ.get("CRM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))


@pytest.fixture
def postgres_platform(topic_prefix: str) -> Iterator[PlatformSettings]:
    """PostgreSQL settings with a fresh database per test (dropped afterwards)."""
    from crm_devstack.postgres import fresh_database

    base = PlatformSettings(store="postgres", topic_prefix=topic_prefix,
                            kafka_bootstrap=os.environ.get("CRM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    with fresh_database(base, "crm_test") as platform:
        yield platform


@pytest.fixture(params=["sqlite", "postgres"])
def any_platform(request) -> PlatformSettings:
    """Runs a test once per event store: the same suite against every recorder."""
    return request.getfixturevalue(f"{request.param}_platform")


@pytest.fixture
def address():
    """A Unix socket path for a gRPC server under test: a path, not a port, so nothing
    collides with another suite (tests/grpc_harness.py serves on it)."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="grpc-test-")
    yield f"unix:{folder}/service.sock"
    shutil.rmtree(folder, ignore_errors=True)

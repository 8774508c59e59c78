"""Starts the platform's processes for a test, isolated by topic prefix, data dir and ports."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_devstack.processes import DEFAULT_PORTS, SPECS, Platform, port_env
from tests.conftest import TEST_AUTH_SECRET
from tests.kafka_helpers import ensure_topics

# Test ports sit below 32768, outside the kernel's ephemeral range, so an outgoing
# connection can never hold one when a test process binds it.
# Overridable so that two suites (two work trees) can run side by side on one machine.
HTTP_OFFSET = int(os.environ.get("CRM_TEST_HTTP_OFFSET", "10000"))  # leads on 18001, ...; metrics 19101...
GRPC_OFFSET = int(os.environ.get("CRM_TEST_GRPC_OFFSET", "-30000"))  # leads on 20051, ... analytics on 20055


def store_env(request: Any) -> dict[str, str]:
    """The environment that runs the platform on a fixture's store (`request.param`):
    nothing for SQLite; for "postgres", the test database (one variable switches every
    service's store)."""
    if request.param != "postgres":
        return {}
    pg = request.getfixturevalue("postgres_platform")
    return {"CRM_STORE": "postgres", "CRM_POSTGRES_DBNAME": pg.postgres_dbname}


def start_platform(tmp_path: Path, bootstrap: str, prefix: str, names: list[str] | None = None,
                   extra_env: dict[str, str] | None = None, deferred: tuple[str, ...] = ()) -> Platform:
    """Starts the named processes (default: all) and waits until they are ready.

    `deferred` names processes the test starts itself later, with `platform.start(name)`.
    """
    ensure_topics(bootstrap, prefix)
    env = {
        **port_env(HTTP_OFFSET, GRPC_OFFSET),
        "CRM_KAFKA_BOOTSTRAP": bootstrap,
        "CRM_TOPIC_PREFIX": prefix,
        "CRM_DATA_DIR": str(tmp_path / "stores"),
        "CRM_CONSUMER_SESSION_TIMEOUT_SECONDS": "6",
        "CRM_AUTH_SECRET": TEST_AUTH_SECRET,
        **(extra_env or {}),
    }
    specs = [spec for spec in SPECS if names is None or spec.name in names]
    platform = Platform(env=env, log_dir=tmp_path / "logs", specs=specs)
    for spec in specs:
        if spec.name not in deferred:
            platform.start(spec.name)
    try:
        platform.wait_ready(timeout=120)
    except Exception:
        platform.stop()
        raise
    return platform


def _default_ports(service: str) -> tuple[int, int]:
    return DEFAULT_PORTS[next(spec.env_prefix for spec in SPECS if spec.name == service)]


def url(service: str) -> str:
    return f"http://127.0.0.1:{_default_ports(service)[0] + HTTP_OFFSET}"


def grpc_target(service: str) -> str:
    return f"127.0.0.1:{_default_ports(service)[1] + GRPC_OFFSET}"


def wait_for(condition: Callable[[], object], timeout: float = 90.0, interval: float = 0.3,
             what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not met in {timeout}s (last: {last!r})")


def log_text(platform: Platform, name: str) -> str:
    assert platform.log_dir is not None
    path = platform.log_dir / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def stop_within(platform: Platform, name: str, seconds: float = 10.0) -> float:
    """SIGTERM to one process; fails unless it ended within `seconds`. Returns how long it took."""
    proc = platform.procs[name]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    took = time.monotonic() - started
    assert took < seconds, f"{name} took {took:.1f}s to stop on SIGTERM"
    return took

"""`make run`'s command as a user runs it: it starts a broker and every process, says where
they listen, and SIGTERM stops everything it started, the broker included."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from crm_devstack.processes import port_env
from tests.conftest import TEST_AUTH_SECRET, bearer

pytestmark = pytest.mark.e2e
OFFSET = 20_000  # away from the defaults and from the other e2e tests


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_run_starts_everything_and_sigterm_stops_everything(tmp_path):
    # All below 32768 (outside the ephemeral range): HTTP 28001..., metrics 29101...,
    # gRPC 30051..., Kafka 31092 (controller 31093).
    ports = {**port_env(OFFSET, OFFSET - 40_000), "CRM_KAFKA_PORT": "31092"}
    env = {**os.environ, **ports, "CRM_DATA_DIR": str(tmp_path), "CRM_AUTH_SECRET": TEST_AUTH_SECRET,
           "DEMO_LEADS": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("CRM_KAFKA_BOOTSTRAP", None)
    proc = subprocess.Popen([sys.executable, "-m", "crm_devstack", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    all_ports = [int(v) for k, v in ports.items() if k.endswith("_PORT")]
    try:
        lines = []
        deadline = time.monotonic() + 180
        while not any(line.startswith("demo:") for line in lines):
            assert time.monotonic() < deadline, "".join(lines[-30:])
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines[-30:])
            lines.append(line)
        banner = "".join(lines)
        assert "The platform is up" in banner and "demo: 3 leads captured" in banner
        assert f"http://127.0.0.1:{ports['CRM_LEADS_HTTP_PORT']}" in banner
        report = f"http://127.0.0.1:{ports['CRM_ANALYTICS_HTTP_PORT']}/v1/reports/leads"
        deadline = time.monotonic() + 90
        while httpx.get(report, headers=bearer("analyst")).json()["assigned"] < 3:
            assert time.monotonic() < deadline, "demo leads were not assigned and counted"
            time.sleep(0.5)
        assert all(listening(port) for port in all_ports)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    deadline = time.monotonic() + 30
    while any(listening(port) for port in all_ports):
        assert time.monotonic() < deadline, [p for p in all_ports if listening(p)]
        time.sleep(0.5)
    assert proc.returncode == 0

"""`make run`'s command as a user runs it: it starts a broker and every process, says where
they listen, restarts a process (the broker too) that dies, and SIGTERM stops everything it
started, each process on SIGTERM alone."""

import os
import signal

import httpx
import pytest

from crm_devstack.lifecycle import alive
from tests.conftest import bearer
from tests.e2e.run_command import RunCommand, listening, port_numbers, stack_ports, wait_until

pytestmark = pytest.mark.e2e
# All below 32768 (outside the ephemeral range): HTTP 28001..., metrics 29101...,
# gRPC 30051..., Kafka 31092 (controller 31093); away from the other e2e tests.
PORTS = stack_ports(20_000, -20_000, 31_092)


def report(ports):
    url = f"http://127.0.0.1:{ports['CRM_ANALYTICS_HTTP_PORT']}/v1/reports/leads"
    return httpx.get(url, headers=bearer("analyst"), timeout=5).json()


def ready(port: str) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def test_run_starts_everything_restarts_what_dies_and_sigterm_stops_everything(tmp_path):
    run = RunCommand(tmp_path, PORTS, DEMO_LEADS="3")
    try:
        run.wait_line(lambda line: line.startswith("demo:"))
        banner = run.text()
        assert "The platform is up" in banner and "demo: 3 leads captured" in banner
        assert f"http://127.0.0.1:{PORTS['CRM_LEADS_HTTP_PORT']}" in banner
        wait_until(lambda: report(PORTS)["assigned"] == 3, 90, "demo leads assigned and counted")
        assert all(listening(port) for port in port_numbers(PORTS))

        # A child killed with -9 is started again, and so is the broker (its data kept).
        for name in ("leads-relay", "kafka"):
            before = run.recorded()[name]
            os.kill(before["pid"], signal.SIGKILL)
            line = run.wait_line(lambda line, n=name: f"| {n} exited with -9 (SIGKILL)" in line, 30)
            assert "restart 1 in 1 s" in line
            wait_until(lambda n=name, b=before: (now := run.recorded().get(n)) and now["pid"] != b["pid"]
                       and alive(now["pid"], now["start"]), 30, f"{name} restarted")
        # Ready again: every service answers /readyz, and a new lead goes all the way through.
        for key, port in PORTS.items():
            if key.endswith("_HTTP_PORT"):
                wait_until(lambda p=port: ready(p), 120, f"{key} ready after the restarts")
        leads = f"http://127.0.0.1:{PORTS['CRM_LEADS_HTTP_PORT']}/v1/leads"
        created = httpx.post(leads, headers=bearer("sales_rep"), timeout=10,
                             json={"name": "After Restart", "email": "after@example.com", "channel": "web"})
        assert created.status_code == 201, created.text
        wait_until(lambda: report(PORTS)["assigned"] == 4, 120, "the new lead assigned and counted")
        assert report(PORTS)["captured"] == 4
        assert "Traceback" not in run.text()
        recorded = run.recorded()
    finally:
        code = run.stop()
    wait_until(lambda: not [p for p in port_numbers(PORTS) if listening(p)], 30, "every port closed")
    assert code == 0
    assert not [name for name, entry in recorded.items() if alive(entry["pid"], entry["start"])]
    # Every process stopped on SIGTERM within the grace period: none needed SIGKILL.
    assert "run | stopped: every process ended on SIGTERM" in run.text(), "\n".join(run.own_lines()[-10:])
    assert not (tmp_path / "run.json").exists()

"""The dev stack cleans up after itself: `make run`'s supervisor killed with -9 during a burst
of captures takes every process with it, the next run over the same data folder comes up
and loses no acknowledged lead; processes an earlier run left behind, and ports someone
else holds, are named in one line, never a traceback."""

import json
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from crm_devstack.lifecycle import alive, start_time
from tests.conftest import bearer
from tests.e2e.run_command import RunCommand, listening, none_alive, port_numbers, stack_ports, wait_until

pytestmark = pytest.mark.e2e
# Below 32768 and apart from test_make_run's: HTTP 29001..., metrics 30101..., gRPC 31051...,
# Kafka 31192 (controller 31193).
PORTS = stack_ports(21_000, -19_000, 31_192)
LEADS = f"http://127.0.0.1:{PORTS['CRM_LEADS_HTTP_PORT']}"
REPORT = f"http://127.0.0.1:{PORTS['CRM_ANALYTICS_HTTP_PORT']}/v1/reports/leads"
BURST, CLIENTS = 600, 3


def capture(http: httpx.Client, key: str) -> httpx.Response | None:
    try:
        return http.post(f"{LEADS}/v1/leads", headers={"Idempotency-Key": key}, json={
            "name": f"Burst {key}", "email": f"{key}@example.com", "channel": "web"})
    except httpx.HTTPError:
        return None


def test_supervisor_killed_during_a_burst_leaves_nothing_and_loses_no_lead(tmp_path):
    first = RunCommand(tmp_path, PORTS)
    acked: dict[str, str] = {}  # idempotency key -> lead id, for every 201 or 200
    try:
        first.wait_up()
        recorded = first.recorded()
        assert set(recorded) >= {"kafka", "leads", "leads-relay", "workflow-worker", "analytics-worker"}

        def burst(client: int) -> None:
            with httpx.Client(headers=bearer("sales_rep"), timeout=5) as http:
                for i in range(client, BURST, CLIENTS):
                    response = capture(http, f"burst-{i}")
                    if response is not None and response.status_code in (200, 201):
                        acked[f"burst-{i}"] = response.json()["id"]

        clients = [threading.Thread(target=burst, args=(n,)) for n in range(CLIENTS)]
        for client in clients:
            client.start()
        wait_until(lambda: len(acked) >= 100, 120, "100 leads acknowledged", interval=0.01)
        first.proc.send_signal(signal.SIGKILL)  # the supervisor alone
        killed_with = dict(acked)
        for client in clients:
            client.join(120)
        assert first.wait_exit(10) == -signal.SIGKILL
        assert len(acked) < BURST, "the burst ended before the kill: nothing was interrupted"
    finally:
        if first.proc.poll() is None:
            first.proc.kill()

    # Nothing of the stack is left: no recorded process (by pid and start time), no port.
    wait_until(lambda: none_alive(recorded), 15, "every process of the killed run gone")
    wait_until(lambda: not [p for p in port_numbers(PORTS) if listening(p)], 15, "every port closed")

    second = RunCommand(tmp_path, PORTS)
    try:
        second.wait_up()
        # A third run over the same folder while the second lives: one line, nothing started.
        third = RunCommand(tmp_path, PORTS)
        assert third.wait_exit(30) == 1
        assert third.own_lines() == third.lines and len(third.lines) == 1, third.text()
        assert f"another `make run` (pid {second.proc.pid}) is running over {tmp_path}" in third.lines[0]

        # The client retries what was not acknowledged, with the same keys: those captured
        # before the kill answer 200 with the same lead, the others are captured now.
        with httpx.Client(headers=bearer("sales_rep"), timeout=10) as http:
            for i in range(BURST):
                if f"burst-{i}" not in acked:
                    response = capture(http, f"burst-{i}")
                    assert response is not None and response.status_code in (200, 201), response
                    acked[f"burst-{i}"] = response.json()["id"]
        ids = set(acked.values())
        assert len(ids) == BURST and set(killed_with.values()) <= ids

        unassigned = set(ids)

        def every_lead_assigned() -> bool:
            with httpx.Client(headers=bearer("sales_manager"), timeout=10) as http:
                for lead_id in list(unassigned):
                    if http.get(f"{LEADS}/v1/leads/{lead_id}").json()["owner_id"]:
                        unassigned.discard(lead_id)
            return not unassigned

        wait_until(every_lead_assigned, 240, "every acknowledged lead assigned", interval=2)

        def counted() -> dict | None:
            r = httpx.get(REPORT, headers=bearer("analyst"), timeout=10).json()
            return r if r["assigned"] == len(ids) else None

        final = wait_until(counted, 120, "every lead counted", interval=1)
        assert final["captured"] == final["assigned"] == len(ids)  # each exactly once
        assert "Traceback" not in second.text()
    finally:
        code = second.stop()
    assert code == 0
    assert "run | stopped: every process ended on SIGTERM" in second.text(), "\n".join(second.own_lines()[-10:])
    wait_until(lambda: not [p for p in port_numbers(PORTS) if listening(p)], 30, "every port closed")


def _hand_started(process: str, env: dict[str, str], port: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "crm_runtime", *process.split()], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: listening(int(port)) or proc.poll() is not None, 60, f"{process} listening")
    assert proc.poll() is None, f"{process} exited with {proc.returncode}"
    return proc


def test_leftovers_are_stopped_and_a_taken_port_is_named_in_one_line(tmp_path):
    # Processes as an earlier run would have left them: relays holding the stack's metrics
    # ports (the failure users saw), their broker gone.
    hand_env = {"CRM_DATA_DIR": str(tmp_path / "hand"), "CRM_KAFKA_BOOTSTRAP": "127.0.0.1:9",
                "CRM_LEADS_RELAY_METRICS_PORT": PORTS["CRM_LEADS_RELAY_METRICS_PORT"],
                "CRM_WORKFLOW_RELAY_METRICS_PORT": PORTS["CRM_WORKFLOW_RELAY_METRICS_PORT"]}
    leftover = _hand_started("leads relay", hand_env, PORTS["CRM_LEADS_RELAY_METRICS_PORT"])
    foreign = _hand_started("workflow relay", hand_env, PORTS["CRM_WORKFLOW_RELAY_METRICS_PORT"])
    try:
        gone = subprocess.Popen(["true"])  # a supervisor that is no more
        gone.wait()
        (tmp_path / "run.json").write_text(json.dumps({
            "supervisor": {"pid": gone.pid, "start": 0},
            "processes": {
                # recorded by the earlier run: stopped
                "leads-relay": {"pid": leftover.pid, "start": start_time(leftover.pid)},
                # a recorded pid now used by another process (another start time): left alone
                "workflow-relay": {"pid": foreign.pid, "start": start_time(foreign.pid) - 1},
            }}))
        run = RunCommand(tmp_path, PORTS)
        assert run.wait_exit(60) == 1
        lines = run.own_lines()
        assert lines == run.lines and len(lines) == 2, run.text()
        assert lines[0].endswith(f"stopped what an earlier run over {tmp_path} left running: "
                                 f"leads-relay (pid {leftover.pid})"), lines[0]
        port = PORTS["CRM_WORKFLOW_RELAY_METRICS_PORT"]
        assert "cannot start, ports are taken: " in lines[1]
        assert (f"{port} (CRM_WORKFLOW_RELAY_METRICS_PORT) held by pid {foreign.pid} "
                f"(python -m crm_runtime workflow relay)") in lines[1], lines[1]
        assert leftover.wait(5) is not None
        assert foreign.poll() is None and alive(foreign.pid, start_time(foreign.pid))
        assert not listening(int(PORTS["CRM_KAFKA_PORT"]))  # nothing was started
        assert not (tmp_path / "run.json").exists()
    finally:
        for proc in (leftover, foreign):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

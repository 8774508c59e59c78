"""The dev stack's building blocks against the real kernel: the parent-death signal, start
times, port checks, the run file and the restart back-off."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from crm_devstack.lifecycle import RunFile, StartError, alive, busy_ports, port_free, start_time
from crm_devstack.processes import RestartPolicy, Spec, spec_ports


def test_a_child_dies_with_its_parent_even_one_killed_with_9():
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, time\n"
        "from crm_devstack.lifecycle import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent())\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    started = start_time(child)
    assert alive(child, started)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while alive(child, started):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.05)


def test_a_pid_is_ours_only_with_its_start_time():
    me = os.getpid()
    assert alive(me, start_time(me))
    assert not alive(me, start_time(me) + 1)  # the same pid, another process
    done = subprocess.Popen(["true"])
    done.wait()
    assert start_time(done.pid) is None and not alive(done.pid, 0)


def test_a_taken_port_is_named_with_its_holder():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        taken = busy_ports({"CRM_X_PORT": ("127.0.0.1", port)})
        assert taken.startswith(f"{port} (CRM_X_PORT) held by pid {os.getpid()} (")
    assert port_free("127.0.0.1", port)
    assert busy_ports({"CRM_X_PORT": ("127.0.0.1", port)}) is None


def test_the_run_file_refuses_a_second_run_and_stops_what_a_dead_one_left(tmp_path):
    first = RunFile(tmp_path)
    assert first.claim() == []
    first.record({})
    with pytest.raises(StartError, match=rf"another `make run` \(pid {os.getpid()}\) is running over"):
        RunFile(tmp_path).claim()
    sleeper = subprocess.Popen(["sleep", "60"])
    first.record({"sleeper": sleeper.pid})
    os.close(first._lock)  # the supervisor dies: its lock goes, its file stays
    first._lock = None
    assert RunFile(tmp_path).claim() == [f"sleeper (pid {sleeper.pid})"]
    assert sleeper.wait(5) == -signal.SIGTERM


def test_restarts_back_off_from_1_to_30_s_and_reset_after_a_stable_run():
    policy = RestartPolicy()
    delays, delay = [], None
    for _ in range(7):
        delay = policy.next_delay(delay, uptime=2)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert policy.next_delay(30, uptime=61) == 1


def test_the_ports_of_a_process_come_from_its_settings_variables():
    service = Spec("leads", ("-m", "crm_runtime", "leads", "api"), "CRM_LEADS_", serves_http=True)
    relay = Spec("leads-relay", ("-m", "crm_runtime", "leads", "relay"), "CRM_LEADS_",
                 metrics_env="CRM_LEADS_RELAY_METRICS_PORT")
    assert spec_ports(service, {}) == {"CRM_LEADS_HTTP_PORT": ("127.0.0.1", 8001),
                                       "CRM_LEADS_GRPC_PORT": ("127.0.0.1", 50051)}
    assert spec_ports(relay, {"CRM_LEADS_RELAY_METRICS_PORT": "19101", "CRM_LEADS_HTTP_HOST": "0.0.0.0"}) == {
        "CRM_LEADS_RELAY_METRICS_PORT": ("0.0.0.0", 19101)}
    assert spec_ports(relay, {"CRM_LEADS_RELAY_METRICS_PORT": "0"}) == {}

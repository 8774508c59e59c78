"""`python -m crm_devstack run` as a user runs it, for the tests of `make run` itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from crm_devstack.lifecycle import alive
from crm_devstack.processes import port_env
from tests.conftest import TEST_AUTH_SECRET


def stack_ports(http_offset: int, grpc_offset: int, kafka_port: int) -> dict[str, str]:
    """Every port variable of a stack, shifted by the offsets. Test stacks keep all their
    ports below 32768 (outside the ephemeral range) and name the controller port too, so
    a CRM_KAFKA_CONTROLLER_PORT of the caller's environment is not taken over."""
    return {**port_env(http_offset, grpc_offset), "CRM_KAFKA_PORT": str(kafka_port),
            "CRM_KAFKA_CONTROLLER_PORT": str(kafka_port + 1)}


def port_numbers(ports: dict[str, str]) -> list[int]:
    return [int(v) for k, v in ports.items() if k.endswith("_PORT")]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)


class RunCommand:
    """One `crm_devstack run` over a data folder; its output is collected line by line."""

    def __init__(self, data: Path, ports: dict[str, str], **extra_env: str):
        env = {**os.environ, **ports, "CRM_DATA_DIR": str(data), "CRM_AUTH_SECRET": TEST_AUTH_SECRET,
               "PYTHONUNBUFFERED": "1", **extra_env}
        env.pop("CRM_KAFKA_BOOTSTRAP", None)  # the run's own broker, not the suite's
        self.data = data
        self.proc = subprocess.Popen([sys.executable, "-m", "crm_devstack", "run"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def own_lines(self) -> list[str]:
        """What the command itself said: not the children's prefixed log lines."""
        return [line for line in self.lines if not line.lstrip().split(" | ", 1)[-1].startswith("{")]

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            if self.proc.poll() is not None:
                self._reader.join(5)
                found = [line for line in self.lines[seen:] if predicate(line)]
                assert found, f"run exited with {self.proc.returncode}:\n" + "\n".join(self.own_lines()[-30:])
                return found[0]
            assert time.monotonic() < deadline, "\n".join(self.own_lines()[-30:])
            time.sleep(0.1)

    def wait_up(self, timeout: float = 180) -> None:
        self.wait_line(lambda line: line.startswith("The platform is up"), timeout)

    def wait_exit(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def recorded(self) -> dict[str, dict]:
        """The processes in the run file: name -> {"pid", "start"}."""
        return json.loads((self.data / "run.json").read_text())["processes"]

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # its children die with it
            raise


def none_alive(recorded: dict[str, dict]) -> bool:
    return not [name for name, entry in recorded.items() if alive(entry["pid"], entry["start"])]

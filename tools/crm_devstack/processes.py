"""The platform's processes, and a small supervisor that starts, watches and stops them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from crm_runtime import context as contexts


@dataclass(frozen=True)
class Spec:
    name: str
    argv: tuple[str, ...]  # after `python`, e.g. ("-m", "crm_runtime", "leads", "api")
    # The settings prefix of the service this process belongs to, and whether it serves HTTP.
    env_prefix: str
    serves_http: bool = False
    # The variable naming its Prometheus port (relays, workers, dispatchers), if any.
    metrics_env: str | None = None

    def command(self) -> list[str]:
        """The process's command line (the same one the compose file and image use)."""
        return [sys.executable, *self.argv]


def _spec(process: contexts.Process) -> Spec:
    setting = process.metrics_setting
    return Spec(process.name, tuple(process.argv()), process.env_prefix, process.serves_http,
                process.env_prefix + setting.upper() if setting else None)


# Every process of every declared context (crm_runtime.context): nothing to edit here when
# a context is added.
SPECS = [_spec(process) for process in contexts.processes()]
SERVICE_SETTINGS = [context.settings for context in contexts.discover()]


def _default(settings_class, field_name: str):
    return settings_class.model_fields[field_name].default


DEFAULT_PORTS = {  # service prefix: (http, grpc), as in DESIGN.md
    cls.model_config["env_prefix"]: (_default(cls, "http_port"), _default(cls, "grpc_port"))
    for cls in SERVICE_SETTINGS
}
METRICS_PORTS = {  # Prometheus ports of the relay, worker and dispatcher processes
    _spec(process).metrics_env: _default(process.context.settings, process.metrics_setting)
    for process in contexts.processes() if process.metrics_setting
}
GRPC_PORT_OF = {context.name: _default(context.settings, "grpc_port") for context in contexts.discover()}


def port_env(http_offset: int = 0, grpc_offset: int = 0) -> dict[str, str]:
    """Port variables for every service, shifted by the offsets (tests run beside `make run`),
    and the address of every service another one sends commands to."""
    env = {}
    for prefix, (http, grpc) in DEFAULT_PORTS.items():
        env[f"{prefix}HTTP_PORT"] = str(http + http_offset)
        env[f"{prefix}GRPC_PORT"] = str(grpc + grpc_offset)
    for name, port in METRICS_PORTS.items():
        env[name] = str(port + http_offset)
    for cls in SERVICE_SETTINGS:
        for field_name in cls.model_fields:
            target = field_name.removesuffix("_grpc_target").replace("_", "-")
            if field_name.endswith("_grpc_target") and target in GRPC_PORT_OF:
                env[f"{cls.model_config['env_prefix']}{field_name.upper()}"] = \
                    f"127.0.0.1:{GRPC_PORT_OF[target] + grpc_offset}"
    return env


def http_url(spec: Spec, env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env.get(spec.env_prefix + 'HTTP_PORT', DEFAULT_PORTS[spec.env_prefix][0])}"


@dataclass
class Platform:
    env: dict[str, str]
    log_dir: Path | None = None  # None: lines go to this console, prefixed by process name
    specs: list[Spec] = field(default_factory=lambda: list(SPECS))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def spec(self, name: str) -> Spec:
        return next(spec for spec in self.specs if spec.name == name)

    def start(self, name: str) -> subprocess.Popen:
        spec = self.spec(name)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
            proc = subprocess.Popen(spec.command(), env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            out.close()
        else:
            proc = subprocess.Popen(spec.command(), env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            threading.Thread(target=_prefix_lines, args=(name, proc), daemon=True).start()
        self.procs[name] = proc
        return proc

    def start_all(self) -> None:
        for spec in self.specs:
            self.start(spec.name)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for spec in self.specs:
            if not spec.serves_http or spec.name not in self.procs:
                continue
            url = http_url(spec, self.env) + "/readyz"
            while True:
                self.check_alive()
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{spec.name} not ready at {url} after {timeout}s")
                time.sleep(0.3)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"process {name} exited with {proc.returncode}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _prefix_lines(name: str, proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"{name:>17} | {line.decode(errors='replace')}")
        sys.stdout.flush()

"""The platform's processes, and a small supervisor that starts, watches and stops them.

Every child dies with the supervisor (see lifecycle.py), stops on SIGTERM within
STOP_GRACE_SECONDS or is killed, and, under a restart policy, is started again with
back-off when it exits unexpectedly."""

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

from crm_devstack.kafka_broker import Broker
from crm_devstack.lifecycle import STOP_GRACE_SECONDS, RunFile, StartError, busy_ports, die_with_parent, exit_text, say
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
METRICS_PORTS: dict[str, int] = {  # Prometheus ports of the relay, worker and dispatcher processes
    f"{process.env_prefix}{process.metrics_setting.upper()}": _default(process.context.settings,
                                                                       process.metrics_setting)
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


BROKER = "kafka"  # the broker's name among a platform's processes


def http_url(spec: Spec, env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env.get(spec.env_prefix + 'HTTP_PORT', DEFAULT_PORTS[spec.env_prefix][0])}"


def spec_ports(spec: Spec, env: dict[str, str]) -> dict[str, tuple[str, int]]:
    """The ports a process binds, by its settings variables: HTTP and gRPC for a service,
    the metrics port of a relay, worker or dispatcher. Unset means the default."""
    wanted: dict[str, tuple[str, int]] = {}
    if spec.serves_http:
        http, grpc = DEFAULT_PORTS.get(spec.env_prefix, (0, 0))
        wanted = {"HTTP_PORT": ("HTTP_HOST", http), "GRPC_PORT": ("GRPC_HOST", grpc)}
    elif spec.metrics_env:
        suffix = spec.metrics_env.removeprefix(spec.env_prefix)
        wanted = {suffix: ("HTTP_HOST", METRICS_PORTS.get(spec.metrics_env, 0))}
    ports = {}
    for suffix, (host_suffix, default) in wanted.items():
        port = int(env.get(spec.env_prefix + suffix, default) or 0)
        if port:
            host = env.get(spec.env_prefix + host_suffix, "127.0.0.1")
            ports[spec.env_prefix + suffix] = (host, port)
    return ports


@dataclass(frozen=True)
class RestartPolicy:
    """Like a compose `restart: unless-stopped`: every unexpected exit is restarted, after
    `initial` seconds doubling up to `maximum`; back to `initial` once a process has stayed
    up `stable_after` seconds."""

    initial: float = 1.0
    maximum: float = 30.0
    stable_after: float = 60.0

    def next_delay(self, previous: float | None, uptime: float) -> float:
        if previous is None or uptime >= self.stable_after:
            return self.initial
        return min(self.maximum, previous * 2)


@dataclass
class _Restarts:
    started: float  # monotonic time of the last start
    count: int = 0
    delay: float | None = None
    due: float | None = None  # set while an exit waits for its restart


@dataclass
class Platform:
    env: dict[str, str]
    log_dir: Path | None = None  # None: lines go to this console, prefixed by process name
    specs: list[Spec] = field(default_factory=lambda: list(SPECS))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # With a policy, `check_alive` restarts what exited instead of raising (`make run`).
    restart: RestartPolicy | None = None
    # Supervised beside the specs under the name `kafka` (`make run`); stopped last.
    broker: Broker | None = None
    # Where the pids of every process are recorded for the next run to check.
    run_file: RunFile | None = None
    _restarts: dict[str, _Restarts] = field(default_factory=dict, repr=False)
    _stopping: bool = field(default=False, repr=False)

    def spec(self, name: str) -> Spec:
        return next(spec for spec in self.specs if spec.name == name)

    def ports(self) -> dict[str, tuple[str, int]]:
        """Every port the platform's processes bind (the broker's too), labelled."""
        ports = dict(self.broker.ports()) if self.broker is not None else {}
        for spec in self.specs:
            ports.update(spec_ports(spec, self.env))
        return ports

    def start(self, name: str) -> subprocess.Popen:
        """Starts one process; it dies with this one (call from the main thread).

        Raises StartError naming the port and its holder when one of its ports is taken.
        """
        if name == BROKER and self.broker is not None:
            busy = busy_ports(self.broker.ports())
            if busy:
                raise StartError(f"cannot start kafka: port {busy}")
            proc = self.broker.launch()
        else:
            proc = self._start_spec(self.spec(name))
        self.procs[name] = proc
        before = self._restarts.get(name)  # the back-off carries over to the next exit
        self._restarts[name] = _Restarts(started=time.monotonic(), count=before.count if before else 0,
                                         delay=before.delay if before else None)
        self._record()
        return proc

    def _start_spec(self, spec: Spec) -> subprocess.Popen:
        busy = busy_ports(spec_ports(spec, self.env))
        if busy:
            raise StartError(f"cannot start {spec.name}: port {busy}")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{spec.name}.log", "ab") as out:
                return subprocess.Popen(spec.command(), env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=die_with_parent())
        proc = subprocess.Popen(spec.command(), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=die_with_parent())
        threading.Thread(target=_prefix_lines, args=(spec.name, proc), daemon=True).start()
        return proc

    def _record(self) -> None:
        if self.run_file is not None:
            self.run_file.record({name: proc.pid for name, proc in self.procs.items()
                                  if proc.poll() is None})

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
        """Raises if a process exited; with a restart policy, restarts it instead (after
        its back-off), with one line per exit. A stopping platform restarts nothing."""
        now = time.monotonic()
        for name, proc in list(self.procs.items()):
            if proc.poll() is None or self._stopping:
                continue
            if self.restart is None:
                raise RuntimeError(f"process {name} exited with {proc.returncode}")
            state = self._restarts.setdefault(name, _Restarts(started=now))
            if state.due is None:
                state.delay = self.restart.next_delay(state.delay, now - state.started)
                state.due = now + state.delay
                state.count += 1
                say(f"{name} exited with {exit_text(proc.returncode)} after {now - state.started:.0f} s; "
                    f"restart {state.count} in {state.delay:g} s")
                self._record()
            elif now >= state.due:
                try:
                    self.start(name)
                except (StartError, OSError) as exc:
                    state.delay = self.restart.next_delay(state.delay, 0)
                    state.due = time.monotonic() + state.delay
                    say(f"{name} could not be restarted: {exc}; next try in {state.delay:g} s")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def stop(self, timeout: float = STOP_GRACE_SECONDS) -> list[str]:
        """SIGTERM to every process, SIGKILL to any still running `timeout` seconds later;
        the broker last, so consumers leave their group cleanly. Returns (and says) the
        names that needed the kill."""
        self._stopping = True
        services = {name: proc for name, proc in self.procs.items() if name != BROKER}
        broker = {name: proc for name, proc in self.procs.items() if name == BROKER}
        killed = _terminate(services, timeout) + _terminate(broker, timeout)
        if killed:
            say(f"{', '.join(killed)} did not stop within {timeout:g} s of SIGTERM: killed")
        if self.run_file is not None:
            self.run_file.release()
        return killed


def _terminate(procs: dict[str, subprocess.Popen], timeout: float) -> list[str]:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    killed = []
    for name, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed.append(name)
    return killed


def _prefix_lines(name: str, proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"{name:>17} | {line.decode(errors='replace')}")
        sys.stdout.flush()

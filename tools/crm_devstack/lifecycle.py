"""What keeps the dev stack from leaving processes behind, and what finds them if it did.

- `die_with_parent`: children get PR_SET_PDEATHSIG, so the kernel kills them when the
  supervisor dies, even by SIGKILL. The signal fires when the *thread* that forked them
  ends, so the supervisor starts every child from its main thread.
- `RunFile`: `run.json` in the data folder names the supervisor and every process it
  started, each with its start time from /proc (a recycled pid is never mistaken for one
  of ours); `run.lock` beside it is held (flock) for as long as the supervisor lives.
- `busy_ports`: before anything starts, every port the stack will bind is tried, and the
  taken ones are named with the process holding them.
- `terminate`: SIGTERM, a grace period, then SIGKILL; says who needed the kill.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 10.0


class StartError(RuntimeError):
    """Something keeps the stack from starting; the message is one line for the user."""


def say(message: str, who: str = "supervisor") -> None:
    """One line in the same column layout as the children's prefixed output."""
    sys.stdout.write(f"{who:>17} | {message}\n")
    sys.stdout.flush()


# -- processes die with the supervisor -------------------------------------------------

_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent(sig: int = signal.SIGKILL):
    """A `preexec_fn` that makes the kernel send `sig` to the child when its parent dies.

    SIGKILL, because a supervisor that died without stopping its children was itself
    killed or crashed: the stores, relays and consumers are built to survive a kill, and a
    child that ignored a softer signal would be exactly the leftover this prevents.
    Fork from a thread that lives as long as the supervisor (the main thread): the kernel
    sends the signal when the forking thread ends.
    """
    if _prctl is None:
        return None
    parent = os.getpid()
    prctl = _prctl  # resolved before fork: the child only makes the call

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: do what it would have
            os.kill(os.getpid(), sig)

    return preexec


# -- is it still the process we started? ------------------------------------------------

def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    state, started = fields[0], int(fields[19])
    return None if state in ("Z", "X") else started


def alive(pid: int, started: int | None) -> bool:
    return started is not None and start_time(pid) == started


def describe(pid: int) -> str:
    """`pid 123 (python -m crm_runtime leads relay)`, as far as it can be found out."""
    try:
        import psutil

        return f"pid {pid} ({_command(psutil.Process(pid).cmdline())})"
    except Exception:  # noqa: BLE001 - gone, or not ours to look at: the pid still helps
        return f"pid {pid}"


def _supervisor_of(pid: int) -> int | None:
    """The pid of the `crm_devstack run` that started this process, if it is still its parent."""
    try:
        import psutil

        parent = psutil.Process(pid).parent()
        cmd = parent.cmdline() if parent is not None else []
        if ("crm_devstack", "run") in zip(cmd, cmd[1:], strict=False):
            return parent.pid
    except Exception:  # noqa: BLE001
        pass
    return None


def _command(cmd: list[str]) -> str:
    if not cmd:
        return "?"
    name = os.path.basename(cmd[0])
    if name == "java":  # the main class says more than the JVM options
        args = iter(cmd[1:])
        for arg in args:
            if arg in ("-cp", "-classpath", "--class-path"):
                next(args, None)
            elif not arg.startswith("-"):
                return f"java {arg}"
    text = " ".join([name, *cmd[1:]])
    return text if len(text) <= 80 else text[:79] + "…"


def exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


def terminate(procs: dict[str, int], grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """SIGTERM to each named pid, SIGKILL to those still there after `grace` seconds.

    For processes this process did not start (leftovers); returns the names that needed
    the kill.
    """
    started = {name: start_time(pid) for name, pid in procs.items()}
    for name, pid in procs.items():
        if started[name] is not None:
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(procs[n], s) for n, s in started.items()) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = [name for name, s in started.items() if alive(procs[name], s)]
    for name in killed:
        _signal(procs[name], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(procs[n], started[n]) for n in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):  # gone, or not ours: the port check names it
        pass


# -- ports --------------------------------------------------------------------------------

def port_free(host: str, port: int) -> bool:
    """True if a server could bind host:port now (as servers do, TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_holder(port: int) -> int | None:
    """The pid of the process listening on (or else bound to) a TCP port, if it can be found."""
    try:
        import psutil

        conns = [c for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port]
    except Exception:  # noqa: BLE001 - not allowed to look: say what is known
        return None
    conns.sort(key=lambda c: c.status != psutil.CONN_LISTEN)
    return next((c.pid for c in conns if c.pid), None)


def busy_ports(ports: dict[str, tuple[str, int]]) -> str | None:
    """None if every port is free; else one phrase naming the taken ones and their holders:
    `28001 (CRM_LEADS_HTTP_PORT), 30051 (CRM_LEADS_GRPC_PORT) held by pid 12 (python -m crm_leads)`,
    or, for the processes of another running `crm_devstack run`, that run."""
    taken: dict[tuple[str, int | None], list[str]] = {}
    for label, (host, port) in ports.items():
        if port and not port_free(host, port):
            holder = port_holder(port)
            run = _supervisor_of(holder) if holder else None
            key = ("run", run) if run else ("pid", holder)
            taken.setdefault(key, []).append(f"{port} ({label})")
    if not taken:
        return None
    phrases = []
    for (kind, pid), names in taken.items():
        if kind == "run":
            phrases.append(f"{', '.join(names)} held by the processes of another `crm_devstack run` "
                           f"(pid {pid})")
        else:
            who = describe(pid) if pid else "a process this user cannot see"
            phrases.append(f"{', '.join(names)} held by {who}")
    return "; ".join(phrases)


# -- the run file -----------------------------------------------------------------------

@dataclass
class RunFile:
    """`run.json` and `run.lock` in a data folder: who a `run` over it started."""

    folder: Path
    _lock: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / "run.json"

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def claim(self, grace: float = STOP_GRACE_SECONDS) -> list[str]:
        """Takes the folder for this process, or raises StartError naming the run that has it.

        Processes an earlier run recorded and that still live (its supervisor is gone) are
        stopped; returns them as `name (pid N)`.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "run.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = self.read().get("supervisor", {}).get("pid")
            who = f"(pid {other}) " if other else ""
            raise StartError(f"another `make run` {who}is running over {self.folder}: "
                             f"stop it first (Ctrl-C in its terminal{f', or kill {other}' if other else ''})"
                             ) from None
        self._lock = fd
        recorded = self.read().get("processes", {})
        left = {name: entry["pid"] for name, entry in recorded.items()
                if alive(entry.get("pid", 0), entry.get("start"))}
        if not left:
            return []
        killed = terminate(left, grace)
        return [f"{name} (pid {pid}{', needed SIGKILL' if name in killed else ''})"
                for name, pid in left.items()]

    def record(self, procs: dict[str, int]) -> None:
        """Writes the supervisor and the given processes (name: pid), atomically."""
        me = os.getpid()
        entries = {name: {"pid": pid, "start": start_time(pid)} for name, pid in procs.items()}
        body = {"supervisor": {"pid": me, "start": start_time(me)},
                "processes": {n: e for n, e in entries.items() if e["start"] is not None}}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        tmp.replace(self.path)

    def release(self) -> None:
        """Forgets the processes (all stopped) and lets the folder go."""
        self.path.unlink(missing_ok=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

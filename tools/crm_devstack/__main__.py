"""`python -m crm_devstack run|test|bench`: what `make run`, `make test` and `make bench` do."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from crm_devstack.kafka_broker import REPO, broker_from_env
from crm_devstack.lifecycle import RunFile, StartError, busy_ports, say
from crm_devstack.processes import BROKER, SPECS, Platform, RestartPolicy, http_url, port_env

CACHE = REPO / ".cache"


class _Interrupted(BaseException):
    """Ctrl-C or SIGTERM while the stack is still starting: stop waiting, stop everything."""


def run(args) -> int:
    from crm_runtime.kafka_admin import create_platform_topics
    from crm_runtime.secret_file import auth_secret
    from crm_runtime.settings import PlatformSettings

    data = Path(os.environ.get("CRM_DATA_DIR", REPO / "data")).resolve()
    run_file = RunFile(data)
    try:
        left = run_file.claim()
    except StartError as exc:
        say(str(exc), "run")
        return 1
    if left:
        say(f"stopped what an earlier run over {data} left running: {', '.join(left)}", "run")
    broker = broker_from_env(CACHE, data / "kafka")
    # The token secret: CRM_AUTH_SECRET if set, else a random file made on the first run.
    secret_path = Path(os.environ.get("CRM_AUTH_SECRET_FILE") or data / "auth-secret").resolve()
    settings = PlatformSettings(kafka_bootstrap=broker.bootstrap, auth_secret_file=secret_path)
    secret = auth_secret(settings, create=True)
    # The caller's CRM_* settings apply, except where the broker and stores are: those
    # are the ones this command starts.
    user = {k: v for k, v in os.environ.items() if k.startswith("CRM_")}
    env = {"CRM_KAFKA_BOOTSTRAP": broker.bootstrap, "CRM_DATA_DIR": str(data / "stores"),
           "CRM_AUTH_SECRET_FILE": str(secret_path)}
    platform = Platform(env={**port_env(), **user, **env}, restart=RestartPolicy(),
                        broker=broker, run_file=run_file)
    stop = threading.Event()
    starting = [True]

    def on_signal(*_) -> None:
        stop.set()
        if starting[0]:
            starting[0] = False
            raise _Interrupted

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        busy = busy_ports(platform.ports())
        if busy:
            raise StartError(f"cannot start, ports are taken: {busy}. Stop those processes, "
                             f"or move the stack with the variables named")
        platform.start(BROKER)
        broker.wait_listening()
        created = create_platform_topics(broker.bootstrap, settings.topic_prefix, settings.topic_partitions)
        print(f"kafka: topics ready ({len(created)} created)", flush=True)
        platform.start_all()
        platform.wait_ready(timeout=180)
        print("\nThe platform is up (Ctrl-C stops everything):", flush=True)
        print(f"  kafka            {broker.bootstrap}")
        for spec in SPECS:
            if spec.serves_http:
                grpc_port = platform.env[spec.env_prefix + "GRPC_PORT"]
                print(f"  {spec.name:<16} {http_url(spec, platform.env)}  grpc 127.0.0.1:{grpc_port}")
        print(f"  stores           {data / 'stores'}")
        print(f"  processes        {run_file.path}", flush=True)
        demo = int(os.environ.get("DEMO_LEADS", "0") or 0)
        if demo > 0:
            from crm_devstack.demo import seed_leads

            leads = next(spec for spec in SPECS if spec.name == "leads")
            assert secret, "auth_secret(create=True) makes one"
            seeded = seed_leads(http_url(leads, platform.env), secret, demo)
            print(f"demo: {seeded} leads captured ({demo - seeded} were already there)", flush=True)
        starting[0] = False
        parent = os.getppid()
        while not stop.wait(0.5):
            platform.check_alive()  # restarts what exited, with back-off
            if os.getppid() != parent:  # `make` was killed: take everything down with it
                break
        return 0
    except (StartError, TimeoutError) as exc:
        say(str(exc), "run")
        return 1
    except _Interrupted:
        return 0
    finally:
        starting[0] = False
        if any(proc.poll() is None for proc in platform.procs.values()):
            print("stopping…", flush=True)
            if not platform.stop():
                say("stopped: every process ended on SIGTERM", "run")
        else:
            platform.stop()  # nothing to stop; lets the data folder go


def _with_private_broker(port: str, folder: str, data_env: str, cmd: list[str]) -> int:
    """Runs `cmd` against a broker of its own with fresh storage, then stops the broker."""
    os.environ.setdefault("CRM_KAFKA_PORT", port)
    data = REPO / "build" / folder
    shutil.rmtree(data, ignore_errors=True)
    broker = broker_from_env(CACHE, data / "kafka")
    try:
        broker.start()
        env = {**os.environ, "CRM_KAFKA_BOOTSTRAP": broker.bootstrap, data_env: str(data)}
        return subprocess.run(cmd, env=env, cwd=REPO).returncode
    finally:
        broker.stop()


def test(args) -> int:
    """The whole suite, against a private broker on 19092 (a running `make run` is untouched)."""
    pytest_args = [a for a in args.pytest_args if a != "--"]
    return _with_private_broker("19092", "test-data", "CRM_TEST_DATA",
                                [sys.executable, "-m", "pytest", *pytest_args])


BENCHES = ("throughput.py", "leads_import.py", "steady_load.py", "sales_throughput.py", "tickets_timers.py")


def bench(args) -> int:
    """Each figure against its baseline (bench/throughput.py), then the platform under steady
    load (bench/steady_load.py), with lead imports and rescoring (bench/leads_import.py) between,
    then sales (bench/sales_throughput.py) and tickets and timers (bench/tickets_timers.py);
    `make bench BENCH=steady_load.py` runs one of them."""
    scripts = [args.script] if args.script else list(BENCHES)
    script_list = " && ".join(f"{shlex.quote(sys.executable)} {shlex.quote(str(REPO / 'bench' / name))}"
                              for name in scripts)
    return _with_private_broker("29092", "bench-data", "CRM_BENCH_DATA", ["bash", "-c", script_list])


def main() -> int:
    parser = argparse.ArgumentParser(prog="crm_devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="Kafka plus every service, in the foreground").set_defaults(fn=run)
    t = sub.add_parser("test", help="the whole test suite against a private broker")
    t.add_argument("pytest_args", nargs=argparse.REMAINDER)
    t.set_defaults(fn=test)
    b = sub.add_parser("bench", help="throughput and steady-load figures against a private broker")
    b.add_argument("script", nargs="?", choices=BENCHES, help="run only this one")
    b.set_defaults(fn=bench)
    args = parser.parse_args()
    try:
        return args.fn(args)
    except StartError as exc:  # a taken port, a broker that would not start: one line
        say(str(exc), args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())

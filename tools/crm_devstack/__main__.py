"""`python -m crm_devstack run|test|bench`: what `make run`, `make test` and `make bench` do."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from crm_devstack.kafka_broker import REPO, broker_from_env
from crm_devstack.processes import SPECS, Platform, http_url, port_env

CACHE = REPO / ".cache"


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def run(args) -> int:
    from crm_runtime.kafka_admin import create_platform_topics
    from crm_runtime.secret_file import auth_secret
    from crm_runtime.settings import PlatformSettings

    data = Path(os.environ.get("CRM_DATA_DIR", REPO / "data")).resolve()
    broker = broker_from_env(CACHE, data / "kafka")
    stop = threading.Event()
    _stop_on_signals(stop)
    platform = None
    try:
        broker.start()
        # The token secret: CRM_AUTH_SECRET if set, else a random file made on the first run.
        secret_path = Path(os.environ.get("CRM_AUTH_SECRET_FILE") or data / "auth-secret").resolve()
        env = {"CRM_KAFKA_BOOTSTRAP": broker.bootstrap, "CRM_DATA_DIR": str(data / "stores"),
               "CRM_AUTH_SECRET_FILE": str(secret_path)}
        settings = PlatformSettings(kafka_bootstrap=broker.bootstrap, auth_secret_file=secret_path)
        secret = auth_secret(settings, create=True)
        created = create_platform_topics(broker.bootstrap, settings.topic_prefix, settings.topic_partitions)
        print(f"kafka: topics ready ({len(created)} created)", flush=True)
        # The caller's CRM_* settings apply, except where the broker and stores are: those
        # are the ones this command just started.
        user = {k: v for k, v in os.environ.items() if k.startswith("CRM_")}
        platform = Platform(env={**port_env(), **user, **env})
        platform.start_all()
        platform.wait_ready()
        print("\nThe platform is up (Ctrl-C stops everything):", flush=True)
        print(f"  kafka            {broker.bootstrap}")
        for spec in SPECS:
            if spec.serves_http:
                grpc_port = platform.env[spec.env_prefix + "GRPC_PORT"]
                print(f"  {spec.name:<16} {http_url(spec, platform.env)}  grpc 127.0.0.1:{grpc_port}")
        print(f"  stores           {data / 'stores'}", flush=True)
        demo = int(os.environ.get("DEMO_LEADS", "0") or 0)
        if demo > 0:
            from crm_devstack.demo import seed_leads

            leads = next(spec for spec in SPECS if spec.name == "leads")
            created = seed_leads(http_url(leads, platform.env), secret, demo)
            print(f"demo: {created} leads captured ({demo - created} were already there)", flush=True)
        parent = os.getppid()
        while not stop.wait(1):
            platform.check_alive()
            if os.getppid() != parent:  # `make` was killed: take everything down with it
                break
        return 0
    finally:
        print("stopping…", flush=True)
        if platform is not None:
            platform.stop()
        broker.stop()


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


def bench(args) -> int:
    return _with_private_broker("29092", "bench-data", "CRM_BENCH_DATA",
                                [sys.executable, str(REPO / "bench" / "throughput.py")])


def main() -> int:
    parser = argparse.ArgumentParser(prog="crm_devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="Kafka plus every service, in the foreground").set_defaults(fn=run)
    t = sub.add_parser("test", help="the whole test suite against a private broker")
    t.add_argument("pytest_args", nargs=argparse.REMAINDER)
    t.set_defaults(fn=test)
    sub.add_parser("bench", help="throughput figures against a private broker").set_defaults(fn=bench)
    args = parser.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

"""Resolve Apache Kafka with Maven, format a single-node KRaft storage, run the broker.

The jars come from Maven Central through deploy/kafka/pom.xml into a cache folder, so a
second run starts at once. The broker runs on the machine's Java 17 as a child process that
dies with the process that started it.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import string
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from crm_devstack.lifecycle import STOP_GRACE_SECONDS, StartError, busy_ports, die_with_parent

REPO = Path(__file__).resolve().parents[2]
KAFKA_DEPLOY = REPO / "deploy" / "kafka"


def kafka_version() -> str:
    pom = (KAFKA_DEPLOY / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match, "deploy/kafka/pom.xml must set kafka.version"
    return match.group(1)


def ensure_jars(cache_dir: Path) -> Path:
    """Copies the broker's runtime jars into the cache once; returns the libs folder."""
    libs = (cache_dir / "kafka" / kafka_version() / "libs").resolve()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    libs.mkdir(parents=True, exist_ok=True)
    print(f"kafka: resolving Apache Kafka {kafka_version()} with Maven into {libs}", flush=True)
    subprocess.run(
        ["mvn", "-B", "-q", "-f", str(KAFKA_DEPLOY / "pom.xml"),
         "dependency:copy-dependencies", f"-DoutputDirectory={libs}"],
        check=True,
    )
    marker.touch()
    return libs


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Broker:
    """A single-node KRaft broker whose data lives in `data_dir`."""

    cache_dir: Path
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _java(self, libs: Path, main: str, *args: str, **kwargs) -> subprocess.Popen:
        log4j = KAFKA_DEPLOY / "log4j2.properties"
        cmd = [
            "java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*", main, *args,
        ]
        return subprocess.Popen(cmd, preexec_fn=die_with_parent(), **kwargs)

    def _write_config(self) -> Path:
        template = string.Template((KAFKA_DEPLOY / "server.properties").read_text())
        config = self.data_dir / "server.properties"
        config.write_text(template.substitute(
            port=self.port, controller_port=self.controller_port,
            log_dirs=self.data_dir / "logs",
        ))
        return config

    def ports(self) -> dict[str, tuple[str, int]]:
        """What the broker binds, labelled for a message about a taken port."""
        return {"CRM_KAFKA_PORT": (self.host, self.port),
                "CRM_KAFKA_CONTROLLER_PORT": (self.host, self.controller_port)}

    def launch(self) -> subprocess.Popen:
        """Formats the storage the first time and starts the broker; does not wait for it.

        The broker dies with this process (PR_SET_PDEATHSIG), so call it from the main thread.
        """
        libs = ensure_jars(self.cache_dir)
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding.
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            # "=" keeps an id that starts with "-" from being read as an option.
            fmt = self._java(libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                             "--config", str(config), "--ignore-formatted",
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = fmt.communicate(timeout=120)
            if fmt.returncode != 0:
                raise StartError(f"kafka storage format failed:\n{out.decode()}")
        with open(self.data_dir / "broker.log", "ab") as log:
            self.process = self._java(libs, "kafka.Kafka", str(config),
                                      stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        return self.process

    def wait_listening(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise StartError(f"kafka exited with {code}; see {self.data_dir / 'broker.log'}")
            if time.monotonic() > deadline:
                raise StartError(f"kafka did not listen on {self.bootstrap} in {timeout:g} s; "
                                 f"see {self.data_dir / 'broker.log'}")
            time.sleep(0.3)
        print(f"kafka: broker {kafka_version()} listening on {self.bootstrap}", flush=True)

    def start(self, timeout: float = 120.0) -> None:
        busy = busy_ports(self.ports())
        if busy:
            raise StartError(f"cannot start kafka: port {busy}")
        self.launch()
        try:
            self.wait_listening(timeout)
        except BaseException:  # includes Ctrl-C while waiting: leave no broker behind
            self.stop()
            raise

    def stop(self, timeout: float = STOP_GRACE_SECONDS) -> bool:
        """SIGTERM, then SIGKILL after `timeout` seconds; True if it needed the kill."""
        if self.process is None or self.process.poll() is not None:
            return False
        self.process.terminate()
        try:
            self.process.wait(timeout)
            return False
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return True


def broker_from_env(cache_dir: Path, data_dir: Path) -> Broker:
    port = int(os.environ.get("CRM_KAFKA_PORT", "9092"))
    return Broker(cache_dir=cache_dir, data_dir=data_dir, port=port,
                  controller_port=int(os.environ.get("CRM_KAFKA_CONTROLLER_PORT", port + 1)))

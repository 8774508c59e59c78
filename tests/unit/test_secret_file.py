"""The token secret: never in the source; a random file for local runs; required when exposed."""

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from structlog.testing import capture_logs

from crm_leads.settings import LeadsSettings
from crm_runtime import secret_file, service
from crm_runtime.auth import TokenCodec
from crm_runtime.settings import PlatformSettings


@pytest.fixture(autouse=True)
def no_configured_secret(monkeypatch):
    monkeypatch.delenv("CRM_AUTH_SECRET", raising=False)
    monkeypatch.delenv("CRM_AUTH_SECRET_FILE", raising=False)


def test_the_file_is_random_private_and_never_overwritten(tmp_path):
    path = tmp_path / "data" / "auth-secret"
    first = secret_file.ensure_secret_file(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_file.ensure_secret_file(path) == first
    assert secret_file.ensure_secret_file(tmp_path / "elsewhere") != first
    assert sorted(p.name for p in path.parent.iterdir()) == ["auth-secret"]  # no temporary left


def test_processes_starting_together_agree_on_one_secret(tmp_path):
    path = tmp_path / "auth-secret"
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: secret_file.ensure_secret_file(path), range(32)))
    assert secrets == {path.read_text().strip()}


def test_the_environment_wins_over_the_file(tmp_path):
    platform = PlatformSettings(data_dir=tmp_path)
    assert secret_file.auth_secret(platform) is None  # nothing made without being asked
    made = secret_file.auth_secret(platform, create=True)
    assert made == (tmp_path / "auth-secret").read_text().strip()
    assert secret_file.auth_secret(platform) == made
    assert secret_file.auth_secret(PlatformSettings(data_dir=tmp_path, auth_secret="x" * 40)) == "x" * 40


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False), ("leads.internal", False)])
def test_loopback_addresses(host, loopback):
    assert secret_file.is_loopback(host) is loopback


def test_a_loopback_service_without_a_secret_uses_the_data_folders_file(tmp_path):
    settings = LeadsSettings(platform=PlatformSettings(data_dir=tmp_path))
    codec = service.token_codec(settings)
    token = TokenCodec((tmp_path / "auth-secret").read_text().strip()).issue("alice", ["admin"])
    assert codec.verify(token).subject == "alice"


@pytest.mark.parametrize("where", [{"http_host": "0.0.0.0"}, {"grpc_host": "10.1.2.3"}])
def test_an_exposed_service_without_a_secret_refuses_to_start(tmp_path, where):
    settings = LeadsSettings(platform=PlatformSettings(data_dir=tmp_path), **where)
    with capture_logs() as logs, pytest.raises(SystemExit) as exited:
        service.token_codec(settings)
    assert exited.value.code == 2
    [line] = [entry for entry in logs if entry["log_level"] == "error"]
    assert line["event"] == "service.refused_to_start" and "CRM_AUTH_SECRET" in line["reason"]
    assert not (tmp_path / "auth-secret").exists()


def test_an_exposed_service_takes_a_configured_secret_or_file(tmp_path):
    exposed = {"http_host": "0.0.0.0", "grpc_host": "0.0.0.0"}
    service.token_codec(LeadsSettings(platform=PlatformSettings(auth_secret="s" * 40), **exposed))
    path = tmp_path / "mounted-secret"
    missing = LeadsSettings(platform=PlatformSettings(auth_secret_file=path), **exposed)
    with pytest.raises(SystemExit):
        service.token_codec(missing)  # an exposed service never makes one up
    path.write_text("m" * 40 + "\n")
    path.chmod(0o600)
    codec = service.token_codec(missing)
    assert codec.verify(TokenCodec("m" * 40).issue("bob", ["analyst"])).subject == "bob"


def _token_command(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_AUTH_SECRET")}
    return subprocess.run([sys.executable, "-m", "crm_runtime.auth", "--subject", "alice",
                           "--roles", "sales_manager", *args],
                          env={**env, **env_overrides}, capture_output=True, text=True, timeout=60)


def test_the_token_command_signs_with_the_platforms_secret_file(tmp_path):
    missing = _token_command({"CRM_DATA_DIR": str(tmp_path)})
    assert missing.returncode == 2 and "CRM_AUTH_SECRET" in missing.stderr
    secret = secret_file.ensure_secret_file(tmp_path / "auth-secret")
    made = _token_command({"CRM_DATA_DIR": str(tmp_path)})
    assert made.returncode == 0, made.stderr
    assert TokenCodec(secret).verify(made.stdout.strip()).roles == {"sales_manager"}
    explicit = _token_command({"CRM_AUTH_SECRET": "e" * 40, "CRM_DATA_DIR": str(tmp_path)})
    assert TokenCodec("e" * 40).verify(explicit.stdout.strip()).subject == "alice"

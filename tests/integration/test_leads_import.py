"""Lead imports over HTTP (multipart) and from the command line, on SQLite and PostgreSQL:
10,000 rows with 5% bad ones, each bad row reported by its line, a second import capturing
nothing; files that are not lead CSVs are 422 naming `file`; a file over the limit is 413."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from crm_leads.adapters.http import routers
from crm_leads.adapters.http_imports import imports_router
from crm_leads.application import LeadsApplication, ListLeads
from crm_runtime import http
from crm_runtime.auth import Principal
from tests.conftest import TOKENS, bearer

MANAGER = bearer("sales_manager", subject="boss")
BOSS = Principal("boss", frozenset({"sales_manager"}))


def lead_csv(rows: int, bad_every: int = 20, delimiter: str = ",") -> tuple[bytes, dict[int, str]]:
    """A CSV of `rows` leads, every `bad_every`th of them bad; returns it and the bad lines
    with the field at fault."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["Name", "email", "phone", "company", "company_size", "title", "country", "channel"])
    bad: dict[int, str] = {}
    for i in range(rows):
        line = i + 2
        row = [f"Person {i}", f"p{i}@acme{i % 7}.example", "", "Acme", str(i % 900 + 1), "Director", "DE", ""]
        if bad_every and i % bad_every == 3:
            kind = (i // bad_every) % 4
            if kind == 0:
                row[1], bad[line] = "not-an-email", "email"
            elif kind == 1:
                row[4], bad[line] = "many", "company_size"
            elif kind == 2:
                row[6], bad[line] = "Germany", "country"
            else:
                row[7], bad[line] = "pigeon", "channel"
        writer.writerow(row)
    return out.getvalue().encode(), bad


def make_client(app: LeadsApplication, extra: list[APIRouter] | None = None) -> TestClient:
    api = http.create_app("leads", "1", checks={}, tokens=TOKENS)
    for router in extra or routers(app):
        api.include_router(router)
    return TestClient(api, headers=MANAGER)


@pytest.fixture
def leads(any_platform):
    return LeadsApplication(any_platform)


def upload(client: TestClient, data: bytes, name: str = "fair.csv", **form):
    return client.post("/v1/leads/imports", files={"file": (name, data, "text/csv")}, data=form)


def test_an_import_of_10000_rows_captures_the_good_ones_and_reports_each_bad_one(leads):
    data, bad = lead_csv(10_000)
    assert len(bad) == 500  # 5%
    client = make_client(leads)
    first = upload(client, data)
    assert first.status_code == 200, first.text
    result = first.json()
    assert (result["rows"], result["captured"], result["failed"], result["duplicates"]) == (10_000, 9_500, 500, 0)
    assert {error["line"]: error["field"] for error in result["errors"]} == bad
    assert all(error["reason"] for error in result["errors"])
    listed = leads.list_leads(ListLeads(limit=200, caller=BOSS))
    assert len(listed.items) == 200 and listed.items[0].channel == "event"  # the import's default channel
    assert listed.items[0].score is not None and listed.items[0].grade is not None  # scored on capture

    second = upload(client, data, name="same-file-again.csv").json()
    assert (second["import_id"], second["captured"], second["already_imported"], second["failed"]) == (
        result["import_id"], 0, 9_500, 500)
    events = leads.recorder.max_notification_id()
    assert events == 9_500  # one event per captured lead, none for the second import


def test_semicolons_bom_and_a_channel_for_the_rows_without_one(leads):
    data, _ = lead_csv(30, bad_every=0, delimiter=";")
    result = upload(make_client(leads), b"\xef\xbb\xbf" + data, channel="referral").json()
    assert (result["captured"], result["failed"]) == (30, 0)
    assert {lead.channel for lead in leads.list_leads(ListLeads(caller=BOSS)).items} == {"referral"}


@pytest.mark.parametrize("data,words", [
    (b"PK\x03\x04\x14\x00binary stuff", "ZIP"),
    (b"\x00\x01\x02\x03garbage\x00", "binary"),
    (b"name,phone\nAda,+441234\n", "email"),
    (b"email;company\nada@x.example;X\n", "name"),
    (b"", "empty"),
    ("name,email\nAda,ada@example.com\n".encode("utf-16"), "UTF-16"),
])
def test_a_file_that_is_not_a_lead_csv_is_422_naming_file_and_stores_nothing(leads, data, words):
    response = upload(make_client(leads), data)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"][0]["field"] == "file" and words in problem["detail"]
    assert not leads.recorder.max_notification_id()


def test_an_import_without_a_file_is_422_naming_it(leads):
    response = make_client(leads).post("/v1/leads/imports", data={"channel": "web"})
    assert response.status_code == 422 and "file" in response.json()["detail"]


def test_a_file_over_the_limit_is_413_before_it_is_read(leads):
    client = make_client(leads, [imports_router(leads, max_bytes=10_000)])
    data, _ = lead_csv(400, bad_every=0)
    assert len(data) > 10_000
    response = upload(client, data)
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"
    assert not leads.recorder.max_notification_id()
    # The limit is this route's: other bodies keep the service's limit, and a small file passes.
    small, _ = lead_csv(20, bad_every=0)
    assert upload(client, small).json()["captured"] == 20


def test_a_rep_may_import_and_an_analyst_may_not(leads):
    data, _ = lead_csv(5, bad_every=0)
    client = make_client(leads)
    assert client.post("/v1/leads/imports", files={"file": ("a.csv", data)},
                       headers=bearer("analyst")).status_code == 403
    assert client.post("/v1/leads/imports", files={"file": ("a.csv", data)},
                       headers=bearer("sales_rep")).json()["captured"] == 5


def test_the_command_line_importer_prints_the_same_summary(any_platform, tmp_path):
    data, bad = lead_csv(1_000)
    path = tmp_path / "fair.csv"
    path.write_bytes(data)
    env = {**os.environ, "CRM_STORE": any_platform.store, "CRM_DATA_DIR": str(any_platform.data_dir),
           "CRM_POSTGRES_DBNAME": any_platform.postgres_dbname, "CRM_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "crm_leads.importer", str(path), "--json"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["rows"], summary["captured"], summary["failed"]) == (1_000, 950, 50)
    assert {error["line"] for error in summary["errors"]} == set(bad)
    again = subprocess.run(command[:-1], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "0 captured, 950 already imported" in again.stdout
    assert "line 5: email:" in again.stdout
    not_csv = tmp_path / "book.xlsx"
    not_csv.write_bytes(b"PK\x03\x04rest")
    refused = subprocess.run([sys.executable, "-m", "crm_leads.importer", str(not_csv)], env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "ZIP" in refused.stderr

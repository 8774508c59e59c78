"""Lead imports and rescoring, next to raw capture, on SQLite and PostgreSQL, in one run.

    make bench BENCH=leads_import.py
    CRM_BENCH_IMPORT_ROWS=10000,100000 CRM_BENCH_STORES=sqlite,postgres (the defaults)

Per store, on a fresh store: lead capture in process, one lead per command (the baseline);
then imports of CSV files of each size in CRM_BENCH_IMPORT_ROWS (5% bad rows; the file is on
disk and read as a stream; the process's peak memory is printed too), in rows/s; then the
time from a rule-set change that moves every open lead's score to all of them rescored by
the API's background rescorer (the thread the API runs, polled as GET /v1/scoring-rules
would).
"""

from __future__ import annotations

import csv
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

from crm_devstack.postgres import fresh_database
from crm_leads.application import CaptureLead, LeadsApplication
from crm_leads.importer import ImportLeads, import_leads
from crm_leads.scoring import DEFAULT_RULES
from crm_leads.scoring_rules import ReplaceScoringRules
from crm_runtime import logs
from crm_runtime.auth import Principal
from crm_runtime.settings import PlatformSettings

CAPTURES = int(os.environ.get("CRM_BENCH_CAPTURES", "2000"))
SIZES = [int(n) for n in os.environ.get("CRM_BENCH_IMPORT_ROWS", "10000,100000").split(",")]
STORES = os.environ.get("CRM_BENCH_STORES", "sqlite,postgres").split(",")
BOSS = Principal("bench", frozenset({"sales_manager"}))


def write_csv(path: Path, rows: int, tag: str) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "email", "phone", "company", "company_size", "title", "country", "channel"])
        for i in range(rows):
            email = f"p{i}.{tag}@acme{i % 97}.example" if i % 20 != 7 else "not-an-email"
            writer.writerow([f"Person {i}", email, f"+4930{1000000 + i}", f"Acme {i % 97}", str(i % 900 + 1),
                             "Sales Director" if i % 3 == 0 else "Engineer", "DE", ""])


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_store(store: str, folder: Path) -> Iterator[tuple[str, float, str]]:
    """Each figure as soon as it is measured."""
    folder.mkdir(parents=True, exist_ok=True)
    base = PlatformSettings(store=store, data_dir=folder / "stores", topic_prefix="bench.")
    with fresh_database(base) if store == "postgres" else nullcontext(base) as platform:
        yield from _bench_on(platform, store, folder)


def _bench_on(platform: PlatformSettings, store: str, folder: Path) -> Iterator[tuple[str, float, str]]:
    app = None
    try:
        app = LeadsApplication(platform)
        rescorer = app.rescorer
        started = time.perf_counter()
        for i in range(CAPTURES):
            app.capture_lead(CaptureLead(name=f"Lead {i}", email=f"c{i}@acme.example", phone=None,
                                         company="Acme", channel="web", title="Director"))
        capture = CAPTURES / (time.perf_counter() - started)
        yield "lead capture in process (one per command)", capture, f"{CAPTURES} leads"
        for rows in SIZES:
            path = folder / f"leads-{rows}.csv"
            write_csv(path, rows, f"{store}{rows}")
            with path.open("rb") as file:
                started = time.perf_counter()
                result = import_leads(app, ImportLeads(file, caller="bench"))
                seconds = time.perf_counter() - started
            assert result.failed == rows // 20 and result.captured == rows - result.failed, result.to_dict()
            size = path.stat().st_size / 1e6
            path.unlink()
            yield (f"import {rows:,} rows ({size:.1f} MB)", rows / seconds,
                   f"{seconds:.1f} s, {rows / seconds / capture:.1f}x capture; peak RSS {peak_mb():.0f} MB")
        # A rule change that moves every open lead's score: the worst case for rescoring.
        everyone = DEFAULT_RULES.to_dict()
        everyone["rules"].append({"id": "has-domain", "description": "Has an email domain",
                                  "when": {"field": "email_domain", "op": "exists", "value": True},
                                  "points": 1})
        rescorer.idle_seconds = 0.05
        rescorer.start()
        try:
            started = time.perf_counter()
            _, count = app.replace_scoring_rules(ReplaceScoringRules(everyone, BOSS))
            while not app.rescoring_progress().done:
                time.sleep(0.2)
            seconds = time.perf_counter() - started
        finally:
            rescorer.stop()
        yield (f"rule change -> {count:,} open leads rescored", count / seconds,
               f"{seconds:.1f} s from the PUT to the last lead")
    finally:
        if app is not None:
            app.close()


def main() -> None:
    logs.configure("bench", "WARNING")
    folder = Path(os.environ.get("CRM_BENCH_DATA") or tempfile.mkdtemp()) / "leads-import"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nlead imports and rescoring (rows/s, leads/s), stores: {', '.join(STORES)}")
    for store in STORES:
        for name, per_second, note in bench_store(store, folder / store):
            print(f"  {store:<9}{name:<44}{per_second:>10,.0f}/s  {note}", flush=True)


if __name__ == "__main__":
    main()

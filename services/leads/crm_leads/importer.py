"""Lead imports: a CSV file in, its valid rows captured, each bad row reported by its line.

    result = import_leads(app, ImportLeads(file, caller="ann"))

The file is read as a stream (crm_leads.csv_rows: one record and one read chunk in memory
at a time, whatever its size): first hashed (sha256), then read row by row. Each row goes
through the capture path of `POST /v1/leads` (`LeadsApplication.new_lead`: validation,
normalisation, the campaign check, the first score), with the row's identity, the file's
content hash and the row's line (`csv_rows.row_identity`), as its idempotency key: the
lead id derives from it, so the same file imported again, by anyone, finds its leads and
captures nothing new (they are counted as `already_imported`). Valid rows are saved
`BATCH_SIZE` at a time, each batch in one transaction; a batch that meets a lead saved
meanwhile (the same file imported twice at once) is saved lead by lead.

A row without a `channel` column (or with it empty) takes the import's `channel` (default
`event`: a trade-fair list). `company_size` must be a whole number.

`duplicates` counts the rows whose capture the de-duplication at the door marks as a
duplicate of an open lead (`duplicate_of`, `DUPLICATE_OF` below); until capture marks
them, it is 0.

`python -m crm_leads.importer FILE [--channel event] [--by SUBJECT]` imports a file into
the configured store (the CRM_* settings of the leads service) from the command line, with
a progress bar, and prints the same summary as the HTTP answer (exit status 0; 2 when the
file is not a lead CSV).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.persistence import IntegrityError
from sqlalchemy import select

from crm_leads.csv_rows import Row, RowError, content_hash, open_lead_csv, row_identity
from crm_leads.domain import Lead
from crm_leads.views import leads as lead_index
from crm_runtime import logs
from crm_runtime.errors import InvalidField

if TYPE_CHECKING:
    from crm_leads.application import LeadsApplication

log = logs.get(__name__)
BATCH_SIZE = 500
DEFAULT_CHANNEL = "event"
MAX_ERRORS = 10_000  # reported rows; beyond, only counted
DUPLICATE_OF = "duplicate_of"  # the lead attribute capture's de-duplication sets
_IMPORT_NAMESPACE = uuid5(NAMESPACE_URL, "crm:leads:import")


@dataclass(frozen=True)
class ImportLeads:
    file: BinaryIO  # binary, read once from its current position (seekable: hashed first)
    caller: str | None = None
    channel: str | None = None  # for rows without one; default DEFAULT_CHANNEL


@dataclass
class ImportResult:
    import_id: str
    rows: int = 0
    captured: int = 0
    already_imported: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"import_id": self.import_id, "rows": self.rows, "captured": self.captured,
                "already_imported": self.already_imported, "duplicates": self.duplicates,
                "failed": self.failed, "errors": [error.to_dict() for error in self.errors]}


def import_id_for(digest: str) -> str:
    """The same file is the same import."""
    return str(uuid5(_IMPORT_NAMESPACE, digest))


def _company_size(raw: str) -> int | None:
    if not raw:
        return None
    if not raw.isdigit():
        raise InvalidField("company_size", f"{raw[:40]!r} is not a whole number of employees")
    return int(raw)


def import_leads(app: LeadsApplication, command: ImportLeads,
                 progress: Callable[[int], None] | None = None) -> ImportResult:
    """Imports the CSV; InvalidField("file", ...) when it is not a lead CSV (nothing stored).
    `progress(bytes_read)` is called after each batch."""
    from crm_leads.application import CaptureLead

    if not command.file.seekable():
        raise ValueError("the file must be seekable (a spooled upload or a file on disk)")
    start = command.file.tell()
    digest = content_hash(command.file)
    command.file.seek(start)
    rows = open_lead_csv(command.file)  # the header: InvalidField("file") before any row
    result = ImportResult(import_id=import_id_for(digest))
    channel = command.channel or DEFAULT_CHANNEL
    app.views.catch_up()  # what earlier imports saved is found in the index
    batch: list[Lead] = []
    scoring = app.scoring()  # read again for each batch: a rule change during an import

    def fail(error: RowError) -> None:
        result.failed += 1
        if len(result.errors) < MAX_ERRORS:
            result.errors.append(error)

    for item in rows:
        result.rows += 1
        if isinstance(item, RowError):
            fail(item)
            continue
        assert isinstance(item, Row)
        values = item.fields
        try:
            lead, _ = app.new_lead(CaptureLead(
                name=values["name"], email=values["email"], phone=values.get("phone") or None,
                company=values.get("company") or None, channel=values.get("channel") or channel,
                request_key=f"import:{row_identity(digest, item.line)}", caller=None,
                title=values.get("title") or None, industry=values.get("industry") or None,
                company_size=_company_size(values.get("company_size", "")),
                country=values.get("country") or None, campaign_id=values.get("campaign_id") or None),
                scoring)
        except InvalidField as exc:
            fail(RowError.from_invalid(item.line, exc))
            continue
        batch.append(lead)
        if len(batch) >= BATCH_SIZE:
            _save_batch(app, batch, result)
            batch = []
            scoring = app.scoring()
            if progress is not None:
                progress(rows.bytes_read)
    _save_batch(app, batch, result)
    if progress is not None:
        progress(rows.bytes_read)
    log.info("leads.imported", import_id=result.import_id, rows=result.rows, captured=result.captured,
             already_imported=result.already_imported, failed=result.failed, by=command.caller)
    return result


def _save_batch(app: LeadsApplication, batch: list[Lead], result: ImportResult) -> None:
    if not batch:
        return
    ids = [str(lead.id) for lead in batch]
    with app.views.read() as conn:
        found = conn.execute(select(lead_index.c.id).where(lead_index.c.id.in_(ids))).scalars()
        known = {str(lead_id) for lead_id in found}
    new = [lead for lead in batch if str(lead.id) not in known]
    result.already_imported += len(batch) - len(new)
    try:
        if new:
            app.save(*new)
        saved = new
    except IntegrityError:  # someone saved some of them meanwhile: one at a time
        saved = []
        for lead in new:
            try:
                app.save(lead)
                saved.append(lead)
            except IntegrityError:
                result.already_imported += 1
    result.captured += len(saved)
    result.duplicates += sum(1 for lead in saved if getattr(lead, DUPLICATE_OF, None))


# -- the command line -------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    import structlog
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from crm_leads.context import CONTEXT
    from crm_runtime import service

    parser = argparse.ArgumentParser(prog="python -m crm_leads.importer",
                                     description="Imports a CSV of leads into the configured leads store.")
    parser.add_argument("file", type=Path, help="UTF-8 CSV with a header naming at least name,email")
    parser.add_argument("--channel", default=DEFAULT_CHANNEL, help="for rows without a channel (default: event)")
    parser.add_argument("--by", default="importer", help="who imports, for the log (default: importer)")
    parser.add_argument("--errors", type=int, default=20, help="bad rows to print (all are in --json)")
    parser.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    if not args.file.is_file():
        console.print(f"[red]{args.file}: no such file[/red]")
        return 2
    settings = CONTEXT.load_settings()
    service.configure_logging(settings, "leads-importer")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: the summary
    app = CONTEXT.application(settings)
    size = args.file.stat().st_size
    with args.file.open("rb") as file, Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=console, transient=False) as bar:
        task = bar.add_task(f"importing {args.file.name}", total=size)
        try:
            result = import_leads(app, ImportLeads(file, caller=args.by, channel=args.channel),
                                  progress=lambda done: bar.update(task, completed=done))
        except InvalidField as exc:
            console.print(f"[red]{args.file}: {exc.message}[/red]")
            return 2
    summary = result.to_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"import {result.import_id}: {result.rows} rows, {result.captured} captured, "
          f"{result.already_imported} already imported, {result.duplicates} duplicates, {result.failed} failed")
    for error in result.errors[:args.errors]:
        print(f"  line {error.line}: {error.field}: {error.reason}")
    if result.failed > args.errors:
        print(f"  ... and {result.failed - args.errors} more (--json lists them all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

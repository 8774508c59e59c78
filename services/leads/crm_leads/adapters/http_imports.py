"""HTTP adapter: POST /v1/leads/imports, a CSV of leads as the multipart field `file`.

Answers 200 with `{"import_id", "rows", "captured", "already_imported", "duplicates",
"failed", "errors": [{"line", "field", "reason"}]}` (crm_leads.importer). A file that is
not a lead CSV (binary, not UTF-8, no header naming name and email) is 422 problem+json
naming `file`, and nothing is stored. The upload is spooled to disk by the multipart
parser (never held in memory) and read as a stream; its body may be up to
CRM_LEADS_IMPORT_MAX_BYTES (default 50 MB, this route's own limit in the runtime's
RequestLimits), beyond which it is 413 before anything is read.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field

from crm_leads.application import LeadsApplication
from crm_leads.domain import Channel
from crm_leads.importer import DEFAULT_CHANNEL, ImportLeads, ImportResult, import_leads
from crm_leads.permissions import LEADS
from crm_runtime.auth import Principal, require
from crm_runtime.http import body_limit, error_responses

if TYPE_CHECKING:
    ChannelName = str
else:
    ChannelName = Literal[tuple(channel.value for channel in Channel)]


class RowErrorOut(BaseModel):
    line: int = Field(description="The line of the file where the row starts (the header is line 1)")
    field: str = Field(description='The column at fault, or "row" for the whole record')
    reason: str


class ImportOut(BaseModel):
    import_id: str = Field(description="The same file is the same import")
    rows: int = Field(description="Records read after the header (blank lines skipped)")
    captured: int = Field(description="New leads")
    already_imported: int = Field(description="Rows a previous import of the same file captured")
    duplicates: int = Field(description="Captured rows flagged as duplicates of an open lead")
    failed: int
    errors: list[RowErrorOut] = Field(description="Each bad row, by line")

    @classmethod
    def of(cls, result: ImportResult) -> ImportOut:
        return cls(**result.to_dict())


def imports_router(app: LeadsApplication, max_bytes: int | None = None) -> APIRouter:
    """`max_bytes`: the largest request body (default: CRM_LEADS_IMPORT_MAX_BYTES)."""
    if max_bytes is None:
        from crm_leads.settings import LeadsSettings

        max_bytes = LeadsSettings().import_max_bytes
    api = APIRouter(prefix="/v1/leads", tags=["leads"])

    @api.post("/imports", response_model=ImportOut, responses=error_responses(413, 422),
              summary="Import leads from a CSV file")
    @body_limit(max_bytes)
    async def import_csv(file: Annotated[UploadFile, File(description=
                             "UTF-8 CSV (BOM optional; comma or semicolon) whose header names at least "
                             "name,email; optionally phone, company, channel, campaign_id, title, industry, "
                             "company_size, country")],
                         channel: Annotated[ChannelName | None, Form(description=
                             f"Channel of rows without one (default {DEFAULT_CHANNEL})")] = None,
                         caller: Principal = require(LEADS.create)):
        try:
            result = await asyncio.to_thread(import_leads, app, ImportLeads(
                file.file, caller=caller.subject, channel=channel))
        finally:
            await file.close()
        return ImportOut.of(result)

    return api

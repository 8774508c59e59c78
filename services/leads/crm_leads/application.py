"""Leads application: commands and queries over the lead event store.

Commands are small dataclasses that the HTTP and gRPC adapters both build. Each loads the
aggregate, calls the domain, and saves the new events in one transaction; a concurrent
write to the same lead fails the save (optimistic concurrency) and surfaces as Conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from crm_leads.domain import Lead, lead_id_for, validate_capture
from crm_runtime import logs
from crm_runtime.eventstore import ServiceApplication, caller_scoped, check_version
from crm_runtime.settings import PlatformSettings

log = logs.get(__name__)


@dataclass(frozen=True)
class CaptureLead:
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    channel: str | None
    # The caller's Idempotency-Key (HTTP) or request_id (gRPC), and who the caller is.
    request_key: str | None = None
    caller: str | None = None


@dataclass(frozen=True)
class AssignLead:
    lead_id: str
    owner_id: str
    idempotency_key: str
    expected_version: int | None = None


class LeadsApplication(ServiceApplication):
    name = "Leads"

    def __init__(self, platform: PlatformSettings, default_phone_region: str = "US"):
        super().__init__(platform)
        self.default_phone_region = default_phone_region

    def capture_lead(self, command: CaptureLead) -> tuple[Lead, bool]:
        """Captures a lead; returns (lead, created). A repeated request key returns the first lead."""
        details = validate_capture(command.name, command.email, command.phone, command.company,
                                   command.channel, self.default_phone_region)
        key = caller_scoped(command.caller, command.request_key)
        lead, created = self.create_once(Lead.capture(details, lead_id_for(key)),
                                         same=lambda first: first.same_capture(details))
        if created:
            log.info("lead.captured", lead_id=str(lead.id), channel=lead.channel.value)
        return lead, created

    def get_lead(self, lead_id: str | UUID) -> Lead:
        return self.get(Lead, lead_id, "lead")

    def assign_lead(self, command: AssignLead) -> Lead:
        lead = self.get_lead(command.lead_id)
        check_version(lead, command.expected_version)
        if lead.assign(command.owner_id, command.idempotency_key):
            self.save_changes(lead)
            log.info("lead.assigned", lead_id=str(lead.id), owner_id=lead.owner_id)
        return lead

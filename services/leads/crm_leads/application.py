"""Leads application: commands and queries over the lead event store.

Each command loads the aggregate, calls the domain, and saves the new events in one
transaction. A concurrent write to the same lead fails the save (optimistic concurrency)
and surfaces as Conflict, never as a silent overwrite.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from crm_leads.domain import Lead, lead_id_for, validate_capture
from crm_runtime import logs
from crm_runtime.errors import Conflict, InvalidField, NotFound
from crm_runtime.eventstore import ServiceApplication
from crm_runtime.settings import PlatformSettings

log = logs.get(__name__)


def parse_lead_id(raw: str) -> UUID:
    try:
        return UUID(str(raw))
    except ValueError:
        raise InvalidField("lead_id", f"{raw!r} is not a UUID") from None


def caller_scoped(subject: str | None, key: str | None) -> str | None:
    """Idempotency keys are the caller's own: two callers' "1" are different requests."""
    return f"{subject}\n{key}" if key and subject else key


class LeadsApplication(ServiceApplication):
    name = "Leads"

    def __init__(self, platform: PlatformSettings, default_phone_region: str = "US"):
        super().__init__(platform)
        self.default_phone_region = default_phone_region

    def capture_lead(self, *, name: str | None, email: str | None, phone: str | None,
                     company: str | None, channel: str | None,
                     request_key: str | None = None) -> tuple[Lead, bool]:
        """Captures a lead; returns (lead, created). A repeated request key returns the first lead."""
        details = validate_capture(name, email, phone, company, channel, self.default_phone_region)
        lead_id = lead_id_for(request_key)
        if request_key:
            existing = self._find(lead_id)
            if existing is not None:
                return self._same_request(existing, details), False
        lead = Lead.capture(details, lead_id)
        try:
            self.save(lead)
        except IntegrityError:
            # A concurrent request with the same key won the race.
            existing = self._find(lead_id)
            if existing is None:
                raise
            return self._same_request(existing, details), False
        log.info("lead.captured", lead_id=str(lead.id), channel=lead.channel.value)
        return lead, True

    @staticmethod
    def _same_request(existing: Lead, details) -> Lead:
        if not existing.same_capture(details):
            raise Conflict("Idempotency-Key was already used for a different lead")
        return existing

    def get_lead(self, lead_id: str | UUID) -> Lead:
        lead = self._find(parse_lead_id(str(lead_id)))
        if lead is None:
            raise NotFound(f"lead {lead_id} does not exist")
        return lead

    def assign_lead(self, lead_id: str | UUID, owner_id: str, idempotency_key: str,
                    expected_version: int | None = None) -> Lead:
        lead = self.get_lead(lead_id)
        if expected_version and lead.version != expected_version:
            raise Conflict(f"lead {lead.id} is at version {lead.version}, not {expected_version}")
        if lead.assign(owner_id, idempotency_key):
            try:
                self.save(lead)
            except IntegrityError:
                raise Conflict(f"lead {lead.id} was changed concurrently; reload and retry") from None
            log.info("lead.assigned", lead_id=str(lead.id), owner_id=lead.owner_id)
        return lead

    def _find(self, lead_id: UUID) -> Lead | None:
        try:
            return self.repository.get(lead_id)
        except AggregateNotFoundError:
            return None

"""Contracts: pure domain, no I/O.

A contract is drafted from an accepted quote: its total is the quote's gross total (what
the customer pays), in the quote's currency, split into a payment schedule by its terms
(crm_sales.payment_schedule: amounts summing exactly to the total). Its life is one table:

| command | from | to | event |
| --- | --- | --- | --- |
| draft (`POST /v1/contracts`, or renew) | | draft | `Drafted` (schedule, dates) |
| submit | draft | pending_approval; approved at or below the threshold | `Submitted` (+ `Approved`) |
| approve `{"comment"?}` | pending_approval | approved | `Approved` |
| reject `{"comment"}` | pending_approval | draft | `Rejected` |
| sign | approved | signed | `Signed` |
| activate | signed | active | `Activated` (every instalment's due date) |
| record a payment | signed, active, expired | (same) | `PaymentRecorded` |
| expire | active past ends_on | expired | `Expired` |
| terminate `{"reason"?}` | any but expired, terminated, renewed | terminated | `Terminated` |
| renew | active, expired | renewed | `Renewed` (and the new contract's `Drafted`) |
| amend `{"reason", "ends_on"?, "total"?, "payment_schedule"?}` | signed, active | (same) | `AmendmentRequested` |
| (the same, no approval needed) | signed, active | (same) | (+ `Amended`) |
| approve an amendment `{"comment"?}` | (pending amendment; signed, active) | (same) | `Amended` |
| reject an amendment `{"comment"}` | (pending amendment) | (same) | `AmendmentRejected` |

An active contract past `ends_on` SHOWS expired on every read (like a quote past its
valid_until), whether or not `expire` was called; `expire` records it (`ContractExpired`,
for the workflow's timer and the topic's readers). Approval is needed when the total in the
base currency (the application converts it with the FX table on the day of submission) is
above the threshold; only a manager or an admin may approve or reject (the application
checks the role), and never the contract's owner or its submitter (`FailedPrecondition`,
409). A rejected contract is a draft again, which can be submitted again or terminated.
Any other command answers 409 / FAILED_PRECONDITION naming the status, and records nothing.

**Amendments** (rules in crm_sales.amendments) change a signed or active contract's
`ends_on` and/or its remaining payment schedule and total. They are numbered 1, 2, ... and
kept in `amendments` (pending_approval, applied or rejected). One that raises the total to
above the threshold in the base currency waits for a manager or an admin (never the
contract's owner or the amendment's requester), like the contract's own approval; every
other one is requested and applied in one transaction (`AmendmentRequested` and an
automatic `Amended`, as `Submitted` and an automatic `Approved`). While one is pending no
other can be requested; payments go on, and approving checks again that no instalment it
changes has been paid since. `Amended` carries the whole schedule and what is paid on
each instalment, so the workflow re-plans its reminders from the one event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import FailedPrecondition, InvalidField, NotFound
from crm_runtime.money import CurrencyMismatch, Money
from crm_runtime.text import text_field
from crm_sales.amendments import AmendmentRequest, amended_schedule, needs_approval, schedule_json
from crm_sales.payment_schedule import Instalment, PaymentTerms, check_payment, outstanding, payment_schedule

_CONTRACT_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:contract")
COMMENT_MAX = 1000


class ContractStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SIGNED = "signed"
    ACTIVE = "active"
    EXPIRED = "expired"
    TERMINATED = "terminated"
    RENEWED = "renewed"


FINAL = frozenset({ContractStatus.EXPIRED, ContractStatus.TERMINATED, ContractStatus.RENEWED})


class AmendmentStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPLIED = "applied"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Proposal:
    """An amendment checked against the contract: the terms it would leave."""

    request: AmendmentRequest
    ends_on: date
    total: Money
    schedule: tuple[Instalment, ...]
    schedule_changed: bool


def contract_id_for(request_key: str | None) -> UUID:
    return uuid5(_CONTRACT_NAMESPACE, request_key) if request_key else uuid4()


def clean_comment(raw: Any, field: str = "comment", required: bool = False) -> str | None:
    return text_field(field, raw, COMMENT_MAX, required=required)


def check_term(starts_on: date, ends_on: date) -> None:
    if ends_on < starts_on:
        raise InvalidField("ends_on", f"{ends_on.isoformat()} is before starts_on {starts_on.isoformat()}")


class Contract(Aggregate):
    @event("Drafted")
    def __init__(self, id: UUID, quote_id: str, opportunity_id: str, account_id: str,  # noqa: A002
                 owner_id: str, currency: str, total: str, starts_on: str, ends_on: str,
                 payment_terms: dict[str, Any], schedule: list[dict[str, Any]],
                 renews_contract_id: str | None, drafted_by: str):
        self.quote_id = quote_id
        self.opportunity_id = opportunity_id
        self.account_id = account_id
        self.owner_id = owner_id
        self.currency = currency
        self.total = total
        self.starts_on = starts_on
        self.ends_on = ends_on
        self.payment_terms = payment_terms
        self.schedule = schedule
        self.renews_contract_id = renews_contract_id
        self.drafted_by = drafted_by
        self.stored_status = ContractStatus.DRAFT
        self.paid: dict[str, str] = {}  # instalment number (as text: JSON keys) -> amount paid
        self.approval_required: bool | None = None
        self.base_total: dict[str, str] | None = None
        self.submitted_by: str | None = None
        self.approved_by: str | None = None
        self.approval_comment: str | None = None
        self.rejection_comment: str | None = None
        self.signed_on: str | None = None
        self.activated_on: str | None = None
        self.terminated_on: str | None = None
        self.termination_reason: str | None = None
        self.renewed_by_contract_id: str | None = None
        self.amendments: list[dict[str, Any]] = []  # each as _amendment_requested records it
        self.drafted_as = (quote_id, starts_on, ends_on, payment_terms, renews_contract_id)

    @classmethod
    def draft(cls, contract_id: UUID, quote_id: str, opportunity_id: str, account_id: str, owner_id: str,
              total: Money, starts_on: date, ends_on: date, terms: PaymentTerms, drafted_by: str,
              renews_contract_id: str | None = None) -> Contract:
        check_term(starts_on, ends_on)
        schedule = payment_schedule(total, terms)
        return cls(id=contract_id, quote_id=quote_id, opportunity_id=opportunity_id, account_id=account_id,
                   owner_id=owner_id, currency=total.currency, total=total.amount_text,
                   starts_on=starts_on.isoformat(), ends_on=ends_on.isoformat(), payment_terms=terms.to_json(),
                   schedule=[{"instalment": i.instalment, "due_on": i.due_on.isoformat(),
                              "amount": i.amount.amount_text} for i in schedule],
                   renews_contract_id=renews_contract_id, drafted_by=drafted_by)

    def same_draft(self, quote_id: str, starts_on: date, ends_on: date, terms: PaymentTerms,
                   renews_contract_id: str | None = None) -> bool:
        return self.drafted_as == (quote_id, starts_on.isoformat(), ends_on.isoformat(), terms.to_json(),
                                   renews_contract_id)

    # -- what it shows ---------------------------------------------------------------------------

    def money(self, amount: str) -> Money:
        return Money(Decimal(amount), self.currency)

    @property
    def total_money(self) -> Money:
        return self.money(self.total)

    @property
    def instalments(self) -> list[Instalment]:
        return [Instalment(item["instalment"], date.fromisoformat(item["due_on"]), self.money(item["amount"]))
                for item in self.schedule]

    def paid_on_instalment(self, number: int) -> Money:
        return self.money(self.paid.get(str(number), "0"))

    @property
    def paid_by_instalment(self) -> dict[int, Money]:
        return {int(number): self.money(amount) for number, amount in self.paid.items()}

    @property
    def outstanding(self) -> Money:
        left = outstanding(self.instalments, self.paid_by_instalment)
        return left if left is not None else Money.zero(self.currency)

    def status_on(self, today: date) -> ContractStatus:
        """The status as of `today` (UTC): an active contract past ends_on is expired."""
        if self.stored_status == ContractStatus.ACTIVE and today > date.fromisoformat(self.ends_on):
            return ContractStatus.EXPIRED
        return self.stored_status

    def _require(self, today: date, doing: str, *allowed: ContractStatus) -> ContractStatus:
        status = self.status_on(today)
        if status not in allowed:
            needs = " or ".join(str(s) for s in allowed)
            because = f" (ended {self.ends_on})" if status == ContractStatus.EXPIRED else ""
            raise FailedPrecondition(f"contract {self.id} is {status}{because}; {doing} needs it to be {needs}")
        return status

    def _ids(self) -> dict[str, Any]:
        """What every status event carries besides its change: the relay sees one event at
        a time, and the topic's readers need no other source."""
        return {"account_id": self.account_id, "owner_id": self.owner_id, "currency": self.currency,
                "total": self.total, "starts_on": self.starts_on, "ends_on": self.ends_on}

    # -- commands ----------------------------------------------------------------------------------

    def submit(self, today: date, base_total: Money, threshold: Money, submitted_by: str) -> bool:
        """Submits a draft; True when it waits for approval (base total above the threshold),
        False when it was approved at once."""
        self._require(today, "submitting it", ContractStatus.DRAFT)
        required = base_total > threshold
        self._submitted(**self._ids(), base_total=base_total.to_json(), threshold=threshold.to_json(),
                        approval_required=required, submitted_on=today.isoformat(), submitted_by=submitted_by)
        if not required:
            self._approved(**self._ids(), automatic=True, comment=None, approved_on=today.isoformat(),
                           approved_by="")
        return required

    def check_approver(self, approver: str) -> None:
        """Nobody approves or rejects a contract they own or submitted (409)."""
        if approver in (self.owner_id, self.submitted_by):
            role = "own" if approver == self.owner_id else "submitted"
            raise FailedPrecondition(f"{approver} {role} contract {self.id}: another manager or an admin "
                                     f"must approve or reject it")

    def approve(self, today: date, comment: Any, approved_by: str) -> None:
        self._require(today, "approving it", ContractStatus.PENDING_APPROVAL)
        self.check_approver(approved_by)
        self._approved(**self._ids(), automatic=False, comment=clean_comment(comment),
                       approved_on=today.isoformat(), approved_by=approved_by)

    def reject(self, today: date, comment: Any, rejected_by: str) -> None:
        self._require(today, "rejecting it", ContractStatus.PENDING_APPROVAL)
        self.check_approver(rejected_by)
        clean = clean_comment(comment, required=True)
        self._rejected(**self._ids(), comment=clean, rejected_on=today.isoformat(), rejected_by=rejected_by)

    def sign(self, today: date, signed_by: str) -> None:
        self._require(today, "signing it", ContractStatus.APPROVED)
        self._signed(**self._ids(), signed_on=today.isoformat(), signed_by=signed_by)

    def activate(self, today: date, activated_by: str) -> None:
        self._require(today, "activating it", ContractStatus.SIGNED)
        if today > date.fromisoformat(self.ends_on):
            raise FailedPrecondition(f"contract {self.id} ended on {self.ends_on}: it cannot be activated")
        self._activated(**self._ids(), schedule=self.schedule, activated_on=today.isoformat(),
                        activated_by=activated_by)

    def record_payment(self, today: date, instalment: Any, amount: Money, paid_on: date, recorded_by: str) -> None:
        """A payment against an instalment: never above what is still due on it (409)."""
        self._require(today, "recording a payment", ContractStatus.SIGNED, ContractStatus.ACTIVE,
                      ContractStatus.EXPIRED)
        if paid_on > today:
            raise InvalidField("paid_on", f"{paid_on.isoformat()} is in the future (today is {today.isoformat()})")
        number = check_payment(self.instalments, self.paid_by_instalment, instalment, amount)
        after = self.paid_on_instalment(number) + amount
        due = self.instalments[number - 1].amount
        self._payment_recorded(**self._ids(), instalment=number, amount=amount.amount_text,
                               paid_on=paid_on.isoformat(), paid_after=after.amount_text,
                               instalment_outstanding=(due - after).amount_text,
                               contract_outstanding=(self.outstanding - amount).amount_text,
                               recorded_by=recorded_by)

    def expire(self, today: date, expired_by: str) -> None:
        if self.status_on(today) != ContractStatus.EXPIRED or self.stored_status != ContractStatus.ACTIVE:
            raise FailedPrecondition(f"contract {self.id} is {self.status_on(today)}; expiring it needs it active "
                                     f"and past its ends_on ({self.ends_on})")
        self._expired(**self._ids(), expired_on=today.isoformat(), expired_by=expired_by)

    def terminate(self, today: date, reason: Any, terminated_by: str) -> None:
        status = self.status_on(today)
        if status in FINAL:
            raise FailedPrecondition(f"contract {self.id} is {status}; terminating it needs it not to be "
                                     f"expired, terminated or renewed")
        self._terminated(**self._ids(), from_status=str(status), reason=clean_comment(reason, "reason"),
                         terminated_on=today.isoformat(), terminated_by=terminated_by)

    def check_renewable(self, today: date) -> None:
        self._require(today, "renewing it", ContractStatus.ACTIVE, ContractStatus.EXPIRED)
        if self.stored_status not in (ContractStatus.ACTIVE, ContractStatus.EXPIRED):
            raise FailedPrecondition(f"contract {self.id} is {self.stored_status}; renewing it needs it active "
                                     f"or expired")

    def renew(self, today: date, next_contract_id: str, renewed_by: str) -> None:
        self.check_renewable(today)
        self._renewed(**self._ids(), next_contract_id=next_contract_id, renewed_on=today.isoformat(),
                      renewed_by=renewed_by)

    # -- amendments --------------------------------------------------------------------------------

    @property
    def pending_amendment(self) -> dict[str, Any] | None:
        return next((a for a in self.amendments if a["status"] == AmendmentStatus.PENDING_APPROVAL), None)

    def amendment(self, number: Any) -> dict[str, Any]:
        """Amendment `number` (1-based); NotFound when the contract has none such."""
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= len(self.amendments):
            raise NotFound(f"contract {self.id} has no amendment {number} (it has {len(self.amendments)})")
        return self.amendments[number - 1]

    def amendment_by_key(self, request_key: str) -> dict[str, Any] | None:
        return next((a for a in self.amendments if a.get("request_key") == request_key), None)

    def propose_amendment(self, today: date, request: AmendmentRequest) -> Proposal:
        """The terms `request` would leave, checked against the contract: signed or active
        (409 otherwise), no amendment pending (409), a paid instalment unchanged (409), the
        rest of crm_sales.amendments (422). Records nothing."""
        self._require(today, "amending it", ContractStatus.SIGNED, ContractStatus.ACTIVE)
        pending = self.pending_amendment
        if pending is not None:
            raise FailedPrecondition(f"amendment {pending['number']} of contract {self.id} is pending approval: "
                                     f"a manager approves or rejects it before another is requested")
        ends_on = date.fromisoformat(self.ends_on)
        if request.ends_on is not None and request.ends_on != ends_on:
            check_term(date.fromisoformat(self.starts_on), request.ends_on)
            if request.ends_on < today:
                raise InvalidField("ends_on", f"{request.ends_on.isoformat()} is before today ({today.isoformat()})")
            ends_on = request.ends_on
        total = self.total_money
        if request.total is not None:
            if request.total.currency != self.currency:
                raise CurrencyMismatch(self.currency, request.total.currency, field="total.currency",
                                       operation="amend")
            total = request.total
        schedule = tuple(self.instalments)
        if request.schedule is not None:
            schedule = amended_schedule(schedule, self.paid_by_instalment, request.schedule, total, today)
        changed = schedule != tuple(self.instalments)
        if ends_on.isoformat() == self.ends_on and not changed:
            raise InvalidField("ends_on" if request.schedule is None else "payment_schedule",
                               "the amendment changes nothing: the contract already has these terms")
        return Proposal(request, ends_on, total, schedule, changed)

    def request_amendment(self, today: date, proposal: Proposal, base_total: Money | None, threshold: Money,
                          requested_by: str, request_key: str | None = None) -> dict[str, Any]:
        """Records the amendment (numbered after the last); applies it at once unless it
        raises the total to above the threshold in the base currency (`base_total`: the new
        total converted, needed only for a raise). Returns its history entry."""
        required = needs_approval(self.total_money, proposal.total, base_total, threshold)
        number = len(self.amendments) + 1
        self._amendment_requested(
            **self._ids(), amendment=number, reason=proposal.request.reason,
            proposed_ends_on=proposal.ends_on.isoformat(), proposed_total=proposal.total.amount_text,
            proposed_schedule=schedule_json(proposal.schedule) if proposal.schedule_changed else None,
            base_total=base_total.to_json() if base_total is not None else None, threshold=threshold.to_json(),
            approval_required=required, requested_on=today.isoformat(), requested_by=requested_by,
            request_key=request_key, asked=proposal.request.to_json())
        if not required:
            self._apply_amendment(today, number, automatic=True, comment=None, approved_by="")
        return self.amendments[number - 1]

    def _check_amendment_approver(self, entry: dict[str, Any], approver: str) -> None:
        if approver in (self.owner_id, entry["requested_by"]):
            role = "owns the contract of" if approver == self.owner_id else "requested"
            raise FailedPrecondition(f"{approver} {role} amendment {entry['number']} of contract {self.id}: "
                                     f"another manager or an admin must approve or reject it")

    def _pending(self, number: Any, doing: str) -> dict[str, Any]:
        entry = self.amendment(number)
        if entry["status"] != AmendmentStatus.PENDING_APPROVAL:
            raise FailedPrecondition(f"amendment {entry['number']} of contract {self.id} is {entry['status']}; "
                                     f"{doing} needs it pending_approval")
        return entry

    def approve_amendment(self, today: date, number: Any, comment: Any, approved_by: str) -> dict[str, Any]:
        """Applies a pending amendment. The contract must still be signed or active, no
        instalment the amendment changes may have been paid since it was requested, and its
        ends_on must not have passed (409 each)."""
        entry = self._pending(number, "approving it")
        self._require(today, "approving an amendment", ContractStatus.SIGNED, ContractStatus.ACTIVE)
        self._check_amendment_approver(entry, approved_by)
        if entry["payment_schedule"] is not None:
            proposed = {item["instalment"]: item for item in entry["payment_schedule"]}
            current = {item["instalment"]: item for item in self.schedule}
            for paid_number, amount in sorted(self.paid_by_instalment.items()):
                if amount.is_positive() and proposed.get(paid_number) != current.get(paid_number):
                    raise FailedPrecondition(
                        f"instalment {paid_number} was paid after amendment {entry['number']} was requested and "
                        f"the amendment changes it: reject it and request another")
        if entry["ends_on"] != self.ends_on and date.fromisoformat(entry["ends_on"]) < today:
            raise FailedPrecondition(f"amendment {entry['number']} ends the contract on {entry['ends_on']}, "
                                     f"which has passed: reject it and request another")
        self._apply_amendment(today, entry["number"], automatic=False, comment=clean_comment(comment),
                              approved_by=approved_by)
        return self.amendments[entry["number"] - 1]

    def reject_amendment(self, today: date, number: Any, comment: Any, rejected_by: str) -> dict[str, Any]:
        entry = self._pending(number, "rejecting it")
        self._check_amendment_approver(entry, rejected_by)
        clean = clean_comment(comment, required=True)
        self._amendment_rejected(**self._ids(), amendment=entry["number"], comment=clean,
                                 rejected_on=today.isoformat(), rejected_by=rejected_by)
        return self.amendments[entry["number"] - 1]

    def _apply_amendment(self, today: date, number: int, automatic: bool, comment: str | None,
                         approved_by: str) -> None:
        entry = self.amendments[number - 1]
        schedule = entry["payment_schedule"] if entry["payment_schedule"] is not None else self.schedule
        self._amended(account_id=self.account_id, owner_id=self.owner_id, currency=self.currency,
                      total=entry["total"], starts_on=self.starts_on, ends_on=entry["ends_on"], amendment=number,
                      reason=entry["reason"], previous_total=self.total, previous_ends_on=self.ends_on,
                      schedule=[dict(item) for item in schedule], paid=dict(self.paid),
                      status=str(self.stored_status), approval_required=entry["approval_required"],
                      automatic=automatic, comment=comment, requested_by=entry["requested_by"],
                      amended_on=today.isoformat(), approved_by=approved_by)

    # -- events ------------------------------------------------------------------------------------
    # Each names the account and the owner; the relay reads the rest from the aggregate's
    # events only, so what a message needs beyond that is in the event.

    @event("Submitted")
    def _submitted(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                   ends_on: str, base_total: dict[str, str], threshold: dict[str, str],
                   approval_required: bool, submitted_on: str, submitted_by: str) -> None:
        self.approval_required = approval_required
        self.base_total = base_total
        self.submitted_by = submitted_by
        self.rejection_comment = None
        self.stored_status = ContractStatus.PENDING_APPROVAL

    @event("Approved")
    def _approved(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                  ends_on: str, automatic: bool, comment: str | None, approved_on: str,
                  approved_by: str) -> None:
        self.stored_status = ContractStatus.APPROVED
        self.approved_by = approved_by or None
        self.approval_comment = comment

    @event("Rejected")
    def _rejected(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                  ends_on: str, comment: str | None, rejected_on: str,
                  rejected_by: str) -> None:
        self.stored_status = ContractStatus.DRAFT
        self.rejection_comment = comment

    @event("Signed")
    def _signed(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                ends_on: str, signed_on: str, signed_by: str) -> None:
        self.stored_status = ContractStatus.SIGNED
        self.signed_on = signed_on

    @event("Activated")
    def _activated(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                   ends_on: str, schedule: list[dict[str, Any]], activated_on: str, activated_by: str) -> None:
        self.stored_status = ContractStatus.ACTIVE
        self.activated_on = activated_on

    @event("PaymentRecorded")
    def _payment_recorded(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                          ends_on: str, instalment: int, amount: str, paid_on: str,
                          paid_after: str, instalment_outstanding: str, contract_outstanding: str,
                          recorded_by: str) -> None:
        self.paid[str(instalment)] = paid_after

    @event("Expired")
    def _expired(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                 ends_on: str, expired_on: str, expired_by: str) -> None:
        self.stored_status = ContractStatus.EXPIRED

    @event("Terminated")
    def _terminated(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                    ends_on: str, from_status: str, reason: str | None,
                    terminated_on: str, terminated_by: str) -> None:
        self.stored_status = ContractStatus.TERMINATED
        self.terminated_on = terminated_on
        self.termination_reason = reason

    @event("Renewed")
    def _renewed(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                 ends_on: str, next_contract_id: str, renewed_on: str,
                 renewed_by: str) -> None:
        self.stored_status = ContractStatus.RENEWED
        self.renewed_by_contract_id = next_contract_id

    @event("AmendmentRequested")
    def _amendment_requested(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                             ends_on: str, amendment: int, reason: str, proposed_ends_on: str,
                             proposed_total: str, proposed_schedule: list[dict[str, Any]] | None,
                             base_total: dict[str, str] | None, threshold: dict[str, str],
                             approval_required: bool, requested_on: str, requested_by: str,
                             request_key: str | None, asked: dict[str, Any]) -> None:
        self.amendments.append({
            "number": amendment, "status": AmendmentStatus.PENDING_APPROVAL.value, "reason": reason,
            "ends_on": proposed_ends_on, "total": proposed_total, "payment_schedule": proposed_schedule,
            "previous_ends_on": ends_on, "previous_total": total, "approval_required": approval_required,
            "base_total": base_total, "requested_on": requested_on, "requested_by": requested_by,
            "request_key": request_key, "asked": asked, "decided_on": None, "decided_by": None, "comment": None})

    @event("Amended")
    def _amended(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str, ends_on: str,
                 amendment: int, reason: str, previous_total: str, previous_ends_on: str,
                 schedule: list[dict[str, Any]], paid: dict[str, str], status: str, approval_required: bool,
                 automatic: bool, comment: str | None, requested_by: str, amended_on: str,
                 approved_by: str) -> None:
        self.total = total
        self.ends_on = ends_on
        self.schedule = schedule
        entry = self.amendments[amendment - 1]
        entry.update(status=AmendmentStatus.APPLIED.value, decided_on=amended_on,
                     decided_by=approved_by or None, comment=comment)

    @event("AmendmentRejected")
    def _amendment_rejected(self, account_id: str, owner_id: str, currency: str, total: str, starts_on: str,
                            ends_on: str, amendment: int, comment: str | None, rejected_on: str,
                            rejected_by: str) -> None:
        entry = self.amendments[amendment - 1]
        entry.update(status=AmendmentStatus.REJECTED.value, decided_on=rejected_on, decided_by=rejected_by,
                     comment=comment)

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

An active contract past `ends_on` SHOWS expired on every read (like a quote past its
valid_until), whether or not `expire` was called; `expire` records it (`ContractExpired`,
for the workflow's timer and the topic's readers). Approval is needed when the total in the
base currency (the application converts it with the FX table on the day of submission) is
above the threshold; only a manager or an admin may approve or reject (the application
checks the role), and never the contract's owner or its submitter (`FailedPrecondition`,
409). A rejected contract is a draft again, which can be submitted again or terminated.
Any other command answers 409 / FAILED_PRECONDITION naming the status, and records nothing.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import Money
from crm_runtime.text import text_field
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

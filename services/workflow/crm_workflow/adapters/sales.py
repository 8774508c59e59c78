"""Sales' contract events as the workflow reads them (`contracts.ContractFact`).

`ContractActivated` carries every instalment's due date and amount and `ends_on`;
`PaymentRecorded` what is still outstanding on its instalment (nothing: paid in full; else
the figure the instalment's reminder will carry);
`ContractAmended` the whole schedule after an amendment (with what is outstanding on each
instalment), ends_on and total; `ContractExpired`, `ContractRenewed` and
`ContractTerminated` end the contract's reminders (all of them, or only the renewal's:
crm_workflow.contract_reminders). Every other sales event says nothing the reminders need
(a pending amendment changes nothing until it is applied).
"""

from __future__ import annotations

from datetime import UTC, date
from typing import Any

from crm.sales.v1 import events_pb2
from crm_workflow.contract_reminders import Instalment, is_paid_in_full
from crm_workflow.contracts import ContractChange, ContractFact

ENDINGS = {events_pb2.ContractExpired: ContractChange.EXPIRED, events_pb2.ContractRenewed: ContractChange.RENEWED,
           events_pb2.ContractTerminated: ContractChange.TERMINATED}


def fact_of(message: Any, event_id: str) -> ContractFact | None:
    """The contract fact of a sales event; None for events the reminders ignore."""
    if isinstance(message, events_pb2.ContractActivated):
        return ContractFact(
            contract_id=message.contract_id, version=message.version, change=ContractChange.ACTIVATED,
            cause_event_id=event_id, account_id=message.account_id, owner_id=message.owner_id,
            currency=message.total.currency_code, total=message.total.amount,
            ends_on=date.fromisoformat(message.ends_on),
            activated_on=date.fromisoformat(message.activated_on),
            activated_at=message.activated_at.ToDatetime(tzinfo=UTC),
            instalments=tuple(Instalment(item.instalment, date.fromisoformat(item.due_on), item.amount.amount)
                              for item in message.instalments))
    if isinstance(message, events_pb2.PaymentRecorded):
        left = message.instalment_outstanding.amount
        return ContractFact(contract_id=message.contract_id, version=message.version,
                            change=ContractChange.PAID_IN_FULL if is_paid_in_full(left) else ContractChange.PART_PAID,
                            cause_event_id=event_id, account_id=message.account_id, owner_id=message.owner_id,
                            instalment=message.instalment, outstanding=left)
    if isinstance(message, events_pb2.ContractAmended):
        return ContractFact(
            contract_id=message.contract_id, version=message.version, change=ContractChange.AMENDED,
            cause_event_id=event_id, account_id=message.account_id, owner_id=message.owner_id,
            currency=message.total.currency_code, total=message.total.amount,
            ends_on=date.fromisoformat(message.ends_on), amended_at=message.amended_at.ToDatetime(tzinfo=UTC),
            instalments=tuple(Instalment(item.instalment, date.fromisoformat(item.due_on), item.amount.amount)
                              for item in message.instalments),
            paid_in_full=frozenset(item.instalment for item in message.instalments
                                   if is_paid_in_full(item.outstanding.amount)),
            owed={item.instalment: item.outstanding.amount for item in message.instalments
                  if not is_paid_in_full(item.outstanding.amount) and item.paid.amount
                  and not is_paid_in_full(item.paid.amount)})
    change = ENDINGS.get(type(message))
    if change is not None:
        return ContractFact(contract_id=message.contract_id, version=message.version, change=change,
                            cause_event_id=event_id)
    return None

"""The configured pipeline and opportunities: pure domain, no I/O.

`SalesPipeline` is one aggregate (a fixed id) holding the active `crm_sales.pipeline.Pipeline`;
until it is first configured, the pipeline is `DEFAULT_PIPELINE` (and its version 0).

An `Opportunity` is a deal with an account: a name, an amount (Money), an expected close
date, an owner (who sees and works it, crm_runtime.ownership) and a stage of the pipeline.
It opens in an open stage, moves between stages (`move_to`), and ends won or lost; both are
final. Every change of stage is kept in `stage_history` with its time (the event's) and its
author. The probability shown is the active pipeline's for the stage; each event also
records the probability the stage had when it happened (for forecasts as of then).

Stored state is JSON: amounts are decimal strings beside their currency code, dates ISO
8601 strings (crm_leads' Campaign stores its budget the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import Money
from crm_runtime.text import plain_identifier, text_field
from crm_sales.pipeline import CLOSED_LOST, CLOSED_WON, DEFAULT_PIPELINE, FINAL_STAGES, Pipeline

NAME_MAX = 200
REASON_MAX = 500
_OPPORTUNITY_NAMESPACE = uuid5(NAMESPACE_URL, "crm:sales:opportunity")
PIPELINE_ID = uuid5(NAMESPACE_URL, "crm:sales:pipeline")


# -- the pipeline ------------------------------------------------------------------------------

class SalesPipeline(Aggregate):
    """The active pipeline. Stored as a list of `{"name", "probability"}`."""

    @event("Configured")
    def __init__(self, id: UUID, stages: list[dict[str, Any]], configured_by: str):  # noqa: A002
        self.stages = stages
        self.configured_by = configured_by

    @classmethod
    def configure(cls, pipeline: Pipeline, configured_by: str) -> SalesPipeline:
        return cls(id=PIPELINE_ID, stages=_stages(pipeline), configured_by=configured_by)

    @property
    def pipeline(self) -> Pipeline:
        return Pipeline.of([(stage["name"], stage["probability"]) for stage in self.stages])

    def change(self, pipeline: Pipeline, changed_by: str) -> bool:
        """Sets the pipeline; False (no event) when it is the one already set."""
        stages = _stages(pipeline)
        if stages == self.stages:
            return False
        self._changed(stages=stages, configured_by=changed_by)
        return True

    @event("Changed")
    def _changed(self, stages: list[dict[str, Any]], configured_by: str) -> None:
        self.stages = stages
        self.configured_by = configured_by


def _stages(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [{"name": stage.name, "probability": stage.probability} for stage in pipeline.stages]


def active_pipeline(configured: SalesPipeline | None) -> Pipeline:
    return configured.pipeline if configured is not None else DEFAULT_PIPELINE


# -- opportunities -----------------------------------------------------------------------------

class OpportunityStatus:
    OPEN = "open"
    WON = "won"
    LOST = "lost"


def parse_date(field: str, raw: Any) -> date:
    """An ISO 8601 calendar date ("2025-06-30"), else InvalidField(field)."""
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidField(field, "is required: an ISO 8601 date such as 2025-06-30")
    text = raw.strip()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidField(field, f"{text[:40]!r} is not an ISO 8601 date such as 2025-06-30") from None


def parse_amount(field: str, raw: Any) -> Money:
    """Money from its JSON form, or a Money already parsed (gRPC); never negative."""
    if isinstance(raw, Money):
        if raw.is_negative():
            raise InvalidField(f"{field}.amount", "must not be negative")
        return raw
    return Money.parse(raw, field=field)


@dataclass(frozen=True)
class OpportunityDetails:
    name: str
    account_id: str
    amount: Money
    expected_close_on: str  # ISO 8601 date
    owner_id: str
    stage: str


def validate_opportunity(pipeline: Pipeline, name: Any, account_id: Any, amount: Any,
                         expected_close_on: Any, owner_id: Any, stage: Any) -> OpportunityDetails:
    from crm_sales.domain import record_id

    clean_name = text_field("name", name, NAME_MAX, required=True)
    assert clean_name is not None
    return OpportunityDetails(
        name=clean_name,
        account_id=record_id("account_id", account_id),
        amount=parse_amount("amount", amount),
        expected_close_on=parse_date("expected_close_on", expected_close_on).isoformat(),
        owner_id=plain_identifier("owner_id", owner_id),
        stage=(pipeline.check_open_stage(stage) if stage not in (None, "")
               else pipeline.first_open_stage))


def opportunity_id_for(request_key: str | None) -> UUID:
    return uuid5(_OPPORTUNITY_NAMESPACE, request_key) if request_key else uuid4()


def clean_reason(raw: Any, required: bool = False) -> str | None:
    return text_field("reason", raw, REASON_MAX, required=required)


class Opportunity(Aggregate):
    class Event(Aggregate.Event):
        """Stage history entries take their time from the event that made them: an event
        body appends an entry with `"at": None`, and applying the event fills it in."""

        def mutate(self, aggregate: Any) -> Any:
            aggregate = super().mutate(aggregate)
            history = getattr(aggregate, "stage_history", None)
            if history and history[-1].get("at") is None:
                history[-1]["at"] = self.timestamp.isoformat()
            return aggregate

    @event("Opened")
    def __init__(self, id: UUID, name: str, account_id: str, amount: str, currency: str,  # noqa: A002
                 expected_close_on: str, owner_id: str, stage: str, probability: int, opened_by: str):
        self.name = name
        self.account_id = account_id
        self.amount = Money(Decimal(amount), currency)
        self.expected_close_on = expected_close_on
        self.owner_id = owner_id
        self.stage = stage
        self.probability = probability  # the stage's, when it was last set
        self.opened_by = opened_by
        self.closed_on: str | None = None
        self.lost_reason: str | None = None
        self.won_quote_id: str | None = None
        self.opened_as = (name, account_id, amount, currency, expected_close_on, owner_id, stage)
        self.stage_history: list[dict[str, Any]] = [
            {"from_stage": None, "stage": stage, "at": None, "by": opened_by}]

    @classmethod
    def open(cls, details: OpportunityDetails, pipeline: Pipeline, opportunity_id: UUID,
             opened_by: str) -> Opportunity:
        return cls(id=opportunity_id, name=details.name, account_id=details.account_id,
                   amount=details.amount.amount_text, currency=details.amount.currency,
                   expected_close_on=details.expected_close_on, owner_id=details.owner_id,
                   stage=details.stage, probability=pipeline.probability_of(details.stage),
                   opened_by=opened_by)

    def same_opening(self, details: OpportunityDetails) -> bool:
        return self.opened_as == (details.name, details.account_id, details.amount.amount_text,
                                  details.amount.currency, details.expected_close_on, details.owner_id,
                                  details.stage)

    @property
    def status(self) -> str:
        if self.stage == CLOSED_WON:
            return OpportunityStatus.WON
        if self.stage == CLOSED_LOST:
            return OpportunityStatus.LOST
        return OpportunityStatus.OPEN

    @property
    def is_open(self) -> bool:
        return self.stage not in FINAL_STAGES

    def check_open(self, doing: str) -> None:
        """FailedPrecondition naming the status when the opportunity is won or lost."""
        if not self.is_open:
            raise FailedPrecondition(f"opportunity {self.id} is {self.status} ({self.stage}); "
                                     f"{doing} needs it open: won and lost are final")

    # -- commands ------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        """What every later event carries besides its change: the whole opportunity, so a
        consumer (and the relay, which sees one event) needs no other source."""
        return {"name": self.name, "account_id": self.account_id, "amount": self.amount.amount_text,
                "currency": self.amount.currency, "expected_close_on": self.expected_close_on,
                "owner_id": self.owner_id}

    def move_to(self, pipeline: Pipeline, target: Any, moved_by: str) -> bool:
        """Moves to another open stage of the pipeline; False (no event) when already there.
        Winning and losing are `win` and `lose`."""
        self.check_open("changing its stage")
        stage = pipeline.check_transition(self.stage, target)
        if stage == CLOSED_LOST:
            raise InvalidField("stage", "losing an opportunity needs a reason: use lose "
                                        "(POST /v1/opportunities/{id}/lose)")
        if stage == CLOSED_WON:
            raise InvalidField("stage", "use win (POST /v1/opportunities/{id}/win) to win an opportunity")
        if not pipeline.is_change(self.stage, stage):
            return False
        self._stage_changed(**self._state(), from_stage=self.stage, stage=stage,
                            probability=pipeline.probability_of(stage), changed_by=moved_by)
        return True

    def win(self, closed_on: date, won_by: str, amount: Money | None = None, quote_id: str | None = None) -> None:
        """Wins the opportunity (final). `amount`: what was won, when an accepted quote says
        (same currency as the opportunity); `quote_id`: that quote. The order of a won deal
        starts from the `Won` event."""
        self.check_open("winning it")
        won = amount if amount is not None else self.amount
        if won.currency != self.amount.currency:
            raise InvalidField("amount.currency", f"the opportunity is in {self.amount.currency}, "
                                                  f"not {won.currency}")
        state = {**self._state(), "amount": won.amount_text, "currency": won.currency}
        self._won(**state, from_stage=self.stage, closed_on=closed_on.isoformat(), quote_id=quote_id,
                  won_by=won_by)

    def lose(self, reason: Any, closed_on: date, lost_by: str) -> None:
        self.check_open("losing it")
        clean = clean_reason(reason, required=True)
        assert clean is not None  # required
        self._lost(**self._state(), from_stage=self.stage, reason=clean, closed_on=closed_on.isoformat(),
                   lost_by=lost_by)

    # -- events ----------------------------------------------------------------------------------
    # Each carries the whole opportunity (name, account_id, amount, currency,
    # expected_close_on, owner_id) as it is after the event.

    def _enter(self, from_stage: str, stage: str, probability: int, by: str) -> None:
        self.stage = stage
        self.probability = probability
        self.stage_history.append({"from_stage": from_stage, "stage": stage, "at": None, "by": by})

    @event("StageChanged")
    def _stage_changed(self, name: str, account_id: str, amount: str, currency: str, expected_close_on: str,
                       owner_id: str, from_stage: str, stage: str, probability: int, changed_by: str) -> None:
        self._enter(from_stage, stage, probability, changed_by)

    @event("Won")
    def _won(self, name: str, account_id: str, amount: str, currency: str, expected_close_on: str,
             owner_id: str, from_stage: str, closed_on: str, quote_id: str | None, won_by: str) -> None:
        self.amount = Money(Decimal(amount), currency)
        self.closed_on = closed_on
        self.won_quote_id = quote_id
        self._enter(from_stage, CLOSED_WON, 100, won_by)

    @event("Lost")
    def _lost(self, name: str, account_id: str, amount: str, currency: str, expected_close_on: str,
              owner_id: str, from_stage: str, reason: str, closed_on: str, lost_by: str) -> None:
        self.closed_on = closed_on
        self.lost_reason = reason
        self._enter(from_stage, CLOSED_LOST, 0, lost_by)

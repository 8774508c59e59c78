"""The sales pipeline: pure, no I/O. Stages with win probabilities, and the rule for moving
an opportunity between them.

A pipeline is an ordered list of stages `{"name", "probability"}` (`PUT /v1/pipeline`):
names are unique lower-case identifiers (`[a-z][a-z0-9_]*`, at most 64 characters),
probabilities whole percentages 0..100, and it holds exactly the two final stages
`closed_won` (probability 100) and `closed_lost` (0), plus at least one open stage. The
default is prospecting 10, qualification 20, proposal 50, negotiation 75, closed_won 100,
closed_lost 0.

Transitions: an opportunity may move from any open stage to any stage of the pipeline
(forwards, backwards, or straight to won or lost); `closed_won` and `closed_lost` are final,
whatever the pipeline says later. A stage the pipeline no longer has can still be left
(a pipeline changed under open opportunities), but never entered. Moving to the stage the
opportunity is already in is not a change (`is_change` is False): the aggregate records
nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import Money

CLOSED_WON = "closed_won"
CLOSED_LOST = "closed_lost"
FINAL_STAGES = frozenset({CLOSED_WON, CLOSED_LOST})
FINAL_PROBABILITIES = {CLOSED_WON: 100, CLOSED_LOST: 0}
MAX_STAGES = 30
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Stage:
    name: str
    probability: int  # whole percent, 0..100

    @property
    def is_final(self) -> bool:
        return self.name in FINAL_STAGES

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "probability": self.probability, "final": self.is_final}


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline; build it with `Pipeline.parse` or `Pipeline.of`."""

    stages: tuple[Stage, ...]

    @classmethod
    def of(cls, stages: Sequence[tuple[str, int]]) -> Pipeline:
        """A pipeline from `(name, probability)` pairs, validated like `parse`."""
        return cls.parse({"stages": [{"name": name, "probability": probability} for name, probability in stages]})

    @classmethod
    def parse(cls, raw: object, *, field: str = "stages") -> Pipeline:
        """`{"stages": [{"name", "probability"}]}` (or the bare list) validated, or
        InvalidField naming `stages[i].<field>` or `stages`."""
        if isinstance(raw, Mapping):
            unknown = sorted(str(key) for key in raw if key != "stages")
            if unknown:
                raise InvalidField(field, f"unknown keys: {', '.join(unknown)[:200]} (only stages)")
            raw = raw.get("stages")
        if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
            raise InvalidField(field, 'must be a list of {"name", "probability"}')
        if len(raw) > MAX_STAGES:
            raise InvalidField(field, f"must have at most {MAX_STAGES} stages")
        stages: list[Stage] = []
        seen: set[str] = set()
        for index, item in enumerate(raw):
            where = f"{field}[{index}]"
            if not isinstance(item, Mapping):
                raise InvalidField(where, "must be an object")
            unknown = sorted(str(key) for key in item if key not in ("name", "probability"))
            if unknown:
                raise InvalidField(where, f"unknown keys: {', '.join(unknown)[:200]}")
            name = item.get("name")
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise InvalidField(f"{where}.name", "must be a lower-case identifier such as \"proposal\" "
                                                    "(letters, digits, _; at most 64 characters)")
            if name in seen:
                raise InvalidField(f"{where}.name", f"{name} appears twice: stage names are unique")
            seen.add(name)
            probability = item.get("probability")
            if isinstance(probability, bool) or not isinstance(probability, int):
                raise InvalidField(f"{where}.probability", "must be a whole percentage (an integer 0..100)")
            if not 0 <= probability <= 100:
                raise InvalidField(f"{where}.probability", "must be between 0 and 100")
            if name in FINAL_PROBABILITIES and probability != FINAL_PROBABILITIES[name]:
                raise InvalidField(f"{where}.probability", f"{name} has probability {FINAL_PROBABILITIES[name]}")
            stages.append(Stage(name, probability))
        missing = sorted(FINAL_STAGES - seen)
        if missing:
            raise InvalidField(field, f"must include the final stages closed_won and closed_lost "
                                      f"(missing: {', '.join(missing)})")
        if len(stages) == len(FINAL_STAGES):
            raise InvalidField(field, "must have at least one open stage besides closed_won and closed_lost")
        return cls(tuple(stages))

    def to_json(self) -> dict[str, Any]:
        return {"stages": [stage.to_json() for stage in self.stages]}

    # -- look-ups -----------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    @property
    def open_stages(self) -> tuple[Stage, ...]:
        return tuple(stage for stage in self.stages if not stage.is_final)

    @property
    def first_open_stage(self) -> str:
        """Where an opportunity opened without a stage starts."""
        return self.open_stages[0].name

    def stage(self, name: str) -> Stage | None:
        return next((stage for stage in self.stages if stage.name == name), None)

    def probability_of(self, name: str) -> int:
        """The stage's probability; for a stage the pipeline no longer has, 100 if won, else 0."""
        stage = self.stage(name)
        if stage is not None:
            return stage.probability
        return 100 if name == CLOSED_WON else 0

    def weighted(self, amount: Money, stage: str) -> Money:
        """`amount` x the stage's probability, rounded half-even (the weighted forecast)."""
        return (amount * Decimal(self.probability_of(stage)).scaleb(-2)).round_half_even()

    # -- rules --------------------------------------------------------------------------

    def check_stage(self, raw: object, *, field: str = "stage") -> str:
        """`raw` if it names a stage of this pipeline, else InvalidField(field)."""
        if not isinstance(raw, str) or self.stage(raw) is None:
            shown = repr(raw)[:70] if isinstance(raw, str) else "the value"
            raise InvalidField(field, f"{shown} is not a stage of the pipeline ({', '.join(self.names)})")
        return raw

    def check_open_stage(self, raw: object, *, field: str = "stage") -> str:
        """A stage to open an opportunity in: in the pipeline and not final."""
        name = self.check_stage(raw, field=field)
        if name in FINAL_STAGES:
            raise InvalidField(field, f"an opportunity opens in an open stage, not {name}: win or lose it after")
        return name

    def check_transition(self, current: str, target: object, *, field: str = "stage") -> str:
        """The target stage if an opportunity in `current` may move to it: FailedPrecondition
        when `current` is final, InvalidField(field) when the target is not in the pipeline."""
        if current in FINAL_STAGES:
            raise FailedPrecondition(f"the opportunity is {current}: won and lost are final")
        return self.check_stage(target, field=field)

    def is_change(self, current: str, target: str) -> bool:
        return current != target


def is_final(stage: str) -> bool:
    return stage in FINAL_STAGES


DEFAULT_PIPELINE = Pipeline.of([("prospecting", 10), ("qualification", 20), ("proposal", 50),
                                ("negotiation", 75), (CLOSED_WON, 100), (CLOSED_LOST, 0)])

"""Which SLA timers a ticket needs now: pure domain, from the ticket's latest SLA state.

Every service-desk event that changes a ticket's clock carries its whole SLA state (due
times, pause, what was met, the policy's warning percentage and escalation steps). From one
such state `plan` says which timers should be pending, and when each fires:

- per target (first response, resolution) not yet met and not paused: a warning at
  `warn_at` (the service desk computes it in business time: the instant `warn_at_percent`
  of the target has elapsed), a breach at the due time, and an escalation level for each
  step of `escalation_steps`, at the due time plus that step (wall-clock offsets after the
  breach: an escalation is about people waiting, not about opening hours);
- a met target (first response given, ticket solved or closed) or a paused one (pending on
  the customer: the resolution clock stops) has none.

`reconcile(pending, planned)` turns the difference into what to do: timers to schedule (new
ones or ones whose time moved) and timers to cancel. Timers that already fired are never
planned again: a fired timer's key is in `fired`, and the same key with the same time is
the same timer. A key names a timer's reason, so a moved due time moves the timer instead
of adding a second one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar


class Target(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class TimerKind(StrEnum):
    WARNING = "warning"
    BREACH = "breach"
    ESCALATION = "escalation"


@dataclass(frozen=True, order=True)
class TimerKey:
    subject_id: str
    target: Target
    kind: TimerKind
    level: int = 0  # escalation level (1, 2, ...); 0 for warnings and breaches

    @property
    def name(self) -> str:
        """A stable name, e.g. `t-1/resolution/escalation/2` (timer ids derive from it)."""
        suffix = f"/{self.level}" if self.kind is TimerKind.ESCALATION else ""
        return f"{self.subject_id}/{self.target.value}/{self.kind.value}{suffix}"


@dataclass(frozen=True)
class TargetClock:
    due: datetime | None  # None: paused, or no target
    warn_at: datetime | None = None
    met: bool = False
    paused: bool = False


@dataclass(frozen=True)
class SlaState:
    subject_id: str
    first_response: TargetClock
    resolution: TargetClock
    escalation_steps: Sequence[timedelta] = ()


def plan(state: SlaState) -> dict[TimerKey, datetime]:
    """The timers `state` needs pending, and when each fires."""
    planned: dict[TimerKey, datetime] = {}
    for target, clock in ((Target.FIRST_RESPONSE, state.first_response), (Target.RESOLUTION, state.resolution)):
        if clock.met or clock.paused or clock.due is None:
            continue
        if clock.warn_at is not None and clock.warn_at < clock.due:
            planned[TimerKey(state.subject_id, target, TimerKind.WARNING)] = clock.warn_at
        planned[TimerKey(state.subject_id, target, TimerKind.BREACH)] = clock.due
        for level, step in enumerate(state.escalation_steps, start=1):
            planned[TimerKey(state.subject_id, target, TimerKind.ESCALATION, level)] = clock.due + step
    return planned


K = TypeVar("K", TimerKey, str)


@dataclass(frozen=True)
class Changes(Generic[K]):
    schedule: dict[K, datetime]  # new, or moved to a new time
    cancel: list[K]


def reconcile(pending: Mapping[K, datetime], planned: Mapping[K, datetime], fired: Iterable[K] = ()) -> Changes[K]:
    """What to do so that the pending timers are the planned ones. A timer that already
    fired is not scheduled again, even when its time moved (a breach is a breach). Timers
    are named by their keys or by the keys' names (any timer, a contract's reminders too)."""
    done = set(fired)
    schedule = {key: at for key, at in planned.items() if key not in done and pending.get(key) != at}
    cancel = sorted(key for key in pending if key not in planned)
    return Changes(schedule, cancel)

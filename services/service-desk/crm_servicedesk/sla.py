"""SLA policies and clocks: pure rules, no I/O, no clock reads.

A policy names a business calendar, a target per priority (time to the first response and
to resolution, ISO 8601 durations of business time), which tickets it applies to
(`applies_to`: account tiers and categories; an empty or missing list matches every
ticket), the percentage of a target at which the workflow warns, and escalation steps
(wall-clock offsets after a breach, one escalation level each: level 1 at the first step,
level 2 at the second, ...).

Which policy applies (`choose_policy`): among the policies whose every criterion matches
the ticket, the one with the most criteria (account tier and category: 2, one of them: 1,
none: 0); ties go to the smallest id. `DEFAULT_POLICY` (id `default`, no criteria) always
exists, so a ticket always has a policy; it can be redefined but never narrowed.

The clocks (`compute`). Both targets count business time on the policy's calendar from
the moment the ticket was opened:

- first response: met by the first public comment of an agent; never paused; stopped
  (no longer measured) when the ticket is solved or closed before one;
- resolution: met when the ticket is solved; paused while it is pending (waiting on the
  customer) and between a solve and a reopen; those spans do not count.

For each target the result says its state and, for the workflow's timers, the instants at
which it is due, at which the warning falls (`warn_at_percent` of the target, in business
time), and at which each escalation level falls (the due time plus the step): see
`SlaTarget`. A paused target whose due time was not reached before the pause has no due
time (the clock is stopped; it gets one when it resumes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from crm_runtime.business_time import Calendar, Pause, due, format_duration, parse_duration
from crm_runtime.errors import InvalidField

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NAME_MAX = 64  # categories, groups, tiers, tags
MAX_CRITERIA = 50
MAX_ESCALATION_STEPS = 10


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TargetState(StrEnum):
    RUNNING = "running"  # the clock counts: timers at warn_at, due, escalate_at
    PAUSED = "paused"    # waiting on the customer: no timers until it resumes
    MET = "met"          # achieved at met_at (late if met_at > due)
    STOPPED = "stopped"  # no longer measured (solved before a first response)


def check_slug(field_name: str, raw: object) -> str:
    """A calendar or policy id: lower-case letters, digits, `-` and `_`, at most 64."""
    if not isinstance(raw, str) or not SLUG.fullmatch(raw):
        raise InvalidField(field_name, "must be 1 to 64 lower-case letters, digits, '-' or '_', "
                                       "starting with a letter or digit")
    return raw


def check_name(field_name: str, raw: object) -> str:
    """A category, group, tier or tag: a lower-case slug too (they are matched exactly)."""
    if not isinstance(raw, str) or not SLUG.fullmatch(raw.strip().lower()):
        raise InvalidField(field_name, "must be 1 to 64 letters, digits, '-' or '_'")
    return raw.strip().lower()


@dataclass(frozen=True)
class Targets:
    first_response: timedelta
    resolution: timedelta


@dataclass(frozen=True)
class SlaPolicy:
    id: str
    calendar_id: str
    targets: Mapping[Priority, Targets]
    account_tiers: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    warn_at_percent: int = 75
    escalation_steps: tuple[timedelta, ...] = ()

    @classmethod
    def parse(cls, policy_id: object, data: object) -> SlaPolicy:
        """The JSON body of `PUT /v1/sla-policies/{id}`; InvalidField names the bad field."""
        policy_id = check_slug("id", policy_id)
        if not isinstance(data, Mapping):
            raise InvalidField("policy", "must be an object")
        allowed = {"calendar_id", "targets", "applies_to", "warn_at_percent", "escalation_steps"}
        for key in data:
            if key not in allowed:
                raise InvalidField(str(key)[:40], f"is not a policy field ({', '.join(sorted(allowed))})")
        calendar_id = check_slug("calendar_id", data.get("calendar_id", "default"))
        raw_targets = data.get("targets")
        if not isinstance(raw_targets, Mapping):
            raise InvalidField("targets", "is required: a target for each of urgent, high, normal and low")
        targets: dict[Priority, Targets] = {}
        for key in raw_targets:
            if key not in Priority.__members__.values():
                raise InvalidField(f"targets.{str(key)[:20]}", "is not a priority: low, normal, high or urgent")
        for priority in Priority:
            raw = raw_targets.get(priority.value)
            where = f"targets.{priority.value}"
            if not isinstance(raw, Mapping):
                raise InvalidField(where, 'is required: {"first_response": "PT1H", "resolution": "PT4H"}')
            for key in raw:
                if key not in ("first_response", "resolution"):
                    raise InvalidField(f"{where}.{str(key)[:20]}", "is not a target (first_response, resolution)")
            first = parse_duration(raw.get("first_response"), f"{where}.first_response")
            resolution = parse_duration(raw.get("resolution"), f"{where}.resolution")
            if first <= timedelta(0) or resolution <= timedelta(0):
                raise InvalidField(where, "targets must be longer than zero")
            if resolution < first:
                raise InvalidField(f"{where}.resolution", "is shorter than the first response target")
            targets[priority] = Targets(first, resolution)
        applies = data.get("applies_to") or {}
        if not isinstance(applies, Mapping):
            raise InvalidField("applies_to", 'must be an object: {"account_tier": [...], "category": [...]}')
        for key in applies:
            if key not in ("account_tier", "category"):
                raise InvalidField(f"applies_to.{str(key)[:20]}", "is not a criterion (account_tier, category)")
        tiers = _names("applies_to.account_tier", applies.get("account_tier"))
        categories = _names("applies_to.category", applies.get("category"))
        if policy_id == DEFAULT_POLICY_ID and (tiers or categories):
            raise InvalidField("applies_to", "the default policy applies to every ticket: give it no criteria")
        warn = data.get("warn_at_percent", 75)
        if isinstance(warn, bool) or not isinstance(warn, int) or not 1 <= warn <= 100:
            raise InvalidField("warn_at_percent", "must be a whole number from 1 to 100")
        raw_steps = data.get("escalation_steps", [])
        if not isinstance(raw_steps, list) or len(raw_steps) > MAX_ESCALATION_STEPS:
            raise InvalidField("escalation_steps", f"must be a list of at most {MAX_ESCALATION_STEPS} "
                                                   f"ISO 8601 durations, e.g. [\"PT0S\", \"PT2H\"]")
        steps = tuple(parse_duration(raw, f"escalation_steps[{i}]") for i, raw in enumerate(raw_steps))
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                raise InvalidField(f"escalation_steps[{i}]", "must be longer than the step before it")
        return cls(policy_id, calendar_id, targets, tiers, categories, warn, steps)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `parse` reads (lists sorted)."""
        return {
            "calendar_id": self.calendar_id,
            "targets": {p.value: {"first_response": format_duration(t.first_response),
                                  "resolution": format_duration(t.resolution)}
                        for p, t in self.targets.items()},
            "applies_to": {"account_tier": sorted(self.account_tiers), "category": sorted(self.categories)},
            "warn_at_percent": self.warn_at_percent,
            "escalation_steps": [format_duration(step) for step in self.escalation_steps],
        }

    @classmethod
    def from_dict(cls, policy_id: str, data: Mapping[str, Any]) -> SlaPolicy:
        return cls.parse(policy_id, data)

    @property
    def specificity(self) -> int:
        return int(bool(self.account_tiers)) + int(bool(self.categories))

    def matches(self, account_tier: str | None, category: str | None) -> bool:
        return ((not self.account_tiers or account_tier in self.account_tiers)
                and (not self.categories or category in self.categories))


def _names(field_name: str, raw: object) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or len(raw) > MAX_CRITERIA:
        raise InvalidField(field_name, f"must be a list of at most {MAX_CRITERIA} names")
    return frozenset(check_name(f"{field_name}[{i}]", item) for i, item in enumerate(raw))


DEFAULT_POLICY_ID = "default"
DEFAULT_CALENDAR_ID = "default"
# A 24x7 UTC calendar until someone defines `default`.
DEFAULT_CALENDAR = Calendar.always("UTC")
DEFAULT_POLICY = SlaPolicy.parse(DEFAULT_POLICY_ID, {
    "calendar_id": DEFAULT_CALENDAR_ID,
    "targets": {"urgent": {"first_response": "PT1H", "resolution": "PT4H"},
                "high": {"first_response": "PT4H", "resolution": "PT24H"},
                "normal": {"first_response": "PT8H", "resolution": "PT72H"},
                "low": {"first_response": "PT24H", "resolution": "PT168H"}},
    "warn_at_percent": 75,
    "escalation_steps": ["PT0S", "PT2H"],
})


def choose_policy(policies: Iterable[SlaPolicy], account_tier: str | None, category: str | None) -> SlaPolicy:
    """The most specific matching policy (ties: the smallest id); the default when none match.
    `policies` may include a redefined default, which then replaces DEFAULT_POLICY."""
    candidates = {DEFAULT_POLICY_ID: DEFAULT_POLICY}
    for policy in policies:
        candidates[policy.id] = policy
    matching = [p for p in candidates.values() if p.matches(account_tier, category)]
    return min(matching, key=lambda p: (-p.specificity, p.id))


# -- the clocks -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlaTarget:
    state: TargetState
    target: timedelta
    due: datetime | None       # None while paused before reaching it
    warn_at: datetime | None   # warn_at_percent of the target
    escalate_at: tuple[datetime, ...] = ()  # level i + 1 at index i
    met_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "target": format_duration(self.target),
                "due": _iso(self.due), "warn_at": _iso(self.warn_at),
                "escalate_at": [_iso(at) for at in self.escalate_at], "met_at": _iso(self.met_at)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaTarget:
        return cls(TargetState(data["state"]), parse_duration(data["target"], "target"),
                   _dt(data["due"]), _dt(data["warn_at"]),
                   tuple(_dt(at) for at in data["escalate_at"]), _dt(data["met_at"]))  # type: ignore[misc]

    def breached(self, now: datetime) -> bool:
        """Due, unmet and past due now."""
        return self.state in (TargetState.RUNNING, TargetState.PAUSED) and self.due is not None and now >= self.due


@dataclass(frozen=True)
class Sla:
    policy_id: str
    calendar_id: str
    warn_at_percent: int
    escalation_steps: tuple[timedelta, ...]
    paused: bool
    first_response: SlaTarget
    resolution: SlaTarget

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in events and answered over HTTP."""
        return {"policy_id": self.policy_id, "calendar_id": self.calendar_id,
                "first_response_due": _iso(self.first_response.due),
                "resolution_due": _iso(self.resolution.due), "paused": self.paused,
                "warn_at_percent": self.warn_at_percent,
                "escalation_steps": [format_duration(step) for step in self.escalation_steps],
                "first_response": self.first_response.to_dict(), "resolution": self.resolution.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sla:
        return cls(data["policy_id"], data["calendar_id"], data["warn_at_percent"],
                   tuple(parse_duration(step, "escalation_steps") for step in data["escalation_steps"]),
                   data["paused"], SlaTarget.from_dict(data["first_response"]),
                   SlaTarget.from_dict(data["resolution"]))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@dataclass(frozen=True)
class ClockFacts:
    """What the clocks depend on, as the ticket records it."""

    opened_at: datetime
    priority: Priority
    # Closed spans that do not count for resolution (pending, solved until reopened).
    pauses: Sequence[tuple[datetime, datetime]] = ()
    # Since when the resolution clock is paused now (pending), None if it runs.
    paused_since: datetime | None = None
    first_responded_at: datetime | None = None
    # When the ticket was solved, while it is solved or closed.
    solved_at: datetime | None = None


def compute(policy: SlaPolicy, calendar: Calendar, facts: ClockFacts) -> Sla:
    """Both clocks of a ticket under `policy` on `calendar` (see the module's docstring)."""
    targets = policy.targets[facts.priority]
    steps = policy.escalation_steps
    closed: list[Pause] = [(begin, end) for begin, end in facts.pauses]

    def instants(target: timedelta, pauses: list[Pause]) -> tuple[datetime | None, datetime | None,
                                                                  tuple[datetime, ...]]:
        due_at = due(calendar, facts.opened_at, target, pauses)
        warn_at = due(calendar, facts.opened_at, target * policy.warn_at_percent / 100, pauses)
        # Escalations are wall-clock offsets after the breach (people are waiting, whatever
        # the opening hours), as the workflow's timers count them.
        escalate = tuple(due_at + step for step in steps) if due_at is not None else ()
        return due_at, warn_at, escalate

    # First response: never paused.
    fr_due, fr_warn, fr_escalate = instants(targets.first_response, [])
    if facts.first_responded_at is not None:
        first = SlaTarget(TargetState.MET, targets.first_response, fr_due, fr_warn, fr_escalate,
                          facts.first_responded_at)
    elif facts.solved_at is not None:
        first = SlaTarget(TargetState.STOPPED, targets.first_response, fr_due, fr_warn, fr_escalate)
    else:
        first = SlaTarget(TargetState.RUNNING, targets.first_response, fr_due, fr_warn, fr_escalate)

    # Resolution: the closed pauses, and the open one while pending.
    if facts.solved_at is not None:
        res_due, res_warn, res_escalate = instants(targets.resolution, closed)
        resolution = SlaTarget(TargetState.MET, targets.resolution, res_due, res_warn, res_escalate,
                               facts.solved_at)
    elif facts.paused_since is not None:
        res_due, res_warn, res_escalate = instants(targets.resolution, [*closed, (facts.paused_since, None)])
        resolution = SlaTarget(TargetState.PAUSED, targets.resolution, res_due, res_warn, res_escalate)
    else:
        res_due, res_warn, res_escalate = instants(targets.resolution, closed)
        resolution = SlaTarget(TargetState.RUNNING, targets.resolution, res_due, res_warn, res_escalate)
    return Sla(policy.id, policy.calendar_id, policy.warn_at_percent, steps,
               facts.paused_since is not None, first, resolution)

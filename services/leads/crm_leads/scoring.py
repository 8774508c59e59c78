"""Lead scoring: a rule set, a lead's facts, and a score that explains itself. Pure, no I/O.

A rule set is the plain dict that `PUT /v1/scoring-rules` takes and an event stores::

    {"rules": [{"id": "referral", "description": "Referred by a customer",
                "when": {"field": "channel", "op": "eq", "value": "referral"},
                "points": 20}, ...],
     "grades": {"hot": 60, "warm": 30}}

`RuleSet.from_dict` validates it (InvalidField naming the bad part, e.g. `rules[2].when.field`)
and `RuleSet.to_dict` gives it back in canonical form; `score(rule_set, facts)` applies it.

Fields
    Lead attributes: text `channel`, `industry`, `title`, `country`, `email_domain` (the part
    of the email after the last "@") and the number `company_size`. An attribute is missing
    when the lead has no value for it (None or blank text).
    Activity counts: `activities.<kind>` for each kind in ACTIVITY_KINDS, a number. A count is
    never missing: a lead without meetings has `activities.meeting` 0.

Operators (`value` is the rule's value; "matches" means the rule's points count)
    eq        the field equals value.                       value: text or number
    ne        the field is missing or differs from value.   value: text or number
    in        the field equals one of value.                value: non-empty list of text or numbers
    gte, lte  the field is >= / <= value.                   value: number; numeric fields only
    contains  value is a substring of the field.            value: non-empty text; text fields only
    exists    value true (or no value): the attribute is present; false: it is missing.
              Lead attributes only (an activity count always exists; use `gte 1`).
    Text compares case-insensitively and ignoring surrounding blanks (both sides are trimmed
    and case-folded); a text field takes text values and a numeric field numbers. A missing
    attribute matches no eq, in, gte, lte or contains; it matches ne and `exists: false`.

Score
    `points` is the sum of the points of the matching rules (points are integers and may be
    negative); `grade` is hot when points >= grades.hot, else warm when points >= grades.warm,
    else cold; `reasons` lists every matching rule, in rule-set order, with its points.

Canonical form (what `to_dict` gives): every rule has all four keys, `when` has `value`
(`exists` written out as true or false), numbers written as ints when integral, lists as lists.
Keys not named above are refused, so a typo never passes as a silently ignored rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate, event

from crm_runtime.email_domains import FREE_MAIL_DOMAINS, email_domain_of
from crm_runtime.errors import InvalidField
from crm_runtime.text import check_text

TEXT_ATTRIBUTES = ("channel", "industry", "title", "country", "email_domain")
NUMBER_ATTRIBUTES = ("company_size",)
LEAD_ATTRIBUTES = ("channel", "industry", "company_size", "title", "country", "email_domain")
ACTIVITY_KINDS = ("call", "email", "meeting", "note", "email_opened", "page_visited", "form_submitted")
ACTIVITY_FIELDS = tuple(f"activities.{kind}" for kind in ACTIVITY_KINDS)
FIELDS = LEAD_ATTRIBUTES + ACTIVITY_FIELDS
NUMERIC_FIELDS = frozenset(NUMBER_ATTRIBUTES + ACTIVITY_FIELDS)
# Mirrors crm_leads.domain.Channel (a test keeps them equal); not imported, so that the
# domain may import this module.
CHANNELS = ("web", "email", "phone", "referral", "event", "social", "partner")

MAX_RULES = 200
MAX_ID = 64
MAX_DESCRIPTION = 200
MAX_TEXT_VALUE = 200
MAX_IN_VALUES = 100
MAX_POINTS = 1000  # per rule, either sign
MAX_GRADE = MAX_POINTS * MAX_RULES
MAX_NUMBER = 1e12  # a value beyond any company size or count

_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RULE_KEYS = ("id", "description", "when", "points")
_WHEN_KEYS = ("field", "op", "value")


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    GTE = "gte"
    LTE = "lte"
    CONTAINS = "contains"
    EXISTS = "exists"


_OPS = tuple(op.value for op in Op)


class Grade(StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


Number = int | float
Scalar = str | int | float
Value = str | int | float | bool | tuple[Scalar, ...]


@dataclass(frozen=True)
class Condition:
    field: str
    op: Op
    value: Value


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    when: Condition
    points: int


@dataclass(frozen=True)
class Grades:
    hot: int
    warm: int


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    grades: Grades

    @classmethod
    def from_dict(cls, data: object) -> RuleSet:
        """The rule set a plain dict describes; InvalidField naming the first problem."""
        return _parse_rule_set(data)

    def to_dict(self) -> dict[str, Any]:
        """The canonical plain dict (JSON-ready), for an event or an API answer."""
        return {
            "rules": [{"id": rule.id, "description": rule.description,
                       "when": {"field": rule.when.field, "op": rule.when.op.value,
                                "value": list(rule.when.value) if isinstance(rule.when.value, tuple)
                                else rule.when.value},
                       "points": rule.points}
                      for rule in self.rules],
            "grades": {"hot": self.grades.hot, "warm": self.grades.warm},
        }


@dataclass(frozen=True)
class LeadFacts:
    """What scoring looks at. Blank text counts as missing; `activities` maps a kind to its
    count (kinds not named count 0). Build it with `LeadFacts.of` to derive `email_domain`."""

    channel: str | None = None
    industry: str | None = None
    company_size: int | None = None
    title: str | None = None
    country: str | None = None
    email_domain: str | None = None
    activities: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        counts = dict(self.activities)
        for kind, count in counts.items():
            if kind not in ACTIVITY_KINDS:
                raise ValueError(f"unknown activity kind {kind!r}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"activity count for {kind!r} must be a non-negative int, not {count!r}")
        object.__setattr__(self, "activities", MappingProxyType(counts))

    @classmethod
    def of(cls, *, email: str | None = None, channel: str | None = None, industry: str | None = None,
           company_size: int | None = None, title: str | None = None, country: str | None = None,
           activities: Mapping[str, int] | Iterable[str] = ()) -> LeadFacts:
        """Facts from a lead's fields; `activities` is either counts per kind or the kinds of
        the lead's activities, one per activity."""
        if isinstance(activities, Mapping):
            counts = dict(activities)
        else:
            counts = {}
            for kind in activities:
                counts[kind] = counts.get(kind, 0) + 1
        return cls(channel=channel, industry=industry, company_size=company_size, title=title,
                   country=country, email_domain=email_domain_of(email), activities=counts)

    def value_of(self, name: str) -> str | int | None:
        """The field's value; None when a lead attribute is missing."""
        if name.startswith("activities."):
            return self.activities.get(name.removeprefix("activities."), 0)
        value = getattr(self, name)
        if isinstance(value, str) and not value.strip():
            return None
        return value


@dataclass(frozen=True)
class Reason:
    rule_id: str
    description: str
    points: int

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "description": self.description, "points": self.points}


@dataclass(frozen=True)
class Score:
    points: int
    grade: Grade
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict[str, Any]:
        """As a lead shows it: `score`, `grade`, `score_reasons`."""
        return {"score": self.points, "grade": self.grade.value,
                "score_reasons": [reason.to_dict() for reason in self.reasons]}


def grade_for(points: int, grades: Grades) -> Grade:
    if points >= grades.hot:
        return Grade.HOT
    if points >= grades.warm:
        return Grade.WARM
    return Grade.COLD


def score(rule_set: RuleSet, facts: LeadFacts) -> Score:
    reasons = tuple(Reason(rule.id, rule.description, rule.points)
                    for rule in rule_set.rules if matches(rule.when, facts))
    points = sum(reason.points for reason in reasons)
    return Score(points=points, grade=grade_for(points, rule_set.grades), reasons=reasons)


def _fold(value: str) -> str:
    return value.strip().casefold()


def _same(actual: str | int, expected: Value) -> bool:
    if isinstance(actual, str) or isinstance(expected, str):
        return isinstance(actual, str) and isinstance(expected, str) and _fold(actual) == _fold(expected)
    return not isinstance(expected, bool | tuple) and actual == expected


def matches(condition: Condition, facts: LeadFacts) -> bool:
    """Whether the facts satisfy the condition (semantics in the module docstring)."""
    actual = facts.value_of(condition.field)
    op, expected = condition.op, condition.value
    if op is Op.EXISTS:
        return (actual is not None) is expected
    if actual is None:
        return op is Op.NE
    if op is Op.EQ:
        return _same(actual, expected)
    if op is Op.NE:
        return not _same(actual, expected)
    if op is Op.IN:
        return isinstance(expected, tuple) and any(_same(actual, item) for item in expected)
    if op is Op.CONTAINS:
        return isinstance(actual, str) and isinstance(expected, str) and _fold(expected) in _fold(actual)
    if isinstance(actual, str) or isinstance(expected, str | bool | tuple):
        return False  # gte/lte on text: refused when the rule set is parsed
    return actual >= expected if op is Op.GTE else actual <= expected


# --- parsing and validation -------------------------------------------------------------

def _refuse_unknown_keys(path: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in data:
        if key not in known:
            raise InvalidField(f"{path}.{key}" if path else str(key),
                               f"is not a known key; use {', '.join(known)}")


def _mapping(path: str, data: object) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidField(path, f"must be an object, not {_type_name(data)}")
    return data


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _integer(path: str, value: object, low: int, high: int) -> int:
    """An integer in [low, high]; an integral float (as JSON may give) becomes an int."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(path, f"must be an integer, not {_type_name(value)}")
    if not low <= value <= high:
        raise InvalidField(path, f"must be between {low} and {high}")
    return value


def _number(path: str, value: object) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidField(path, f"must be a number, not {_type_name(value)}")
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise InvalidField(path, f"must be a finite number between {-MAX_NUMBER:g} and {MAX_NUMBER:g}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _text(path: str, value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidField(path, f"must be text, not {_type_name(value)}")
    if not value.strip():
        raise InvalidField(path, "must not be blank")
    if len(value) > max_length:
        raise InvalidField(path, f"must be at most {max_length} characters")
    check_text(path, value)
    return value


def _scalar(path: str, field_name: str, value: object) -> Scalar:
    if field_name in NUMERIC_FIELDS:
        return _number(path, value)
    text = _text(path, value, MAX_TEXT_VALUE)
    if field_name == "channel" and _fold(text) not in CHANNELS:
        raise InvalidField(path, f"{text!r} is not a known channel; use one of: {', '.join(CHANNELS)}")
    return text


def _parse_condition(path: str, data: object) -> Condition:
    when = _mapping(path, data)
    _refuse_unknown_keys(path, when, _WHEN_KEYS)
    raw_field = when.get("field")
    if not isinstance(raw_field, str) or raw_field not in FIELDS:
        shown = repr(raw_field) if isinstance(raw_field, str) else _type_name(raw_field)
        raise InvalidField(f"{path}.field", f"{shown} is not a known field; use one of: {', '.join(FIELDS)}")
    raw_op = when.get("op")
    if not isinstance(raw_op, str) or raw_op not in _OPS:
        shown = repr(raw_op) if isinstance(raw_op, str) else _type_name(raw_op)
        raise InvalidField(f"{path}.op", f"{shown} is not a known operator; use one of: {', '.join(_OPS)}")
    op = Op(raw_op)
    value_path = f"{path}.value"
    raw = when.get("value")
    numeric = raw_field in NUMERIC_FIELDS
    value: Value
    if op is Op.EXISTS:
        if raw_field in ACTIVITY_FIELDS:
            raise InvalidField(f"{path}.op", f"exists applies to lead attributes; {raw_field!r} is a count "
                                             "that always exists (use gte 1 for 'at least one')")
        if raw is None:
            value = True
        elif isinstance(raw, bool):
            value = raw
        else:
            raise InvalidField(value_path, f"exists takes true, false or no value, not {_type_name(raw)}")
    elif raw is None:
        raise InvalidField(value_path, f"is required for {op.value}")
    elif op is Op.IN:
        if not isinstance(raw, list | tuple) or not raw:
            raise InvalidField(value_path, f"in needs a non-empty list, not {_type_name(raw)}")
        if len(raw) > MAX_IN_VALUES:
            raise InvalidField(value_path, f"may list at most {MAX_IN_VALUES} values")
        value = tuple(_scalar(f"{value_path}[{index}]", raw_field, item) for index, item in enumerate(raw))
    elif op in (Op.GTE, Op.LTE):
        if not numeric:
            raise InvalidField(f"{path}.op", f"{op.value} compares numbers; {raw_field!r} is text "
                                             "(use eq, ne, in, contains or exists)")
        value = _number(value_path, raw)
    elif op is Op.CONTAINS:
        if numeric:
            raise InvalidField(f"{path}.op", f"contains looks inside text; {raw_field!r} is a number "
                                             "(use eq, ne, in, gte or lte)")
        value = _text(value_path, raw, MAX_TEXT_VALUE)
    else:  # eq, ne
        value = _scalar(value_path, raw_field, raw)
    return Condition(field=raw_field, op=op, value=value)


def _parse_rule(path: str, data: object) -> Rule:
    rule = _mapping(path, data)
    _refuse_unknown_keys(path, rule, _RULE_KEYS)
    for key in _RULE_KEYS:
        if key not in rule:
            raise InvalidField(f"{path}.{key}", "is required")
    rule_id = rule["id"]
    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id) or len(rule_id) > MAX_ID:
        raise InvalidField(f"{path}.id", f"must be 1 to {MAX_ID} letters, digits, '_', '-' or '.', "
                                         "starting with a letter or digit")
    return Rule(id=rule_id,
                description=_text(f"{path}.description", rule["description"], MAX_DESCRIPTION),
                when=_parse_condition(f"{path}.when", rule["when"]),
                points=_integer(f"{path}.points", rule["points"], -MAX_POINTS, MAX_POINTS))


def _parse_rule_set(data: object) -> RuleSet:
    body = _mapping("rule_set", data)
    _refuse_unknown_keys("", body, ("rules", "grades"))
    raw_rules = body.get("rules")
    if not isinstance(raw_rules, list | tuple):
        raise InvalidField("rules", f"must be a list, not {_type_name(raw_rules)}")
    if len(raw_rules) > MAX_RULES:
        raise InvalidField("rules", f"may hold at most {MAX_RULES} rules, not {len(raw_rules)}")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, raw_rule in enumerate(raw_rules):
        rule = _parse_rule(f"rules[{index}]", raw_rule)
        key = rule.id.casefold()
        if key in seen:
            raise InvalidField(f"rules[{index}].id", f"{rule.id!r} is already the id of rules[{seen[key]}]")
        seen[key] = index
        rules.append(rule)
    raw_grades = _mapping("grades", body.get("grades"))
    _refuse_unknown_keys("grades", raw_grades, ("hot", "warm"))
    for key in ("hot", "warm"):
        if key not in raw_grades:
            raise InvalidField(f"grades.{key}", "is required")
    hot = _integer("grades.hot", raw_grades["hot"], -MAX_GRADE, MAX_GRADE)
    warm = _integer("grades.warm", raw_grades["warm"], -MAX_GRADE, MAX_GRADE)
    if hot <= warm:
        raise InvalidField("grades", f"hot ({hot}) must be greater than warm ({warm})")
    return RuleSet(rules=tuple(rules), grades=Grades(hot=hot, warm=warm))


# Free-mail domains: a lead writing from one is a person, not yet a company.
DEFAULT_RULES = RuleSet.from_dict({
    "rules": [
        {"id": "referral", "description": "Referred by a customer or partner contact",
         "when": {"field": "channel", "op": "eq", "value": "referral"}, "points": 20},
        {"id": "partner", "description": "Came through a partner",
         "when": {"field": "channel", "op": "eq", "value": "partner"}, "points": 15},
        {"id": "director-title", "description": "Title names a director",
         "when": {"field": "title", "op": "contains", "value": "director"}, "points": 15},
        {"id": "executive-title", "description": "Title names a chief executive role",
         "when": {"field": "title", "op": "contains", "value": "chief"}, "points": 15},
        {"id": "company-200", "description": "Company of 200 people or more",
         "when": {"field": "company_size", "op": "gte", "value": 200}, "points": 10},
        {"id": "meeting-held", "description": "At least one meeting",
         "when": {"field": "activities.meeting", "op": "gte", "value": 1}, "points": 25},
        {"id": "call-held", "description": "At least one call",
         "when": {"field": "activities.call", "op": "gte", "value": 1}, "points": 10},
        {"id": "form-submitted", "description": "Submitted a form on the website",
         "when": {"field": "activities.form_submitted", "op": "gte", "value": 1}, "points": 10},
        {"id": "free-mail", "description": "Writes from a free-mail address",
         "when": {"field": "email_domain", "op": "in", "value": sorted(FREE_MAIL_DOMAINS)}, "points": -10},
    ],
    "grades": {"hot": 60, "warm": 30},
})


# --- the active rule set, as an aggregate ------------------------------------------------

RULE_SET_ID = uuid5(NAMESPACE_URL, "crm:leads:scoring-rules")  # one per platform


class ScoringRules(Aggregate):
    """The platform's active rule set, one aggregate with a fixed id (RULE_SET_ID). Its
    version is the rule set's version: 1 after the first replacement; before it, none is
    stored and DEFAULT_RULES (version 0) apply. Each replacement records the whole rule set
    in canonical form (`RuleSet.to_dict`): `Introduced` the first time (replacing the
    defaults), `Replaced` after; both are published as ScoringRulesReplaced."""

    @event("Introduced")
    def __init__(self, rules: dict[str, Any], by: str):
        self.rules = RuleSet.from_dict(rules)
        self.updated_by = by

    @classmethod
    def first(cls, rule_set: RuleSet, by: str) -> ScoringRules:
        return cls._create(cls.Introduced, id=RULE_SET_ID, rules=rule_set.to_dict(), by=by)  # type: ignore[attr-defined]

    def replace(self, rule_set: RuleSet, by: str) -> None:
        self._replaced(rules=rule_set.to_dict(), by=by)

    @event("Replaced")
    def _replaced(self, rules: dict[str, Any], by: str) -> None:
        self.rules = RuleSet.from_dict(rules)
        self.updated_by = by

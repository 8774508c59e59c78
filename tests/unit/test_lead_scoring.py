"""Scoring rules: every operator, every refusal, the grade boundaries, and the properties
(the score is the sum of the matched rules' points; scoring is deterministic; dict round trip)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_leads.domain import Channel
from crm_leads.scoring import (
    ACTIVITY_FIELDS,
    ACTIVITY_KINDS,
    CHANNELS,
    DEFAULT_RULES,
    FIELDS,
    MAX_DESCRIPTION,
    MAX_RULES,
    Condition,
    Grade,
    Grades,
    LeadFacts,
    Op,
    Reason,
    RuleSet,
    email_domain_of,
    grade_for,
    matches,
    score,
)
from crm_runtime.errors import InvalidField


def rule(field, op, value=None, points=10, rule_id="r1", description="a rule", omit_value=False):
    when = {"field": field, "op": op}
    if not omit_value:
        when["value"] = value
    return {"id": rule_id, "description": description, "when": when, "points": points}


def rule_set(*rules, hot=60, warm=30):
    return {"rules": list(rules), "grades": {"hot": hot, "warm": warm}}


def matches_rule(facts, field, op, value=None, omit_value=False):
    parsed = RuleSet.from_dict(rule_set(rule(field, op, value, omit_value=omit_value)))
    return matches(parsed.rules[0].when, facts)


FULL = LeadFacts.of(email="Ada@Example.COM", channel="Referral", industry="Manufacturing",
                    company_size=250, title="Sales Director", country="GB",
                    activities=["meeting", "call", "call"])
EMPTY = LeadFacts()


def test_channels_mirror_the_domain():
    assert CHANNELS == tuple(channel.value for channel in Channel)


# --- operators ------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,expected", [
    ("channel", "referral", True),
    ("channel", "  REFERRAL ", True),  # case and blanks ignored
    ("channel", "web", False),
    ("industry", "manufacturing", True),
    ("company_size", 250, True),
    ("company_size", 250.0, True),
    ("company_size", 251, False),
    ("email_domain", "example.com", True),
    ("activities.call", 2, True),
    ("activities.call", 1, False),
    ("activities.email", 0, True),  # a kind with no activities counts 0
])
def test_eq(field, value, expected):
    assert matches_rule(FULL, field, "eq", value) is expected


@pytest.mark.parametrize("field,value,expected", [
    ("channel", "web", True),
    ("channel", "Referral", False),
    ("company_size", 10, True),
    ("company_size", 250, False),
    ("activities.meeting", 1, False),
    ("activities.meeting", 0, True),
])
def test_ne(field, value, expected):
    assert matches_rule(FULL, field, "ne", value) is expected


@pytest.mark.parametrize("field,value,expected", [
    ("country", ["de", "gb"], True),
    ("country", ["DE", "FR"], False),
    ("company_size", [10, 250], True),
    ("company_size", [10, 20], False),
    ("activities.call", [1, 2, 3], True),
])
def test_in(field, value, expected):
    assert matches_rule(FULL, field, "in", value) is expected


@pytest.mark.parametrize("op,value,expected", [
    ("gte", 250, True), ("gte", 200, True), ("gte", 251, False), ("gte", 249.5, True),
    ("lte", 250, True), ("lte", 300, True), ("lte", 249, False),
])
def test_gte_lte(op, value, expected):
    assert matches_rule(FULL, "company_size", op, value) is expected


def test_gte_on_activity_counts():
    assert matches_rule(FULL, "activities.meeting", "gte", 1)
    assert not matches_rule(FULL, "activities.note", "gte", 1)
    assert matches_rule(EMPTY, "activities.note", "lte", 0)


@pytest.mark.parametrize("field,value,expected", [
    ("title", "director", True),
    ("title", "DIRECTOR", True),
    ("title", "sales dir", True),
    ("title", "chief", False),
    ("email_domain", "example", True),
])
def test_contains(field, value, expected):
    assert matches_rule(FULL, field, "contains", value) is expected


@pytest.mark.parametrize("value,omit,expected_full,expected_empty", [
    (True, False, True, False),
    (None, True, True, False),  # no value means true
    (False, False, False, True),
])
def test_exists(value, omit, expected_full, expected_empty):
    assert matches_rule(FULL, "industry", "exists", value, omit_value=omit) is expected_full
    assert matches_rule(EMPTY, "industry", "exists", value, omit_value=omit) is expected_empty


@pytest.mark.parametrize("field,op,value", [
    ("industry", "eq", "x"), ("industry", "in", ["x"]), ("industry", "contains", "x"),
    ("company_size", "gte", 0), ("company_size", "lte", 10 ** 9), ("company_size", "eq", 0),
    ("email_domain", "eq", "x"), ("channel", "in", ["web"]),
])
def test_a_missing_attribute_matches_no_positive_operator(field, op, value):
    assert not matches_rule(EMPTY, field, op, value)


@pytest.mark.parametrize("field,value", [("industry", "x"), ("company_size", 0), ("title", "x")])
def test_a_missing_attribute_matches_ne(field, value):
    assert matches_rule(EMPTY, field, "ne", value)


def test_blank_text_is_missing():
    facts = LeadFacts(industry="   ", title="")
    assert matches_rule(facts, "industry", "exists", False)
    assert matches_rule(facts, "title", "ne", "x")
    assert not matches_rule(facts, "title", "exists", True)


def test_email_domain_is_derived_from_the_email():
    assert email_domain_of("Ada@Example.COM") == "example.com"
    assert email_domain_of("odd\"@\"name@mail.example.org") == "mail.example.org"
    assert email_domain_of("") is None
    assert email_domain_of(None) is None
    assert email_domain_of("no-at-sign") is None
    assert LeadFacts.of(email="x@Gmail.com").email_domain == "gmail.com"


def test_activities_from_counts_or_kinds():
    assert dict(LeadFacts.of(activities={"call": 3}).activities) == {"call": 3}
    assert dict(LeadFacts.of(activities=["call", "note", "call"]).activities) == {"call": 2, "note": 1}
    with pytest.raises(ValueError):
        LeadFacts(activities={"fax": 1})
    with pytest.raises(ValueError):
        LeadFacts(activities={"call": -1})


def test_facts_are_immutable():
    counts = {"call": 1}
    facts = LeadFacts(activities=counts)
    counts["call"] = 5
    assert facts.activities["call"] == 1
    with pytest.raises(TypeError):
        facts.activities["call"] = 2  # type: ignore[index]


# --- score and grades -----------------------------------------------------------------------

def test_score_lists_the_matching_rules_in_order_with_their_points():
    parsed = RuleSet.from_dict(rule_set(
        rule("channel", "eq", "referral", 20, "referral", "Referred"),
        rule("channel", "eq", "web", 5, "web", "From the web"),
        rule("email_domain", "in", ["example.com"], -10, "domain", "Example domain"),
        rule("title", "contains", "director", 15, "director", "A director"),
    ))
    result = score(parsed, FULL)
    assert result.points == 25
    assert result.reasons == (Reason("referral", "Referred", 20), Reason("domain", "Example domain", -10),
                              Reason("director", "A director", 15))
    assert result.grade is Grade.COLD
    assert result.to_dict() == {"score": 25, "grade": "cold", "score_reasons": [
        {"rule_id": "referral", "description": "Referred", "points": 20},
        {"rule_id": "domain", "description": "Example domain", "points": -10},
        {"rule_id": "director", "description": "A director", "points": 15}]}


def test_an_empty_rule_set_scores_zero():
    result = score(RuleSet.from_dict(rule_set(hot=1, warm=0)), FULL)
    assert (result.points, result.grade, result.reasons) == (0, Grade.WARM, ())


@pytest.mark.parametrize("points,grade", [
    (61, Grade.HOT), (60, Grade.HOT), (59, Grade.WARM), (30, Grade.WARM), (29, Grade.COLD),
    (0, Grade.COLD), (-50, Grade.COLD),
])
def test_grade_boundaries(points, grade):
    assert grade_for(points, Grades(hot=60, warm=30)) is grade
    parsed = RuleSet.from_dict(rule_set(rule("industry", "exists", True, points=points)))
    assert score(parsed, FULL).grade is grade


def test_negative_grades_work():
    assert grade_for(-5, Grades(hot=0, warm=-10)) is Grade.WARM


def test_default_rules_score_a_fresh_install():
    hot = score(DEFAULT_RULES, FULL)
    assert hot.grade is Grade.HOT  # referral 20 + director 15 + size 10 + meeting 25 + call 10
    assert hot.points == 80
    cold = score(DEFAULT_RULES, LeadFacts.of(email="someone@gmail.com", channel="web"))
    assert (cold.points, cold.grade) == (-10, Grade.COLD)
    assert [reason.rule_id for reason in cold.reasons] == ["free-mail"]
    assert RuleSet.from_dict(DEFAULT_RULES.to_dict()) == DEFAULT_RULES


# --- refusals -------------------------------------------------------------------------------

def refused(data) -> InvalidField:
    with pytest.raises(InvalidField) as caught:
        RuleSet.from_dict(data)
    return caught.value


def test_unknown_field_is_refused_by_name():
    error = refused(rule_set(rule("channel", "eq", "web"), rule("industry", "exists", True, rule_id="b"),
                             rule("foo", "eq", "x", rule_id="c")))
    assert error.field == "rules[2].when.field"
    assert error.message.startswith("'foo' is not a known field; use one of: channel, industry")
    assert "activities.form_submitted" in error.message


def test_unknown_activity_kind_is_refused():
    error = refused(rule_set(rule("activities.fax", "gte", 1)))
    assert error.field == "rules[0].when.field"
    assert "'activities.fax'" in error.message


def test_unknown_operator_is_refused_by_name():
    error = refused(rule_set(rule("channel", "like", "web")))
    assert error.field == "rules[0].when.op"
    assert error.message == "'like' is not a known operator; use one of: eq, ne, in, gte, lte, contains, exists"


@pytest.mark.parametrize("field,op,value,bad_field,words", [
    ("country", "in", "GB", "rules[0].when.value", "in needs a non-empty list"),
    ("country", "in", [], "rules[0].when.value", "in needs a non-empty list"),
    ("country", "in", ["GB", 3], "rules[0].when.value[1]", "must be text"),
    ("company_size", "in", [1, "x"], "rules[0].when.value[1]", "must be a number"),
    ("country", "in", ["x"] * 101, "rules[0].when.value", "at most 100"),
    ("company_size", "gte", "200", "rules[0].when.value", "must be a number"),
    ("company_size", "lte", True, "rules[0].when.value", "must be a number, not a boolean"),
    ("company_size", "gte", float("nan"), "rules[0].when.value", "finite"),
    ("company_size", "gte", 1e13, "rules[0].when.value", "finite"),
    ("activities.call", "gte", None, "rules[0].when.value", "is required for gte"),
    ("title", "gte", 3, "rules[0].when.op", "gte compares numbers; 'title' is text"),
    ("company_size", "contains", "2", "rules[0].when.op", "contains looks inside text"),
    ("activities.call", "contains", "2", "rules[0].when.op", "contains looks inside text"),
    ("title", "contains", "", "rules[0].when.value", "must not be blank"),
    ("title", "contains", 3, "rules[0].when.value", "must be text"),
    ("title", "eq", 3, "rules[0].when.value", "must be text"),
    ("company_size", "eq", "big", "rules[0].when.value", "must be a number"),
    ("title", "ne", None, "rules[0].when.value", "is required for ne"),
    ("title", "eq", "x" * 201, "rules[0].when.value", "at most 200"),
    ("title", "eq", "evil\u202etxt", "rules[0].when.value", "invisible formatting"),
    ("industry", "exists", "yes", "rules[0].when.value", "exists takes true, false or no value"),
    ("activities.meeting", "exists", True, "rules[0].when.op", "always exists"),
    ("channel", "eq", "fax", "rules[0].when.value", "'fax' is not a known channel"),
    ("channel", "in", ["web", "pigeon"], "rules[0].when.value[1]", "not a known channel"),
])
def test_values_must_fit_the_operator_and_field(field, op, value, bad_field, words):
    error = refused(rule_set(rule(field, op, value)))
    assert error.field == bad_field
    assert words in error.message


def test_duplicate_rule_ids_are_refused():
    error = refused(rule_set(rule("channel", "eq", "web", rule_id="web"),
                             rule("channel", "eq", "email", rule_id="email"),
                             rule("channel", "eq", "phone", rule_id="WEB")))
    assert error.field == "rules[2].id"
    assert error.message == "'WEB' is already the id of rules[0]"


@pytest.mark.parametrize("grades,bad_field,words", [
    ({"hot": 30, "warm": 30}, "grades", "hot (30) must be greater than warm (30)"),
    ({"hot": 10, "warm": 30}, "grades", "must be greater"),
    ({"hot": 60}, "grades.warm", "is required"),
    ({"warm": 6}, "grades.hot", "is required"),
    ({"hot": "60", "warm": 30}, "grades.hot", "must be an integer"),
    ({"hot": 60.5, "warm": 30}, "grades.hot", "must be an integer"),
    ({"hot": 60, "warm": 30, "lukewarm": 10}, "grades.lukewarm", "not a known key"),
    ({"hot": 10 ** 9, "warm": 30}, "grades.hot", "between"),
])
def test_grades_are_checked(grades, bad_field, words):
    error = refused({"rules": [], "grades": grades})
    assert error.field == bad_field
    assert words in error.message


@pytest.mark.parametrize("data,bad_field,words", [
    ([], "rule_set", "must be an object"),
    ({"grades": {"hot": 2, "warm": 1}}, "rules", "must be a list"),
    ({"rules": {}, "grades": {"hot": 2, "warm": 1}}, "rules", "must be a list"),
    ({"rules": []}, "grades", "must be an object"),
    ({"rules": [], "grades": {"hot": 2, "warm": 1}, "version": 3}, "version", "not a known key"),
    ({"rules": ["x"], "grades": {"hot": 2, "warm": 1}}, "rules[0]", "must be an object"),
])
def test_the_shape_is_checked(data, bad_field, words):
    error = refused(data)
    assert error.field == bad_field
    assert words in error.message


@pytest.mark.parametrize("change,bad_field,words", [
    (lambda r: r.pop("points"), "rules[0].points", "is required"),
    (lambda r: r.pop("when"), "rules[0].when", "is required"),
    (lambda r: r.update(when="channel = web"), "rules[0].when", "must be an object"),
    (lambda r: r["when"].update(extra=1), "rules[0].when.extra", "not a known key"),
    (lambda r: r.update(weight=3), "rules[0].weight", "not a known key"),
    (lambda r: r.update(points=2.5), "rules[0].points", "must be an integer"),
    (lambda r: r.update(points="5"), "rules[0].points", "must be an integer"),
    (lambda r: r.update(points=True), "rules[0].points", "must be an integer"),
    (lambda r: r.update(points=1001), "rules[0].points", "between -1000 and 1000"),
    (lambda r: r.update(id=""), "rules[0].id", "letters, digits"),
    (lambda r: r.update(id="has space"), "rules[0].id", "letters, digits"),
    (lambda r: r.update(id="x" * 65), "rules[0].id", "letters, digits"),
    (lambda r: r.update(id=7), "rules[0].id", "letters, digits"),
    (lambda r: r.update(description=""), "rules[0].description", "must not be blank"),
    (lambda r: r.update(description="x" * (MAX_DESCRIPTION + 1)), "rules[0].description", "at most 200"),
    (lambda r: r.update(description="line\x00"), "rules[0].description", "control characters"),
    (lambda r: r["when"].update(op=None), "rules[0].when.op", "null is not a known operator"),
    (lambda r: r["when"].update(field=3), "rules[0].when.field", "a number is not a known field"),
])
def test_each_rule_is_checked(change, bad_field, words):
    bad = rule("channel", "eq", "web")
    change(bad)
    error = refused(rule_set(bad))
    assert error.field == bad_field
    assert words in error.message


def test_at_most_max_rules():
    many = [rule("channel", "eq", "web", rule_id=f"r{i}") for i in range(MAX_RULES)]
    assert len(RuleSet.from_dict(rule_set(*many)).rules) == MAX_RULES
    error = refused(rule_set(*many, rule("channel", "eq", "web", rule_id="one-more")))
    assert error.field == "rules"
    assert "at most 200" in error.message


def test_integral_floats_become_ints_as_json_may_give_them():
    parsed = RuleSet.from_dict(rule_set(rule("company_size", "gte", 200.0, points=10.0), hot=60.0, warm=30))
    assert parsed.to_dict() == rule_set(rule("company_size", "gte", 200, points=10))
    assert isinstance(parsed.rules[0].points, int)


def test_exists_without_value_is_written_out():
    parsed = RuleSet.from_dict(rule_set(rule("industry", "exists", omit_value=True)))
    assert parsed.rules[0].when == Condition("industry", Op.EXISTS, True)
    assert parsed.to_dict()["rules"][0]["when"] == {"field": "industry", "op": "exists", "value": True}


def test_parsing_does_not_keep_the_callers_lists():
    data = rule_set(rule("country", "in", ["GB"]))
    parsed = RuleSet.from_dict(data)
    data["rules"][0]["when"]["value"].append("DE")
    assert parsed.rules[0].when.value == ("GB",)


# --- properties -----------------------------------------------------------------------------

TEXT_FIELDS = [name for name in FIELDS if name not in ("company_size", *ACTIVITY_FIELDS)]
NUMERIC = ["company_size", *ACTIVITY_FIELDS]
words = st.sampled_from(["director", "Director", "gb", "DE", "example.com", "gmail.com", "saas", "ceo", "x"])
numbers = st.integers(min_value=-5, max_value=500)


@st.composite
def conditions(draw):
    """A valid `when` dict of any field and operator."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(TEXT_FIELDS))
        op = draw(st.sampled_from(["eq", "ne", "in", "contains", "exists"]))
        value_of = words if name != "channel" else st.sampled_from(CHANNELS)
        if op == "in":
            value = draw(st.lists(value_of, min_size=1, max_size=4))
        elif op == "exists":
            value = draw(st.booleans())
        else:
            value = draw(value_of)
    else:
        name = draw(st.sampled_from(NUMERIC))
        op = draw(st.sampled_from(["eq", "ne", "in", "gte", "lte"] + (["exists"] if name == "company_size" else [])))
        if op == "in":
            value = draw(st.lists(numbers, min_size=1, max_size=4))
        elif op == "exists":
            value = draw(st.booleans())
        else:
            value = draw(numbers)
    return {"field": name, "op": op, "value": value}


@st.composite
def rule_sets(draw):
    """A valid rule set in canonical form."""
    count = draw(st.integers(min_value=0, max_value=12))
    rules = [{"id": f"rule-{index}", "description": draw(st.sampled_from(["A", "Big company", "Some rule"])),
              "when": draw(conditions()), "points": draw(st.integers(min_value=-1000, max_value=1000))}
             for index in range(count)]
    warm = draw(st.integers(min_value=-100, max_value=100))
    hot = draw(st.integers(min_value=warm + 1, max_value=warm + 200))
    return {"rules": rules, "grades": {"hot": hot, "warm": warm}}


maybe_text = st.one_of(st.none(), st.just(""), words, st.sampled_from(["Sales Director", "CEO", "Ops"]))
facts = st.builds(
    LeadFacts,
    channel=st.one_of(st.none(), st.sampled_from(CHANNELS), st.sampled_from(["Referral", " WEB "])),
    industry=maybe_text, title=maybe_text, country=maybe_text, email_domain=maybe_text,
    company_size=st.one_of(st.none(), numbers),
    activities=st.dictionaries(st.sampled_from(ACTIVITY_KINDS), st.integers(min_value=0, max_value=5)),
)


@settings(max_examples=300)
@given(rule_sets(), facts)
def test_the_score_is_the_sum_of_the_matched_rules_points(data, lead):
    parsed = RuleSet.from_dict(data)
    result = score(parsed, lead)
    matched = [rule for rule in parsed.rules if matches(rule.when, lead)]
    assert result.points == sum(rule.points for rule in matched)
    assert [reason.rule_id for reason in result.reasons] == [rule.id for rule in matched]
    assert result.points == sum(reason.points for reason in result.reasons)
    assert result.grade is grade_for(result.points, parsed.grades)


@settings(max_examples=200)
@given(rule_sets(), facts)
def test_rescoring_is_deterministic_and_idempotent(data, lead):
    first = score(RuleSet.from_dict(data), lead)
    again = score(RuleSet.from_dict(copy.deepcopy(data)), lead)
    rebuilt = LeadFacts(channel=lead.channel, industry=lead.industry, company_size=lead.company_size,
                        title=lead.title, country=lead.country, email_domain=lead.email_domain,
                        activities=dict(lead.activities))
    assert first == again == score(RuleSet.from_dict(data), rebuilt)
    assert hash(first) == hash(again)


@settings(max_examples=300)
@given(rule_sets())
def test_round_trip_dict_rule_set_dict(data):
    parsed = RuleSet.from_dict(data)
    assert parsed.to_dict() == data
    assert RuleSet.from_dict(parsed.to_dict()) == parsed


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.sampled_from(["rules", "grades", "id", "when", "field", "op", "value",
                                                       "points", "hot", "warm", "description"]),
                                      children, max_size=4),
                    max_leaves=20))
def test_any_json_is_either_a_rule_set_or_invalid_field(data):
    try:
        RuleSet.from_dict(data)
    except InvalidField:
        pass

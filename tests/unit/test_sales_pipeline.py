"""The sales pipeline: definition rules, the default, and every stage transition."""

import pytest

from crm_runtime.errors import FailedPrecondition, InvalidField
from crm_runtime.money import Money
from crm_sales.pipeline import CLOSED_LOST, CLOSED_WON, DEFAULT_PIPELINE, Pipeline, is_final


def test_default_pipeline():
    assert [(s.name, s.probability) for s in DEFAULT_PIPELINE.stages] == [
        ("prospecting", 10), ("qualification", 20), ("proposal", 50), ("negotiation", 75),
        ("closed_won", 100), ("closed_lost", 0)]
    assert DEFAULT_PIPELINE.first_open_stage == "prospecting"
    assert [s.name for s in DEFAULT_PIPELINE.open_stages] == ["prospecting", "qualification", "proposal",
                                                               "negotiation"]
    assert DEFAULT_PIPELINE.to_json()["stages"][4] == {"name": "closed_won", "probability": 100, "final": True}


def test_a_custom_pipeline_round_trips():
    raw = {"stages": [{"name": "discovery", "probability": 5}, {"name": "demo", "probability": 40},
                      {"name": "closed_lost", "probability": 0}, {"name": "closed_won", "probability": 100}]}
    pipeline = Pipeline.parse(raw)
    assert pipeline.names == ("discovery", "demo", "closed_lost", "closed_won")
    assert Pipeline.parse(raw["stages"]) == pipeline
    assert Pipeline.parse({"stages": [{k: v for k, v in s.items() if k != "final"}
                                      for s in pipeline.to_json()["stages"]]}) == pipeline


OPEN = {"name": "open", "probability": 30}
WON = {"name": "closed_won", "probability": 100}
LOST = {"name": "closed_lost", "probability": 0}


@pytest.mark.parametrize("stages,field,reason", [
    ([OPEN, WON], "stages", "missing: closed_lost"),
    ([OPEN, LOST], "stages", "missing: closed_won"),
    ([OPEN], "stages", "missing: closed_lost, closed_won"),
    ([WON, LOST], "stages", "at least one open stage"),
    ([OPEN, OPEN, WON, LOST], "stages[1].name", "unique"),
    ([OPEN, WON, LOST, WON], "stages[3].name", "unique"),
    ([{"name": "x", "probability": 101}, WON, LOST], "stages[0].probability", "between 0 and 100"),
    ([{"name": "x", "probability": -1}, WON, LOST], "stages[0].probability", "between 0 and 100"),
    ([{"name": "x", "probability": 50.5}, WON, LOST], "stages[0].probability", "whole percentage"),
    ([{"name": "x", "probability": "50"}, WON, LOST], "stages[0].probability", "whole percentage"),
    ([{"name": "x", "probability": True}, WON, LOST], "stages[0].probability", "whole percentage"),
    ([{"name": "x"}, WON, LOST], "stages[0].probability", "whole percentage"),
    ([{"name": "Proposal", "probability": 1}, WON, LOST], "stages[0].name", "lower-case identifier"),
    ([{"name": "", "probability": 1}, WON, LOST], "stages[0].name", "lower-case identifier"),
    ([{"name": "a" * 65, "probability": 1}, WON, LOST], "stages[0].name", "lower-case identifier"),
    ([{"probability": 1}, WON, LOST], "stages[0].name", "lower-case identifier"),
    ([OPEN, {"name": "closed_won", "probability": 90}, LOST], "stages[1].probability",
     "closed_won has probability 100"),
    ([OPEN, WON, {"name": "closed_lost", "probability": 5}], "stages[2].probability",
     "closed_lost has probability 0"),
    ([{**OPEN, "final": True}, WON, LOST], "stages[0]", "unknown keys"),
    (["open", WON, LOST], "stages[0]", "object"),
    ([{"name": f"s{n}", "probability": 1} for n in range(29)] + [WON, LOST], "stages", "at most 30"),
])
def test_pipeline_definitions_refused(stages, field, reason):
    with pytest.raises(InvalidField) as refused:
        Pipeline.parse({"stages": stages})
    assert refused.value.field == field
    assert reason in refused.value.message


@pytest.mark.parametrize("raw", [None, "stages", {"stages": None}, {"stages": [], "x": 1}])
def test_pipeline_shapes_refused(raw):
    with pytest.raises(InvalidField):
        Pipeline.parse(raw)


@pytest.mark.parametrize("current,target", [
    ("prospecting", "qualification"), ("qualification", "negotiation"),  # forwards, skipping
    ("negotiation", "prospecting"),  # backwards
    ("proposal", CLOSED_WON), ("proposal", CLOSED_LOST), ("prospecting", CLOSED_LOST),
    ("proposal", "proposal"),  # the same stage: allowed, not a change
])
def test_open_stages_move_anywhere_in_the_pipeline(current, target):
    assert DEFAULT_PIPELINE.check_transition(current, target) == target
    assert DEFAULT_PIPELINE.is_change(current, target) == (current != target)


@pytest.mark.parametrize("current", [CLOSED_WON, CLOSED_LOST])
@pytest.mark.parametrize("target", ["prospecting", CLOSED_WON, CLOSED_LOST, "nowhere"])
def test_won_and_lost_are_final(current, target):
    assert is_final(current)
    with pytest.raises(FailedPrecondition, match="final"):
        DEFAULT_PIPELINE.check_transition(current, target)


@pytest.mark.parametrize("target", ["nowhere", "Proposal", "", None, 3])
def test_a_stage_not_in_the_pipeline_is_refused(target):
    with pytest.raises(InvalidField) as refused:
        DEFAULT_PIPELINE.check_transition("prospecting", target)
    assert refused.value.field == "stage"
    assert "not a stage of the pipeline" in refused.value.message


def test_a_stage_removed_from_the_pipeline_can_be_left_not_entered():
    pipeline = Pipeline.of([("discovery", 10), (CLOSED_WON, 100), (CLOSED_LOST, 0)])
    assert pipeline.check_transition("negotiation", "discovery") == "discovery"
    with pytest.raises(InvalidField):
        pipeline.check_transition("discovery", "negotiation")
    assert pipeline.probability_of("negotiation") == 0


def test_opening_stage_must_be_open():
    assert DEFAULT_PIPELINE.check_open_stage("proposal") == "proposal"
    with pytest.raises(InvalidField, match="open stage"):
        DEFAULT_PIPELINE.check_open_stage(CLOSED_WON)
    with pytest.raises(InvalidField, match="not a stage"):
        DEFAULT_PIPELINE.check_open_stage("nowhere")


def test_weighted_amount():
    assert DEFAULT_PIPELINE.weighted(Money.of("1000.05", "EUR"), "proposal") == Money.of("500.02", "EUR")
    assert DEFAULT_PIPELINE.weighted(Money.of("999", "JPY"), "negotiation") == Money.of("749", "JPY")
    assert DEFAULT_PIPELINE.weighted(Money.of("10", "EUR"), CLOSED_LOST) == Money.zero("EUR")
    assert DEFAULT_PIPELINE.probability_of(CLOSED_WON) == 100

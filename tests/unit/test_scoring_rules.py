"""The scoring rule set as an aggregate with versions, a lead's rescoring, and the background
rescorer on the in-memory store: idempotent, resumable, conflict-safe."""

from __future__ import annotations

from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_leads.application import CaptureLead, LeadsApplication, LogActivity, MoveLead
from crm_leads.domain import Lead, validate_capture
from crm_leads.scoring import DEFAULT_RULES, RULE_SET_ID, RuleSet, ScoringRules
from crm_leads.scoring_rules import ReplaceScoringRules, Rescorer, tracking_name, without_shown_keys
from crm_runtime.auth import Principal
from crm_runtime.errors import InvalidField
from crm_runtime.settings import PlatformSettings

BOSS = Principal("boss", frozenset({"sales_manager"}))


def rules(*specs: tuple[str, str, str, object, int], hot: int = 30, warm: int = 10) -> dict:
    return {"rules": [{"id": rule_id, "description": f"rule {rule_id}",
                       "when": {"field": field, "op": op, "value": value}, "points": points}
                      for rule_id, field, op, value, points in specs],
            "grades": {"hot": hot, "warm": warm}}


REFERRAL_50 = rules(("referral", "channel", "eq", "referral", 50))
WEB_5 = rules(("web", "channel", "eq", "web", 5), ("meeting", "activities.meeting", "gte", 1, 40))


@pytest.fixture
def app() -> LeadsApplication:
    return LeadsApplication(PlatformSettings(store="memory"))


def capture(app: LeadsApplication, channel: str = "web", **extra) -> Lead:
    lead, _ = app.capture_lead(CaptureLead(name="Ada", email=f"{uuid4().hex[:8]}@example.com", phone=None,
                                           company="Analytical", channel=channel, **extra))
    return lead


# -- the rule set aggregate -------------------------------------------------------------------

def test_the_rule_set_aggregate_versions_each_replacement():
    first = ScoringRules.first(RuleSet.from_dict(REFERRAL_50), by="boss")
    assert first.id == RULE_SET_ID and first.version == 1 and first.rules.to_dict() == RuleSet.from_dict(
        REFERRAL_50).to_dict()
    first.replace(RuleSet.from_dict(WEB_5), by="ann")
    assert first.version == 2 and first.updated_by == "ann" and first.rules.rules[0].id == "web"
    events = first.collect_events()
    assert [type(e).__name__ for e in events] == ["Introduced", "Replaced"]
    replayed = ScoringRules.Introduced.mutate(events[0], None)  # events rebuild the same state
    events[1].mutate(replayed)
    assert replayed.rules == first.rules and replayed.version == 2


def test_the_defaults_are_version_0_until_the_first_replacement(app):
    assert app.active_rules().version == 0 and app.active_rules().rule_set == DEFAULT_RULES
    active, to_rescore = app.replace_scoring_rules(ReplaceScoringRules(REFERRAL_50, BOSS))
    assert (active.version, to_rescore, active.updated_by) == (1, 0, "boss")
    active, _ = app.replace_scoring_rules(ReplaceScoringRules(WEB_5, BOSS))
    assert active.version == 2
    # A second application on the same store sees the newest version (no stale cache).
    assert app.active_rules().version == 2 and app.find(ScoringRules, RULE_SET_ID).version == 2


def test_what_get_shows_can_be_put_back():
    shown = {**REFERRAL_50, "version": 3, "rescoring": {"pending": 0}, "leads_to_rescore": 1,
             "updated_by": "x", "updated_at": "2025-01-01T00:00:00Z"}
    assert RuleSet.from_dict(without_shown_keys(shown)) == RuleSet.from_dict(REFERRAL_50)


@pytest.mark.parametrize("bad,field", [
    (rules(("x", "budget", "eq", 1, 1)), "rules[0].when.field"),
    (rules(("x", "channel", "like", "web", 1)), "rules[0].when.op"),
    ({"rules": [], "grades": {"hot": 1, "warm": 1}}, "grades"),
])
def test_a_bad_rule_set_names_its_part_and_changes_nothing(app, bad, field):
    with pytest.raises(InvalidField) as caught:
        app.replace_scoring_rules(ReplaceScoringRules(bad, BOSS))
    assert caught.value.field == field
    assert app.active_rules().version == 0 and app.find(ScoringRules, RULE_SET_ID) is None


# -- a lead's score --------------------------------------------------------------------------------

def test_a_lead_is_scored_at_capture_and_when_its_activities_change(app):
    app.replace_scoring_rules(ReplaceScoringRules(WEB_5, BOSS))
    lead = capture(app)
    assert (lead.score, lead.grade, lead.version) == (5, "cold", 1)  # in the Captured event
    assert lead.score_reasons == [{"rule_id": "web", "description": "rule web", "points": 5}]
    app.log_activity(LogActivity(lead.id, "meeting", "2025-03-01T10:00:00Z", caller=BOSS))
    lead = app.get_lead(lead.id, BOSS)
    assert (lead.score, lead.grade) == (45, "hot") and [r["rule_id"] for r in lead.score_reasons] == ["web", "meeting"]
    # Another meeting changes nothing: no Scored event.
    version = lead.version
    app.log_activity(LogActivity(lead.id, "meeting", "2025-03-02T10:00:00Z", caller=BOSS))
    assert app.get_lead(lead.id, BOSS).version == version + 1


def test_rescoring_records_scored_only_when_score_or_grade_move():
    details = validate_capture("Ada", "ada@example.com", "", "", "web")
    lead = Lead.capture(details, uuid4(), (RuleSet.from_dict(WEB_5), 1))
    assert lead.rescore(RuleSet.from_dict(WEB_5), 1) is False and lead.version == 1
    # Same points, another rule: the reasons change, not the score: ScoreExplained, unpublished.
    same_points = rules(("web-too", "channel", "in", ["web", "email"], 5))
    assert lead.rescore(RuleSet.from_dict(same_points), 2) is False
    assert type(lead.pending_events[-1]).__name__ == "ScoreExplained" and lead.score_reasons[0]["rule_id"] == "web-too"
    assert lead.rescore(RuleSet.from_dict(REFERRAL_50), 3) is True
    last = lead.pending_events[-1]
    assert type(last).__name__ == "Scored" and (last.score, last.grade, last.previous_score) == (0, "cold", 5)


RULE = st.tuples(st.sampled_from(["channel", "company_size", "activities.call", "title"]),
                 st.integers(-50, 50))


@settings(max_examples=60, deadline=None)
@given(specs=st.lists(RULE, max_size=6), channel=st.sampled_from(["web", "referral"]),
       size=st.one_of(st.none(), st.integers(1, 1000)), calls=st.integers(0, 3))
def test_rescoring_is_idempotent_and_the_score_is_the_sum_of_the_matched_points(specs, channel, size, calls):
    conditions = {"channel": ("eq", "referral"), "company_size": ("gte", 100),
                  "activities.call": ("gte", 1), "title": ("exists", True)}
    rule_set = RuleSet.from_dict(rules(*[(f"r{i}", field, *conditions[field], points)
                                         for i, (field, points) in enumerate(specs)], hot=50, warm=0))
    lead = Lead.capture(validate_capture("Ada", "ada@example.com", "", "", channel, company_size=size),
                        uuid4(), (DEFAULT_RULES, 0))
    for _ in range(calls):
        lead.log_activity(uuid4(), "call", "2025-01-01T00:00:00Z", "", by="x")
    lead.rescore(rule_set, 1)
    state = (lead.score, lead.grade, list(lead.score_reasons), lead.version)
    assert lead.rescore(rule_set, 1) is False and (lead.score, lead.grade, list(lead.score_reasons),
                                                   lead.version) == state
    assert lead.score == sum(reason["points"] for reason in lead.score_reasons)


# -- the background rescorer ------------------------------------------------------------------------

def test_a_rule_change_rescores_open_leads_once_and_resumes_from_its_position(app):
    leads = [capture(app, channel="referral") for _ in range(7)]
    closed = capture(app, channel="referral")
    app.move_lead(MoveLead(closed.id, "disqualify", reason="no budget", caller=BOSS))
    active, to_rescore = app.replace_scoring_rules(ReplaceScoringRules(REFERRAL_50, BOSS))
    assert to_rescore == 7
    assert app.rescoring_progress().to_dict() == {"version": 1, "rescored": 0, "pending": 7, "done": False}

    first = Rescorer(app, batch_size=3)
    assert first.step() == 3  # then the process "dies"
    assert app.rescoring_progress().pending == 4
    assert app.recorder.max_tracking_id(tracking_name(1)) is not None
    second = Rescorer(app, batch_size=3)  # after a restart: goes on where the first stopped
    assert second.run_until_done() == 4 and app.rescoring_progress().done
    for lead in leads:
        rescored = app.get_lead(lead.id, BOSS)
        assert (rescored.score, rescored.grade, rescored.version) == (50, "hot", 2)
    assert app.get_lead(closed.id, BOSS).grade == "cold"  # closed leads keep their score

    # Running again changes nothing: no new events.
    events = app.recorder.max_notification_id()
    assert Rescorer(app).run_until_done() == 0 and app.recorder.max_notification_id() == events


def test_a_second_rescorer_on_the_same_version_records_nothing_twice(app):
    for _ in range(5):
        capture(app, channel="referral")
    app.replace_scoring_rules(ReplaceScoringRules(REFERRAL_50, BOSS))
    one, two = Rescorer(app, batch_size=2), Rescorer(app, batch_size=2)
    while one.step() + two.step():
        pass
    scored = [n for n in app.recorder.select_notifications(start=1, limit=100)
              if n.topic.endswith("Lead.Scored")]
    assert len(scored) == 5


def test_a_newer_rule_set_starts_rescoring_again_from_the_first_lead(app):
    leads = [capture(app, channel="web") for _ in range(4)]
    app.replace_scoring_rules(ReplaceScoringRules(REFERRAL_50, BOSS))
    Rescorer(app, batch_size=2).step()
    app.replace_scoring_rules(ReplaceScoringRules(WEB_5, BOSS))
    assert app.rescoring_progress().to_dict()["pending"] == 4
    Rescorer(app).run_until_done()
    assert {app.get_lead(lead.id, BOSS).score for lead in leads} == {5}


def test_the_rescorer_thread_rescores_after_a_replacement(app):
    for _ in range(3):
        capture(app, channel="referral")
    rescorer = app.rescorer
    rescorer.idle_seconds = 0.05
    rescorer.start()
    try:
        app.replace_scoring_rules(ReplaceScoringRules(REFERRAL_50, BOSS))
        import time
        deadline = time.monotonic() + 10
        while not app.rescoring_progress().done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.rescoring_progress().to_dict() == {"version": 1, "rescored": 3, "pending": 0, "done": True}
    finally:
        rescorer.stop()

"""Routing rules of a group: fairness, load, shifts, capacity, skills and the queue."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_runtime.errors import InvalidField
from crm_workflow.routing import (
    Agent,
    RoutingStrategy,
    TicketToRoute,
    choose,
    drain,
    open_loads,
    parse_strategy,
)

RR, LEAST, SKILLS = RoutingStrategy.ROUND_ROBIN, RoutingStrategy.LEAST_LOADED, RoutingStrategy.SKILLS


def agent(agent_id: str, *, skills=(), capacity=10, on_shift=True, groups=("support",)) -> Agent:
    return Agent(agent_id, frozenset(groups), frozenset(skills), capacity, on_shift)


def ticket(n: int, *, category=None, tags=(), group="support") -> TicketToRoute:
    return TicketToRoute(f"t-{n}", group, category, frozenset(tags))


def route_many(strategy, agents, count, loads=None, **ticket_args):
    """Routes `count` tickets one after the other, each adding to its agent's load."""
    loads, last, taken = dict(loads or {}), None, []
    for n in range(count):
        chosen = choose(strategy, ticket(n, **ticket_args), agents, loads, last)
        assert chosen is not None
        loads[chosen.id] = loads.get(chosen.id, 0) + 1
        last = chosen.id
        taken.append(chosen.id)
    return taken


def test_round_robin_is_fair_over_many_assignments():
    agents = [agent(name, capacity=1000) for name in ("ann", "bob", "cat", "dan")]
    taken = route_many(RR, agents, 1000)
    assert Counter(taken) == {"ann": 250, "bob": 250, "cat": 250, "dan": 250}
    assert taken[:5] == ["ann", "bob", "cat", "dan", "ann"]


def test_round_robin_carries_on_after_the_last_agent_when_the_team_changes():
    agents = [agent("ann"), agent("bob"), agent("cat")]
    assert choose(RR, ticket(1), agents, {}, last_agent_id="bob").id == "cat"
    # bob left; the turn still goes to whoever comes after him
    assert choose(RR, ticket(2), [agent("ann"), agent("cat")], {}, last_agent_id="bob").id == "cat"
    assert choose(RR, ticket(3), agents, {}, last_agent_id="cat").id == "ann"


def test_least_loaded_picks_the_least_open_work_and_takes_turns_on_ties():
    agents = [agent("ann", capacity=500), agent("bob", capacity=500), agent("cat", capacity=500)]
    assert choose(LEAST, ticket(1), agents, {"ann": 3, "bob": 1, "cat": 2}).id == "bob"
    assert choose(LEAST, ticket(2), agents, {"ann": 1, "bob": 1, "cat": 1}, last_agent_id="ann").id == "bob"
    taken = route_many(LEAST, agents, 300, loads={"ann": 5})
    counts = Counter(taken)
    totals = [counts["ann"] + 5, counts["bob"], counts["cat"]]
    assert max(totals) - min(totals) <= 1  # the loads even out, then stay even


def test_least_loaded_ignores_solved_closed_and_pending_work():
    loads = open_loads([("ann", "solved"), ("ann", "closed"), ("ann", "pending"), ("ann", "pending"),
                        ("bob", "open"), ("bob", "new")])
    assert loads == {"bob": 2}
    assert choose(LEAST, ticket(1), [agent("ann"), agent("bob")], loads).id == "ann"


def test_off_shift_agents_and_agents_at_capacity_get_nothing():
    agents = [agent("ann", on_shift=False), agent("bob", capacity=2), agent("cat", groups=("billing",))]
    for strategy in RoutingStrategy:
        assert choose(strategy, ticket(1), agents, {"bob": 2}) is None
        assert choose(strategy, ticket(1), agents, {"bob": 1}).id == "bob"
    taken = route_many(RR, [agent("ann", on_shift=False), agent("bob", capacity=50), agent("cat", capacity=50)], 100)
    assert "ann" not in taken


def test_skills_match_the_category_and_tags():
    agents = [agent("ann", skills=("billing",)), agent("bob", skills=("billing", "refunds")),
              agent("cat", skills=("network",))]
    assert choose(SKILLS, ticket(1, category="billing", tags=("refunds",)), agents, {}).id == "bob"
    assert choose(SKILLS, ticket(2, category="Network"), agents, {}).id == "cat"
    # equally skilled: the less loaded one
    assert choose(SKILLS, ticket(3, category="billing"), agents, {"ann": 2, "bob": 1}).id == "bob"
    assert choose(SKILLS, ticket(4, category="legal"), agents, {}) is None  # nobody has the skill: queued
    assert choose(SKILLS, ticket(5), agents, {"ann": 1, "bob": 1}).id == "cat"  # no skill asked: least loaded


def test_a_queued_ticket_is_assigned_when_capacity_frees_or_someone_comes_on_shift():
    queue = [ticket(1), ticket(2), ticket(3)]
    full = [agent("ann", capacity=1)]
    assert drain(LEAST, queue, full, {"ann": 1}) == []
    freed = drain(LEAST, queue, full, {"ann": 0})
    assert [(r.ticket_id, r.agent_id) for r in freed] == [("t-1", "ann")]  # one place: the oldest
    arrived = drain(RR, queue, [agent("ann", capacity=1), agent("bob", capacity=5)], {"ann": 1})
    assert [(r.ticket_id, r.agent_id) for r in arrived] == [("t-1", "bob"), ("t-2", "bob"), ("t-3", "bob")]


def test_a_ticket_nobody_can_take_does_not_hold_up_the_queue():
    queue = [ticket(1, category="legal"), ticket(2, category="billing")]
    routed = drain(SKILLS, queue, [agent("ann", skills=("billing",))], {})
    assert [(r.ticket_id, r.agent_id) for r in routed] == [("t-2", "ann")]


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=6),
       st.sampled_from(list(RoutingStrategy)), st.integers(0, 20))
def test_nobody_is_given_more_than_capacity_or_while_off_shift(shape, strategy, tickets):
    agents = [agent(f"a{i}", on_shift=on, capacity=cap) for i, (on, cap) in enumerate(shape)]
    routed = drain(strategy, [ticket(n) for n in range(tickets)], agents, {})
    counts = Counter(r.agent_id for r in routed)
    by_id = {a.id: a for a in agents}
    assert all(by_id[agent_id].on_shift and count <= by_id[agent_id].capacity
               for agent_id, count in counts.items())
    assert len(routed) == min(tickets, sum(a.capacity for a in agents if a.on_shift))


def test_agents_and_strategies_are_validated():
    assert Agent.parse("ann", {"groups": ["Support"], "skills": ["Billing"], "capacity": 3,
                               "on_shift": False}).to_dict() == {
        "id": "ann", "groups": ["support"], "skills": ["billing"], "capacity": 3, "on_shift": False}
    for raw, field_name in [({"capacity": -1}, "capacity"), ({"capacity": 2.5}, "capacity"),
                            ({"capacity": True}, "capacity"), ({"on_shift": "yes"}, "on_shift"),
                            ({"groups": "support"}, "groups"), ({"skills": [""]}, "skills[0]"),
                            ({"skills": ["a\u202eb"]}, "skills[0]"), ({"mood": 1}, "mood")]:
        with pytest.raises(InvalidField) as caught:
            Agent.parse("ann", raw)
        assert caught.value.field == field_name
    with pytest.raises(InvalidField, match="agent_id"):
        Agent.parse(" ", {})
    assert parse_strategy("Least_Loaded") is LEAST
    with pytest.raises(InvalidField, match="round_robin, least_loaded, skills"):
        parse_strategy("random")

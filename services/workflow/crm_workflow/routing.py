"""Who takes a ticket: the routing rules of a group, pure domain (no I/O, no aggregates).

A group routes with one strategy:

- `round_robin`: the eligible agents in turn, in id order, starting after the one who got
  the group's previous ticket (so an agent joining or leaving does not reset the turns);
- `least_loaded`: the eligible agent with the least open work; ties go in turn as above;
- `skills`: the eligible agents with the most of the ticket's category and tags among their
  skills (at least one, when the ticket names any); ties by load, then in turn.

Eligible means: a member of the group, on shift, and below capacity. Load is open work
only: tickets assigned and not solved, closed or pending (the caller counts it from the
ticket events; see `OPEN_STATUSES`). Nobody eligible: the ticket waits in the group's
queue, and `drain` hands queued tickets out, oldest first, when an agent comes on shift or
frees capacity; a ticket that nobody can take yet does not hold up the ones behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crm_runtime.errors import InvalidField
from crm_runtime.text import plain_identifier, text_field

MAX_CAPACITY = 1000
MAX_NAMES = 50  # groups or skills of one agent
NAME_MAX = 64
# Ticket statuses that count as an agent's open work.
OPEN_STATUSES = frozenset({"new", "open", "on_hold", "reopened"})


class RoutingStrategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    SKILLS = "skills"


def parse_strategy(raw: object, field_name: str = "strategy") -> RoutingStrategy:
    try:
        return RoutingStrategy(raw.strip().lower() if isinstance(raw, str) else str(raw))
    except ValueError:
        allowed = ", ".join(strategy.value for strategy in RoutingStrategy)
        raise InvalidField(field_name, f"{str(raw)[:40]!r} is not a routing strategy; use one of: {allowed}") from None


@dataclass(frozen=True)
class Agent:
    id: str
    groups: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    capacity: int = 10
    on_shift: bool = True

    @classmethod
    def parse(cls, agent_id: object, raw: Mapping[str, Any]) -> Agent:
        """An agent from `{"groups", "skills", "capacity", "on_shift"}`; InvalidField names the field."""
        unknown = set(raw) - {"groups", "skills", "capacity", "on_shift"}
        if unknown:
            raise InvalidField(sorted(unknown)[0], "is not a field of an agent")
        capacity = raw.get("capacity", 10)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= MAX_CAPACITY:
            raise InvalidField("capacity", f"must be a whole number from 0 to {MAX_CAPACITY}")
        on_shift = raw.get("on_shift", True)
        if not isinstance(on_shift, bool):
            raise InvalidField("on_shift", "must be true or false")
        return cls(id=plain_identifier("agent_id", agent_id), groups=_names("groups", raw.get("groups", [])),
                   skills=_names("skills", raw.get("skills", [])), capacity=capacity, on_shift=on_shift)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "groups": sorted(self.groups), "skills": sorted(self.skills),
                "capacity": self.capacity, "on_shift": self.on_shift}


def _names(field_name: str, raw: object) -> frozenset[str]:
    if not isinstance(raw, list):
        raise InvalidField(field_name, "must be a list of names")
    if len(raw) > MAX_NAMES:
        raise InvalidField(field_name, f"may list at most {MAX_NAMES} names")
    names = [text_field(f"{field_name}[{i}]", item, NAME_MAX, required=True) for i, item in enumerate(raw)]
    return frozenset(name.lower() for name in names if name)


@dataclass(frozen=True)
class TicketToRoute:
    ticket_id: str
    group: str
    category: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def wanted_skills(self) -> frozenset[str]:
        wanted = {tag.lower() for tag in self.tags}
        if self.category:
            wanted.add(self.category.lower())
        return frozenset(wanted)


def eligible(agents: Iterable[Agent], group: str, loads: Mapping[str, int]) -> list[Agent]:
    """The group's agents who can take a ticket now, in id order."""
    return sorted((agent for agent in agents
                   if group in agent.groups and agent.on_shift and loads.get(agent.id, 0) < agent.capacity),
                  key=lambda agent: agent.id)


def _in_turn(candidates: Sequence[Agent], last_agent_id: str | None) -> list[Agent]:
    """`candidates` (in id order) starting with the first after `last_agent_id`."""
    if last_agent_id is None:
        return list(candidates)
    after = [agent for agent in candidates if agent.id > last_agent_id]
    return after + [agent for agent in candidates if agent.id <= last_agent_id]


def choose(strategy: RoutingStrategy, ticket: TicketToRoute, agents: Iterable[Agent],
           loads: Mapping[str, int], last_agent_id: str | None = None) -> Agent | None:
    """The agent who takes `ticket`, or None: it waits in the group's queue."""
    candidates = _in_turn(eligible(agents, ticket.group, loads), last_agent_id)
    if not candidates:
        return None
    if strategy is RoutingStrategy.ROUND_ROBIN:
        return candidates[0]
    if strategy is RoutingStrategy.LEAST_LOADED:
        return min(candidates, key=lambda agent: loads.get(agent.id, 0))  # min keeps the turn order on ties
    wanted = ticket.wanted_skills
    if not wanted:
        return min(candidates, key=lambda agent: loads.get(agent.id, 0))
    matched = [(len(wanted & agent.skills), agent) for agent in candidates]
    best = max(score for score, _ in matched)
    if best == 0:
        return None
    return min((agent for score, agent in matched if score == best), key=lambda agent: loads.get(agent.id, 0))


@dataclass(frozen=True)
class Routed:
    ticket_id: str
    agent_id: str


def drain(strategy: RoutingStrategy, queue: Sequence[TicketToRoute], agents: Iterable[Agent],
          loads: Mapping[str, int], last_agent_id: str | None = None) -> list[Routed]:
    """Hands out queued tickets, oldest first, while someone can take them; each one taken
    counts towards its agent's load for the next. Tickets nobody can take stay queued."""
    agents = list(agents)
    current = dict(loads)
    routed = []
    for ticket in queue:
        agent = choose(strategy, ticket, agents, current, last_agent_id)
        if agent is None:
            continue
        routed.append(Routed(ticket.ticket_id, agent.id))
        current[agent.id] = current.get(agent.id, 0) + 1
        last_agent_id = agent.id
    return routed


def open_loads(assigned: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each agent's open work from (assignee id, ticket status) pairs: solved, closed and
    pending tickets do not count."""
    loads: dict[str, int] = {}
    for agent_id, status in assigned:
        if status in OPEN_STATUSES:
            loads[agent_id] = loads.get(agent_id, 0) + 1
    return loads

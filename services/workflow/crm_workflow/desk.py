"""The workflow's durable state about tickets: agents, routing groups, what it knows of each
ticket, and SLA timers. Pure domain (eventsourcing aggregates, no I/O).

- `AgentRecord`: an agent's profile (groups, skills, capacity, on shift) and the tickets
  that are their open work now (assigned, not solved, closed or pending). The load that
  `least_loaded` counts is the length of that list; it is kept from the ticket events, so
  it is rebuilt with everything else from the store.
- `RoutingGroup`: a group's strategy, its members, the agent who got its last ticket (the
  turn) and its queue of tickets nobody could take.
- `TicketWork`: the last ticket state the workflow applied (version, status, group,
  assignee), its routing decisions (`Routed` is also the `AssignTicket` command) and the
  names of the timers it ever had.
- `Timer`: one durable timer per key (its id derives from the key's name): a ticket's SLA
  timer (`sla_timers.TimerKey`) or a contract's reminder (`contract_reminders.ReminderKey`);
  scheduled, moved, cancelled, fired. It fires once: firing is a new version of the
  aggregate, so two firers racing lose one save. What its event must say when it fires,
  beyond the key, is its `payload` (a contract reminder's amount and dates).

`UnitOfWork` loads each aggregate once per batch and lists the changed ones;
`follow_timers` makes a subject's pending timers the planned ones (tickets and contracts
alike).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from crm_workflow.routing import OPEN_STATUSES, Agent, RoutingStrategy, TicketToRoute
from crm_workflow.sla_timers import Target, TimerKey, TimerKind, reconcile

_NAMESPACE = uuid5(NAMESPACE_URL, "crm:workflow")


class AgentRecord(Aggregate):
    @staticmethod
    def id_for(agent_id: str) -> UUID:
        return uuid5(_NAMESPACE, f"agent/{agent_id}")

    @event("Registered")
    def __init__(self, id: UUID, agent_id: str, groups: list[str], skills: list[str],  # noqa: A002
                 capacity: int, on_shift: bool):
        self.agent_id = agent_id
        self.groups = list(groups)
        self.skills = list(skills)
        self.capacity = capacity
        self.on_shift = on_shift
        self.open_tickets: list[str] = []

    @classmethod
    def register(cls, profile: Agent) -> AgentRecord:
        return cls(id=cls.id_for(profile.id), agent_id=profile.id, groups=sorted(profile.groups),
                   skills=sorted(profile.skills), capacity=profile.capacity, on_shift=profile.on_shift)

    @property
    def profile(self) -> Agent:
        return Agent(id=self.agent_id, groups=frozenset(self.groups), skills=frozenset(self.skills),
                     capacity=self.capacity, on_shift=self.on_shift)

    @property
    def load(self) -> int:
        return len(self.open_tickets)

    def update(self, profile: Agent) -> bool:
        """Records the new profile; False when nothing changed."""
        if profile == self.profile:
            return False
        self._changed(groups=sorted(profile.groups), skills=sorted(profile.skills),
                      capacity=profile.capacity, on_shift=profile.on_shift)
        return True

    @event("Changed")
    def _changed(self, groups: list[str], skills: list[str], capacity: int, on_shift: bool) -> None:
        self.groups, self.skills, self.capacity, self.on_shift = list(groups), list(skills), capacity, on_shift

    def take(self, ticket_id: str) -> None:
        if ticket_id not in self.open_tickets:
            self._took(ticket_id=ticket_id)

    @event("WorkTaken")
    def _took(self, ticket_id: str) -> None:
        self.open_tickets.append(ticket_id)

    def leave(self, ticket_id: str) -> None:
        if ticket_id in self.open_tickets:
            self._left(ticket_id=ticket_id)

    @event("WorkLeft")
    def _left(self, ticket_id: str) -> None:
        self.open_tickets.remove(ticket_id)

    def to_dict(self) -> dict[str, Any]:
        return {**self.profile.to_dict(), "load": self.load, "open_tickets": list(self.open_tickets),
                "version": self.version}


class RoutingGroup(Aggregate):
    """A routing group. It is snapshotted (WorkflowApplication.snapshotting_intervals), and a
    snapshot is the aggregate's attributes as JSON: so they are plain values (the strategy
    by its name), or an aggregate read back from a snapshot would differ from one replayed
    from its events. Version 1 kept the strategy as an enum, which a snapshot gave back as
    a str; `upcast_v1_v2` reads those snapshots."""

    class_version = 2

    @staticmethod
    def id_for(name: str) -> UUID:
        return uuid5(_NAMESPACE, f"routing-group/{name}")

    @event("Defined")
    def __init__(self, id: UUID, name: str, strategy: str):  # noqa: A002
        self.name = name
        self.strategy_name = RoutingStrategy(strategy).value
        self.members: list[str] = []
        self.queue: list[dict[str, Any]] = []
        self.last_agent_id: str | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["strategy_name"] = str(state.pop("strategy"))

    @property
    def strategy(self) -> RoutingStrategy:
        return RoutingStrategy(self.strategy_name)

    @classmethod
    def define(cls, name: str, strategy: RoutingStrategy = RoutingStrategy.ROUND_ROBIN) -> RoutingGroup:
        return cls(id=cls.id_for(name), name=name, strategy=strategy.value)

    def use(self, strategy: RoutingStrategy) -> bool:
        if strategy is self.strategy:
            return False
        self._strategy_changed(strategy=strategy.value)
        return True

    @event("StrategyChanged")
    def _strategy_changed(self, strategy: str) -> None:
        self.strategy_name = RoutingStrategy(strategy).value

    def join(self, agent_id: str) -> None:
        if agent_id not in self.members:
            self._joined(agent_id=agent_id)

    @event("MemberJoined")
    def _joined(self, agent_id: str) -> None:
        self.members.append(agent_id)

    def leave(self, agent_id: str) -> None:
        if agent_id in self.members:
            self._left(agent_id=agent_id)

    @event("MemberLeft")
    def _left(self, agent_id: str) -> None:
        self.members.remove(agent_id)

    @property
    def queued(self) -> list[TicketToRoute]:
        return [TicketToRoute(ticket_id=item["ticket_id"], group=self.name, category=item.get("category"),
                              tags=frozenset(item.get("tags", []))) for item in self.queue]

    def is_queued(self, ticket_id: str) -> bool:
        return any(item["ticket_id"] == ticket_id for item in self.queue)

    def enqueue(self, ticket: TicketToRoute) -> None:
        if not self.is_queued(ticket.ticket_id):
            self._queued(ticket_id=ticket.ticket_id, category=ticket.category, tags=sorted(ticket.tags))

    @event("TicketQueued")
    def _queued(self, ticket_id: str, category: str | None, tags: list[str]) -> None:
        self.queue.append({"ticket_id": ticket_id, "category": category, "tags": list(tags)})

    @event("TicketRouted")
    def routed(self, ticket_id: str, agent_id: str) -> None:
        self.queue = [item for item in self.queue if item["ticket_id"] != ticket_id]
        self.last_agent_id = agent_id

    def drop(self, ticket_id: str) -> None:
        """A queued ticket that no longer needs an agent (solved, closed, assigned by hand)."""
        if self.is_queued(ticket_id):
            self._dropped(ticket_id=ticket_id)

    @event("TicketDropped")
    def _dropped(self, ticket_id: str) -> None:
        self.queue = [item for item in self.queue if item["ticket_id"] != ticket_id]

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.name, "strategy": self.strategy.value, "members": sorted(self.members),
                "last_agent_id": self.last_agent_id, "queue": [item["ticket_id"] for item in self.queue],
                "version": self.version}


class TicketWork(Aggregate):
    """What the workflow knows of a ticket, as of the service desk's `version` of it."""

    @staticmethod
    def id_for(ticket_id: str) -> UUID:
        return uuid5(_NAMESPACE, f"ticket/{ticket_id}")

    @event("Observed")
    def __init__(self, id: UUID, ticket_id: str, ticket_version: int, status: str, group: str,  # noqa: A002
                 assignee_id: str, category: str, tags: list[str]):
        self.ticket_id = ticket_id
        self.ticket_version = ticket_version
        self.status = status
        self.group = group
        self.assignee_id = assignee_id
        self.category = category
        self.tags = list(tags)
        self.routings = 0
        self.queued = False
        self.timer_names: list[str] = []

    @property
    def holder(self) -> str | None:
        """The agent whose open work this ticket is, if any."""
        return self.assignee_id or None if self.status in OPEN_STATUSES else None

    @property
    def to_route(self) -> TicketToRoute:
        return TicketToRoute(ticket_id=self.ticket_id, group=self.group, category=self.category or None,
                             tags=frozenset(self.tags))

    @event("Updated")
    def observe(self, ticket_version: int, status: str, group: str, assignee_id: str, category: str,
                tags: list[str]) -> None:
        self.ticket_version = ticket_version
        self.status, self.group, self.assignee_id = status, group, assignee_id
        self.category, self.tags = category, list(tags)
        if assignee_id:
            self.queued = False

    @event("Routed")
    def route(self, ticket_id: str, agent_id: str, group: str, strategy: str, cause_event_id: str,
              idempotency_key: str) -> None:
        """The decision that `agent_id` takes the ticket; also the `AssignTicket` command."""
        self.assignee_id = agent_id
        self.routings += 1
        self.queued = False

    def next_routing_key(self) -> str:
        return f"workflow/ticket/{self.ticket_id}/routing/{self.routings + 1}"

    @event("Queued")
    def queue(self, ticket_id: str, group: str, cause_event_id: str) -> None:
        self.queued = True

    def track_timers(self, names: list[str]) -> None:
        new = [name for name in names if name not in self.timer_names]
        if new:
            self._timers_tracked(names=sorted(new))

    @event("TimersTracked")
    def _timers_tracked(self, names: list[str]) -> None:
        self.timer_names.extend(names)


class TimerState:
    PENDING = "pending"
    CANCELLED = "cancelled"
    FIRED = "fired"


class TimerSpec(Protocol):
    """What names a timer: `sla_timers.TimerKey`, `contract_reminders.ReminderKey`."""

    @property
    def subject_id(self) -> str: ...
    @property
    def target(self) -> StrEnum: ...
    @property
    def kind(self) -> StrEnum: ...
    @property
    def level(self) -> int: ...
    @property
    def name(self) -> str: ...


class Timer(Aggregate):
    @staticmethod
    def id_for(key: TimerSpec) -> UUID:
        return Timer.id_for_name(key.name)

    @staticmethod
    def id_for_name(name: str) -> UUID:
        return uuid5(_NAMESPACE, f"timer/{name}")

    @event("Scheduled")
    def __init__(self, id: UUID, name: str, subject_id: str, target: str, kind: str,  # noqa: A002
                 level: int, fire_at: datetime, cause_event_id: str, payload: dict[str, Any] | None = None):
        self.name = name
        self.subject_id = subject_id
        self.target = target
        self.kind = kind
        self.level = level
        self.fire_at = fire_at
        self.payload = payload  # None: the key says it all (SLA timers, and those scheduled before payloads)
        self.state = TimerState.PENDING
        self.fired_at: datetime | None = None

    @classmethod
    def schedule(cls, key: TimerSpec, fire_at: datetime, cause_event_id: str,
                 payload: dict[str, Any] | None = None) -> Timer:
        return cls(id=cls.id_for(key), name=key.name, subject_id=key.subject_id, target=key.target.value,
                   kind=key.kind.value, level=key.level, fire_at=fire_at, cause_event_id=cause_event_id,
                   payload=payload)

    @property
    def key(self) -> TimerKey:
        """An SLA timer's key (a ticket's timers only)."""
        return TimerKey(self.subject_id, Target(self.target), TimerKind(self.kind), self.level)

    @property
    def pending(self) -> bool:
        return self.state == TimerState.PENDING

    @event("Moved")
    def move(self, fire_at: datetime, cause_event_id: str) -> None:
        """A new time (or a cancelled timer armed again); never a fired one."""
        if self.state == TimerState.FIRED:
            raise ValueError(f"timer {self.name} has fired")
        self.fire_at = fire_at
        self.state = TimerState.PENDING

    @event("Cancelled")
    def cancel(self, cause_event_id: str) -> None:
        self.state = TimerState.CANCELLED

    def fire(self, now: datetime) -> None:
        if not self.pending:
            raise ValueError(f"timer {self.name} is {self.state}, not pending")
        self._fired(name=self.name, subject_id=self.subject_id, target=self.target, kind=self.kind,
                    level=self.level, fire_at=self.fire_at, fired_at=now, payload=self.payload)

    @event("Fired")
    def _fired(self, name: str, subject_id: str, target: str, kind: str, level: int, fire_at: datetime,
               fired_at: datetime, payload: dict[str, Any] | None = None) -> None:
        """Carries what the timer was (the published event and the command need it)."""
        self.state = TimerState.FIRED
        self.fired_at = fired_at

    @staticmethod
    def idempotency_key_for(name: str) -> str:
        return f"workflow/timer/{name}"


# -- units of work -----------------------------------------------------------------------------

A = TypeVar("A")
K = TypeVar("K", bound=TimerSpec)


class UnitOfWork:
    """Loads each aggregate once (so a batch sees its own earlier decisions) and lists the
    ones with new events; nothing is saved here (a consumer saves them with its position)."""

    def __init__(self, find: Callable[[type[Any], UUID], Any],
                 find_many: Callable[[type[Any], list[UUID]], dict[UUID, Any]] | None = None):
        self._find = find
        self._find_many = find_many
        self._loaded: dict[UUID, Any] = {}

    def prefetch(self, cls: type[Any], aggregate_ids: Iterable[UUID]) -> None:
        """Loads the aggregates not loaded yet with one read (`find_many`), where each would
        otherwise cost its own; those that do not exist are remembered as missing."""
        wanted = [aggregate_id for aggregate_id in dict.fromkeys(aggregate_ids) if aggregate_id not in self._loaded]
        if self._find_many is None or not wanted:
            return
        found = self._find_many(cls, wanted)
        for aggregate_id in wanted:
            self._loaded[aggregate_id] = found.get(aggregate_id)

    def _get(self, cls: type[A], aggregate_id: UUID) -> A | None:
        if aggregate_id not in self._loaded:
            self._loaded[aggregate_id] = self._find(cls, aggregate_id)
        found = self._loaded[aggregate_id]
        return found if isinstance(found, cls) else None

    def _add(self, aggregate: Any) -> Any:
        self._loaded[aggregate.id] = aggregate
        return aggregate

    def timer(self, name: str) -> Timer | None:
        return self._get(Timer, Timer.id_for_name(name))

    def changed(self) -> list[Any]:
        return [aggregate for aggregate in self._loaded.values()
                if aggregate is not None and aggregate.pending_events]

    def follow_timers(self, names: Iterable[str], planned: Mapping[K, datetime], cause_event_id: str,
                      payload_of: Callable[[K], dict[str, Any] | None] = lambda _key: None) -> TimerChanges:
        """Makes the pending timers among `names` (a subject's timers) the `planned` ones
        (`sla_timers.reconcile`): new ones scheduled, moved ones moved (a cancelled one armed
        again), the rest cancelled; a fired timer stays fired."""
        keys = {key.name: key for key in planned}
        self.prefetch(Timer, [Timer.id_for_name(name) for name in [*names, *keys]])
        held = [timer for timer in (self.timer(name) for name in names) if timer is not None]
        changes = reconcile({timer.name: timer.fire_at for timer in held if timer.pending},
                            {key.name: at for key, at in planned.items()},
                            [timer.name for timer in held if timer.state == TimerState.FIRED])
        done = TimerChanges()
        for name, at in sorted(changes.schedule.items()):
            timer = self.timer(name)
            if timer is None:
                self._add(Timer.schedule(keys[name], at, cause_event_id, payload_of(keys[name])))
            else:
                timer.move(fire_at=at, cause_event_id=cause_event_id)
            done.scheduled.append(name)
        for name in changes.cancel:
            timer = self.timer(name)
            if timer is not None:
                timer.cancel(cause_event_id=cause_event_id)
                done.cancelled.append(name)
        return done


@dataclass
class TimerChanges:
    scheduled: list[str] = field(default_factory=list)  # timer names
    cancelled: list[str] = field(default_factory=list)

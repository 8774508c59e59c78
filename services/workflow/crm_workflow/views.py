# mypy: disable-error-code="attr-defined,name-defined"
# (eventsourcing makes the aggregates' event classes, `Timer.Scheduled`, from their `@event`
# methods when the class is created, which mypy cannot see.)
"""The workflow's query model: an index of timers (the firer's due list, ordered by fire
time, and a ticket's timers) and of agents (the list), following the workflow store's
notification log (crm_runtime.index: the position is written with the rows).

The index is only a way to find timers quickly: whether a timer is pending, and firing it,
is decided on the `Timer` aggregate itself, so an index that lags never fires a timer
twice or fires a cancelled one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, select

from crm_runtime.index import Change, LogIndex, Patch, SortKey, Upsert, open_engine, position_table, utc
from crm_runtime.settings import PlatformSettings
from crm_workflow.desk import AgentRecord, Timer, TimerState

metadata = MetaData()
timers = Table(
    "workflow_timer_index", metadata,
    Column("id", SortKey, primary_key=True),
    Column("name", String, nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("target", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("level", Integer, nullable=False),
    Column("fire_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("fired_at", DateTime(timezone=True)),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("workflow_timer_index_due", "state", "fire_at"),
    Index("workflow_timer_index_subject", "subject_id", "fire_at"),
)
agents = Table(
    "workflow_agent_index", metadata,
    Column("id", SortKey, primary_key=True),  # the agent's id
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
positions = position_table(metadata, "workflow_index_position")
POSITION_NAME = "workflow-index"


@dataclass(frozen=True)
class TimerRow:
    id: str
    name: str
    subject_id: str
    target: str
    kind: str
    level: int
    fire_at: datetime
    state: str
    fired_at: datetime | None
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "subject_id": self.subject_id, "target": self.target,
                "kind": self.kind, "level": self.level, "fire_at": self.fire_at.isoformat(),
                "state": self.state, "fired_at": self.fired_at.isoformat() if self.fired_at else None,
                "version": self.version}


def rows_of(event: Any, _position: int) -> Iterator[Change]:
    if isinstance(event, Timer.Scheduled):
        yield Upsert(timers, {
            "id": str(event.originator_id), "name": event.name, "subject_id": event.subject_id,
            "target": event.target, "kind": event.kind, "level": event.level, "fire_at": utc(event.fire_at),
            "state": TimerState.PENDING, "fired_at": None, "version": event.originator_version,
            "created_at": utc(event.timestamp)})
    elif isinstance(event, Timer.Moved):
        yield Patch(timers, str(event.originator_id), event.originator_version,
                    {"fire_at": utc(event.fire_at), "state": TimerState.PENDING})
    elif isinstance(event, Timer.Cancelled):
        yield Patch(timers, str(event.originator_id), event.originator_version, {"state": TimerState.CANCELLED})
    elif isinstance(event, Timer.Fired):
        yield Patch(timers, str(event.originator_id), event.originator_version,
                    {"state": TimerState.FIRED, "fired_at": utc(event.fired_at)})
    elif isinstance(event, AgentRecord.Registered):
        yield Upsert(agents, {"id": event.agent_id, "version": event.originator_version,
                              "created_at": utc(event.timestamp)})


def _timer_row(row: Any) -> TimerRow:
    return TimerRow(id=row.id, name=row.name, subject_id=row.subject_id, target=row.target, kind=row.kind,
                    level=row.level, fire_at=utc(row.fire_at), state=row.state,
                    fired_at=utc(row.fired_at) if row.fired_at else None, version=row.version)


class WorkflowViews(LogIndex):
    def __init__(self, app: Application, engine: Any, serialised: bool = False):
        super().__init__(app, engine, metadata, positions, POSITION_NAME, rows_of, serialised)

    def due_timers(self, now: datetime, limit: int = 500) -> list[TimerRow]:
        """Pending timers whose time has come, earliest first."""
        t = timers.c
        with self.read() as conn:
            rows = conn.execute(select(timers).where(t.state == TimerState.PENDING, t.fire_at <= utc(now))
                                .order_by(t.fire_at, t.id).limit(limit)).all()
        return [_timer_row(row) for row in rows]

    def next_fire_at(self) -> datetime | None:
        t = timers.c
        with self.read() as conn:
            found = conn.execute(select(t.fire_at).where(t.state == TimerState.PENDING)
                                 .order_by(t.fire_at).limit(1)).scalar()
        return utc(found) if found is not None else None

    def timers_of(self, subject_id: str) -> list[TimerRow]:
        t = timers.c
        with self.read() as conn:
            rows = conn.execute(select(timers).where(t.subject_id == subject_id)
                                .order_by(t.fire_at, t.name)).all()
        return [_timer_row(row) for row in rows]

    def agent_ids(self, after: str | None, limit: int) -> list[str]:
        a = agents.c
        query = select(a.id).order_by(a.id).limit(limit)
        if after is not None:
            query = query.where(a.id > after)
        with self.read() as conn:
            return [row.id for row in conn.execute(query)]


def open_views(app: Application, platform: PlatformSettings) -> WorkflowViews:
    engine, serialised = open_engine(platform, "workflow_index")
    views = WorkflowViews(app, engine, serialised=serialised)
    views.create_tables()
    return views

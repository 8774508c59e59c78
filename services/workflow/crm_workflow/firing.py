"""Fires due timers, each exactly once, from the workflow's store.

Every `interval` seconds (0.2 by default) the worker's firing step catches the timer index
up with the store, takes the pending timers whose time has come (earliest first), and fires
them up to `chunk` (100) in one transaction. `Timer.fire` is a new version of the timer,
so a second firer (another worker instance, a step after a crash) or the tickets consumer
moving or cancelling the same timer meanwhile makes the save fail (IntegrityError); the
chunk is then fired again one timer per transaction from freshly read timers, and the one
that lost is skipped: every timer fires once. Whether a timer is pending is read from the
aggregate, never from the index alone.

`Timer.Fired` is published (`SlaWarningReached`, `SlaBreached`, `SlaEscalationReached`;
a contract's `InstalmentReminderDue`, `ContractRenewalDue`) and, for an escalation, is
also the stored `EscalateTicket` command the dispatcher delivers. Nothing is held in
memory between steps: a restart fires what is due from the store, late by the time it
was down.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from prometheus_client import Counter, Histogram

from crm_runtime import logs
from crm_workflow.application import WorkflowApplication
from crm_workflow.desk import Timer

log = logs.get(__name__)

FIRED = Counter("crm_workflow_timers_fired_total", "Timers fired", ["kind"])
LATENESS = Histogram("crm_workflow_timer_lateness_seconds", "How late timers fired",
                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300))
BATCH = 500
CHUNK = 100  # timers fired in one transaction


class TimerFirer:
    def __init__(self, app: WorkflowApplication, batch: int = BATCH, chunk: int = CHUNK):
        self.app = app
        self.batch = batch
        self.chunk = chunk

    def step(self) -> int:
        """Fires every timer due now; returns how many this step fired."""
        fired = 0
        while True:
            self.app.views.catch_up()
            now = self.app.clock.now()
            due = self.app.views.due_timers(now, self.batch)
            ids = [UUID(row.id) for row in due]
            done = 0
            for start in range(0, len(ids), self.chunk):
                done += self._fire(ids[start:start + self.chunk], now)
            fired += done
            if len(due) < self.batch or not done:
                return fired

    def _fire(self, ids: list[UUID], now: datetime) -> int:
        """Fires the due timers among `ids` in one transaction; when that loses a race, each
        on its own. Returns how many it fired."""
        timers = self._due(ids, now)
        if not timers:
            return 0
        try:
            self.app.save(*timers)
        except IntegrityError:
            # A failed save has used up the timers' pending events: read each one again.
            timers = [timer for timer_id in ids for timer in self._due([timer_id], now) if self._saved(timer)]
        for timer in timers:
            late = (now - timer.fire_at).total_seconds()
            FIRED.labels(timer.kind).inc()
            LATENESS.observe(late)
            log.info("timer.fired", timer=timer.name, subject_id=timer.subject_id, kind=timer.kind,
                     level=timer.level, late_seconds=round(late, 3))
        return len(timers)

    def _due(self, ids: list[UUID], now: datetime) -> list[Timer]:
        """The timers among `ids` still pending and due, fired (not saved yet)."""
        timers = []
        stored = self.app.find_many(Timer, ids)  # one read for the chunk
        for timer_id in ids:
            timer = stored.get(timer_id)
            if timer is None or not timer.pending or timer.fire_at > now:
                continue  # the index lags behind a move or a cancel: the aggregate decides
            timer.fire(now)
            timers.append(timer)
        return timers

    def _saved(self, timer: Timer) -> bool:
        try:
            self.app.save(timer)
            return True
        except IntegrityError:
            return False  # fired by another firer, or moved or cancelled meanwhile


def timer_firer(_settings: Any, app: WorkflowApplication) -> Any:
    return TimerFirer(app).step

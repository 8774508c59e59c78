"""Scoring rules and rescoring: the application side of crm_leads.scoring.

The active rule set is one aggregate (`ScoringRules`, fixed id); before anyone replaces it,
DEFAULT_RULES apply as version 0. Every command that changes a lead scores it again with
the active rule set, in the command's own transaction (`LeadsApplication.score_changes`;
a capture carries its first score in LeadCaptured), so a lead always shows the score of
what it is.

A rule-set change is saved at once, and the open leads are rescored in the background by
the `Rescorer`, a thread of the API process:

- it takes the open leads from the query model in capture order (`seq`), a batch at a time,
  scores each with the active rule set, and saves the batch's events together with its
  position (`rescore:v<version>`, the last lead's seq) in ONE transaction, through the
  store's tracking table (as consumers do, crm_runtime.consumer.EventStoreHandler);
- after a restart it goes on from the stored position of the active version; a newer
  version starts again from the first lead; a lead it already did scores the same and
  records nothing, so running it twice (two API processes, a crash between batches)
  changes nothing twice; a lead changed meanwhile by a command is a write conflict, and
  the batch is simply done again.

`GET /v1/scoring-rules` shows its progress: open leads rescored and pending for the active
version. Leads captured while it runs are scored by their capture with the new rules
already (the capture reads the active version; one indexed query per command).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import IntegrityError, ProcessRecorder, Tracking
from sqlalchemy import func, select

from crm_leads.domain import OPEN_STATUSES, Lead
from crm_leads.scoring import DEFAULT_RULES, RULE_SET_ID, RuleSet, ScoringRules
from crm_leads.views import leads as lead_index
from crm_runtime import logs
from crm_runtime.auth import Principal, current_principal
from crm_runtime.errors import Conflict
from crm_runtime.index import Condition

if TYPE_CHECKING:
    from crm_leads.application import LeadsApplication

log = logs.get(__name__)
RESCORE_BATCH = 200
RULES_RECHECK_SECONDS = 1.0  # how stale a capture's rules may be (another process replaced them)
READERS = 8  # leads read at once (PostgreSQL's pool: 5 + 10 overflow per application)
_OPEN = sorted(status.value for status in OPEN_STATUSES)
# What GET answers beside the rule set: a client may send it back as it got it.
_SHOWN_KEYS = ("version", "rescoring", "leads_to_rescore", "updated_by", "updated_at")


@dataclass(frozen=True)
class ReplaceScoringRules:
    rules: Any  # the rule set as a plain dict (crm_leads.scoring's format)
    caller: Principal | None = None


@dataclass(frozen=True)
class Rescoring:
    version: int
    rescored: int
    pending: int

    @property
    def done(self) -> bool:
        return self.pending == 0

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "rescored": self.rescored, "pending": self.pending,
                "done": self.done}


@dataclass(frozen=True)
class ActiveRules:
    version: int  # 0: the defaults
    rule_set: RuleSet
    updated_by: str | None = None
    updated_at: datetime | None = None


def tracking_name(version: int) -> str:
    return f"rescore:v{version}"


def without_shown_keys(body: Any) -> Any:
    """The rule set a client sent, minus what GET shows beside it (version, progress...)."""
    if isinstance(body, Mapping):
        return {key: value for key, value in body.items() if key not in _SHOWN_KEYS}
    return body


class ScoringRulesMixin:
    """Scoring for LeadsApplication: the active rule set, scoring a changed lead, replacing
    the rules, and the rescorer's progress."""

    _active: ActiveRules | None = None
    _rules_checked = 0.0  # time.monotonic() of the last look for a newer rule set
    _rescorer: Rescorer | None = None

    @property
    def _app(self) -> LeadsApplication:
        return cast("LeadsApplication", self)

    # -- the active rule set ------------------------------------------------------------------

    def active_rules(self) -> ActiveRules:
        """The active rule set: cached, with one indexed query for a newer version."""
        cached = self._active or ActiveRules(0, DEFAULT_RULES)
        if self._active is None or self._app.recorder.select_events(RULE_SET_ID, gt=cached.version, limit=1):
            stored = self._app.find(ScoringRules, RULE_SET_ID)
            if stored is not None:
                cached = ActiveRules(stored.version, stored.rules, stored.updated_by, stored.modified_on)
            self._active = cached
        return cached

    def scoring(self) -> tuple[RuleSet, int]:
        active = self.active_rules()
        return active.rule_set, active.version

    def capture_scoring(self) -> tuple[RuleSet, int]:
        """The rules a capture is scored by: checked for a newer version at most once every
        RULES_RECHECK_SECONDS, not once per capture (one store round trip less). A rule set
        replaced in this process applies at once; one replaced by another API process
        within that time, and the rescorer brings the leads captured meanwhile up to it."""
        now = time.monotonic()
        if self._active is None or now - self._rules_checked >= RULES_RECHECK_SECONDS:
            self._rules_checked = now
            return self.scoring()
        return self._active.rule_set, self._active.version

    def score_changes(self, lead: Lead) -> None:
        """Scores a lead a command changed, before it is saved (events only if it moved)."""
        lead.rescore(*self.scoring())

    # -- commands and queries -------------------------------------------------------------

    def replace_scoring_rules(self, command: ReplaceScoringRules) -> tuple[ActiveRules, int]:
        """Replaces the active rule set; returns it and how many open leads will be rescored.
        A bad rule set is an InvalidField naming its part (`rules[2].when.field`)."""
        rule_set = RuleSet.from_dict(without_shown_keys(command.rules))
        who = command.caller if command.caller is not None else current_principal()
        by = who.subject if who is not None else ""
        for _ in range(5):
            stored = self._app.find(ScoringRules, RULE_SET_ID)
            if stored is None:
                stored = ScoringRules.first(rule_set, by)
            else:
                stored.replace(rule_set, by)
            try:
                self._app.save(stored)
                break
            except IntegrityError:
                continue  # another replacement at the same moment: the last one wins
        else:
            raise Conflict("the scoring rules are being replaced concurrently; retry")
        active = ActiveRules(stored.version, stored.rules, stored.updated_by, stored.modified_on)
        self._active = active
        log.info("scoring.rules_replaced", version=active.version, rules=len(rule_set.rules))
        to_rescore = self.count_open_leads()
        if self._rescorer is not None:
            self._rescorer.wake()
        return active, to_rescore

    def count_open_leads(self, after_seq: int | None = None) -> int:
        self._app.views.catch_up()
        conditions: list[Condition] = [lead_index.c.status.in_(_OPEN)]
        if after_seq is not None:
            conditions.append(lead_index.c.seq > after_seq)
        with self._app.views.read() as conn:
            return int(conn.execute(select(func.count()).select_from(lead_index).where(*conditions)).scalar() or 0)

    def rescoring_progress(self, version: int | None = None) -> Rescoring:
        version = self.active_rules().version if version is None else version
        if version == 0:
            return Rescoring(0, 0, 0)  # the defaults score every lead from its capture
        position = self.rescorer._recorder.max_tracking_id(tracking_name(version)) or 0
        total = self.count_open_leads()
        pending = self.count_open_leads(after_seq=position)
        return Rescoring(version, total - pending, pending)

    # -- the background rescorer ---------------------------------------------------------------

    @property
    def rescorer(self) -> Rescorer:
        if self._rescorer is None:
            self._rescorer = Rescorer(self._app)
        return self._rescorer


class Rescorer:
    """Rescores the open leads after a rule-set change, a batch per transaction, resuming
    from its stored position (see the module's docstring)."""

    def __init__(self, app: LeadsApplication, batch_size: int = RESCORE_BATCH, idle_seconds: float = 1.0):
        self.app = app
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="leads-rescorer-read")

    @property
    def _recorder(self) -> ProcessRecorder:
        return cast(ProcessRecorder, self.app.recorder)

    def step(self) -> int:
        """Rescores the next batch of open leads; returns how many it looked at (0: done)."""
        for _ in range(10):
            rule_set, version = self.app.scoring()
            if version == 0:
                return 0
            name = tracking_name(version)
            position = self._recorder.max_tracking_id(name) or 0
            batch = self._next_leads(position)
            if not batch:
                return 0
            changed = []
            for lead in self._load(lead_id for lead_id, _seq in batch):
                if lead is not None and lead.is_open:
                    lead.rescore(rule_set, version)
                    if lead.pending_events:
                        changed.append(lead)
            try:
                self._save(changed, Tracking(name, batch[-1][1]))
            except IntegrityError:
                continue  # a command changed one of these leads, or another rescorer was first
            log.info("scoring.rescored", version=version, leads=len(batch), changed=len(changed),
                     position=batch[-1][1])
            return len(batch)
        raise Conflict("rescoring: too much contention; will retry")

    def run_until_done(self) -> int:
        """Rescores every open lead still pending; returns how many it looked at."""
        total = 0
        while done := self.step():
            total += done
        return total

    def _load(self, lead_ids: Iterable[str]) -> list[Lead | None]:
        """The leads, read by a few threads at once (a store round trip each)."""
        return list(self._readers.map(lambda lead_id: self.app.find(Lead, UUID(lead_id)), lead_ids))

    def _next_leads(self, position: int) -> list[tuple[str, int]]:
        views = self.app.views
        views.catch_up()
        statement = (select(lead_index.c.id, lead_index.c.seq)
                     .where(lead_index.c.status.in_(_OPEN), lead_index.c.seq > position)
                     .order_by(lead_index.c.seq).limit(self.batch_size))
        with views.read() as conn:
            return [(str(row.id), int(row.seq)) for row in conn.execute(statement)]

    def _save(self, leads: Sequence[Lead], tracking: Tracking) -> None:
        """The leads' new events and the position, in one transaction."""
        processing: ProcessingEvent[Any] = ProcessingEvent(tracking=tracking)
        processing.collect_events(*leads)
        if not processing.events:
            self._recorder.insert_tracking(tracking)
            return
        recordings = self.app._record(processing)
        self.app._notify(recordings)

    # -- the thread ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="leads-rescorer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        log.info("scoring.rescorer_started")
        while not self._stopping.is_set():
            try:
                busy = self.step() > 0
            except Exception as exc:  # noqa: BLE001 - the store may be away; try again later
                log.warning("scoring.rescore_failed", error=repr(exc))
                busy = False
            if not busy:
                self._wake.wait(self.idle_seconds)
                self._wake.clear()
        log.info("scoring.rescorer_stopped")

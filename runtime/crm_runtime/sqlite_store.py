"""eventsourcing's SQLite store, with the durability of a commit chosen by setting.

SQLite in WAL mode with `synchronous=FULL` (its default) syncs the log to disk on every
commit, and a store has one writer at a time: on ordinary disks that is 2 to 3 ms per
commit, so a service tops out at a few hundred commands a second however many threads it
has. With `synchronous=NORMAL` a commit is durable once it is in the WAL file; the WAL is
synced at checkpoints. A killed process loses nothing it committed and the file is never
corrupted; only a power loss or an operating-system crash can roll back the last commits
before a checkpoint (https://www.sqlite.org/pragma.html#pragma_synchronous). That is the
default here, as in the read stores (crm_runtime.readstore); CRM_SQLITE_SYNCHRONOUS=FULL
restores a sync per commit. Production runs on PostgreSQL, which groups the commits of
concurrent transactions into one sync by itself.

Its process recorder also records the positions of several partitions with one batch's
events (`SQLiteProcessRecorder`, as crm_runtime.postgres_store's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing import sqlite
from eventsourcing.persistence import StoredEvent

SYNCHRONOUS = "SQLITE_SYNCHRONOUS"
MODES = ("FULL", "NORMAL")


class SQLiteConnectionPool(sqlite.SQLiteConnectionPool):
    def __init__(self, *, synchronous: str, **kwargs: Any):
        self.synchronous = synchronous
        super().__init__(**kwargs)

    def _create_connection(self) -> sqlite.SQLiteConnection:
        connection = super()._create_connection()
        connection._sqlite_conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return connection


class SQLiteProcessRecorder(sqlite.SQLiteProcessRecorder):
    """eventsourcing's, also recording `more_tracking`: the positions of the other partitions
    a batch decided (see crm_runtime.postgres_store)."""

    records_more_tracking = True  # read by EventStoreHandler

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        returning = super()._insert_events(c, stored_events, **kwargs)
        for tracking in kwargs.get("more_tracking", ()):
            self._insert_tracking(c, tracking)
        return returning


class SQLiteFactory(sqlite.SQLiteFactory):
    """eventsourcing's SQLite factory whose connections use the configured `synchronous`."""

    def __init__(self, env: Any):
        super().__init__(env)
        synchronous = (self.env.get(SYNCHRONOUS) or "NORMAL").upper()
        if synchronous not in MODES:
            raise OSError(f"{SYNCHRONOUS} must be one of {', '.join(MODES)}, not {synchronous!r}")
        pool = self.datastore.pool
        # The pool has made no connection yet; replace it by one that sets the pragma.
        self.datastore.pool = SQLiteConnectionPool(
            synchronous=synchronous, db_name=pool.db_name, lock_timeout=pool.lock_timeout)

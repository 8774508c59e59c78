"""The platform's PostgreSQL process recorder: eventsourcing's, recording more positions.

eventsourcing's process recorder stores one tracking record (a consumer's position) with
the events a batch caused. A consumer that decides the batches of several partitions at
once (crm_runtime.consumer.EventStoreHandler) has a position per partition, all to be
written in the same transaction as the events: `insert_events(..., tracking=first,
more_tracking=[others])`. The SQLite counterpart is crm_runtime.sqlite_store's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing import postgres
from eventsourcing.persistence import StoredEvent


class PostgresProcessRecorder(postgres.PostgresProcessRecorder):
    records_more_tracking = True  # read by EventStoreHandler

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        for tracking in kwargs.get("more_tracking", ()):
            self._insert_tracking(curs, tracking=tracking)
        super()._insert_events(curs, stored_events, **kwargs)

"""A wake-up when events are committed to an application's log.

A follower of the log (the outbox relay, the command dispatcher) that has caught up would
otherwise look again every few milliseconds: on PostgreSQL that is a transaction per look,
a hundred a second per follower, loaded or idle. eventsourcing's PostgreSQL recorder
NOTIFYs its channel with every insert; a thread here LISTENs on it and wakes the follower,
a thread (`wait_blocking`) or a coroutine (`wait`), so it sleeps until there is something
to read. Other stores have no such signal (`available` is False): the follower polls.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from crm_runtime import logs

log = logs.get(__name__)

# A follower woken by commits still reads the log this often when none came: a safety net
# for a notification lost with its connection.
IDLE_LOOK_SECONDS = 1.0


class CommitSignal:
    """`clear()` before reading the log, then `wait(timeout)` when the read found nothing:
    a commit after the clear sets the signal, so none is missed between the two. The
    signal is also set whenever the listening connection is (re)made."""

    def __init__(self, recorder: Any, name: str):
        self.recorder = recorder
        self.name = name
        self.available = isinstance(recorder, PostgresApplicationRecorder)
        self._committed = threading.Event()  # for a follower that is a thread
        self._event = asyncio.Event()  # for one that is a coroutine: set in its loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts listening; called in the follower's event loop, if it has one."""
        if not self.available or self._thread is not None:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._stopped = threading.Event()  # each listening thread has its own: it may be restarted
        self._thread = threading.Thread(target=self._listen, args=(self._stopped,),
                                        name=f"commit-signal-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def clear(self) -> None:
        self._committed.clear()
        self._event.clear()

    def wake(self) -> None:
        """Ends a wait as a commit would (a follower that is stopping)."""
        self._set()

    def wait_blocking(self, timeout: float) -> bool:
        """Waits in a thread until a commit (True) or the timeout (False)."""
        return self._committed.wait(timeout)

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout=timeout)
        except TimeoutError:
            pass

    def _set(self) -> None:
        self._committed.set()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)

    def _listen(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                with self.recorder.datastore.get_connection() as conn:
                    conn.execute(SQL("LISTEN {0}").format(Identifier(self.recorder.channel_name)))
                    self._set()  # what was committed before the LISTEN is read now
                    while not stopped.is_set():
                        # At most 0.5 s per wait, so that a stop is seen; the notifications'
                        # payloads do not matter, only that one came.
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self._set()
            except Exception as exc:  # noqa: BLE001 - the follower polls until it is back
                log.warning("commit_signal.lost", follower=self.name, error=str(exc))
                self._set()
                stopped.wait(1.0)

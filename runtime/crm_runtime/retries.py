"""Retry policies, one per concern, named for what they wait on (tenacity).

Transient failures (a peer down or slow, a store locked, a concurrent write) are retried
until they succeed: skipping them would lose an effect nothing was wrong with. Stopping a
process cancels the wait, so no policy keeps a process from ending on SIGTERM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
    wait_incrementing,
)


class TransientError(Exception):
    """The effect could not be completed now but will succeed later (retry, never skip)."""


def peer_command(before_sleep: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
    """A command to another service: retried while the service is down, slow or busy."""
    return AsyncRetrying(retry=retry_if_exception_type(TransientError), before_sleep=before_sleep,
                         wait=wait_exponential_jitter(initial=0.2, max=10), reraise=True)


def broker_reconnect(stop: threading.Event, before_sleep: Callable[[RetryCallState], None],
                     max_delay: float = 30.0) -> Retrying:
    """A relay after a failed batch (broker down, batch not acknowledged): reconnect and
    send the same batch again, with growing delays, until it goes through or we stop."""
    def sleep(seconds: float) -> None:
        stop.wait(seconds)  # a stop cuts the wait short

    return Retrying(retry=retry_if_exception_type(Exception), stop=lambda _state: stop.is_set(),
                    sleep=sleep, wait=wait_exponential_jitter(initial=0.5, max=max_delay),
                    before_sleep=before_sleep)


def schema_race(errors: type[BaseException] | tuple[type[BaseException], ...], attempts: int = 8) -> Retrying:
    """Creating tables while a twin process creates the same ones (PostgreSQL's CREATE TABLE
    IF NOT EXISTS is not safe against a concurrent twin): the loser finds them next time."""
    return Retrying(retry=retry_if_exception_type(errors), stop=stop_after_attempt(attempts),
                    wait=wait_incrementing(start=0.1, increment=0.1), reraise=True)

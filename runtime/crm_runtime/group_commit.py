"""Group commit: concurrent callers of one write share a transaction.

A capture pays a fixed cost per transaction (catching the index up, the duplicate look-up's
connection, the event store's table lock and commit) and a small cost per lead. Under load
the API's threads call it at once; instead of taking turns, each one queues its item, and
the caller at the head of the queue (the leader) applies everything queued so far, up to
`max_batch`, in one call of `apply`, then hands each caller its own result. A lone caller is
its own leader: no thread, no timer, no added wait. This is the write-queue of LevelDB and
the group commit of database logs, for any application method with a batched form.
"""
from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import Histogram

T = TypeVar("T")
R = TypeVar("R")

BATCH_SIZE = Histogram("crm_group_commit_batch_size", "Callers served by one group commit",
                       ["name"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))


class _Slot(Generic[T, R]):
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: T):
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """`submit(item)` returns `apply(batch)`'s answer for `item`. `apply` receives the items in
    arrival order and returns one answer per item, each a result or the exception that caller
    is to raise; an exception raised by `apply` itself is raised in every caller of the batch.

    `apply` runs in the leader's thread but in an empty context: it works for many callers,
    so it carries none of the leader's request context (trace, principal, log fields). An
    item carries what its own caller's context must contribute (a trace context to store)."""

    def __init__(self, name: str, apply: Callable[[list[T]], Sequence[R | BaseException]],
                 max_batch: int = 64):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.name = name
        self.apply = apply
        self.max_batch = max_batch
        self._turns = threading.Condition()
        self._queue: deque[_Slot[T, R]] = deque()
        self._sizes = BATCH_SIZE.labels(name)

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._turns:
            self._queue.append(slot)
            while not slot.done and self._queue[0] is not slot:
                self._turns.wait()
            if not slot.done:  # the head of the queue: lead a batch
                batch = [self._queue[n] for n in range(min(len(self._queue), self.max_batch))]
        if not slot.done:
            self._lead(batch)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # set by the batch's leader

    def _lead(self, batch: list[_Slot[T, R]]) -> None:
        answers: Sequence[R | BaseException]
        try:
            answers = contextvars.Context().run(self.apply, [slot.item for slot in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{self.name}: {len(answers)} answers for {len(batch)} items")
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch sees it
            answers = [exc] * len(batch)
        with self._turns:
            for slot, answer in zip(batch, answers, strict=True):
                if isinstance(answer, BaseException):
                    slot.error = answer
                else:
                    slot.result = answer
                slot.done = True
                self._queue.popleft()
            self._turns.notify_all()
        self._sizes.observe(len(batch))


def all_or_each(items: list[T], together: Callable[[list[T]], object],
                alone: Callable[[T], object]) -> list[None | BaseException]:
    """The `apply` of a group commit whose items are writes with no result: all of them in
    one call of `together`; when that fails (and so saved nothing), each again in `alone`,
    so that a fault of one item is that item's caller's alone."""
    if len(items) > 1:
        try:
            together(items)
            return [None] * len(items)
        except Exception:  # noqa: BLE001, S110 - nothing was saved: each item alone below
            pass
    answers: list[None | BaseException] = []
    for item in items:
        try:
            alone(item)
            answers.append(None)
        except Exception as exc:  # noqa: BLE001 - this item's caller's answer
            answers.append(exc)
    return answers

"""A gate for group-commit tests: the first caller of a shared write is held inside it
while the others queue behind it, so that the next batch holds them all."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Gate:
    def __init__(self) -> None:
        self.busy, self.release = threading.Event(), threading.Event()

    def hold(self) -> None:
        """Called inside the write by the first caller: waits until the others are queued."""
        self.busy.set()
        self.release.wait(10)

    def run(self, first: Callable[[], None], *others: Callable[[], None]) -> None:
        """Runs `first` until it holds the gate, then `others`; lets them all go once they
        have had the time to queue, and waits for every one."""
        self.busy.clear()
        self.release.clear()
        threads = [threading.Thread(target=first)]
        threads[0].start()
        assert self.busy.wait(10)
        threads += [threading.Thread(target=other) for other in others]
        for thread in threads[1:]:
            thread.start()
        self.release.wait(0.3)  # the others are queued behind the first by now
        self.release.set()
        for thread in threads:
            thread.join(10)

"""Short garbage-collector pauses in the platform's long-running processes.

CPython's cycle collector walks every tracked object on a full (generation 2) pass. A
service process holds a few hundred thousand long-lived objects: modules, classes, protobuf
descriptors, pydantic validators, SQLAlchemy's compiled statements. Under load a full pass
came every few seconds and stopped the whole process for 60–250 ms, so every request and
event in flight waited for it. `gc.freeze()` moves the objects that exist at that moment
out of the collector's reach. Reference counting still frees them; only the cycle scan skips
them. The runtime freezes once when a process starts and once more when its first requests
and batches have filled its caches. This is the standard recipe for long-running servers.
"""

from __future__ import annotations

import gc
import threading

WARM_UP_SECONDS = 15.0  # time for a process's first requests and batches to fill its caches


def freeze_long_lived(warm_up: float = WARM_UP_SECONDS) -> threading.Timer | None:
    """Freezes what the process holds now and again after `warm_up` seconds (0: only now);
    returns the timer of the second freeze."""
    gc.collect()  # garbage is freed first, not frozen
    gc.freeze()
    if warm_up <= 0:
        return None
    timer = threading.Timer(warm_up, _freeze_survivors)
    timer.name = "gc-freeze"
    timer.daemon = True
    timer.start()
    return timer


def _freeze_survivors() -> None:
    # The young generations only: a full pass is the pause this avoids. What the old one holds
    # as garbage is frozen with the rest, once, and is bounded by what one warm-up leaves.
    gc.collect(1)
    gc.freeze()

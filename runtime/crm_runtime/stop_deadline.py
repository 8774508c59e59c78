"""A process asked to stop ends within a deadline, cleanly or not.

Every process of the platform is safe to end abruptly: a consumer's batch is acknowledged
only once committed, a relay's position only once Kafka acknowledged, a dispatcher's only
once the target did. So when a clean stop is held up (a broker, store or peer that does
not answer, a library call that ignores the stop), the process exits anyway once the
deadline passes, inside the 10 s a supervisor (make run, a container runtime) grants
before its SIGKILL. It first logs the stacks of its threads: the next run knows where
the stop was stuck.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading

from crm_runtime import logs

log = logs.get(__name__)

STOP_DEADLINE_SECONDS = 8.0
EXIT_STATUS = 128 + signal.SIGTERM  # what a process ended by SIGTERM reports

_armed = threading.Event()


def arm(seconds: float | None = None) -> None:
    """From now on the process has `seconds` to end by itself; then it exits anyway.
    Arming again changes nothing: the first deadline holds."""
    if _armed.is_set():
        return
    _armed.set()
    limit = STOP_DEADLINE_SECONDS if seconds is None else seconds

    def expire() -> None:
        try:
            log.error("process.stop_deadline", seconds=limit,
                      hint="exiting without a clean stop; the stacks of its threads follow on stderr")
            logging.shutdown()
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        finally:
            os._exit(EXIT_STATUS)

    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.name = "stop-deadline"
    timer.start()

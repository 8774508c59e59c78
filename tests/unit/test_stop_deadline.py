"""A process whose clean stop is held up exits once its stop deadline passes, and says
where it was stuck."""

import subprocess
import sys
import time

STUCK = """
import threading, time
from crm_runtime import stop_deadline
stop_deadline.arm(0.5)
stop_deadline.arm(30)  # a second arming keeps the first deadline
threading.Event().wait()  # a stop that never completes
"""


def test_a_stuck_stop_exits_at_the_deadline_with_the_stacks_of_its_threads():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=20)
    took = time.monotonic() - started
    assert done.returncode == 143  # as if ended by SIGTERM
    assert took < 10
    assert "process.stop_deadline" in done.stdout
    assert "Thread" in done.stderr and "<string>" in done.stderr  # where the main thread waited

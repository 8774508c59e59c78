"""The kit's group commit: callers that arrive while a batch is applied share the next one,
and each gets its own answer."""

import contextvars
import threading
import time

import pytest

from crm_runtime.group_commit import GroupCommit, all_or_each

request = contextvars.ContextVar("request", default=None)


def queued(group: GroupCommit, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(group._queue) < n:
        assert time.monotonic() < deadline, "callers did not queue"
        time.sleep(0.001)


def run_together(group: GroupCommit, first, others, release: threading.Event) -> list:
    """`first` leads a batch that waits for `release`; `others` queue behind it. Returns each
    caller's answer (a result or the exception it raised), in the order given."""
    answers: list = [None] * (1 + len(others))

    def call(n: int, item) -> None:
        request.set(f"caller-{n}")
        try:
            answers[n] = group.submit(item)
        except Exception as exc:  # noqa: BLE001
            answers[n] = exc

    threads = [threading.Thread(target=call, args=(0, first))]
    threads[0].start()
    queued(group, 1)
    for n, item in enumerate(others, start=1):
        threads.append(threading.Thread(target=call, args=(n, item)))
        threads[-1].start()
    queued(group, 1 + len(others))
    release.set()
    for thread in threads:
        thread.join(5)
    return answers


def test_a_lone_caller_is_its_own_batch():
    batches = []
    group = GroupCommit("test.lone", lambda items: batches.append(items) or [item * 2 for item in items])
    assert group.submit(3) == 6
    assert group.submit(4) == 8
    assert batches == [[3], [4]]


def test_callers_arriving_during_a_batch_share_the_next_in_arrival_order():
    batches, release = [], threading.Event()

    def apply(items):
        if not batches:
            release.wait(5)
        batches.append(list(items))
        return [f"done {item}" for item in items]

    group = GroupCommit("test.together", apply)
    answers = run_together(group, 0, [1, 2, 3], release)
    assert answers == ["done 0", "done 1", "done 2", "done 3"]
    assert batches[0] == [0] and sorted(batches[1]) == [1, 2, 3] and len(batches) == 2


def test_max_batch_splits_a_long_queue():
    batches, release = [], threading.Event()

    def apply(items):
        if not batches:
            release.wait(5)
        batches.append(len(items))
        return items

    group = GroupCommit("test.max", apply, max_batch=2)
    assert run_together(group, 0, [1, 2, 3, 4], release) == [0, 1, 2, 3, 4]
    assert batches == [1, 2, 2]


def test_an_answer_that_is_an_exception_is_raised_in_its_caller_only():
    release = threading.Event()
    started = []

    def apply(items):
        if not started:
            started.append(1)
            release.wait(5)
        return [ValueError(f"bad {item}") if item % 2 else item for item in items]

    answers = run_together(GroupCommit("test.errors", apply), 0, [1, 2, 3], release)
    assert answers[0] == 0 and answers[2] == 2
    assert [str(answers[n]) for n in (1, 3)] == ["bad 1", "bad 3"]


def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_runs():
    calls = []

    def apply(items):
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("store unreachable")
        return items

    group = GroupCommit("test.failing", apply)
    with pytest.raises(RuntimeError, match="store unreachable"):
        group.submit(1)
    assert group.submit(2) == 2


def test_a_wrong_number_of_answers_is_an_error_not_a_misdelivery():
    group = GroupCommit("test.count", lambda items: [])
    with pytest.raises(RuntimeError, match="0 answers for 1 items"):
        group.submit(1)


def test_the_batch_runs_without_its_leaders_context():
    seen = []
    group = GroupCommit("test.context", lambda items: seen.append(request.get()) or items)
    request.set("leader's request")
    assert group.submit(1) == 1
    assert seen == [None]


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError):
        GroupCommit("test.zero", lambda items: items, max_batch=0)


def test_all_or_each_tries_each_item_alone_when_the_shared_write_fails():
    written: list[list[int]] = []

    def write(items: list[int]) -> None:
        if 3 in items:
            raise ValueError("item 3 is faulty")
        written.append(items)

    assert all_or_each([1, 2], write, lambda item: write([item])) == [None, None]
    answers = all_or_each([4, 3, 5], write, lambda item: write([item]))
    assert answers[0] is None and isinstance(answers[1], ValueError) and answers[2] is None
    assert written == [[1, 2], [4], [5]]

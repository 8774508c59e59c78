"""The consumer's named retry policies (tenacity): what each retries, how long, and that a
shutdown (cancellation) is never retried."""

import asyncio

import pytest
from tenacity import wait_none

from crm_runtime import consumer

DEFAULT_BACKOFF = consumer.backoff


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(consumer, "backoff", wait_none)


def failing(errors):
    """An async callable raising the given errors in turn, then returning 'done'."""
    calls = []

    async def call():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "done"

    call.calls = calls
    return call


def test_transient_retries_store_and_peer_failures_until_they_pass():
    call = failing([consumer.TransientError("peer")] * 30 + [ConnectionRefusedError()])
    assert asyncio.run(consumer.retry_transient()(call)) == "done"
    assert len(call.calls) == 32


def test_transient_raises_anything_else_at_once():
    call = failing([ValueError("bad event")])
    with pytest.raises(ValueError):
        asyncio.run(consumer.retry_transient()(call))
    assert len(call.calls) == 1


def test_faulty_event_gives_up_after_its_attempts_with_the_last_error():
    call = failing([RuntimeError(f"bug {i}") for i in range(10)])
    with pytest.raises(RuntimeError, match="bug 3"):
        asyncio.run(consumer.retry_faulty_event(4)(call))
    assert len(call.calls) == 4


def test_faulty_event_around_transient_counts_only_the_faults():
    # transient errors in between never use up the event's attempts
    errors = [consumer.TransientError("x"), RuntimeError("a"), consumer.TransientError("y"),
              consumer.TransientError("z"), RuntimeError("b")]
    call = failing(errors)
    result = asyncio.run(consumer.retry_faulty_event(3)(consumer.retry_transient(), call))
    assert result == "done" and len(call.calls) == 6


@pytest.mark.parametrize("policy", [consumer.retry_dead_letter, consumer.retry_positions,
                                    consumer.retry_consumer_fault])
def test_until_done_policies_retry_any_error(policy):
    call = failing([RuntimeError("broker"), OSError("down"), KeyError("x")] * 5)
    assert asyncio.run(policy()(call)) == "done" and len(call.calls) == 16


@pytest.mark.parametrize("policy", [consumer.retry_transient, lambda: consumer.retry_faulty_event(5),
                                    consumer.retry_dead_letter, consumer.retry_positions,
                                    consumer.retry_consumer_fault])
def test_no_policy_retries_a_cancellation(policy):
    call = failing([asyncio.CancelledError()])
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(policy()(call))
    assert len(call.calls) == 1


def test_a_cancelled_back_off_ends_at_once(monkeypatch):
    monkeypatch.setattr(consumer, "backoff", lambda: lambda state: 60.0)  # a long wait

    async def main():
        task = asyncio.ensure_future(consumer.retry_transient()(failing([TimeoutError()] * 5)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), 5))


def test_the_default_back_off_grows_and_is_capped():
    from tenacity import RetryCallState

    wait = DEFAULT_BACKOFF()
    delays = []
    for attempt in (1, 2, 3, 10, 30):
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        delays.append(wait(state))
    assert 0.2 <= delays[0] < 0.3 and delays[1] > delays[0] and delays[2] > delays[1]
    assert 10.0 <= delays[-1] <= 10.06 and delays[-2] <= 10.06

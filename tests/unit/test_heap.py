"""The runtime's collector settings: what exists when a process starts is frozen, and what
its warm-up adds is frozen too."""

import gc
import weakref

import pytest

from crm_runtime import heap


@pytest.fixture(autouse=True)
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


class Kept:
    pass


def test_what_a_process_holds_at_start_leaves_the_collectors_reach():
    held = [Kept() for _ in range(1000)]
    assert heap.freeze_long_lived(warm_up=0) is None
    assert gc.get_freeze_count() >= len(held)
    assert not any(item is held for item in gc.get_objects())  # no pass scans it now


def test_what_the_warm_up_adds_is_frozen_after_it():
    timer = heap.freeze_long_lived(warm_up=60)
    assert timer is not None
    try:
        assert timer.daemon and timer.interval == 60  # it never holds a stopping process up
        warmed = [[Kept()] for _ in range(1000)]
        assert any(item is warmed for item in gc.get_objects())
        timer.function()  # what the timer runs once the warm-up is over
        assert not any(item is warmed for item in gc.get_objects())
    finally:
        timer.cancel()


def test_garbage_is_collected_before_the_freeze_not_kept():
    cycle = [Kept()]
    cycle.append(cycle)
    alive = weakref.ref(cycle[0])
    del cycle
    heap.freeze_long_lived(warm_up=0)
    assert alive() is None  # frozen first, the cycle would never be freed

"""When history judges the log quiet (history_service/batch_activity.py): held conversations
are written then, so a busy log must not look quiet while a long batch is being written."""

import pytest

from history_service.batch_activity import BatchActivity

TICK = 0.25


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_written_for_longer_than_a_tick_is_not_quiet() -> None:
    """The bug: judged from the batch's start, a 1,000-event batch that took the store
    0.6 s looked like the load had stopped, and the held conversations were written after
    nearly every batch."""
    clock = Clock()
    activity = BatchActivity(clock)
    with activity.writing():
        clock.now += 0.6
        assert not activity.quiet_for(TICK)
    assert not activity.quiet_for(TICK)  # the next batch may be starting right now


def test_quiet_once_a_tick_has_passed_since_the_last_batch_ended() -> None:
    clock = Clock()
    activity = BatchActivity(clock)
    assert activity.quiet_for(TICK)  # nothing written yet
    with activity.writing():
        clock.now += 0.1
    clock.now += TICK - 0.01
    assert not activity.quiet_for(TICK)
    clock.now += 0.01
    assert activity.quiet_for(TICK)


def test_a_failed_batch_ends_its_activity_too() -> None:
    clock = Clock()
    activity = BatchActivity(clock)
    with pytest.raises(ConnectionError), activity.writing():
        raise ConnectionError("the store went away")
    clock.now += TICK
    assert activity.quiet_for(TICK)

"""Work queue, wake-up timers and backoff, on a fake clock."""

from __future__ import annotations

import pytest
from fakes import FakeClock
from sprechzimmer.operator.workqueue import RETRY_DELAYS, Backoff, Timers, WorkQueue

pytestmark = pytest.mark.unit
A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")


async def drain(queue: WorkQueue) -> list[tuple[str, str]]:
    taken = []
    while len(queue):
        key = await queue.take()
        taken.append(key)
        queue.done(key)
    return taken


async def test_steps_go_ahead_of_rechecks_but_only_by_the_headstart() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock, headstart=10.0)
    queue.add(A, routine=True)  # order 10
    clock.advance(1)
    queue.add(B)  # order 1: a step, ahead of the re-check
    clock.advance(10)
    queue.add(C)  # order 11: after the re-check, which is never starved
    assert await drain(queue) == [B, A, C]


async def test_a_step_moves_a_queued_recheck_forward_without_a_second_entry() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock, headstart=10.0)
    queue.add(A, routine=True)
    queue.add(B)
    queue.add(A)  # now a step: it leaves its re-check slot, behind B which came first
    assert len(queue) == 2
    assert await drain(queue) == [B, A]
    assert len(queue) == 0


async def test_a_session_is_never_taken_twice_at_once_and_rerun_after_a_late_event() -> None:
    queue = WorkQueue(FakeClock())
    queue.add(A)
    key = await queue.take()
    assert queue.running(key)
    queue.add(A)  # an event while it runs
    assert len(queue) == 0
    queue.done(A)
    assert len(queue) == 1  # queued again, once
    assert await drain(queue) == [A]


async def test_clear_forgets_waiting_sessions() -> None:
    queue = WorkQueue(FakeClock())
    queue.add(A)
    queue.add(B)
    queue.clear()
    assert len(queue) == 0
    queue.add(C)
    assert await drain(queue) == [C]


def test_timers_fire_at_their_deadline_and_the_earliest_wins() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    assert timers.wake_in(A, 5.0)  # the earliest: whoever sleeps should wake up
    assert not timers.wake_in(B, 7.0)
    assert not timers.wake_in(A, 9.0)  # later than the pending one: ignored
    assert timers.seconds_to_next(cap=1.0) == 1.0
    clock.advance(4.9)
    assert timers.due() == []
    assert timers.seconds_to_next(cap=1.0) == pytest.approx(0.1)
    clock.advance(0.1)
    assert timers.due() == [A]
    assert timers.due() == []  # once
    clock.advance(2.0)
    assert timers.due() == [B]


def test_timers_earlier_replaces_later_and_cancel_forgets() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    timers.wake_in(A, 10.0)
    timers.wake_in(A, 2.0)
    timers.wake_in(B, 3.0)
    timers.cancel(B)
    clock.advance(10.0)
    assert timers.due() == [A]  # A once (the replaced entry is skipped), B not at all
    timers.wake_in(C, 1.0)
    timers.clear()
    clock.advance(1.0)
    assert timers.due() == []
    assert len(timers) == 0


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff()
    delays = [backoff.failed(A) for _ in range(len(RETRY_DELAYS) + 2)]
    assert delays == [*RETRY_DELAYS, RETRY_DELAYS[-1], RETRY_DELAYS[-1]]
    assert backoff.failed(B) == RETRY_DELAYS[0]  # per session
    backoff.succeeded(A)
    assert backoff.failed(A) == RETRY_DELAYS[0]

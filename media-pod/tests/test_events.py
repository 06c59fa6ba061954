"""The event log behind ``GET /v1/events``: history, long polls, and answering them at shutdown."""

from __future__ import annotations

import asyncio

import pytest
from sprechzimmer.media.core.control import EventType, LeaveReason
from sprechzimmer.media.events import EventLog

from .support import wait_for

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def test_ids_count_up_and_history_is_bounded() -> None:
    log = EventLog(history=3, clock=lambda: 12.5)
    for name in ("a", "b", "c", "d"):
        log.emit(EventType.JOINED, name)
    assert [(e.id, e.participant_id, e.at) for e in log.after(0)] == [
        (2, "b", 12.5),
        (3, "c", 12.5),
        (4, "d", 12.5),
    ]
    assert [e.id for e in log.after(3)] == [4]
    assert log.after(4) == []


async def test_a_waiting_poll_wakes_on_the_next_event() -> None:
    log = EventLog()
    log.emit(EventType.JOINED, "a")
    assert [e.id for e in await log.wait(0, 30)] == [1]  # already there: at once
    poll = asyncio.ensure_future(log.wait(1, 30))
    await wait_for(lambda: log.waiting == 1, 5, "1 waiting poll(s)")
    log.emit(EventType.LEFT, "a", LeaveReason.BYE)
    (event,) = await asyncio.wait_for(poll, 5)
    assert (event.id, event.type, event.reason) == (2, EventType.LEFT, LeaveReason.BYE)
    assert log.waiting == 0


async def test_a_poll_without_news_ends_empty_after_its_timeout() -> None:
    log = EventLog()
    assert await asyncio.wait_for(log.wait(0, 0.05), 5) == []
    assert log.waiting == 0


async def test_close_answers_open_polls_with_the_final_events_and_later_ones_at_once() -> None:
    log = EventLog()
    polls = [asyncio.ensure_future(log.wait(0, 30)) for _ in range(2)]
    await wait_for(lambda: log.waiting == 2, 5, "2 waiting poll(s)")
    log.emit(EventType.LEFT, "a", LeaveReason.SHUTDOWN)
    await asyncio.wait_for(log.close(within=5), 5)
    assert log.waiting == 0
    for poll in polls:
        assert poll.done()
        assert [e.reason for e in poll.result()] == [LeaveReason.SHUTDOWN]
    assert await asyncio.wait_for(log.wait(1, 30), 1) == []  # closed: no waiting any more


async def test_close_without_news_ends_open_polls_empty() -> None:
    log = EventLog()
    poll = asyncio.ensure_future(log.wait(0, 30))
    await wait_for(lambda: log.waiting == 1, 5, "1 waiting poll(s)")
    await asyncio.wait_for(log.close(within=5), 5)
    assert poll.done()
    assert poll.result() == []

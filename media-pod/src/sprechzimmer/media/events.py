"""The call's event log behind ``GET /v1/events``: the last events, and long polls waiting for more.

Signaling always holds one long poll. ``close()`` wakes every waiting poll and waits (briefly)
until each has taken what it will answer with, so the final ``participant.left`` events of a
shutdown reach signaling before the listener closes; after it, polls answer at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from .core.control import Event, EventType, LeaveReason

EVENT_HISTORY: Final = 1000


class EventLog:
    def __init__(
        self, history: int = EVENT_HISTORY, clock: Callable[[], float] = time.time
    ) -> None:
        self._events: deque[Event] = deque(maxlen=history)
        self._next = 1
        self._clock = clock
        self._changed = asyncio.Event()  # set and replaced on every event (and on close)
        self._waiting = 0
        self._idle = asyncio.Event()  # set while no poll is waiting
        self._idle.set()
        self.closed = False

    @property
    def waiting(self) -> int:
        """Long polls waiting right now."""
        return self._waiting

    def emit(
        self, kind: EventType, participant: str | None, reason: LeaveReason | None = None
    ) -> None:
        self._events.append(Event(self._next, kind, self._clock(), participant, reason))
        self._next += 1
        self._wake()

    def after(self, after: int) -> list[Event]:
        return [e for e in self._events if e.id > after]

    async def wait(self, after: int, seconds: float) -> list[Event]:
        """Events with ``id > after``, waiting up to ``seconds`` for the first one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._waiting += 1
        self._idle.clear()
        try:
            while not (events := self.after(after)) and not self.closed:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
            return events
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._idle.set()

    async def close(self, within: float) -> None:
        """Answer every waiting poll now (and later ones at once); wait up to ``within`` seconds
        until each has its answer."""
        self.closed = True
        self._wake()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

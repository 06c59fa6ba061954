"""Which session to reconcile next: the work queue, the wake-up timers and the retry backoff.

- ``WorkQueue``: each session at most once in the queue and never reconciled twice at once (an
  event for a running session marks it dirty; it is queued again when done). First come, first
  served, except that routine re-checks queue as if they had arrived ``headstart`` later: after
  a takeover, sessions waiting for a step go first, and no re-check is starved for longer.
- ``Timers``: one wake-up per session, the earliest wins (a plan re-plans everything anyway).
- ``Backoff``: growing delays for a session whose reconciles keep failing.

All take a monotonic ``clock`` so tests drive them with a fake one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

Key = tuple[str, str]
Clock = Callable[[], float]

# After a takeover, sessions that wait for a step (new, changed, deleted) go ahead of re-checks
# of settled ones by this much; a bounded head start, so a re-check (e.g. an expiry that fell
# due during the takeover) is never starved by a stream of new sessions.
ROUTINE_HEADSTART = 10.0
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class WorkQueue:
    def __init__(self, clock: Clock = time.monotonic, headstart: float = ROUTINE_HEADSTART):
        self._clock = clock
        self._headstart = headstart
        # (order, arrival, key): the arrival count keeps equal orders first come, first served.
        self._queue: asyncio.PriorityQueue[tuple[float, int, Key]] = asyncio.PriorityQueue()
        self._arrivals = itertools.count()
        self._queued: dict[Key, float] = {}  # key -> order of its live queue entry
        self._running: set[Key] = set()
        self._dirty: set[Key] = set()

    def __len__(self) -> int:
        """Sessions waiting (running ones not counted)."""
        return len(self._queued)

    def add(self, key: Key, *, routine: bool = False) -> None:
        if key in self._running:
            self._dirty.add(key)
            return
        order = self._clock() + (self._headstart if routine else 0.0)
        queued = self._queued.get(key)
        if queued is None or order < queued:
            # A step for a session already queued as a re-check moves it forward: the earlier
            # entry is left in the heap and skipped when it comes up.
            self._queued[key] = order
            self._queue.put_nowait((order, next(self._arrivals), key))

    async def take(self) -> Key:
        """The next session, marked running until ``done``."""
        while True:
            order, _, key = await self._queue.get()
            if self._queued.get(key) != order:
                continue  # superseded by an earlier entry for the same session
            del self._queued[key]
            self._running.add(key)
            return key

    def done(self, key: Key) -> None:
        """Finished with ``key``; queued again if an event arrived while it ran."""
        self._running.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def running(self, key: Key) -> bool:
        return key in self._running

    def clear(self) -> None:
        """Forget everything waiting (a replica going on standby)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queued.clear()


class Timers:
    def __init__(self, clock: Clock = time.monotonic):
        self._clock = clock
        self._heap: list[tuple[float, int, Key]] = []
        self._wake_at: dict[Key, float] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._wake_at)

    def wake_in(self, key: Key, seconds: float) -> bool:
        """Wake ``key`` after ``seconds`` unless an earlier wake-up is pending. True when this
        is now the earliest of all (whoever sleeps until the next one should wake up)."""
        now = self._clock()
        deadline = now + max(0.0, seconds)
        current = self._wake_at.get(key)
        if current is not None and now < current <= deadline:
            return False  # an earlier wake-up is already due; it re-plans anyway
        self._wake_at[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        return self._heap[0][2] == key

    def cancel(self, key: Key) -> None:
        self._wake_at.pop(key, None)

    def due(self) -> list[Key]:
        """Sessions whose wake-up has come, each once; cancelled and replaced ones skipped."""
        now = self._clock()
        keys = []
        while self._heap and self._heap[0][0] <= now:
            deadline, _, key = heapq.heappop(self._heap)
            if self._wake_at.get(key) == deadline:
                del self._wake_at[key]
                keys.append(key)
        return keys

    def seconds_to_next(self, cap: float) -> float:
        """How long to sleep until the next wake-up, at most ``cap``."""
        if not self._heap:
            return cap
        return max(0.0, min(self._heap[0][0] - self._clock(), cap))

    def clear(self) -> None:
        self._heap.clear()
        self._wake_at.clear()


class Backoff:
    def __init__(self, delays: tuple[float, ...] = RETRY_DELAYS):
        self._delays = delays
        self._failures: dict[Key, int] = {}

    def failed(self, key: Key) -> float:
        """The delay before the next attempt: longer with every failure in a row."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return self._delays[min(n, len(self._delays) - 1)]

    def succeeded(self, key: Key) -> None:
        self._failures.pop(key, None)

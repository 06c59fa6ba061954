"""Upstream bandwidth: the minimum of what the subscribers of a video stream can take. No I/O.

Only video is ever limited: REMB names the publisher's video SSRC, so a congested subscriber makes
the sender lower its video bitrate while Opus keeps its few tens of kbit/s.
"""

from __future__ import annotations

from typing import Final

STALE_SECONDS: Final = 5.0  # a subscriber that stopped reporting no longer constrains anyone
MIN_BITRATE: Final = 50_000  # never ask a sender to go below a usable video bitrate


class RembAggregator:
    """Latest estimate per (subscriber, publisher); the target is their minimum."""

    __slots__ = ("_estimates",)

    def __init__(self) -> None:
        self._estimates: dict[tuple[str, str], tuple[int, float]] = {}

    def record(self, subscriber: str, publisher: str, bitrate: int, now: float) -> None:
        self._estimates[(subscriber, publisher)] = (bitrate, now)

    def forget(self, participant: str) -> None:
        """Drop everything a participant reported or was reported about."""
        for key in [k for k in self._estimates if participant in k]:
            del self._estimates[key]

    def target(self, publisher: str, now: float) -> int | None:
        """Bitrate to request from ``publisher``, or None when no subscriber reported."""
        fresh = [
            bitrate
            for (_, pub), (bitrate, at) in self._estimates.items()
            if pub == publisher and now - at <= STALE_SECONDS
        ]
        if not fresh:
            return None
        return max(MIN_BITRATE, min(fresh))

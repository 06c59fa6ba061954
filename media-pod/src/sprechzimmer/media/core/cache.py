"""Per-stream cache of recently forwarded packets, to answer NACKs without the publisher. No I/O."""

from __future__ import annotations

from typing import Final

from .rtp import RtpView

DEFAULT_CAPACITY: Final = 1024  # ~0.7 s of 1.5 Mbit/s video in 1200-byte packets; power of two
MAX_AGE_SECONDS: Final = 1.0  # a retransmission later than this is useless to a receiver


class PacketCache:
    """Ring buffer indexed by the publisher's sequence number (before any rewriting)."""

    __slots__ = ("_mask", "_slots")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self._mask = capacity - 1
        self._slots: list[tuple[RtpView, float] | None] = [None] * capacity

    def put(self, view: RtpView, now: float) -> None:
        self._slots[view.sequence & self._mask] = (view, now)

    def get(self, sequence: int, now: float) -> RtpView | None:
        """The packet with this sequence number, if still cached and fresh enough."""
        entry = self._slots[sequence & self._mask]
        if entry is None:
            return None
        view, stored = entry
        if view.sequence != sequence or now - stored > MAX_AGE_SECONDS:
            return None
        return view

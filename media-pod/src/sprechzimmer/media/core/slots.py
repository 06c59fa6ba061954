"""Which publisher each subscriber's pre-allocated receive slots carry. No I/O.

aiortc cannot renegotiate, so every participant offers its receive slots (one audio and one video
transceiver each) when joining. Publishers are mapped onto free slots as people come and go; a
slot freed by a leaver is reused by the next joiner.
"""

from __future__ import annotations


class SlotTable:
    """Slot assignments of one subscriber."""

    __slots__ = ("_by_publisher", "_slots")

    def __init__(self, slot_count: int) -> None:
        self._slots: list[str | None] = [None] * slot_count
        self._by_publisher: dict[str, int] = {}

    def slot_of(self, publisher: str) -> int | None:
        return self._by_publisher.get(publisher)

    def publisher_in(self, slot: int) -> str | None:
        return self._slots[slot]

    def assign(self, publisher: str) -> int | None:
        """The slot now carrying ``publisher`` (the lowest free one), or None if all are taken."""
        if publisher in self._by_publisher:
            return self._by_publisher[publisher]
        for index, occupant in enumerate(self._slots):
            if occupant is None:
                self._slots[index] = publisher
                self._by_publisher[publisher] = index
                return index
        return None

    def release(self, publisher: str) -> int | None:
        """Free the slot of ``publisher``; returns it, or None if it had none."""
        index = self._by_publisher.pop(publisher, None)
        if index is not None:
            self._slots[index] = None
        return index

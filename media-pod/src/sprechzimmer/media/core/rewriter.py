"""Maps the packets of whichever publisher occupies a slot onto one outgoing stream. No I/O.

A subscriber's slot keeps its SSRC for the whole call; the publisher behind it may change
(someone leaves, someone joins). The outgoing sequence numbers stay contiguous and the timestamps
continue from where the previous source stopped, advanced by the wall-clock gap, so the
subscriber's jitter buffer sees one continuous stream. Video switches only at a key frame (the
caller gates on it), which also resets the receiver's VP8 reference state: picture ids are left
as the publisher wrote them, because they live in the payload, which the SFU never modifies.
"""

from __future__ import annotations

from dataclasses import dataclass

from .rtp import seq_distance


@dataclass(frozen=True, slots=True)
class Mapping:
    """The offsets of one source epoch: out = in + offset (mod 2^16 / 2^32)."""

    source: int  # publisher SSRC
    seq_offset: int
    ts_offset: int
    first_out_seq: int


class SlotRewriter:
    """Sequence/timestamp rewriting for one outgoing stream."""

    __slots__ = (
        "_clock_rate",
        "_last_time",
        "_last_ts",
        "_mapping",
        "_span",
        "_started",
        "last_seq",
        "octets",
        "packets",
    )

    def __init__(self, clock_rate: int, initial_seq: int, initial_ts: int) -> None:
        self._clock_rate = clock_rate
        self._mapping: Mapping | None = None
        self.last_seq = (initial_seq - 1) & 0xFFFF  # highest sequence number sent
        self._last_ts = initial_ts & 0xFFFFFFFF
        self._last_time: float | None = None
        self._started = False
        self._span = 0  # sequence numbers from the epoch's first to last_seq; never wraps
        self.packets = 0
        self.octets = 0

    @property
    def mapping(self) -> Mapping | None:
        return self._mapping

    def reset_source(self) -> None:
        """Forget the current source; the next packet opens a new epoch."""
        self._mapping = None

    def rewrite(
        self, source: int, sequence: int, timestamp: int, now: float
    ) -> tuple[int, int] | None:
        """Outgoing (sequence, timestamp) for a packet of ``source``; opens an epoch if needed.

        None for a late packet from before the epoch began: its number would collide with what
        the previous source already sent on this slot.
        """
        mapping = self._mapping
        if mapping is None or mapping.source != source:
            gap = 1
            if self._last_time is not None:
                gap = max(1, int((now - self._last_time) * self._clock_rate))
            first = (self.last_seq + 1) & 0xFFFF
            ts_base = self._last_ts + gap if self._started else self._last_ts
            mapping = Mapping(
                source=source,
                seq_offset=(first - sequence) & 0xFFFF,
                ts_offset=(ts_base - timestamp) & 0xFFFFFFFF,
                first_out_seq=first,
            )
            self._mapping = mapping
            self._span = -1  # the epoch's first packet brings it to 0
        out_seq = (sequence + mapping.seq_offset) & 0xFFFF
        advance = seq_distance(out_seq, self.last_seq)
        if advance <= 0 and -advance > self._span:
            return None
        out_ts = (timestamp + mapping.ts_offset) & 0xFFFFFFFF
        if not self._started or advance > 0:
            self._span += advance
            self.last_seq = out_seq
            self._last_ts = out_ts
            self._last_time = now
            self._started = True
        return out_seq, out_ts

    def source_sequence(self, out_seq: int) -> int | None:
        """The publisher's sequence number behind ``out_seq``, if it belongs to this epoch."""
        mapping = self._mapping
        if mapping is None:
            return None
        age = seq_distance(self.last_seq, out_seq)
        if age < 0 or age > self._span:
            return None
        return (out_seq - mapping.seq_offset) & 0xFFFF

    def source_timestamp_offset(self, source: int) -> int | None:
        """Offset to add to ``source``'s RTP timestamps (for its sender reports), if current."""
        mapping = self._mapping
        if mapping is None or mapping.source != source:
            return None
        return mapping.ts_offset

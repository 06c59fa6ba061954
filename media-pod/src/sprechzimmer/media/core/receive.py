"""Reception statistics of one incoming stream and the NACKs the SFU owes its publisher. No I/O.

Follows RFC 3550 appendix A.1/A.3/A.8 (sequence tracking, loss, interarrival jitter). Missing
packets are NACKed towards the publisher at once and retried a few times, so upstream loss is
repaired before subscribers notice; subscribers get the repaired packet as an ordinary
(late) packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .rtcp import ReportBlock
from .rtp import seq_distance

MAX_DROPOUT: Final = 3000  # a larger jump restarts the sequence (RFC 3550 A.1)
MAX_NACK_GAP: Final = 100  # do not NACK bursts larger than this: ask for a key frame instead
NACK_RETRIES: Final = 3
NACK_RETRY_SECONDS: Final = 0.05
NACK_GIVE_UP_SECONDS: Final = 0.5


@dataclass(slots=True)
class _Missing:
    first_seen: float
    last_nack: float | None = None
    attempts: int = 0


class ReceiveStats:
    """Sequence, loss and jitter bookkeeping for one publisher stream."""

    __slots__ = (
        "_base_seq",
        "_clock_rate",
        "_cycles",
        "_expected_prior",
        "_jitter",
        "_max_seq",
        "_missing",
        "_received_prior",
        "_transit",
        "given_up",
        "received",
    )

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self._base_seq: int | None = None
        self._max_seq = 0
        self._cycles = 0
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter = 0.0
        self._transit: float | None = None
        self._missing: dict[int, _Missing] = {}
        self.given_up = 0

    def update(self, sequence: int, timestamp: int, now: float) -> bool:
        """Account for one packet; True when it revealed newly missing packets."""
        self.received += 1
        transit = now * self._clock_rate - timestamp
        if self._transit is not None:
            delta = abs(transit - self._transit)
            if delta < self._clock_rate * 10:  # ignore timestamp jumps (source restarts)
                self._jitter += (delta - self._jitter) / 16.0
        self._transit = transit
        if self._base_seq is None:
            self._base_seq = sequence
            self._max_seq = sequence
            return False
        distance = seq_distance(sequence, self._max_seq)
        if distance > 0:
            if distance > MAX_DROPOUT:
                self._missing.clear()
            elif distance > 1 and distance <= MAX_NACK_GAP:
                for k in range(1, distance):
                    self._missing.setdefault((self._max_seq + k) & 0xFFFF, _Missing(now))
            if sequence < self._max_seq:
                self._cycles += 0x10000
            self._max_seq = sequence
            return distance > 1 and distance <= MAX_NACK_GAP
        self._missing.pop(sequence, None)
        return False

    def nacks_due(self, now: float) -> list[int]:
        """Sequence numbers to NACK now; stale entries are given up."""
        due: list[int] = []
        for seq, entry in list(self._missing.items()):
            if entry.attempts >= NACK_RETRIES or now - entry.first_seen > NACK_GIVE_UP_SECONDS:
                del self._missing[seq]
                self.given_up += 1
                continue
            if entry.last_nack is None or now - entry.last_nack >= NACK_RETRY_SECONDS:
                entry.last_nack = now
                entry.attempts += 1
                due.append(seq)
        return due

    @property
    def extended_max(self) -> int:
        return self._cycles + self._max_seq

    @property
    def lost(self) -> int:
        if self._base_seq is None:
            return 0
        return max(0, self.extended_max - self._base_seq + 1 - self.received)

    def report_block(self, ssrc: int, lsr: int, dlsr: int) -> ReportBlock:
        """The block for a receiver report now; advances the fraction-lost interval."""
        expected = 0 if self._base_seq is None else self.extended_max - self._base_seq + 1
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            packets_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=int(self._jitter),
            lsr=lsr,
            dlsr=dlsr,
        )

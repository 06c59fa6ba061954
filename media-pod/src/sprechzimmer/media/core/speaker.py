"""Active-speaker detection from the audio-level header extension (RFC 6464). No I/O.

Nothing is decoded: each Opus packet's extension carries the sender's level in -dBov (0 loudest,
127 silence). Levels are smoothed per publisher; the dominant speaker changes only when another
publisher has been clearly louder for a while, so the UI does not flicker between people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SILENCE_DBOV: Final = 127
SPEECH_THRESHOLD: Final = 40.0  # smoothed loudness (127 - dBov) that counts as speaking
SWITCH_MARGIN: Final = 6.0  # dB a challenger must lead by
SWITCH_HOLD_SECONDS: Final = 0.6  # ... for this long
DECAY_SECONDS: Final = 0.3  # time constant of the smoothing


@dataclass(slots=True)
class _Level:
    loudness: float = 0.0
    updated: float = 0.0


class ActiveSpeaker:
    """Tracks the dominant speaker among the publishers of one call."""

    __slots__ = ("_challenger", "_challenger_since", "_levels", "current")

    def __init__(self) -> None:
        self._levels: dict[str, _Level] = {}
        self.current: str | None = None
        self._challenger: str | None = None
        self._challenger_since = 0.0

    def observe(self, publisher: str, level_dbov: int, now: float) -> None:
        """Account for one audio packet's level (0..127 -dBov)."""
        entry = self._levels.get(publisher)
        if entry is None:
            entry = self._levels[publisher] = _Level(updated=now)
        loudness = float(SILENCE_DBOV - min(SILENCE_DBOV, max(0, level_dbov)))
        alpha = min(1.0, max(0.0, now - entry.updated) / DECAY_SECONDS) or 0.02
        entry.loudness += (loudness - entry.loudness) * alpha
        entry.updated = now

    def forget(self, publisher: str) -> None:
        self._levels.pop(publisher, None)
        if self.current == publisher:
            self.current = None
        if self._challenger == publisher:
            self._challenger = None

    def _loudness(self, publisher: str, now: float) -> float:
        entry = self._levels.get(publisher)
        if entry is None or now - entry.updated > 1.0:  # muted or gone: silence
            return 0.0
        return entry.loudness

    def decide(self, now: float) -> str | None:
        """Re-evaluate; returns the new dominant speaker when it changed, else None."""
        if not self._levels:
            return None
        loudest = max(self._levels, key=lambda p: self._loudness(p, now))
        top = self._loudness(loudest, now)
        if top < SPEECH_THRESHOLD or loudest == self.current:
            self._challenger = None
            return None
        if self.current is not None and top < self._loudness(self.current, now) + SWITCH_MARGIN:
            self._challenger = None
            return None
        if self._challenger != loudest:
            self._challenger = loudest
            self._challenger_since = now
        if self.current is not None and now - self._challenger_since < SWITCH_HOLD_SECONDS:
            return None
        self.current = loudest
        self._challenger = None
        return loudest

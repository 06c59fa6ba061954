"""Active-speaker detection (pure)."""

from __future__ import annotations

import pytest
from sprechzimmer.media.core.speaker import ActiveSpeaker

pytestmark = pytest.mark.unit


def feed(
    detector: ActiveSpeaker, levels: dict[str, int], start: float, seconds: float
) -> list[str]:
    changes = []
    t = start
    while t < start + seconds:
        for who, level in levels.items():
            detector.observe(who, level, t)
        changed = detector.decide(t)
        if changed:
            changes.append(changed)
        t += 0.02
    return changes


def test_loudest_becomes_speaker_and_switch_needs_a_clear_lead() -> None:
    d = ActiveSpeaker()
    assert feed(d, {"a": 20, "b": 90}, 0.0, 1.0) == ["a"]
    assert feed(d, {"a": 22, "b": 20}, 1.0, 2.0) == []  # b is only 2 dB louder
    assert feed(d, {"a": 90, "b": 15}, 3.0, 2.0) == ["b"]


def test_silence_elects_nobody_and_forget_clears() -> None:
    d = ActiveSpeaker()
    assert feed(d, {"a": 127, "b": 120}, 0.0, 1.0) == []
    feed(d, {"a": 10}, 1.0, 1.0)
    assert d.current == "a"
    d.forget("a")
    assert d.current is None

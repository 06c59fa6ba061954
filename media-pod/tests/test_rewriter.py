"""Slot rewriting across source switches (pure)."""

from __future__ import annotations

import pytest
from sprechzimmer.media.core.rewriter import SlotRewriter

pytestmark = pytest.mark.unit


def test_first_source_starts_at_initial_values() -> None:
    r = SlotRewriter(90000, initial_seq=500, initial_ts=1000)
    assert r.rewrite(source=1, sequence=40000, timestamp=7, now=0.0) == (500, 1000)
    assert r.rewrite(source=1, sequence=40001, timestamp=3007, now=0.033) == (501, 4000)


def test_switch_keeps_sequence_contiguous_and_time_continuous() -> None:
    r = SlotRewriter(90000, initial_seq=65534, initial_ts=0xFFFFFF00)
    r.rewrite(1, 10, 100, 0.0)
    r.rewrite(1, 11, 100, 0.0)
    r.reset_source()
    seq, ts = r.rewrite(2, 9000, 5, 1.0)
    assert seq == 0  # 65535 + 1 wraps
    assert ts == (0xFFFFFF00 + 90000) & 0xFFFFFFFF


def test_late_packets_map_with_the_same_offset() -> None:
    r = SlotRewriter(48000, 100, 0)
    r.rewrite(1, 10, 0, 0.0)
    r.rewrite(1, 12, 1920, 0.04)
    assert r.rewrite(1, 11, 960, 0.05) == (101, 960)
    assert r.last_seq == 102


def test_source_sequence_translates_only_the_current_epoch() -> None:
    r = SlotRewriter(90000, 100, 0)
    r.rewrite(1, 10, 0, 0.0)
    r.rewrite(1, 11, 0, 0.0)
    assert r.source_sequence(101) == 11
    assert r.source_sequence(102) is None  # not sent yet
    r.reset_source()
    r.rewrite(2, 500, 0, 1.0)
    assert r.source_sequence(101) is None  # belonged to the previous source
    assert r.source_sequence(102) == 500
    assert r.source_timestamp_offset(1) is None
    assert r.source_timestamp_offset(2) is not None


def test_packets_from_before_a_switch_are_refused() -> None:
    r = SlotRewriter(90000, 100, 0)
    r.rewrite(1, 10, 0, 0.0)
    r.reset_source()
    assert r.rewrite(2, 500, 0, 1.0) == (101, 90000)
    assert r.rewrite(2, 499, 0, 1.0) is None  # reordered, older than the key frame


def test_long_epochs_keep_working_across_sequence_wraps() -> None:
    """Regression: an epoch longer than 32768 packets must still map late packets and NACKs."""
    r = SlotRewriter(90000, 40000, 0)
    for seq in range(70000):
        assert r.rewrite(1, seq & 0xFFFF, seq * 10, seq / 1000) is not None
    newest = r.last_seq
    late = (69990 + 40000) & 0xFFFF
    assert r.rewrite(1, 69990 & 0xFFFF, 699900, 70.0) == (late, 699900)
    assert r.source_sequence(newest) == 69999 & 0xFFFF
    assert r.source_sequence((newest - 500) & 0xFFFF) == (69999 - 500) & 0xFFFF

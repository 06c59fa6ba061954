"""Reception statistics and upstream NACK scheduling (pure)."""

from __future__ import annotations

import pytest
from sprechzimmer.media.core.receive import NACK_RETRIES, NACK_RETRY_SECONDS, ReceiveStats

pytestmark = pytest.mark.unit


def test_gap_is_nacked_then_retried_then_given_up() -> None:
    stats = ReceiveStats(90000)
    assert not stats.update(10, 0, 0.0)
    assert stats.update(13, 0, 0.01)
    assert stats.nacks_due(0.01) == [11, 12]
    assert stats.nacks_due(0.02) == []
    now = 0.01
    for _ in range(NACK_RETRIES - 1):
        now += NACK_RETRY_SECONDS + 0.001
        assert stats.nacks_due(now) == [11, 12]
    assert stats.nacks_due(now + NACK_RETRY_SECONDS + 0.001) == []
    assert stats.given_up == 2


def test_recovered_packet_is_not_nacked_again() -> None:
    stats = ReceiveStats(90000)
    stats.update(65534, 0, 0.0)
    stats.update(1, 0, 0.0)  # wraps, 65535 and 0 missing
    stats.update(0, 0, 0.0)
    assert stats.nacks_due(0.0) == [65535]
    assert stats.extended_max == 0x10000 + 1


def test_report_block_counts_loss_and_fraction() -> None:
    stats = ReceiveStats(48000)
    for seq in (1, 2, 3, 5, 6, 7, 8, 9, 10, 11):
        stats.update(seq, seq * 960, seq * 0.02)
    block = stats.report_block(ssrc=42, lsr=0, dlsr=0)
    assert block.packets_lost == 1
    assert block.fraction_lost == (1 << 8) // 11
    assert block.highest_sequence == 11
    assert stats.report_block(42, 0, 0).fraction_lost == 0  # new interval, nothing lost


def test_large_jump_is_a_restart_not_a_burst_to_nack() -> None:
    stats = ReceiveStats(90000)
    stats.update(1, 0, 0.0)
    assert not stats.update(20000, 0, 0.0)
    assert stats.nacks_due(0.0) == []

"""Packet cache (pure)."""

from __future__ import annotations

import pytest
from sprechzimmer.media.core.cache import PacketCache
from sprechzimmer.media.core.rtp import RtpView

pytestmark = pytest.mark.unit


def view(seq: int) -> RtpView:
    return RtpView(b"", 0, 96, seq, 0, 1, 12, 0, None, -1, False)


def test_returns_cached_packet_by_sequence() -> None:
    cache = PacketCache(8)
    cache.put(view(5), 0.0)
    assert cache.get(5, 0.1) is not None
    assert cache.get(6, 0.1) is None


def test_overwritten_and_stale_entries_are_gone() -> None:
    cache = PacketCache(8)
    cache.put(view(1), 0.0)
    cache.put(view(9), 0.0)  # same ring position
    assert cache.get(1, 0.0) is None
    assert cache.get(9, 5.0) is None


def test_capacity_must_be_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        PacketCache(1000)

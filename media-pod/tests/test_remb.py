"""REMB aggregation (pure)."""

from __future__ import annotations

import pytest
from sprechzimmer.media.core.remb import MIN_BITRATE, STALE_SECONDS, RembAggregator

pytestmark = pytest.mark.unit


def test_target_is_minimum_of_fresh_subscribers() -> None:
    remb = RembAggregator()
    assert remb.target("alice", 0.0) is None
    remb.record("bob", "alice", 1_500_000, 0.0)
    remb.record("carol", "alice", 300_000, 0.0)
    remb.record("bob", "dave", 100_000, 0.0)
    assert remb.target("alice", 1.0) == 300_000
    remb.record("bob", "alice", 900_000, STALE_SECONDS)
    assert remb.target("alice", STALE_SECONDS + 1.0) == 900_000  # carol is stale


def test_forgotten_participants_no_longer_constrain() -> None:
    remb = RembAggregator()
    remb.record("bob", "alice", 10, 0.0)
    assert remb.target("alice", 0.0) == MIN_BITRATE
    remb.forget("bob")
    assert remb.target("alice", 0.0) is None

from __future__ import annotations

from datetime import timedelta

import pytest
from operator_builders import at, iso
from sprechzimmer.operator.core.leadership import is_active, priority_for

pytestmark = pytest.mark.unit


def peer(priority: int, seen_s: float, lifetime: int = 8) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": iso(at(seen_s))}


@pytest.mark.parametrize(
    ("peers", "active"),
    [
        ({}, True),
        ({"me": peer(5, 0)}, True),
        ({"me": peer(5, 0), "old": peer(9, 0)}, False),  # a live older replica leads
        ({"me": peer(5, 0), "old": peer(9, -10)}, True),  # it died: take over
        ({"me": peer(5, 0), "young": peer(1, 0)}, True),
        ({"me": peer(5, 0), "twin": peer(5, 0)}, False),  # Kopf pauses both on a tie
    ],
)
def test_is_active(peers: dict[str, dict[str, object]], active: bool) -> None:
    assert is_active(peers, "me", 5, at(1)) is active


def test_older_replicas_get_higher_priorities_below_2_pow_53() -> None:
    old, young = priority_for(at(0), 0), priority_for(at(0) + timedelta(milliseconds=1), 99)
    assert old > young > 0
    assert old < 2**53

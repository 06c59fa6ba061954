"""What signaling writes into status.presence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import T0
from sprechzimmer.signaling.core import presence
from sprechzimmer.signaling.core.room import Presence

pytestmark = pytest.mark.unit
LATER = T0 + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("current", "now", "expected"),
    [
        (
            {},
            Presence(0, False),
            {
                "connected": 0,
                "hostConnected": False,
                "peak": 0,
                "changedAt": "2026-11-21T10:00:05Z",
                "vouchedBy": "sig-a",
            },
        ),
        (
            {},
            Presence(2, True),
            {
                "connected": 2,
                "hostConnected": True,
                "peak": 2,
                "changedAt": "2026-11-21T10:00:05Z",
                "vouchedBy": "sig-a",
            },
        ),
        # peak never goes down, changedAt moves with connected
        (
            {
                "connected": 2,
                "peak": 3,
                "hostConnected": True,
                "changedAt": "x",
                "vouchedBy": "sig-a",
            },
            Presence(1, False),
            {
                "connected": 1,
                "hostConnected": False,
                "peak": 3,
                "changedAt": "2026-11-21T10:00:05Z",
                "vouchedBy": "sig-a",
            },
        ),
        # nothing changed: nothing to write
        (
            {
                "connected": 2,
                "peak": 2,
                "hostConnected": True,
                "changedAt": "x",
                "vouchedBy": "sig-a",
            },
            Presence(2, True),
            None,
        ),
        # another replica vouched: take over without moving changedAt
        (
            {
                "connected": 2,
                "peak": 2,
                "hostConnected": True,
                "changedAt": "x",
                "vouchedBy": "sig-b",
            },
            Presence(2, True),
            {
                "connected": 2,
                "hostConnected": True,
                "peak": 2,
                "changedAt": "x",
                "vouchedBy": "sig-a",
            },
        ),
        # nobody here and somebody else vouched for nobody: leave it
        (
            {
                "connected": 0,
                "peak": 2,
                "hostConnected": False,
                "changedAt": "x",
                "vouchedBy": "sig-b",
            },
            Presence(0, False),
            None,
        ),
    ],
)
def test_patch(current: dict, now: Presence, expected: dict | None) -> None:
    result = presence.patch(current, now, "sig-a", LATER)
    assert result == (None if expected is None else {"status": {"presence": expected}})

"""A participant's state machine: one ``_set_state()`` logs "old -> new" and emits the event."""

from __future__ import annotations

import logging

import pytest
from aiortc import RTCPeerConnection
from sprechzimmer.media.core.control import EventType, LeaveReason
from sprechzimmer.media.events import EventLog
from sprechzimmer.media.participant import Counters, Participant, State

pytestmark = pytest.mark.unit


class NoRouter:
    """Nothing is forwarded in this test; the participant only needs somewhere to count."""

    counters = Counters()

    def forward_rtp(self, p: Participant, data: bytes) -> None:
        raise AssertionError("no media in this test")

    def handle_rtcp(self, p: Participant, data: bytes) -> None:
        raise AssertionError("no media in this test")


async def test_each_state_change_is_logged_and_emitted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = EventLog()
    pc = RTCPeerConnection()
    p = Participant(NoRouter(), events, "client-1", pc, now=0.0)
    assert p.state is State.NEW
    caplog.set_level(logging.INFO, logger="sprechzimmer.media.participant")
    p._set_state(State.JOINING)
    p._set_state(State.CONNECTED)
    p._set_state(State.CONNECTED)  # no change: nothing logged or emitted
    p._set_state(State.LEFT, LeaveReason.TIMEOUT)
    await pc.close()
    assert [(e.type, e.participant_id, e.reason) for e in events.after(0)] == [
        (EventType.JOINED, "client-1", None),
        (EventType.CONNECTED, "client-1", None),
        (EventType.LEFT, "client-1", LeaveReason.TIMEOUT),
    ]
    changes = [(r.old, r.new, getattr(r, "reason", None)) for r in caplog.records]  # type: ignore[attr-defined]
    assert changes == [
        ("new", "joining", None),
        ("joining", "connected", None),
        ("connected", "left", "timeout"),
    ]
    assert all(r.participant == p.log_id for r in caplog.records)  # type: ignore[attr-defined]
    assert "client-1" not in caplog.text  # logs carry the log id, never the participant id

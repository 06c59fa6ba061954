"""Control-API message parsing (pure)."""

from __future__ import annotations

import pytest
from sprechzimmer.media.core.control import (
    CandidateRequest,
    ControlError,
    CredentialsRequest,
    Event,
    EventType,
    JoinRequest,
    LeaveReason,
    candidate_is_loopback,
    filter_offer_candidates,
)

pytestmark = pytest.mark.unit

RELAY = "candidate:1 1 udp 16777215 127.0.0.1 50000 typ relay raddr 0.0.0.0 rport 0"


def test_join_request_round_trip() -> None:
    request = JoinRequest.parse({"participantId": "host-1", "type": "offer", "sdp": "v=0\r\n"})
    assert request == JoinRequest("host-1", "v=0\r\n")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ([], 400, "JSON object"),
        ({"participantId": "Bad Name", "sdp": "v=0"}, 400, "DNS-1123"),
        ({"participantId": "a", "type": "answer", "sdp": "v=0"}, 400, "type must be 'offer'"),
        ({"participantId": "a", "sdp": 5}, 400, "sdp must be"),
        ({"participantId": "a", "sdp": "v=0" + "x" * 40000}, 413, "larger than"),
    ],
)
def test_join_request_errors(body: object, status: int, message: str) -> None:
    with pytest.raises(ControlError, match=message) as error:
        JoinRequest.parse(body)
    assert error.value.status == status


def test_candidates() -> None:
    parsed = CandidateRequest.parse({"candidate": RELAY, "sdpMid": "0", "sdpMLineIndex": 0})
    assert parsed.usable
    assert CandidateRequest.parse({"candidate": None}).candidate is None
    host = CandidateRequest.parse({"candidate": RELAY.replace("127.0.0.1", "192.168.1.7")})
    assert not host.usable
    mdns = CandidateRequest.parse({"candidate": RELAY.replace("127.0.0.1", "abc.local")})
    assert not mdns.usable
    with pytest.raises(ControlError, match="not a valid ICE candidate"):
        CandidateRequest.parse({"candidate": "candidate:; rm -rf /"})
    with pytest.raises(ControlError, match="sdpMLineIndex"):
        CandidateRequest.parse({"candidate": RELAY, "sdpMLineIndex": -1})


def test_offer_candidates_are_filtered_to_loopback() -> None:
    sdp = f"v=0\r\na={RELAY}\r\na={RELAY.replace('127.0.0.1', '10.1.2.3')}\r\n"
    filtered, dropped = filter_offer_candidates(sdp)
    assert dropped == 1
    assert "10.1.2.3" not in filtered
    assert candidate_is_loopback(RELAY)


def test_credentials_request() -> None:
    assert CredentialsRequest.parse(None).ttl_seconds == 3600
    assert CredentialsRequest.parse({"ttlSeconds": 120}).ttl_seconds == 120
    with pytest.raises(ControlError):
        CredentialsRequest.parse({"ttlSeconds": 10})


def test_event_serialization_has_no_more_than_ids() -> None:
    event = Event(3, EventType.LEFT, 1700000000.1234, "client-2", LeaveReason.TIMEOUT)
    assert event.serialize() == {
        "id": 3,
        "type": "participant.left",
        "at": 1700000000.123,
        "participantId": "client-2",
        "reason": "timeout",
    }

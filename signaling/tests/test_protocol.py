"""Protocol v1: every client message parses, every malformed one is refused with its close code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sprechzimmer.signaling.core import protocol
from sprechzimmer.signaling.core.protocol import (
    CloseCode,
    CodeAuth,
    E2e,
    Ended,
    EndReason,
    Error,
    ErrorCode,
    Hello,
    Ice,
    IceServer,
    Join,
    LinkAuth,
    ProtocolError,
    Role,
    RoomState,
    Sdp,
    Welcome,
)

pytestmark = pytest.mark.unit
PEER = "p-0123456789"


def frame(**fields: Any) -> str:
    return json.dumps({"v": 1, **fields})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            frame(type="hello", auth={"link": "ab" * 32}),
            Hello(LinkAuth("ab" * 32)),
        ),
        (
            frame(type="hello", auth={"host": "dr-muster", "code": "c3f e04 D96"}, lang="en"),
            Hello(CodeAuth("dr-muster", "c3f e04 D96"), lang="en"),
        ),
        (
            frame(type="hello", auth={"link": "x"}, resume="r" * 20),
            Hello(LinkAuth("x"), resume="r" * 20),
        ),
        (frame(type="join"), Join()),
        (frame(type="join", name="  Frau M. "), Join("Frau M.")),
        (frame(type="join", name=""), Join()),
        (
            frame(type="sdp", to=PEER, description={"type": "answer", "sdp": "v=0"}),
            Sdp(PEER, "answer", "v=0"),
        ),
        (
            frame(type="sdp", to="sfu", description={"type": "offer", "sdp": "v=0"}),
            Sdp("sfu", "offer", "v=0"),
        ),
        (frame(type="ice", to=PEER, candidate=None), Ice(PEER, None)),
        (
            frame(
                type="ice",
                to="sfu",
                candidate={
                    "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ relay",
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                },
            ),
            Ice("sfu", protocol.Candidate("candidate:1 1 udp 1 1.2.3.4 5 typ relay", "0", 0)),
        ),
        (frame(type="e2e", to="*", payload="AbC-_d=="), E2e("*", "AbC-_d==")),
        (frame(type="leave"), protocol.Leave()),
        (frame(type="ping"), protocol.Ping()),
    ],
)
def test_parses(text: str, expected: object) -> None:
    assert protocol.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "close", "needle"),
    [
        ("not json", CloseCode.BAD_MESSAGE, "not JSON"),
        ("[" * 60000 + "]" * 60000, CloseCode.TOO_BIG, "larger than"),
        ("[" * 30000 + "]" * 30000, CloseCode.BAD_MESSAGE, "not JSON"),  # recursion
        ('{"v":1,"type":"ping"}\x00', CloseCode.BAD_MESSAGE, "not JSON"),
        ("[1, 2]", CloseCode.BAD_MESSAGE, "object"),
        (json.dumps({"type": "ping"}), CloseCode.BAD_MESSAGE, "version"),
        (json.dumps({"v": 2, "type": "ping"}), CloseCode.BAD_MESSAGE, "version"),
        (json.dumps({"v": True, "type": "ping"}), CloseCode.BAD_MESSAGE, "version"),
        (frame(type="shout"), CloseCode.BAD_MESSAGE, "unknown message type"),
        (frame(type=7), CloseCode.BAD_MESSAGE, "unknown message type"),
        (frame(type="ping", extra=1), CloseCode.BAD_MESSAGE, "unknown field 'extra'"),
        (frame(type="hello"), CloseCode.BAD_MESSAGE, "missing field 'auth'"),
        (frame(type="hello", auth={"host": "a"}), CloseCode.BAD_MESSAGE, "{host, code}"),
        (frame(type="hello", auth="x"), CloseCode.BAD_MESSAGE, "object"),
        (frame(type="hello", auth={"link": 5}), CloseCode.BAD_MESSAGE, "string"),
        (frame(type="hello", auth={"link": "a"}, lang="fr"), CloseCode.BAD_MESSAGE, "lang"),
        (frame(type="join", name="x" * 65), CloseCode.BAD_MESSAGE, "longer than 64"),
        (frame(type="join", name="a\nb"), CloseCode.BAD_MESSAGE, "control characters"),
        (
            frame(type="sdp", to="bob", description={"type": "offer", "sdp": "v"}),
            CloseCode.BAD_MESSAGE,
            "peer id",
        ),
        (
            frame(type="sdp", to="sfu", description={"type": "answer", "sdp": "v"}),
            CloseCode.BAD_MESSAGE,
            "must be an offer",
        ),
        (
            frame(type="sdp", to=PEER, description={"type": "pranswer", "sdp": "v"}),
            CloseCode.BAD_MESSAGE,
            "'offer' or 'answer'",
        ),
        (
            frame(type="sdp", to=PEER, description={"type": "offer", "sdp": "v" * 40000}),
            CloseCode.BAD_MESSAGE,
            "longer than",
        ),
        (
            frame(type="ice", to=PEER, candidate={"candidate": "c", "sdpMLineIndex": -1}),
            CloseCode.BAD_MESSAGE,
            "sdpMLineIndex",
        ),
        (
            frame(type="ice", to=PEER, candidate={"candidate": "c", "sdpMLineIndex": True}),
            CloseCode.BAD_MESSAGE,
            "sdpMLineIndex",
        ),
        (
            frame(type="ice", to=PEER, candidate={"sdpMid": "0"}),
            CloseCode.BAD_MESSAGE,
            "missing field 'candidate'",
        ),
        (
            frame(type="ice", to=PEER, candidate={"candidate": "c", "sdpMid": "a b"}),
            CloseCode.BAD_MESSAGE,
            "sdpMid",
        ),
        (frame(type="e2e", to=PEER, payload="not base64!"), CloseCode.BAD_MESSAGE, "base64url"),
        (frame(type="e2e", to="sfu", payload="AA"), CloseCode.BAD_MESSAGE, "peer id or '*'"),
        (
            frame(type="e2e", to="*", payload="A" * (16 * 1024 + 1)),
            CloseCode.BAD_MESSAGE,
            "longer than",
        ),
        (frame(type="ping", pad="x" * 70000), CloseCode.TOO_BIG, "larger than 65536"),
        (b'{"v":1,"type":"ping"}', CloseCode.BAD_MESSAGE, "binary"),
    ],
)
def test_refuses(text: str | bytes, close: CloseCode, needle: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.parse(text)
    assert caught.value.close == close
    assert needle in caught.value.reason


def test_relays_carry_from_instead_of_to() -> None:
    sdp = protocol.parse(frame(type="sdp", to=PEER, description={"type": "offer", "sdp": "v=0"}))
    assert isinstance(sdp, Sdp)
    assert sdp.relayed("p-aaaaaaaaaa") == {
        "v": 1,
        "type": "sdp",
        "from": "p-aaaaaaaaaa",
        "description": {"type": "offer", "sdp": "v=0"},
    }
    ice = protocol.parse(frame(type="ice", to=PEER, candidate=None))
    assert isinstance(ice, Ice)
    assert ice.relayed("p-aaaaaaaaaa")["candidate"] is None


def test_server_messages_serialize() -> None:
    welcome = Welcome(
        you=PEER,
        role=Role.CLIENT,
        resume="t",
        mode="PeerToPeer",
        scheduled_start="2026-11-21T10:00:00Z",
        expires_at="2026-11-22T10:00:00Z",
        state=RoomState.WAITING,
        ice_servers=(IceServer(("turn:a:1",), "u", "c"),),
        relay_only=True,
        max_participants=2,
    )
    obj = json.loads(protocol.encode(welcome))
    assert obj["type"] == "welcome"
    assert obj["iceTransportPolicy"] == "relay"
    assert obj["iceServers"] == [{"urls": ["turn:a:1"], "username": "u", "credential": "c"}]
    assert obj["state"] == "waiting"
    assert Error(ErrorCode.RATE_LIMITED, retry_after=3).serialize()["retryAfter"] == 3
    assert Error(ErrorCode.RATE_LIMITED).close == CloseCode.RATE_LIMITED
    assert Error(ErrorCode.FULL).close == CloseCode.CONFLICT
    assert Error(ErrorCode.EXPIRED).close == CloseCode.ENDED
    assert Ended(EndReason.REPLACED).close == CloseCode.CONFLICT
    assert Ended(EndReason.LEFT).close == CloseCode.NORMAL
    assert json.loads(protocol.encode(Ended(EndReason.EXPIRED))) == {
        "v": 1,
        "type": "ended",
        "reason": "expired",
    }

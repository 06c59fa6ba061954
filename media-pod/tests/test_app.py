"""The control API through the real ``init_app`` factory (in process, real aiortc offers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection
from aiortc import sdp as aiortc_sdp
from sprechzimmer.media import _aiortc_hooks as hooks
from sprechzimmer.media.app import CALL, init_app
from sprechzimmer.media.core.settings import Settings

from .support import wait_for

pytestmark = [pytest.mark.media, pytest.mark.timeout(60)]

TOKEN = "control-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings(expires_in: timedelta = timedelta(hours=1)) -> Settings:
    return Settings(
        turn_secret="t" * 32,
        turn_port=10042,
        expires_at=datetime.now(UTC) + expires_in,
        control_token=TOKEN,
    )


@pytest_asyncio.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: [])
    hooks.bind_media_to_loopback()
    async with TestClient(TestServer(init_app(settings()))) as test_client:
        yield test_client


async def offer(slots: int = 4, data_channel: bool = False) -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    for _ in range(slots):
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
    if data_channel:
        pc.createDataChannel("chat")
    description = await pc.createOffer()
    await pc.close()
    return str(description.sdp)


async def join(client: TestClient, name: str, sdp: str) -> tuple[int, dict[str, object]]:
    response = await client.post(
        "/v1/participants", json={"participantId": name, "type": "offer", "sdp": sdp}, headers=AUTH
    )
    return response.status, await response.json()


async def test_health_ready_and_metrics_series_exist_at_zero(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    text = await (await client.get("/metrics")).text()
    assert 'sprechzimmer_sfu_dropped_packets_total{reason="malformed"} 0.0' in text
    assert 'sprechzimmer_sfu_leaves_total{reason="timeout"} 0.0' in text
    assert "sprechzimmer_sfu_participants 0.0" in text


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
async def test_control_api_needs_the_token(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/v1/participants", headers=headers)
    assert response.status == 401
    assert "token" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"participantId": "UPPER", "sdp": "v=0"}', 400, "DNS-1123"),
        (b'{"participantId": "a", "sdp": "v=0\\r\\nm=garbage"}', 400, "sdp"),
        (b"x" * (70 * 1024), 413, "larger than"),
    ],
)
async def test_bad_join_requests_are_refused_clearly(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    response = await client.post("/v1/participants", data=body, headers=AUTH)
    assert response.status == status
    assert message in (await response.json())["error"]
    metrics = await (await client.get("/metrics")).text()
    assert 'sprechzimmer_sfu_control_requests_total{result="rejected"} 1.0' in metrics


async def test_offers_the_sfu_cannot_serve_are_refused(client: TestClient) -> None:
    status, body = await join(client, "a", await offer(slots=1, data_channel=True))
    assert status == 400
    assert "audio/video only" in str(body["error"])
    status, body = await join(client, "b", await offer(slots=5))
    assert status == 400
    assert "at most 4 receive slots" in str(body["error"])


async def test_join_list_replace_remove_and_full_call(client: TestClient) -> None:
    sdp = await offer()
    status, body = await join(client, "host", sdp)
    assert status == 201
    answer = str(body["sdp"])
    assert body["type"] == "answer"
    assert "a=candidate:" in answer
    assert all(
        " 127.0.0.1 " in line for line in answer.splitlines() if line.startswith("a=candidate:")
    )
    assert answer.count("a=sendonly") == 8
    assert answer.count("a=recvonly") == 2
    status, body = await join(client, "host", sdp)  # the same person again: replaces
    assert status == 201
    for i in range(4):
        assert (await join(client, f"client-{i}", sdp))[0] == 201
    status, body = await join(client, "client-9", sdp)
    assert status == 409
    assert "full" in str(body["error"])
    listed = await (await client.get("/v1/participants", headers=AUTH)).json()
    assert len(listed["participants"]) == 5
    assert (await client.delete("/v1/participants/client-0", headers=AUTH)).status == 204
    assert (await client.delete("/v1/participants/client-0", headers=AUTH)).status == 404
    events = await (await client.get("/v1/events?after=0", headers=AUTH)).json()
    kinds = [(e["type"], e["participantId"], e.get("reason")) for e in events["events"]]
    assert ("participant.left", "host", "replaced") in kinds
    assert ("participant.left", "client-0", "removed") in kinds
    assert events["next"] == events["events"][-1]["id"]


async def test_trickled_candidates(client: TestClient) -> None:
    await join(client, "host", await offer())
    relay = "candidate:1 1 udp 16777215 127.0.0.1 50000 typ relay raddr 0.0.0.0 rport 0"
    url = "/v1/participants/host/candidates"
    response = await client.post(url, json={"candidate": relay, "sdpMid": "0"}, headers=AUTH)
    assert (await response.json())["accepted"] is True
    host = relay.replace("127.0.0.1", "10.0.0.5").replace("relay", "host")
    response = await client.post(url, json={"candidate": host, "sdpMid": "0"}, headers=AUTH)
    assert (await response.json())["accepted"] is False
    response = await client.post(url, json={"candidate": "nonsense"}, headers=AUTH)
    assert response.status == 400
    response = await client.post(
        "/v1/participants/nobody/candidates", json={"candidate": relay}, headers=AUTH
    )
    assert response.status == 404


async def test_events_long_poll_wakes_on_join(client: TestClient) -> None:
    first = await (await client.get("/v1/events?after=0&timeout=0.1", headers=AUTH)).json()
    assert first == {"events": [], "next": 0}
    waiting = asyncio.ensure_future(client.get("/v1/events?after=0&timeout=20", headers=AUTH))
    await join(client, "host", await offer())
    body = await (await asyncio.wait_for(waiting, 10)).json()
    assert body["events"][0]["type"] == "participant.joined"
    response = await client.get("/v1/events?after=-1", headers=AUTH)
    assert response.status == 400


async def test_turn_credentials_never_outlive_the_session() -> None:
    app = init_app(settings(expires_in=timedelta(minutes=5)))
    async with TestClient(TestServer(app)) as client:
        response = await client.post(
            "/v1/turn-credentials", json={"ttlSeconds": 3600}, headers=AUTH
        )
        body = await response.json()
        assert response.status == 200
        assert body["expiresAt"] <= (datetime.now(UTC) + timedelta(minutes=5)).timestamp() + 1
        assert body["username"].startswith(f"{body['expiresAt']}:")
        assert body["port"] == 10042
    async with TestClient(TestServer(init_app(settings(expires_in=-timedelta(1))))) as client:
        response = await client.post("/v1/turn-credentials", headers=AUTH)
        assert response.status == 410


async def test_answer_asks_for_opus_with_in_band_fec(client: TestClient) -> None:
    """Audio has no RTX or NACK here: Opus FEC is its only loss protection, and browsers send it
    only when the answer's fmtp asks for it."""
    status, body = await join(client, "host", await offer())
    assert status == 201
    answer = aiortc_sdp.SessionDescription.parse(str(body["sdp"]))
    audio = [m for m in answer.media if m.kind == "audio"]
    assert len(audio) == 5
    for media in audio:
        (opus,) = media.rtp.codecs
        assert opus.mimeType.lower() == "audio/opus"
        assert opus.parameters == {"minptime": 10, "useinbandfec": 1}
    assert str(body["sdp"]).count(f"a=fmtp:{opus.payloadType} minptime=10;useinbandfec=1") == 5


async def test_ending_the_call_answers_open_polls_then_refuses_new_ones(client: TestClient) -> None:
    call = client.server.app[CALL]
    assert (await join(client, "host", await offer()))[0] == 201
    waiting = asyncio.ensure_future(client.get("/v1/events?after=1&timeout=20", headers=AUTH))
    await wait_for(lambda: call.events.waiting == 1, 10, "the long poll to wait")
    await asyncio.wait_for(call.stop(), 10)
    response = await asyncio.wait_for(waiting, 5)
    body = await response.json()
    assert [(e["type"], e["participantId"], e["reason"]) for e in body["events"]] == [
        ("participant.left", "host", "shutdown")
    ]
    response = await asyncio.wait_for(
        client.get(f"/v1/events?after={body['next']}&timeout=20", headers=AUTH), 5
    )
    assert response.status == 503
    assert "ended" in (await response.json())["error"]

"""A full call: five aiortc participants through coturn (relay only), end-to-end encrypted.

One call is set up for the module (it is the expensive part) and several properties are checked
on it. Every participant publishes VP8 + Opus and receives the other four in pre-allocated slots;
VP8 frames are encrypted by the publishers (insertable-streams style) and decrypted by the
subscribers; the SFU runs as its real entrypoint in its own process and never holds the key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiortc import sdp as aiortc_sdp
from sprechzimmer.media.core import rtcp
from sprechzimmer.media.core.rtp import URI_ABS_SEND_TIME, ExtensionIds, RtpView, parse_rtp

from .support import (
    Client,
    FrameLedger,
    Sfu,
    e2ee_codecs,
    running_sfu,
    running_turn,
    wait_for,
    workdir,
)

pytestmark = [pytest.mark.media, pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

FRAMES = 15  # per slot and kind before the call counts as established


@dataclass
class FiveParty:
    sfu: Sfu
    clients: list[Client]
    ledger: FrameLedger


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def call() -> AsyncIterator[FiveParty]:
    directory = workdir()
    with e2ee_codecs(FrameLedger()) as ledger:
        async with running_turn(directory) as turn, running_sfu(directory, turn.port) as sfu:
            clients = [
                Client(
                    f"p{i}",
                    sfu,
                    turn,
                    seed=i,
                    loudness=0.6 if i == 2 else 0.003,
                    transport="tcp" if i == 4 else "udp",
                )
                for i in range(5)
            ]
            try:
                for client in clients:
                    await client.join()
                for client in clients:
                    await client.connected()
                await wait_for(
                    lambda: all(
                        c.slots_receiving("video", FRAMES) == 4
                        and c.slots_receiving("audio", FRAMES) == 4
                        for c in clients
                    ),
                    60,
                    "every participant to decode audio and video from the four others",
                )
                yield FiveParty(sfu, clients, ledger)
            finally:
                for client in clients:
                    await client.close()


async def test_everyone_receives_the_other_four_through_turn(call: FiveParty) -> None:
    for client in call.clients:
        assert client.selected_local_candidate_type() == "relay"
        assert client.slots_receiving("video", FRAMES) == 4
        assert client.slots_receiving("audio", FRAMES) == 4
        assert set(client.sizes.values()) == {(160, 120)}
    status, body = await call.sfu.request("GET", "/v1/participants")
    assert status == 200
    listed = {p["participantId"]: p for p in body["participants"]}
    assert sorted(listed) == ["p0", "p1", "p2", "p3", "p4"]
    for participant_id, entry in listed.items():
        carried = {slot["publisherId"] for slot in entry["slots"]}
        assert carried == {p for p in listed if p != participant_id}


async def test_ciphertext_arrives_byte_identical_and_decrypts(call: FiveParty) -> None:
    ledger = call.ledger
    assert len(ledger.received) > 4 * 5 * FRAMES * 0.9
    unknown = [h for h in ledger.received if h not in ledger.sent]
    assert unknown == [], f"{len(unknown)} received frames were never sent by a publisher"
    assert ledger.decrypt_failures == 0


async def test_sfu_never_decodes_or_encodes(call: FiveParty) -> None:
    metrics = await call.sfu.metrics()
    assert metrics["sprechzimmer_sfu_codec_entries_total"] == 0
    assert metrics['sprechzimmer_sfu_forwarded_packets_total{direction="out",kind="video"}'] > 0
    answer = call.clients[0].pc.remoteDescription.sdp
    assert "rtx" not in answer.lower()
    assert "a=rtpmap:" in answer
    assert {
        line.split()[1].split("/")[0]
        for line in answer.splitlines()
        if line.startswith("a=rtpmap:")
    } == {
        "VP8",
        "opus",
    }


async def test_rtcp_is_terminated_and_regenerated(call: FiveParty) -> None:
    async def reported() -> bool:
        m = await call.sfu.metrics()
        return all(
            m[name] > 0
            for name in (
                "sprechzimmer_sfu_sender_reports_sent_total",
                "sprechzimmer_sfu_receiver_reports_sent_total",
                "sprechzimmer_sfu_rembs_sent_total",
            )
        )

    await wait_for(reported, 20, "sender reports, receiver reports and REMB from the SFU")
    # Subscribers hold sender reports for the SFU's slot SSRCs (lip sync needs them).
    client = call.clients[0]
    stats = await client.receive[0][1].receiver.getStats()
    remote = [s for s in stats.values() if s.type == "remote-outbound-rtp"]
    assert remote
    assert remote[0].ssrc == client.slot_ssrc(0, "video")
    assert remote[0].packetsSent > 0


async def test_active_speaker_is_the_loud_participant(call: FiveParty) -> None:
    async def loud_one_speaks() -> bool:
        _, body = await call.sfu.request("GET", "/v1/participants")
        return bool(body["activeSpeaker"] == "p2")

    await wait_for(loud_one_speaks, 10, "p2 to become the active speaker")
    events = await call.sfu.events()
    assert [e["type"] for e in events].count("participant.joined") == 5
    assert any(e["type"] == "speaker.changed" and e["participantId"] == "p2" for e in events)


async def test_forwarded_headers_carry_the_subscribers_view(call: FiveParty) -> None:
    """Each subscriber sees its own mid, the publisher's audio level, a fresh abs-send-time and
    sender reports whose RTP timestamps match the rewritten stream (lip sync)."""
    client = call.clients[1]
    ids = {
        e.uri: e.id
        for m in aiortc_sdp.SessionDescription.parse(client.pc.remoteDescription.sdp).media
        for e in m.rtp.headerExtensions
    }
    ext = ExtensionIds.from_uris(ids)
    slot = 0
    audio_ssrc, video_ssrc = client.slot_ssrc(slot, "audio"), client.slot_ssrc(slot, "video")
    seen: dict[int, list[RtpView]] = {audio_ssrc: [], video_ssrc: []}
    reports: list[rtcp.SenderReport] = []
    dtls = client.dtls
    original_rtp, original_rtcp = dtls._handle_rtp_data, dtls._handle_rtcp_data

    async def spy_rtp(data: bytes, arrival_time_ms: int) -> None:
        view = parse_rtp(data, ext)
        if view.ssrc in seen:
            seen[view.ssrc].append(view)
        await original_rtp(data, arrival_time_ms)

    async def spy_rtcp(data: bytes) -> None:
        reports.extend(
            p
            for p in rtcp.parse_rtcp(data)
            if isinstance(p, rtcp.SenderReport) and p.ssrc == video_ssrc
        )
        await original_rtcp(data)

    dtls._handle_rtp_data, dtls._handle_rtcp_data = spy_rtp, spy_rtcp
    try:
        await wait_for(
            lambda: len(seen[audio_ssrc]) > 20 and len(seen[video_ssrc]) > 20 and bool(reports),
            15,
            "audio, video and a sender report on slot 0",
        )
    finally:
        dtls._handle_rtp_data, dtls._handle_rtcp_data = original_rtp, original_rtcp
    audio_mid = client.receive[slot][0].mid
    video_mid = client.receive[slot][1].mid
    assert {v.mid for v in seen[audio_ssrc]} == {audio_mid.encode()}
    assert {v.mid for v in seen[video_ssrc]} == {video_mid.encode()}
    assert all(v.audio_level >= 0 for v in seen[audio_ssrc])
    assert URI_ABS_SEND_TIME in ids
    # The sender report maps NTP to this slot's timestamps: close to the packets' timestamps.
    latest = seen[video_ssrc][-1].timestamp
    assert abs(seq32_distance(reports[-1].rtp_timestamp, latest)) < 5 * 90000


def seq32_distance(a: int, b: int) -> int:
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d >= 0x80000000 else d


async def test_joining_drops_nothing_before_transports_are_up(call: FiveParty) -> None:
    """Everyone joined one after the other while the others already published: nothing was sent
    towards a participant whose DTLS was not up yet, and nothing counted as a drop."""
    metrics = await call.sfu.metrics()
    assert metrics['sprechzimmer_sfu_dropped_packets_total{reason="not_connected"}'] == 0
    assert metrics["sprechzimmer_sfu_joins_total"] == 5

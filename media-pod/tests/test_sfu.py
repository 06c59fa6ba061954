"""The SFU with real aiortc peers through real coturn: loss repair, key frames, churn, bad input.

Each test gets its own SFU process (cheap) behind a coturn shared by the module.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from .support import Client, Sfu, Turn, running_sfu, running_turn, stop_process, wait_for, workdir

pytestmark = [pytest.mark.media, pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]

MEDIA_TIMEOUT = 2.0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def turn() -> AsyncIterator[Turn]:
    async with running_turn(workdir()) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def sfu(turn: Turn) -> AsyncIterator[Sfu]:
    async with running_sfu(workdir(), turn.port, media_timeout=MEDIA_TIMEOUT) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.close()


async def join(sfu: Sfu, turn: Turn, made: list[Client], *names: str) -> list[Client]:
    new = [Client(name, sfu, turn, seed=len(made) + i) for i, name in enumerate(names)]
    made.extend(new)
    for client in new:
        await client.join()
    for client in new:
        await client.connected()
    return new


def rtp_seq(data: bytes) -> int:
    return int.from_bytes(data[2:4], "big")


def is_rtp_of(data: bytes, payload_type: int) -> bool:
    return len(data) > 12 and not 192 <= data[1] <= 223 and data[1] & 0x7F == payload_type


async def metric(sfu: Sfu, name: str) -> float:
    return (await sfu.metrics()).get(name, 0.0)


async def test_nack_repairs_loss_towards_a_subscriber(
    sfu: Sfu, turn: Turn, clients: list[Client]
) -> None:
    _alice, bob = await join(sfu, turn, clients, "alice", "bob")
    await wait_for(lambda: bob.video_frames(0) > 5, 20, "bob to see alice")
    dropped: set[int] = set()
    delivered: set[int] = set()
    vp8 = bob.payload_type("video")
    ice = bob.dtls.transport
    receive = ice._recv

    async def lossy_receive() -> bytes:
        # Drop on the wire (still SRTP): the RTP header is readable, the packet never decrypted.
        while True:
            data: bytes = await receive()
            if is_rtp_of(data, vp8):
                seq = rtp_seq(data)
                if seq % 5 == 0 and seq not in dropped and len(dropped) < 8:
                    dropped.add(seq)
                    continue
                delivered.add(seq)
            return data

    ice._recv = lossy_receive
    await wait_for(
        lambda: len(dropped) == 8 and dropped <= delivered, 30, "every dropped packet to be resent"
    )
    assert await metric(sfu, 'sprechzimmer_sfu_nack_packets_total{result="served"}') >= 8
    assert await metric(sfu, "sprechzimmer_sfu_nacks_received_total") >= 1


async def test_nack_repairs_loss_from_a_publisher(
    sfu: Sfu, turn: Turn, clients: list[Client]
) -> None:
    alice, bob = await join(sfu, turn, clients, "alice", "bob")
    await wait_for(lambda: bob.video_frames(0) > 5, 20, "bob to see alice")
    dropped: set[int] = set()
    original = alice.dtls._send_rtp
    vp8 = alice.payload_type("video")

    async def lossy(data: bytes) -> None:
        if is_rtp_of(data, vp8):
            seq = rtp_seq(data)
            if seq % 4 == 0 and seq not in dropped and len(dropped) < 6:
                dropped.add(seq)
                return
        await original(data)

    alice.dtls._send_rtp = lossy

    async def repaired() -> bool:
        _, body = await sfu.request("GET", "/v1/participants")
        video = next(p for p in body["participants"] if p["participantId"] == "alice")["published"][
            "video"
        ]
        return len(dropped) == 6 and video["packetsLost"] == 0

    await wait_for(repaired, 30, "the SFU to recover alice's lost packets")
    assert await metric(sfu, "sprechzimmer_sfu_upstream_nacks_sent_total") >= 1


async def test_subscriber_pli_reaches_the_publisher(
    sfu: Sfu, turn: Turn, clients: list[Client]
) -> None:
    alice, bob = await join(sfu, turn, clients, "alice", "bob")
    await wait_for(lambda: bob.video_frames(0) > 2, 20, "bob to see alice")
    plis: list[int] = []
    sender: RTCRtpSender = alice.video.sender
    original = sender._handle_rtcp_packet

    async def spy(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
            plis.append(packet.media_ssrc)
        await original(packet)

    sender._handle_rtcp_packet = spy
    slot_ssrc = bob.slot_ssrc(0, "video")
    receiver = bob.receive[0][1].receiver

    async def pli_arrived() -> bool:
        await receiver._send_rtcp_pli(slot_ssrc)  # throttled by the SFU: keep asking
        return bool(plis)

    await wait_for(pli_arrived, 10, "bob's PLI to reach alice")
    assert plis[0] == sender._ssrc
    assert await metric(sfu, "sprechzimmer_sfu_plis_received_total") >= 1


async def test_a_subscriber_pli_storm_reaches_the_publisher_at_most_once_a_second(
    sfu: Sfu, turn: Turn, clients: list[Client]
) -> None:
    """A browser still waiting for an end-to-end key asks for key frames every few hundred ms;
    the publisher must not be made to send a key frame (expensive for everyone) for each."""
    alice, bob = await join(sfu, turn, clients, "alice", "bob")
    await wait_for(lambda: bob.video_frames(0) > 2, 20, "bob to see alice")
    arrivals: list[float] = []
    sender: RTCRtpSender = alice.video.sender
    original = sender._handle_rtcp_packet
    loop = asyncio.get_running_loop()

    async def spy(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
            arrivals.append(loop.time())
        await original(packet)

    sender._handle_rtcp_packet = spy
    slot_ssrc = bob.slot_ssrc(0, "video")
    receiver = bob.receive[0][1].receiver
    throttled_before = await metric(sfu, "sprechzimmer_sfu_plis_throttled_total")
    storm_until = loop.time() + 3.5
    sent = 0
    while loop.time() < storm_until:
        await receiver._send_rtcp_pli(slot_ssrc)
        sent += 1
        await asyncio.sleep(0.05)  # the storm's pace: a PLI every 50 ms
    await asyncio.sleep(0.5)  # PLIs still in flight through TURN
    assert sent >= 50
    assert 2 <= len(arrivals) <= 4, arrivals
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.9, gaps  # 1 s at the SFU, less a little network jitter
    assert await metric(sfu, "sprechzimmer_sfu_plis_throttled_total") >= throttled_before + 40


async def test_publisher_gets_the_minimum_of_its_subscribers_remb(
    sfu: Sfu, turn: Turn, clients: list[Client]
) -> None:
    alice, bob, carol = await join(sfu, turn, clients, "alice", "bob", "carol")
    await wait_for(lambda: bob.video_frames(0) > 2, 20, "bob to see alice")
    estimates: list[int] = []
    sender: RTCRtpSender = alice.video.sender
    original = sender._handle_rtcp_packet

    async def spy(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
            if ssrcs == [sender._ssrc]:
                estimates.append(bitrate)
        await original(packet)

    sender._handle_rtcp_packet = spy
    slot_ssrc = bob.slot_ssrc(0, "video")  # alice is in bob's first slot
    receiver = bob.receive[0][1].receiver
    congested = 60_000

    async def constrained() -> bool:
        # bob claims a congested downlink (his own estimator may report more in between)
        await receiver._send_rtcp(
            RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP,
                ssrc=receiver._RTCRtpReceiver__rtcp_ssrc,
                media_ssrc=0,
                fci=pack_remb_fci(congested, [slot_ssrc]),
            )
        )
        return any(e <= congested * 1.01 for e in estimates)

    await wait_for(constrained, 15, "alice to be asked for bob's bitrate")
    assert await metric(sfu, "sprechzimmer_sfu_rembs_sent_total") >= 1
    assert carol.video_frames(0) > 0


async def test_leave_and_rejoin(sfu: Sfu, turn: Turn, clients: list[Client]) -> None:
    alice, bob, carol = await join(sfu, turn, clients, "alice", "bob", "carol")
    await wait_for(lambda: alice.slots_receiving("video", 5) == 2, 20, "alice to see bob and carol")
    carol_slot = 1
    await carol.close()

    async def left(reason: str, who: str) -> bool:
        return any(
            e["type"] == "participant.left" and e["participantId"] == who and e["reason"] == reason
            for e in await sfu.events()
        )

    await wait_for(lambda: left("bye", "carol"), 10, "carol's goodbye to be noticed")
    before = alice.video_frames(carol_slot)
    bob_before = alice.video_frames(0)
    (carol_again,) = await join(sfu, turn, clients, "carol")
    await wait_for(
        lambda: alice.video_frames(carol_slot) > before + 10,
        20,
        "alice to see carol again in her old slot",
    )
    assert alice.video_frames(0) > bob_before  # bob was never interrupted
    await wait_for(lambda: carol_again.slots_receiving("video", 5) == 2, 20, "carol to see both")

    status, _ = await sfu.request("DELETE", "/v1/participants/bob")
    assert status == 204
    await wait_for(lambda: left("removed", "bob"), 5, "bob's removal event")
    await wait_for(lambda: bob.pc.connectionState == "closed", 10, "bob's connection to be closed")
    status, _ = await sfu.request("DELETE", "/v1/participants/bob")
    assert status == 404


async def test_vanished_participant_times_out(sfu: Sfu, turn: Turn, clients: list[Client]) -> None:
    alice, _bob = await join(sfu, turn, clients, "alice", "bob")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.vanishing_client",
        sfu.url,
        str(turn.port),
        "victor",
        cwd=Path(__file__).parent.parent,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"connected"
        await wait_for(
            lambda: alice.slots_receiving("video", 5) == 2, 20, "alice to see bob and victor"
        )
        process.send_signal(signal.SIGKILL)
        await process.wait()

        async def timed_out() -> bool:
            return any(
                e["type"] == "participant.left"
                and e["participantId"] == "victor"
                and e["reason"] == "timeout"
                for e in await sfu.events()
            )

        await wait_for(timed_out, MEDIA_TIMEOUT + 10, "victor to be timed out")
        frames = alice.video_frames(0)
        await wait_for(lambda: alice.video_frames(0) > frames + 5, 10, "alice to keep seeing bob")
    finally:
        await stop_process(process, 1)


async def test_malformed_packets_are_dropped_and_counted(
    sfu: Sfu, turn: Turn, clients: list[Client]
) -> None:
    alice, bob, carol = await join(sfu, turn, clients, "alice", "bob", "carol")
    await wait_for(lambda: bob.slots_receiving("video", 5) == 2, 20, "bob to see alice and carol")
    send_rtp = alice.dtls._send_rtp
    header = bytes([0x80, 96, 0, 1, 0, 0, 0, 1])
    # Malformed inside valid SRTP (what libsrtp agrees to protect), then not SRTP at all.
    bad_rtp = [
        bytes([0xA0, 96, 0, 1]) + bytes(8) + b"\x00\x00",  # padding count zero
        bytes([0xA0, 96, 0, 2]) + bytes(8) + b"\x00\x09",  # padding longer than the payload
        bytes([0x90, 96, 0, 3]) + bytes(8) + b"\xbe\xde\x00\x01\x1f\x00\x00\x00",  # ext overrun
        header + (0x12345678).to_bytes(4, "big") + bytes(100),  # SSRC nobody published
    ]
    bad_rtcp = [
        bytes([0x80, 201, 0, 9]) + bytes(4),  # length beyond the packet
        bytes([0x81, 200, 0, 1]) + bytes(4),  # SR without sender info
    ]
    for packet in bad_rtp + bad_rtcp:
        await send_rtp(packet)
    ice = alice.dtls.transport
    # Not SRTP at all. (Oversized datagrams are stopped earlier: libsrtp refuses to protect
    # them and coturn does not relay them; the parsers' size limits are unit-tested.)
    await ice._send(bytes([0x80, 96]) + bytes(60))

    async def counted() -> bool:
        m = await sfu.metrics()
        return (
            m['sprechzimmer_sfu_dropped_packets_total{reason="malformed"}'] >= 3
            and m['sprechzimmer_sfu_dropped_packets_total{reason="unknown_ssrc"}'] >= 1
            and m['sprechzimmer_sfu_dropped_packets_total{reason="rtcp_malformed"}'] >= 2
            and m['sprechzimmer_sfu_dropped_packets_total{reason="srtp"}'] >= 1
        )

    await wait_for(counted, 10, "every bad packet to be counted")
    before = {c.name: (c.video_frames(0), c.video_frames(1)) for c in (bob, carol)}
    await wait_for(
        lambda: all(
            c.video_frames(0) > before[c.name][0] + 5 and c.video_frames(1) > before[c.name][1] + 5
            for c in (bob, carol)
        ),
        15,
        "everyone to keep receiving",
    )
    status, body = await sfu.request("GET", "/v1/participants")
    assert status == 200
    assert len(body["participants"]) == 3
    assert (await sfu.metrics())["sprechzimmer_sfu_codec_entries_total"] == 0


async def test_sigterm_drains_until_the_call_is_empty(
    sfu: Sfu, turn: Turn, clients: list[Client]
) -> None:
    alice, bob = await join(sfu, turn, clients, "alice", "bob")
    await wait_for(lambda: bob.video_frames(0) > 5, 20, "bob to see alice")
    sfu.process.send_signal(signal.SIGTERM)

    async def draining() -> bool:
        async with sfu.session.get(sfu.url + "/readyz") as response:
            return response.status == 503

    await wait_for(draining, 5, "/readyz to report draining")
    frames = bob.video_frames(0)
    await wait_for(
        lambda: bob.video_frames(0) > frames + 10, 10, "media to keep flowing while draining"
    )
    late = Client("late", sfu, turn)
    clients.append(late)
    await late.pc.setLocalDescription(await late.pc.createOffer())
    status, _ = await sfu.request(
        "POST", "/v1/participants", {"participantId": "late", "sdp": late.pc.localDescription.sdp}
    )
    assert status == 503
    await alice.close()
    await bob.close()
    assert await asyncio.wait_for(sfu.process.wait(), 10) == 0


async def test_sigterm_ends_the_drain_at_the_grace_period_and_answers_open_polls(
    turn: Turn, clients: list[Client]
) -> None:
    """Signaling always holds a ``/v1/events`` long poll: it must not keep the pod alive past its
    grace period, and it must receive the final ``shutdown`` leaves."""
    grace = 6.0
    async with running_sfu(workdir(), turn.port, grace=grace) as sfu:
        (alice,) = await join(sfu, turn, clients, "alice")
        after = (await sfu.events())[-1]["id"]

        async def poll_until_left() -> list[tuple[str, str, str | None]]:
            """What signaling does: poll (30 s), resume after the last event, until alice left."""
            nonlocal after
            while True:
                status, body = await sfu.request("GET", f"/v1/events?after={after}&timeout=30")
                assert status == 200, body
                after = body["next"]
                left = [
                    (e["type"], e["participantId"], e.get("reason"))
                    for e in body["events"]
                    if e["type"] == "participant.left"
                ]
                if left:
                    return left

        poll = asyncio.ensure_future(poll_until_left())
        loop = asyncio.get_running_loop()
        sent = loop.time()
        sfu.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(poll, grace + 4) == [
            ("participant.left", "alice", "shutdown")
        ]
        assert await asyncio.wait_for(sfu.process.wait(), grace + 4 - (loop.time() - sent)) == 0
        assert loop.time() - sent < grace + 4
        await wait_for(lambda: alice.pc.connectionState == "closed", 10, "alice to be disconnected")

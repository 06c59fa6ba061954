"""Forwarding benchmark for the media pod's SFU (a script, not a test).

    .venv/bin/python media-pod/bench/bench_forwarding.py [--quick] [--profile PATH]

The SFU runs as its real entrypoint in its own process, pinned to one core (``--sfu-core``); the
load generator runs here, pinned to another (``--load-core``). Five participants join through the
control API with aiortc (ICE, DTLS, SRTP over loopback, no TURN so that coturn's CPU is not
counted); after the handshake the generator bypasses aiortc entirely: publishers send
pre-built RTP packets (no encoding), protected with their own SRTP session, and subscribers count
datagrams on the socket, decrypting one in ``SAMPLE`` to read the send time from the payload.

Scenarios, all in one run:
  idle        five connected participants, no media: the SFU's CPU for ICE consent, timers and
              housekeeping alone (what every call costs before anyone sends a packet).
  call        five publishers at 1.5 Mbit/s VP8-sized video (30 fps bursts) + Opus each:
              SFU CPU as % of one core, added latency p50/p99, loss.
  saturation  video-only load ramped until the SFU's core is busy: forwarded packets per
              CPU-second of the SFU (= per core at saturation).
  raw         this machine's limit on the SFU's core: SRTP unprotect + header rewrite + SRTP
              protect + UDP sendto in a tight loop, 1 -> 4 fan-out like the call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pylibsrtp
import uvloop
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from sprechzimmer.media import _aiortc_hooks as hooks
from sprechzimmer.media.core.rewriter import SlotRewriter
from sprechzimmer.media.core.rtp import (
    URI_AUDIO_LEVEL,
    URI_MID,
    ExtensionIds,
    HeaderWriter,
    abs_send_time,
    parse_rtp,
)

TOKEN = "bench-control-token-0123456789"  # noqa: S105 - a local benchmark SFU
PARTICIPANTS = 5
SAMPLE = 16  # decrypt one subscriber packet in SAMPLE to measure latency
VIDEO_PACKET = 1200
AUDIO_PACKET = 120
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


@dataclass
class CpuWindow:
    """CPU (user, system) and wall time of a process over one interval, read at the same two
    instants: a percentage is CPU over the wall time of exactly that interval, so a process
    pinned to one core cannot exceed 100 % (up to /proc's clock-tick resolution)."""

    pid: int
    user0: float = 0.0
    system0: float = 0.0
    wall0: float = 0.0

    def start(self) -> None:
        self.user0, self.system0 = cpu_times(self.pid)
        self.wall0 = time.monotonic()

    def stop(self) -> tuple[float, float, float]:
        """(cpu seconds, of which system, wall seconds) since ``start``."""
        user1, system1 = cpu_times(self.pid)
        wall = time.monotonic() - self.wall0
        return (user1 - self.user0) + (system1 - self.system0), system1 - self.system0, wall


# --------------------------------------------------------------------------- load peers
@dataclass
class Stream:
    ssrc: int
    payload_type: int
    ext: bytes  # pre-built extension block (mid, audio level)
    seq: int = 0
    ts: int = 0


@dataclass
class LoadPeer:
    name: str
    pc: RTCPeerConnection
    audio: Stream | None = None
    video: Stream | None = None
    tx: pylibsrtp.Session | None = None
    rx: pylibsrtp.Session | None = None
    sock: Any = None
    remote: tuple[str, int] | None = None
    received: int = 0
    latencies: list[float] = field(default_factory=list)

    def take_over(self) -> None:
        dtls: Any = self.pc.getTransceivers()[0].receiver.transport
        pair = dtls.transport._connection._nominated[1]
        self.tx = dtls._tx_srtp
        self.rx = dtls._rx_srtp
        self.sock = pair.protocol.transport  # a UDP socket, or aioice's TurnTransport when relayed
        own = self.sock.get_extra_info("socket")  # a relayed path has no socket of its own
        if own is not None:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.remote = tuple(pair.remote_addr)
        original = pair.protocol.datagram_received
        rx = self.rx

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if data[0] < 128 or 192 <= data[1] <= 223:
                if data[0] < 128:
                    original(data, addr)  # STUN consent, DTLS
                return
            self.received += 1
            if self.received % SAMPLE == 0:
                with contextlib.suppress(pylibsrtp.Error):
                    plain = rx.unprotect(data)
                    view = parse_rtp(plain, ExtensionIds())
                    (sent,) = struct.unpack_from("!d", plain, view.payload_offset + 4)
                    self.latencies.append(time.perf_counter() - sent)

        pair.protocol.datagram_received = datagram_received

    def prebuild(self, count: int, frame_packets: int) -> list[bytes]:
        """``count`` protected video packets, made before a saturation step so that sending
        costs the generator one sendto each."""
        assert self.video is not None
        assert self.tx is not None
        stream = self.video
        packets = []
        for i in range(count):
            if i % frame_packets == 0:
                stream.ts = (stream.ts + 3000) & 0xFFFFFFFF
            head = b"\x10\x00\x9d\x01" if i % frame_packets == 0 else b"\x00\x01\x00\x00"
            marker = 0x80 if i % frame_packets == frame_packets - 1 else 0
            header = struct.pack(
                "!BBHII", 0x90, marker | stream.payload_type, stream.seq, stream.ts, stream.ssrc
            )
            body = head + bytes(VIDEO_PACKET - len(header) - len(stream.ext) - 4)
            packets.append(self.tx.protect(header + stream.ext + body))
            stream.seq = (stream.seq + 1) & 0xFFFF
        return packets

    def send(self, stream: Stream, size: int, marker: bool, keyframe: bool) -> None:
        # 4 bytes VP8 descriptor/header (key frame start when asked), 8 bytes send time, filler
        head = b"\x10\x00\x9d\x01" if keyframe else b"\x00\x01\x00\x00"
        payload = head + struct.pack("!d", time.perf_counter())
        header = struct.pack(
            "!BBHII",
            0x90,
            (0x80 if marker else 0) | stream.payload_type,
            stream.seq,
            stream.ts,
            stream.ssrc,
        )
        packet = header + stream.ext + payload + bytes(size - len(header) - len(stream.ext) - 12)
        stream.seq = (stream.seq + 1) & 0xFFFF
        assert self.tx is not None
        self.sock.sendto(self.tx.protect(packet), self.remote)


def ext_block(ids: dict[str, int], mid: str, level: int | None) -> bytes:
    body = bytes([(ids[URI_MID] << 4) | (len(mid) - 1)]) + mid.encode()
    if level is not None and URI_AUDIO_LEVEL in ids:
        body += bytes([ids[URI_AUDIO_LEVEL] << 4, 0x80 | level])
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", 0xBEDE, len(body) // 4) + body


def load_pc(configuration: RTCConfiguration | None = None) -> RTCPeerConnection:
    """A participant's peer connection: one audio + one video sender, four receive slots."""
    pc = RTCPeerConnection(
        configuration or RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )
    pc.addTransceiver("audio", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    for _ in range(PARTICIPANTS - 1):
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
    return pc


async def join(session: aiohttp.ClientSession, url: str, name: str) -> LoadPeer:
    pc = load_pc()
    await pc.setLocalDescription(await pc.createOffer())
    async with session.post(
        url + "/v1/participants",
        json={"participantId": name, "sdp": pc.localDescription.sdp},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as response:
        body = await response.json()
        assert response.status == 201, body
    return await answered(pc, name, body["sdp"])


async def answered(pc: RTCPeerConnection, name: str, answer_sdp: str) -> LoadPeer:
    """Apply the SFU's answer to a :func:`load_pc` connection; its pre-built RTP streams."""
    await pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
    # aiortc's own RTP loops would compete for the load core: stop them, keep the transport.
    for transceiver in pc.getTransceivers():
        hooks._stub_sender(transceiver.sender)
    audio, video = pc.getTransceivers()[:2]
    answer = aiortc_sdp.SessionDescription.parse(answer_sdp)
    ids = {e.uri: e.id for m in answer.media for e in m.rtp.headerExtensions}
    by_mid = {m.rtp.muxId: m for m in answer.media}

    def stream(transceiver: RTCRtpTransceiver, level: int | None) -> Stream:
        mid = transceiver.mid
        assert mid is not None, "negotiated transceivers have a mid"
        payload_type = by_mid[mid].rtp.codecs[0].payloadType
        assert payload_type is not None
        return Stream(transceiver.sender._ssrc, payload_type, ext_block(ids, mid, level))

    peer = LoadPeer(name, pc)
    peer.audio = stream(audio, 30)
    peer.video = stream(video, None)
    return peer


# --------------------------------------------------------------------------- scenarios
@dataclass
class Sample:
    seconds: float  # how long load was offered (rates are per this)
    cpu_seconds: float  # wall time of the CPU window: sending plus the drain (CPU % per this)
    sfu_cpu: float
    sfu_system: float  # kernel share of sfu_cpu: UDP send/receive, epoll
    out_packets: float
    in_packets: float
    received: int
    latencies: list[float]


async def sfu_counters(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    out = inp = 0.0
    for line in text.splitlines():
        if line.startswith("sprechzimmer_sfu_forwarded_packets_total{"):
            value = float(line.rsplit(" ", 1)[1])
            if 'direction="out"' in line:
                out += value
            else:
                inp += value
    return inp, out


async def measure(
    session: aiohttp.ClientSession,
    url: str,
    pid: int,
    peers: list[LoadPeer],
    seconds: float,
    video_pps: float,
    audio_pps: float,
    frame_packets: int,
) -> Sample:
    """Publish at the given per-publisher rates for ``seconds`` and measure."""
    loop = asyncio.get_running_loop()
    frame_rate = video_pps / frame_packets
    # Independent cameras and microphones: each publisher's frames are offset within the frame
    # interval instead of all five arriving at the same instant.
    offsets = [i / len(peers) for i in range(len(peers))]
    frames_sent = [0] * len(peers)
    audio_sent = [0] * len(peers)
    tick = 0.001

    async def publish() -> None:
        start = loop.time()
        while (now := loop.time()) - start < seconds:
            elapsed = now - start
            for index, peer in enumerate(peers):
                assert peer.video is not None
                assert peer.audio is not None
                due = int(elapsed * frame_rate + offsets[index]) + 1
                while frames_sent[index] < due:
                    peer.video.ts = (peer.video.ts + int(90000 / frame_rate)) & 0xFFFFFFFF
                    for i in range(frame_packets):
                        peer.send(peer.video, VIDEO_PACKET, i == frame_packets - 1, i == 0)
                    frames_sent[index] += 1
                due = int(elapsed * audio_pps + offsets[index]) + 1 if audio_pps else 0
                while audio_sent[index] < due:
                    peer.audio.ts = (peer.audio.ts + 960) & 0xFFFFFFFF
                    peer.send(peer.audio, AUDIO_PACKET, True, False)
                    audio_sent[index] += 1
            await asyncio.sleep(tick)

    return await sample_while(session, url, pid, peers, publish)


async def measure_saturation(
    session: aiohttp.ClientSession,
    url: str,
    pid: int,
    peers: list[LoadPeer],
    seconds: float,
    video_pps: float,
) -> Sample:
    """Like ``measure`` for video only, from pre-protected packets (no latency samples)."""
    count = int(video_pps * seconds)
    queues = [peer.prebuild(count, 10) for peer in peers]
    loop = asyncio.get_running_loop()

    async def blast() -> None:
        start = loop.time()
        sent = 0
        while sent < count:
            due = min(count, int((loop.time() - start) * video_pps) + 1)
            for peer, queue in zip(peers, queues, strict=True):
                sendto, remote = peer.sock.sendto, peer.remote
                for packet in queue[sent:due]:
                    sendto(packet, remote)
            sent = due
            await asyncio.sleep(0.001)

    return await sample_while(session, url, pid, peers, blast)


async def sample_while(
    session: aiohttp.ClientSession,
    url: str,
    pid: int,
    peers: list[LoadPeer],
    send: Callable[[], Awaitable[None]],
) -> Sample:
    """Run ``send`` and measure the SFU around it: its counters, its CPU, what peers received."""
    for peer in peers:
        peer.received = 0
        peer.latencies = []
    in0, out0 = await sfu_counters(session, url)
    window = CpuWindow(pid)
    window.start()
    start = time.monotonic()
    await send()
    duration = time.monotonic() - start
    await asyncio.sleep(0.2)  # let the tail drain before reading counters
    cpu, system, wall = window.stop()
    in1, out1 = await sfu_counters(session, url)
    return Sample(
        seconds=duration,
        cpu_seconds=wall,
        sfu_cpu=cpu,
        sfu_system=system,
        out_packets=out1 - out0,
        in_packets=in1 - in0,
        received=sum(p.received for p in peers),
        latencies=[x for p in peers for x in p.latencies],
    )


async def measure_idle(pid: int, seconds: float) -> dict[str, float]:
    """SFU CPU with everyone connected and nobody sending media (consent checks only)."""
    window = CpuWindow(pid)
    window.start()
    await asyncio.sleep(seconds)
    cpu, system, wall = window.stop()
    return {
        "participants": PARTICIPANTS,
        "seconds": round(wall, 2),
        "sfu_cpu_percent_of_one_core": round(100 * cpu / wall, 2),
        "of_which_kernel_percent": round(100 * system / wall, 2),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------- raw limit
def raw_limit(fanout: int, packets: int) -> float:
    """CPU µs per sent packet for unprotect + rewrite + protect + sendto in a tight loop."""
    key = os.urandom(30)
    out_key = os.urandom(30)
    publisher = pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    )
    ids = ExtensionIds(mid=1, audio_level=2, abs_send_time=3)
    ext = ext_block({URI_MID: 1}, "1", None)
    wire = []
    for seq in range(packets):
        header = struct.pack("!BBHII", 0x90, 96, seq & 0xFFFF, seq * 3000, 1234)
        wire.append(
            publisher.protect(header + ext + b"\x10\x00\x9d\x01" + bytes(VIDEO_PACKET - 24))
        )
    # The same direct libsrtp calls the SFU uses, so the ratio measures only the SFU's overhead.
    rx = hooks._Srtp(
        pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    )
    txs = [
        hooks._Srtp(
            pylibsrtp.Session(
                pylibsrtp.Policy(key=out_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
            )
        )
        for _ in range(fanout)
    ]
    writers = [HeaderWriter(1000 + i, 96, ids, str(i + 2)) for i in range(fanout)]
    rewriters = [SlotRewriter(90000, i, i) for i in range(fanout)]
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = sink.getsockname()
    start = time.perf_counter()
    cpu_start = time.process_time()
    for data in wire:
        plain = rx.unprotect_rtp(data)
        assert plain is not None
        view = parse_rtp(plain, ids)
        payload = plain[view.payload_offset :]
        ast = abs_send_time(start)
        for writer, rewriter, tx in zip(writers, rewriters, txs, strict=True):
            mapped = rewriter.rewrite(1234, view.sequence, view.timestamp, start)
            assert mapped is not None
            seq, ts = mapped
            with contextlib.suppress(BlockingIOError):
                sender.sendto(
                    tx.protect(writer.header(view, seq, ts, ast) + payload) or b"", target
                )
    elapsed = time.process_time() - cpu_start  # CPU time, comparable with the SFU's
    sink.close()
    sender.close()
    return elapsed / (packets * fanout) * 1e6


def breakdown(packets: int) -> dict[str, float]:
    """CPU µs of each step of forwarding one 1200-byte video packet, measured alone."""
    key = os.urandom(30)
    publisher = pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    )
    ids = ExtensionIds(mid=1, audio_level=2, abs_send_time=3)
    ext = ext_block({URI_MID: 1}, "1", None)
    plain = [
        struct.pack("!BBHII", 0x90, 96, seq & 0xFFFF, seq, 1) + ext + bytes(VIDEO_PACKET - 20)
        for seq in range(packets)
    ]
    wire = [publisher.protect(p) for p in plain]
    rx = hooks._Srtp(
        pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    )
    tx = hooks._Srtp(
        pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    )
    writer = HeaderWriter(7, 96, ids, "3")
    rewriter = SlotRewriter(90000, 0, 0)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = sink.getsockname()
    views = [parse_rtp(p, ids) for p in plain]
    results: dict[str, float] = {}

    def timed(name: str, body: Any) -> None:
        start = time.process_time()
        body()
        results[name] = round((time.process_time() - start) / packets * 1e6, 3)

    timed("srtp_unprotect", lambda: [rx.unprotect_rtp(w) for w in wire])
    timed("parse_rtp", lambda: [parse_rtp(p, ids) for p in plain])
    timed(
        "rewrite_seq_ts", lambda: [rewriter.rewrite(1, v.sequence, v.timestamp, 0.0) for v in views]
    )
    timed("build_header", lambda: [writer.header(v, 1, 2, 3) for v in views])
    timed("header_plus_payload_copy", lambda: [b"x" * 20 + p[20:] for p in plain])
    timed("srtp_protect", lambda: [tx.protect(p) for p in plain])
    public = pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    )
    timed("pylibsrtp_protect_public_api", lambda: [public.protect(p) for p in plain])
    timed("udp_sendto_loopback", lambda: [sender.sendto(w, target) for w in wire])
    sink.close()
    sender.close()
    return results


# --------------------------------------------------------------------------- driver
@contextlib.contextmanager
def sfu_process(port: int, core: int, profile: str | None) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "SPRECHZIMMER_CONTROL_TOKEN": TOKEN,
        "SPRECHZIMMER_TURN_SECRET": "bench-turn-secret-0123456789",
        "SPRECHZIMMER_TURN_PORT": "3478",
        "SPRECHZIMMER_EXPIRES_AT": "2099-01-01T00:00:00Z",
        "SPRECHZIMMER_CONTROL_PORT": str(port),
        "SPRECHZIMMER_CONTROL_HOST": "127.0.0.1",
        "SPRECHZIMMER_MEDIA_TIMEOUT_SECONDS": "60",
        "SPRECHZIMMER_GRACE_SECONDS": "0",
    }
    command = [sys.executable, "-m", "sprechzimmer.media", "sfu"]
    if profile:
        command = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            profile,
            "-m",
            "sprechzimmer.media",
            "sfu",
        ]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


async def run(args: argparse.Namespace, url: str, pid: int) -> dict[str, Any]:
    hooks.bind_media_to_loopback()
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.05)
        peers = [await join(session, url, f"p{i}") for i in range(PARTICIPANTS)]
        for _ in range(400):
            if all(p.pc.connectionState == "connected" for p in peers):
                break
            await asyncio.sleep(0.05)
        for peer in peers:
            peer.take_over()
        results["idle"] = await measure_idle(pid, args.idle_seconds)
        print(json.dumps({"idle": results["idle"]}), file=sys.stderr, flush=True)
        # Realistic call: 1.5 Mbit/s video (~156 pkt/s of 1200 B, 30 fps) + 50 pkt/s Opus.
        video_pps = 1_500_000 / 8 / VIDEO_PACKET
        await measure(session, url, pid, peers, 1.0, video_pps, 50, 5)  # warm-up, key frames
        call = await measure(session, url, pid, peers, args.seconds, video_pps, 50, 5)
        expected = call.in_packets * (PARTICIPANTS - 1)
        results["call"] = {
            "publishers": PARTICIPANTS,
            "video_pps_per_publisher": round(video_pps),
            "sfu_cpu_percent_of_one_core": round(100 * call.sfu_cpu / call.cpu_seconds, 2),
            "of_which_kernel_percent": round(100 * call.sfu_system / call.cpu_seconds, 2),
            "in_pps": round(call.in_packets / call.seconds),
            "out_pps": round(call.out_packets / call.seconds),
            "delivery_ratio": round(call.received / expected, 4) if expected else None,
            "latency_ms_p50": round(1000 * percentile(call.latencies, 0.5), 3),
            "latency_ms_p99": round(1000 * percentile(call.latencies, 0.99), 3),
            "latency_samples": len(call.latencies),
        }
        print(json.dumps({"call": results["call"]}), file=sys.stderr, flush=True)
        steps: list[dict[str, Any]] = []
        rate = 500.0
        while rate <= args.max_rate and not args.no_saturation:
            sample = await measure_saturation(session, url, pid, peers, args.step_seconds, rate)
            step = {
                "offered_in_pps": round(rate * PARTICIPANTS),
                "in_pps": round(sample.in_packets / sample.seconds),
                "out_pps": round(sample.out_packets / sample.seconds),
                "received_pps": round(sample.received / sample.seconds),
                "sfu_cpu": round(sample.sfu_cpu / sample.cpu_seconds, 3),
                "sfu_kernel": round(sample.sfu_system / sample.cpu_seconds, 3),
                "out_per_cpu_second": round(sample.out_packets / max(sample.sfu_cpu, 1e-9)),
            }
            steps.append(step)
            print(json.dumps(step), file=sys.stderr, flush=True)
            grew = len(steps) < 2 or step["in_pps"] > 1.05 * steps[-2]["in_pps"]
            if step["sfu_cpu"] > 0.97 or not grew:
                break  # the SFU's core is full, or the load generator cannot offer more
            rate *= 1.5
        results["saturation"] = steps
        for peer in peers:
            await peer.pc.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sfu-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--no-saturation", action="store_true", help="idle and call only (no ramp, no raw limit)"
    )
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument("--max-rate", type=float, default=12000.0, help="per publisher, pkt/s")
    parser.add_argument("--raw-packets", type=int, default=20000)
    parser.add_argument("--profile", help="write a cProfile of the SFU process here")
    parser.add_argument("--quick", action="store_true", help="short run for smoke testing")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.step_seconds, args.max_rate, args.raw_packets = 3.0, 2.0, 3000.0, 4000
        args.idle_seconds = 3.0
    os.sched_setaffinity(0, {args.load_core})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load1 = os.getloadavg()[0]
    with sfu_process(port, args.sfu_core, args.profile) as process:
        results = uvloop.run(run(args, url, process.pid))
    summary: dict[str, Any] = {
        "taken_at": started,
        "load_average_1min_at_start": round(load1, 2),
        "idle_cpu_percent": results["idle"]["sfu_cpu_percent_of_one_core"],
        "call_cpu_percent": results["call"]["sfu_cpu_percent_of_one_core"],
        "call_latency_ms_p50_p99": [
            results["call"]["latency_ms_p50"],
            results["call"]["latency_ms_p99"],
        ],
    }
    if results["saturation"]:
        # The raw limit on the SFU's core, in a child so that the pinning matches.
        raw = subprocess.run(
            [sys.executable, __file__, "--raw-child", str(args.raw_packets)],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {args.sfu_core}),
        )
        results["raw"] = json.loads(raw.stdout)
        best = max(results["saturation"], key=lambda s: s["out_per_cpu_second"])
        highest = max(results["saturation"], key=lambda s: s["out_pps"])
        raw_pps = 1e6 / results["raw"]["us_per_sent_packet_1to4"]
        summary |= {
            "forwarded_pps_per_core": best["out_per_cpu_second"],
            "highest_out_pps": highest["out_pps"],
            "sfu_cpu_at_highest": highest["sfu_cpu"],
            "raw_limit_pps_per_core_1to4": round(raw_pps),
            "sfu_vs_raw_cost_ratio": round(raw_pps / best["out_per_cpu_second"], 2),
        }
    results["summary"] = summary
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--raw-child":
        n = int(sys.argv[2])
        print(
            json.dumps(
                {
                    "us_per_sent_packet_1to4": round(raw_limit(4, n), 3),
                    "us_per_sent_packet_1to1": round(raw_limit(1, n), 3),
                    "breakdown_us": breakdown(n),
                }
            )
        )
        sys.exit(0)
    sys.exit(main())

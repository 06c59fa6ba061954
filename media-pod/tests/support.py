"""Real parts for the media tests: coturn and the SFU as processes, aiortc clients as peers.

Nothing here is mocked. coturn runs from the Debian package with a configuration rendered by the
product's own renderer; the SFU runs through its real entrypoint; clients are aiortc peer
connections with ``iceTransportPolicy=relay`` that reach the SFU only through coturn.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fractions
import hashlib
import json
import math
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
from aioice import stun
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder
from aiortc.mediastreams import AUDIO_PTIME
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sprechzimmer.media.core.settings import Settings
from sprechzimmer.media.core.turn import render_coturn_config, rest_credentials

# Fresh per test run; handed to helper processes through the environment.
TOKEN = os.environ.setdefault("SPRECHZIMMER_TEST_TOKEN", "test-token-" + secrets.token_hex(8))
TURN_SECRET = os.environ.setdefault(
    "SPRECHZIMMER_TEST_TURN_SECRET", "test-turn-secret-" + secrets.token_hex(8)
)
SLOTS = 4


def free_port() -> int:
    """A port free for both UDP and TCP on loopback."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], within: float, what: str
) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- coturn
def coturn_binary() -> str:
    path = shutil.which("turnserver")
    if path is None:
        raise RuntimeError("coturn is not installed (apt-get install coturn)")
    return path


def turn_settings(port: int, expires_at: datetime | None = None) -> Settings:
    return Settings(
        turn_secret=TURN_SECRET,
        turn_port=port,
        expires_at=expires_at or datetime.now(UTC) + timedelta(hours=1),
        control_token=TOKEN,
        turn_listen_ip="127.0.0.1",
    )


@dataclass
class Turn:
    port: int
    process: asyncio.subprocess.Process
    config: Path | None = None

    async def crash_and_restart(self) -> None:
        """SIGKILL, then the same coturn on the same port again: every allocation is gone."""
        assert self.config is not None
        self.process.kill()
        await self.process.wait()
        self.process = await _spawn_turn(self.config)
        await wait_for(lambda: _stun_ready(self.port), 15, "the restarted coturn to answer STUN")

    def credentials(self, lifetime: float = 3600) -> tuple[str, str]:
        creds = rest_credentials(TURN_SECRET, int(time.time() + lifetime), "test")
        return creds.username, creds.password

    def ice_server(self, transport: str = "udp") -> RTCIceServer:
        username, password = self.credentials()
        return RTCIceServer(
            urls=f"turn:127.0.0.1:{self.port}?transport={transport}",
            username=username,
            credential=password,
        )


async def _stun_ready(port: int) -> bool:
    loop = asyncio.get_running_loop()
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        try:
            await loop.sock_sendall(sock, bytes(request))
            data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 0.3)
        except (TimeoutError, OSError):
            return False
    return stun.parse_message(data).transaction_id == request.transaction_id


@contextlib.asynccontextmanager
async def running_turn(workdir: Path) -> AsyncIterator[Turn]:
    port = free_port()
    config = workdir / f"turnserver-{port}.conf"
    config.write_text(render_coturn_config(turn_settings(port)))
    turn = Turn(port, await _spawn_turn(config), config)
    try:
        await wait_for(lambda: _stun_ready(port), 15, "coturn to answer STUN")
        yield turn
    finally:
        await stop_process(turn.process, 5)


async def _spawn_turn(config: Path) -> asyncio.subprocess.Process:
    with config.with_suffix(".log").open("ab") as log:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            coturn_binary(), "-c", str(config), stdout=log, stderr=asyncio.subprocess.STDOUT
        )


async def stop_process(process: asyncio.subprocess.Process, grace: float) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode


# --------------------------------------------------------------------------- SFU process
@dataclass
class Sfu:
    url: str
    process: asyncio.subprocess.Process
    log_path: Path
    session: aiohttp.ClientSession
    env: dict[str, str] = field(default_factory=dict)

    async def healthy(self) -> bool:
        if self.process.returncode is not None:
            raise AssertionError(f"SFU exited: {self.log_path.read_text()[-2000:]}")
        try:
            async with self.session.get(self.url + "/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def crash_and_restart(self) -> None:
        """SIGKILL, then the same command on the same port again, as the kubelet restarts a
        crashed container: every participant and its transport are gone."""
        self.process.kill()
        await self.process.wait()
        self.process = await _spawn_sfu(self.env, self.log_path)
        await wait_for(self.healthy, 20, "the restarted SFU to serve /healthz")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    async def request(
        self, method: str, path: str, body: object = None, *, token: str | None = TOKEN
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
        async with self.session.request(method, self.url + path, data=data, headers=headers) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, text

    async def metrics(self) -> dict[str, float]:
        async with self.session.get(self.url + "/metrics") as response:
            text = await response.text()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    async def events(self, after: int = 0) -> list[dict[str, Any]]:
        status, body = await self.request("GET", f"/v1/events?after={after}")
        assert status == 200, body
        return list(body["events"])


@contextlib.asynccontextmanager
async def running_sfu(
    workdir: Path, turn_port: int, *, media_timeout: float = 3.0, grace: float = 5.0
) -> AsyncIterator[Sfu]:
    port = free_port()
    env = {
        **os.environ,
        "SPRECHZIMMER_CONTROL_TOKEN": TOKEN,
        "SPRECHZIMMER_TURN_SECRET": TURN_SECRET,
        "SPRECHZIMMER_TURN_PORT": str(turn_port),
        "SPRECHZIMMER_EXPIRES_AT": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "SPRECHZIMMER_CONTROL_PORT": str(port),
        "SPRECHZIMMER_CONTROL_HOST": "127.0.0.1",
        "SPRECHZIMMER_MEDIA_TIMEOUT_SECONDS": str(media_timeout),
        "SPRECHZIMMER_GRACE_SECONDS": str(grace),
    }
    log_path = workdir / f"sfu-{port}.log"
    process = await _spawn_sfu(env, log_path)
    sfu = Sfu(f"http://127.0.0.1:{port}", process, log_path, aiohttp.ClientSession(), env)
    try:
        await wait_for(sfu.healthy, 20, "the SFU to serve /healthz")
        yield sfu
    finally:
        await sfu.session.close()
        await stop_process(sfu.process, grace + 5)


async def _spawn_sfu(env: dict[str, str], log_path: Path) -> asyncio.subprocess.Process:
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sprechzimmer.media", "sfu", env=env, stdout=log, stderr=log
        )


# --------------------------------------------------------------------------- media sources
class TestPattern(MediaStreamTrack):
    """Small moving VP8-friendly video, 15 fps."""

    kind = "video"

    def __init__(self, seed: int, width: int = 160, height: int = 120) -> None:
        super().__init__()
        self._seed = seed
        self._width = width
        self._height = height
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        rate = 90000
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += rate // 15
            wait = self._start + self._pts / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        shift = (self._pts // 6000 + self._seed * 40) % 255
        frame = av.VideoFrame(self._width, self._height, "yuv420p")
        luma, cb, cr = frame.planes
        row = bytes((x + shift) % 220 + 16 for x in range(luma.line_size))
        luma.update(row * luma.height)
        cb.update(bytes([128 + self._seed * 20 % 100]) * (cb.line_size * cb.height))
        cr.update(bytes([128]) * (cr.line_size * cr.height))
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, rate)
        return frame


class Tone(MediaStreamTrack):
    """A quiet or loud sine tone in 20 ms Opus-sized frames."""

    kind = "audio"

    def __init__(self, amplitude: float) -> None:
        super().__init__()
        self._amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        rate = 48000
        samples = int(AUDIO_PTIME * rate)
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += samples
            wait = self._start + self._pts / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        scale = self._amplitude * 32767
        pcm = array.array(
            "h",
            (
                int(math.sin(2 * math.pi * 440 * (n + self._pts) / rate) * scale)
                for n in range(samples)
            ),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, rate)
        return frame


# --------------------------------------------------------------------------- E2EE (test-side)
@dataclass
class FrameLedger:
    """What publishers encrypted and what subscribers received, as SHA-256 of the bytes."""

    key: bytes = field(default_factory=lambda: AESGCM.generate_key(bit_length=128))
    sent: set[bytes] = field(default_factory=set)
    received: list[bytes] = field(default_factory=list)
    decrypt_failures: int = 0


def e2ee_encrypt(key: bytes, frame: bytes) -> bytes:
    """Insertable-streams style: VP8 header bytes in the clear, the rest AES-GCM, IV appended."""
    clear = 10 if frame and not frame[0] & 0x01 else 3
    iv = secrets.token_bytes(12)
    return frame[:clear] + AESGCM(key).encrypt(iv, frame[clear:], frame[:clear]) + iv


def e2ee_decrypt(key: bytes, data: bytes) -> bytes:
    clear = 10 if data and not data[0] & 0x01 else 3
    iv = data[-12:]
    return data[:clear] + AESGCM(key).decrypt(iv, data[clear:-12], data[:clear])


class E2eeVp8Encoder(Vp8Encoder):
    def __init__(self, ledger: FrameLedger) -> None:
        super().__init__()
        self._ledger = ledger

    def _packetize(self, buffer: bytes, picture_id: int) -> list[bytes]:  # type: ignore[override]
        encrypted = e2ee_encrypt(self._ledger.key, buffer)
        self._ledger.sent.add(hashlib.sha256(encrypted).digest())
        return Vp8Encoder._packetize(encrypted, picture_id)


class E2eeVp8Decoder(Vp8Decoder):
    def __init__(self, ledger: FrameLedger) -> None:
        super().__init__()
        self._ledger = ledger

    def decode(self, encoded_frame: Any) -> list[Any]:
        self._ledger.received.append(hashlib.sha256(encoded_frame.data).digest())
        try:
            encoded_frame.data = e2ee_decrypt(self._ledger.key, encoded_frame.data)
        except Exception:
            self._ledger.decrypt_failures += 1
            return []
        return super().decode(encoded_frame)


@contextlib.contextmanager
def e2ee_codecs(ledger: FrameLedger) -> Any:
    """Make this process's aiortc clients encrypt/decrypt VP8 frames end to end."""
    original_encoder = aiortc.rtcrtpsender.get_encoder
    original_decoder = aiortc.rtcrtpreceiver.get_decoder

    def get_encoder(codec: Any) -> Any:
        if codec.name == "VP8":
            return E2eeVp8Encoder(ledger)
        return original_encoder(codec)

    def get_decoder(codec: Any) -> Any:
        if codec.name == "VP8":
            return E2eeVp8Decoder(ledger)
        return original_decoder(codec)

    aiortc.rtcrtpsender.get_encoder = get_encoder
    aiortc.rtcrtpreceiver.get_decoder = get_decoder
    try:
        yield ledger
    finally:
        aiortc.rtcrtpsender.get_encoder = original_encoder
        aiortc.rtcrtpreceiver.get_decoder = original_decoder


# --------------------------------------------------------------------------- clients
class Client:
    """One participant: publishes Opus + VP8, receives through ``SLOTS`` pre-allocated slots."""

    def __init__(
        self,
        name: str,
        sfu: Sfu,
        turn: Turn,
        *,
        seed: int = 0,
        loudness: float = 0.02,
        transport: str = "udp",
        slots: int = SLOTS,
    ) -> None:
        self.name = name
        self.sfu = sfu
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[turn.ice_server(transport)],
                iceTransportPolicy=RTCIceTransportPolicy.RELAY,
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        self.audio = self.pc.addTransceiver(Tone(loudness), direction="sendonly")
        self.video = self.pc.addTransceiver(TestPattern(seed), direction="sendonly")
        self.receive = [
            (
                self.pc.addTransceiver("audio", direction="recvonly"),
                self.pc.addTransceiver("video", direction="recvonly"),
            )
            for _ in range(slots)
        ]
        self.frames: dict[tuple[int, str], int] = defaultdict(int)
        self.sizes: dict[tuple[int, str], tuple[int, int]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _slot_of(self, track: MediaStreamTrack) -> tuple[int, str]:
        for index, pair in enumerate(self.receive):
            for transceiver in pair:
                if transceiver.receiver.track is track:
                    return index, track.kind
        raise AssertionError("track of an unknown transceiver")

    def _on_track(self, track: MediaStreamTrack) -> None:
        async def consume() -> None:
            key = self._slot_of(track)
            with contextlib.suppress(Exception):
                while True:
                    frame = await track.recv()
                    self.frames[key] += 1
                    if key[1] == "video":
                        self.sizes[key] = (frame.width, frame.height)

        self._tasks.append(asyncio.get_running_loop().create_task(consume()))

    async def join(self) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, body = await self.sfu.request(
            "POST",
            "/v1/participants",
            {"participantId": self.name, "type": "offer", "sdp": self.pc.localDescription.sdp},
        )
        assert status == 201, body
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
        return dict(body)

    async def connected(self, within: float = 20) -> None:
        await wait_for(
            lambda: self.pc.connectionState == "connected", within, f"{self.name} to connect"
        )

    def video_frames(self, slot: int) -> int:
        return self.frames[(slot, "video")]

    def slots_receiving(self, kind: str, minimum: int) -> int:
        return sum(1 for (_, k), n in self.frames.items() if k == kind and n >= minimum)

    def slot_ssrc(self, slot: int, kind: str) -> int:
        """The SSRC the SFU sends on this slot (from the SFU's answer)."""
        transceiver = self.receive[slot][0 if kind == "audio" else 1]
        answer = aiortc_sdp.SessionDescription.parse(self.pc.remoteDescription.sdp)
        media = next(m for m in answer.media if m.rtp.muxId == transceiver.mid)
        return int(media.ssrc[0].ssrc)

    def payload_type(self, kind: str) -> int:
        """The negotiated payload type of ``kind`` (the same in every section)."""
        answer = aiortc_sdp.SessionDescription.parse(self.pc.remoteDescription.sdp)
        media = next(m for m in answer.media if m.kind == kind)
        return int(media.rtp.codecs[0].payloadType)

    @property
    def dtls(self) -> Any:
        return self.video.receiver.transport

    def selected_local_candidate_type(self) -> str | None:
        connection = self.dtls.transport._connection
        pair = connection._nominated.get(1)
        return None if pair is None else str(pair.local_candidate.type)

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="sprechzimmer-media-"))

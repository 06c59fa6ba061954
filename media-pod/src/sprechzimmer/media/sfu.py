"""The call: participants, their published streams and receive slots, and the forwarding path.

One ``Call`` per pod. Each participant has one aiortc peer connection used only for ICE, DTLS and
SRTP (see ``_aiortc_hooks``). Incoming RTP is parsed (header only), accounted, cached and written
to every slot that carries it with that subscriber's SSRC, sequence number, timestamp, payload
type and extension ids; payload bytes go out exactly as they came in. All RTCP is terminated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import candidate_from_sdp

from . import _aiortc_hooks as hooks
from .core import rtcp
from .core.cache import PacketCache
from .core.control import (
    ControlError,
    Event,
    EventType,
    LeaveReason,
    filter_offer_candidates,
)
from .core.receive import ReceiveStats
from .core.remb import RembAggregator
from .core.rewriter import SlotRewriter
from .core.rtp import (
    ExtensionIds,
    HeaderWriter,
    MalformedPacketError,
    RtpView,
    abs_send_time,
    parse_rtp,
    vp8_keyframe_start,
)
from .core.slots import SlotTable
from .core.speaker import ActiveSpeaker

logger = logging.getLogger(__name__)

PLI_THROTTLE_SECONDS: Final = 0.5
RTCP_INTERVAL_SECONDS: Final = 1.0
TICK_SECONDS: Final = 0.05  # housekeeping: NACK retries, key-frame requests, timeouts, speaker
EVENT_HISTORY: Final = 1000
CLOCK_RATES: Final = {"audio": 48000, "video": 90000}
CODECS: Final = {"audio": "audio/opus", "video": "video/VP8"}


class State(enum.Enum):
    JOINING = "joining"
    CONNECTED = "connected"
    LEFT = "left"


@dataclass
class Counters:
    """Hot-path counters, plain ints; exported at scrape time by ``metrics.SfuCollector``."""

    packets_in: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    bytes_in: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    packets_out: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    bytes_out: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    dropped: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("malformed", "unknown_ssrc", "srtp", "queue_full", "not_connected", "rtcp_malformed"),
            0,
        )
    )
    nacks_received: int = 0
    retransmitted: int = 0
    retransmit_missing: int = 0
    nacks_sent: int = 0
    plis_received: int = 0
    plis_sent: int = 0
    plis_throttled: int = 0
    rembs_sent: int = 0
    sender_reports_sent: int = 0
    receiver_reports_sent: int = 0
    upstream_lost: int = 0
    codec_entries: int = 0
    joins: int = 0
    leaves: dict[str, int] = field(default_factory=lambda: dict.fromkeys(map(str, LeaveReason), 0))


class PublishedStream:
    """One incoming stream (a participant's audio or video)."""

    def __init__(self, owner: Participant, kind: str, ssrc: int, payload_type: int) -> None:
        self.owner = owner
        self.kind = kind
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.stats = ReceiveStats(CLOCK_RATES[kind])
        self.cache = PacketCache()
        self.slots: list[OutSlot] = []
        self.last_sr: rtcp.SenderReport | None = None
        self.last_sr_at = 0.0
        self.last_pli = -PLI_THROTTLE_SECONDS
        self.ended = False


class OutSlot:
    """One outgoing stream of a subscriber: fixed SSRC, changing source."""

    def __init__(
        self, subscriber: Participant, index: int, kind: str, writer: HeaderWriter
    ) -> None:
        self.subscriber = subscriber
        self.send = subscriber.port.send  # bound once: called for every forwarded packet
        self.index = index
        self.kind = kind
        self.writer = writer
        self.rewriter = SlotRewriter(
            CLOCK_RATES[kind], secrets.randbelow(0x10000), secrets.randbelow(0x100000000)
        )
        self.source: PublishedStream | None = None
        self.waiting_keyframe = kind == "video"
        self.fraction_lost = 0


@dataclass
class _Layout:
    """What the SFU needs from one participant's offer and its own answer."""

    publish: dict[str, tuple[str, int | None]]  # kind -> (mid, ssrc from the offer)
    receive_mids: list[tuple[str, str]]  # (audio mid, video mid) per slot


class Participant:
    def __init__(self, call: Call, participant_id: str, pc: RTCPeerConnection) -> None:
        self.call = call
        self.id = participant_id
        self.log_id = secrets.token_hex(4)  # logs carry this, never the participant id
        self.pc = pc
        self.port = hooks.MediaPort(pc, self)
        self.state = State.JOINING
        self.ext = ExtensionIds()
        self.streams: dict[int, PublishedStream] = {}
        self.pending_mids: dict[bytes, tuple[str, int]] = {}  # unsignalled SSRCs, learnt by mid
        self.slots: list[tuple[OutSlot, OutSlot]] = []
        self.by_out_ssrc: dict[int, OutSlot] = {}
        self.table = SlotTable(0)
        self.rtcp_ssrc = 0
        self.cname = ""
        self.joined_at = time.time()
        self.last_packet_at = call.clock()

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            logger.info(
                "participant state changed",
                extra={"participant": self.log_id, "old": self.state.value, "new": state.value},
            )
            self.state = state

    # PacketSink: called synchronously from the socket callback.
    def on_rtp(self, data: bytes) -> None:
        self.call.forward_rtp(self, data)

    def on_rtcp(self, data: bytes) -> None:
        self.call.handle_rtcp(self, data)

    def on_srtp_error(self) -> None:
        self.call.counters.dropped["srtp"] += 1

    def on_queue_overflow(self) -> None:
        self.call.counters.dropped["queue_full"] += 1


def _first_codec(media: Any, kind: str) -> Any:
    for codec in media.rtp.codecs:
        if codec.mimeType.lower() == CODECS[kind].lower():
            return codec
    return None


class Call:
    """All participants of one call and the forwarding between them."""

    def __init__(
        self,
        max_participants: int,
        media_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_participants = max_participants
        self.media_timeout = media_timeout
        self.clock = clock
        self.counters = Counters()
        self.participants: dict[str, Participant] = {}
        self.remb = RembAggregator()
        self.speaker = ActiveSpeaker()
        self.draining = False
        self._events: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self._next_event = 1
        self._event_waiters: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._leaving: set[asyncio.Task[None]] = set()
        self.loop_lag = 0.0

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._event_waiters = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for participant in list(self.participants.values()):
            await self.leave(participant.id, LeaveReason.SHUTDOWN)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._leaving:
            await asyncio.gather(*self._leaving, return_exceptions=True)

    def _emit(
        self, kind: EventType, participant: str | None, reason: LeaveReason | None = None
    ) -> None:
        self._events.append(Event(self._next_event, kind, time.time(), participant, reason))
        self._next_event += 1
        if self._event_waiters is not None:
            waiters = self._event_waiters

            async def notify() -> None:
                async with waiters:
                    waiters.notify_all()

            task = asyncio.get_running_loop().create_task(notify())
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)

    def events_after(self, after: int) -> list[Event]:
        return [e for e in self._events if e.id > after]

    async def wait_events(self, after: int, wait_seconds: float) -> list[Event]:
        events = self.events_after(after)
        if events or self._event_waiters is None:
            return events
        with contextlib.suppress(TimeoutError):
            async with self._event_waiters:
                await asyncio.wait_for(
                    self._event_waiters.wait_for(lambda: bool(self.events_after(after))),
                    wait_seconds,
                )
        return self.events_after(after)

    # ---------------------------------------------------------------- join / leave
    async def join(self, participant_id: str, offer_sdp: str) -> str:
        if self.draining:
            raise ControlError(503, "the call is ending; no new participants")
        previous = self.participants.get(participant_id)
        if previous is not None:
            await self.leave(participant_id, LeaveReason.REPLACED)
        if len(self.participants) >= self.max_participants:
            raise ControlError(409, f"the call is full ({self.max_participants} participants)")
        offer_sdp, dropped = filter_offer_candidates(offer_sdp)
        try:
            offer = aiortc_sdp.SessionDescription.parse(offer_sdp)
        except Exception as exc:
            raise ControlError(400, f"sdp could not be parsed: {type(exc).__name__}") from exc
        layout = self._layout(offer)
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        participant = Participant(self, participant_id, pc)
        try:
            self._create_transceivers(pc, offer)
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            participant.port.prepare()
            receive_mids = {m for pair in layout.receive_mids for m in pair}
            for transceiver in pc.getTransceivers():
                if transceiver.mid in receive_mids:
                    index = next(
                        i for i, pair in enumerate(layout.receive_mids) if transceiver.mid in pair
                    )
                    hooks.set_stream_id(transceiver, f"slot{index}")
            await pc.setLocalDescription(await pc.createAnswer())
        except ControlError:
            await pc.close()
            raise
        except Exception as exc:
            await pc.close()
            raise ControlError(400, f"offer rejected: {exc}") from exc
        answer = pc.localDescription.sdp
        self._wire(participant, layout, aiortc_sdp.SessionDescription.parse(answer))
        participant.port.on_connected = lambda: self._connected(participant)
        participant.port.on_closed = lambda: self._schedule_leave(participant, LeaveReason.BYE)

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "failed":
                self._schedule_leave(participant, LeaveReason.FAILED)

        self.participants[participant_id] = participant
        self._assign_slots(participant)
        self.counters.joins += 1
        logger.info(
            "participant joined",
            extra={
                "participant": participant.log_id,
                "slots": len(participant.slots),
                "dropped_candidates": dropped,
            },
        )
        self._emit(EventType.JOINED, participant_id)
        return answer

    def _layout(self, offer: Any) -> _Layout:
        if not offer.media:
            raise ControlError(400, "the offer has no media sections")
        limit = 2 * self.max_participants + 2  # room for a clearer error about slots below
        if len(offer.media) > limit:
            raise ControlError(400, f"the offer has more than {limit} media sections")
        bundle = next((g for g in offer.group if g.semantic == "BUNDLE"), None)
        mids = [m.rtp.muxId for m in offer.media]
        if bundle is None or set(bundle.items) != set(mids):
            raise ControlError(400, "all media sections must be in one BUNDLE group")
        publish: dict[str, tuple[str, int | None]] = {}
        receive: dict[str, list[str]] = {"audio": [], "video": []}
        for media in offer.media:
            if media.kind not in CODECS:
                raise ControlError(
                    400, f"unsupported media section {media.kind!r} (audio/video only)"
                )
            if not media.rtcp_mux:
                raise ControlError(400, "rtcp-mux is required")
            if _first_codec(media, media.kind) is None:
                raise ControlError(400, f"{media.kind} must offer {CODECS[media.kind]}")
            if media.direction == "sendonly":
                if media.kind in publish:
                    raise ControlError(400, f"at most one sendonly {media.kind} section")
                ssrc = media.ssrc[0].ssrc if media.ssrc else None
                if media.ssrc_group:
                    ssrc = media.ssrc_group[0].items[0]
                publish[media.kind] = (media.rtp.muxId, ssrc)
            elif media.direction == "recvonly":
                receive[media.kind].append(media.rtp.muxId)
            elif media.direction != "inactive":
                raise ControlError(
                    400, "media sections must be sendonly (publish) or recvonly (slots)"
                )
        slots = list(zip(receive["audio"], receive["video"], strict=False))
        if len(receive["audio"]) != len(receive["video"]):
            raise ControlError(
                400, "receive slots need one recvonly audio and one recvonly video each"
            )
        if len(slots) > self.max_participants - 1:
            raise ControlError(400, f"at most {self.max_participants - 1} receive slots")
        return _Layout(publish, slots)

    @staticmethod
    def _create_transceivers(pc: RTCPeerConnection, offer: Any) -> None:
        """Pre-create the answer's transceivers: right direction, one codec, no RTX."""
        for media in offer.media:
            direction = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(
                media.direction, "inactive"
            )
            transceiver = pc.addTransceiver(media.kind, direction=direction)
            capabilities = RTCRtpSender.getCapabilities(media.kind).codecs
            transceiver.setCodecPreferences(
                [c for c in capabilities if c.mimeType.lower() == CODECS[media.kind].lower()]
            )

    def _wire(self, p: Participant, layout: _Layout, answer: Any) -> None:
        by_mid = {m.rtp.muxId: m for m in answer.media}
        first = answer.media[0]
        p.ext = ExtensionIds.from_uris(
            {e.uri: e.id for m in answer.media for e in m.rtp.headerExtensions}
        )
        for kind, (mid, ssrc) in layout.publish.items():
            codec = _first_codec(by_mid[mid], kind)
            if ssrc is not None:
                p.streams[ssrc] = PublishedStream(p, kind, ssrc, codec.payloadType)
            else:
                p.pending_mids[mid.encode()] = (kind, codec.payloadType)
        for index, (audio_mid, video_mid) in enumerate(layout.receive_mids):
            pair = []
            for kind, mid in (("audio", audio_mid), ("video", video_mid)):
                media = by_mid[mid]
                ssrc = media.ssrc[0].ssrc
                ids = ExtensionIds.from_uris({e.uri: e.id for e in media.rtp.headerExtensions})
                writer = HeaderWriter(ssrc, _first_codec(media, kind).payloadType, ids, mid)
                slot = OutSlot(p, index, kind, writer)
                p.by_out_ssrc[ssrc] = slot
                pair.append(slot)
            p.slots.append((pair[0], pair[1]))
        p.table = SlotTable(len(p.slots))
        p.rtcp_ssrc = first.ssrc[0].ssrc if first.ssrc else secrets.randbits(32)
        p.cname = first.ssrc[0].cname if first.ssrc else "sfu"

    def _assign_slots(self, newcomer: Participant) -> None:
        for other in self.participants.values():
            if other is newcomer:
                continue
            self._subscribe(other, newcomer)
            self._subscribe(newcomer, other)

    def _subscribe(self, subscriber: Participant, publisher: Participant) -> None:
        index = subscriber.table.assign(publisher.id)
        if index is None:
            return
        audio_slot, video_slot = subscriber.slots[index]
        for slot in (audio_slot, video_slot):
            stream = next((s for s in publisher.streams.values() if s.kind == slot.kind), None)
            self._attach(slot, stream)

    def _attach(self, slot: OutSlot, stream: PublishedStream | None) -> None:
        if slot.source is not None and slot in slot.source.slots:
            slot.source.slots.remove(slot)
        slot.source = stream
        slot.rewriter.reset_source()
        slot.waiting_keyframe = slot.kind == "video"
        if stream is not None:
            stream.slots.append(slot)
            if slot.kind == "video":
                self.request_keyframe(stream, self.clock())

    def _connected(self, p: Participant) -> None:
        if p.state is not State.JOINING:
            return
        p._set_state(State.CONNECTED)
        p.last_packet_at = self.clock()
        now = self.clock()
        # Video sent before this point was lost: restart every slot at a key frame.
        for _, video in p.slots:
            video.waiting_keyframe = True
            if video.source is not None:
                self.request_keyframe(video.source, now)
        self._emit(EventType.CONNECTED, p.id)

    def _schedule_leave(self, p: Participant, reason: LeaveReason) -> None:
        if p.state is State.LEFT or self.participants.get(p.id) is not p:
            return
        task = asyncio.get_running_loop().create_task(self._leave_participant(p, reason))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def leave(self, participant_id: str, reason: LeaveReason) -> bool:
        p = self.participants.get(participant_id)
        if p is None:
            return False
        await self._leave_participant(p, reason)
        return True

    async def _leave_participant(self, p: Participant, reason: LeaveReason) -> None:
        if p.state is State.LEFT or self.participants.get(p.id) is not p:
            return
        p._set_state(State.LEFT)
        del self.participants[p.id]
        for audio, video in p.slots:
            self._attach(audio, None)
            self._attach(video, None)
        for other in self.participants.values():
            index = other.table.release(p.id)
            if index is None:
                continue
            for slot in other.slots[index]:
                self._attach(slot, None)
            # Someone who found no free slot at this subscriber before gets this one now.
            for waiting in self.participants.values():
                if waiting is not other and other.table.slot_of(waiting.id) is None:
                    self._subscribe(other, waiting)
        self.remb.forget(p.id)
        self.speaker.forget(p.id)
        self.counters.leaves[str(reason)] += 1
        logger.info("participant left", extra={"participant": p.log_id, "reason": str(reason)})
        self._emit(EventType.LEFT, p.id, reason)
        await p.port.close()

    async def add_candidate(
        self, participant_id: str, candidate: str | None, mid: str | None, index: int | None
    ) -> None:
        p = self.participants.get(participant_id)
        if p is None:
            raise ControlError(404, "no such participant")
        if candidate is None:
            await p.pc.addIceCandidate(None)
            return
        parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
        parsed.sdpMid = mid
        parsed.sdpMLineIndex = index if index is not None else (0 if mid is None else None)
        await p.pc.addIceCandidate(parsed)

    # ---------------------------------------------------------------- forwarding (hot path)
    def forward_rtp(self, p: Participant, data: bytes) -> None:
        counters = self.counters
        try:
            view = parse_rtp(data, p.ext)
        except MalformedPacketError:
            counters.dropped["malformed"] += 1
            return
        stream = p.streams.get(view.ssrc)
        if stream is None:
            stream = self._learn_stream(p, view)
            if stream is None:
                counters.dropped["unknown_ssrc"] += 1
                return
        if view.payload_type != stream.payload_type:
            counters.dropped["unknown_ssrc"] += 1
            return
        now = self.clock()
        p.last_packet_at = now
        kind = stream.kind
        counters.packets_in[kind] += 1
        counters.bytes_in[kind] += len(data)
        if stream.stats.update(view.sequence, view.timestamp, now):
            self._send_upstream_nacks(stream, now)
        stream.cache.put(view, now)
        if kind == "audio" and view.audio_level >= 0:
            self.speaker.observe(p.id, view.audio_level, now)
        if not stream.slots:
            return
        payload = data[view.payload_offset :]
        ast = int(now * 262144.0) & 0xFFFFFF  # abs-send-time, 6.18 fixed point
        keyframe: bool | None = None  # looked at only when a slot waits for one
        sent = 0
        sent_bytes = 0
        for slot in stream.slots:
            if slot.waiting_keyframe:
                if keyframe is None:
                    keyframe = kind == "video" and vp8_keyframe_start(data, view.payload_offset)
                if not keyframe:
                    continue
                slot.waiting_keyframe = False
            rewriter = slot.rewriter
            mapped = rewriter.rewrite(stream.ssrc, view.sequence, view.timestamp, now)
            if mapped is None:
                continue
            packet = slot.writer.header(view, mapped[0], mapped[1], ast) + payload
            if slot.send(packet):
                rewriter.packets += 1
                rewriter.octets += len(payload)
                sent += 1
                sent_bytes += len(packet)
            else:
                counters.dropped["not_connected"] += 1
        counters.packets_out[kind] += sent
        counters.bytes_out[kind] += sent_bytes

    def _learn_stream(self, p: Participant, view: RtpView) -> PublishedStream | None:
        """Unsignalled SSRC: accept it if its mid names a publish section of this participant."""
        if view.mid is None or view.mid not in p.pending_mids:
            return None
        kind, payload_type = p.pending_mids.pop(view.mid)
        stream = PublishedStream(p, kind, view.ssrc, payload_type)
        p.streams[view.ssrc] = stream
        for other in self.participants.values():
            index = other.table.slot_of(p.id)
            if index is not None:
                self._attach(other.slots[index][0 if kind == "audio" else 1], stream)
        return stream

    def _retransmit(self, slot: OutSlot, sequences: tuple[int, ...], now: float) -> None:
        source = slot.source
        mapping = slot.rewriter.mapping
        if source is None or mapping is None:
            self.counters.retransmit_missing += len(sequences)
            return
        ast = abs_send_time(now)
        for out_seq in sequences:
            in_seq = slot.rewriter.source_sequence(out_seq)
            view = source.cache.get(in_seq, now) if in_seq is not None else None
            if view is None:
                self.counters.retransmit_missing += 1
                continue
            ts = (view.timestamp + mapping.ts_offset) & 0xFFFFFFFF
            packet = slot.writer.header(view, out_seq, ts, ast) + view.data[view.payload_offset :]
            if slot.subscriber.port.send(packet):
                self.counters.retransmitted += 1
                self.counters.packets_out[slot.kind] += 1
                self.counters.bytes_out[slot.kind] += len(packet)

    # ---------------------------------------------------------------- RTCP
    def handle_rtcp(self, p: Participant, data: bytes) -> None:
        try:
            packets = rtcp.parse_rtcp(data)
        except MalformedPacketError:
            self.counters.dropped["rtcp_malformed"] += 1
            return
        now = self.clock()
        p.last_packet_at = now
        for packet in packets:
            if isinstance(packet, rtcp.SenderReport):
                stream = p.streams.get(packet.ssrc)
                if stream is not None:
                    stream.last_sr = packet
                    stream.last_sr_at = now
                    self._forward_sender_report(stream, packet)
                self._record_reports(p, packet.reports)
            elif isinstance(packet, rtcp.ReceiverReport):
                self._record_reports(p, packet.reports)
            elif isinstance(packet, rtcp.Nack):
                slot = p.by_out_ssrc.get(packet.media_ssrc)
                if slot is not None:
                    self.counters.nacks_received += 1
                    self._retransmit(slot, packet.lost, now)
            elif isinstance(packet, rtcp.Pli | rtcp.Fir):
                media = (packet.media_ssrc,) if isinstance(packet, rtcp.Pli) else packet.media_ssrcs
                for ssrc in media:
                    slot = p.by_out_ssrc.get(ssrc)
                    if slot is not None and slot.source is not None:
                        self.counters.plis_received += 1
                        self.request_keyframe(slot.source, now)
            elif isinstance(packet, rtcp.Remb):
                for ssrc in packet.ssrcs:
                    slot = p.by_out_ssrc.get(ssrc)
                    if slot is not None and slot.source is not None:
                        self.remb.record(p.id, slot.source.owner.id, packet.bitrate, now)
            elif isinstance(packet, rtcp.Bye):
                self._bye(p, packet.sources)

    def _record_reports(self, p: Participant, reports: tuple[rtcp.ReportBlock, ...]) -> None:
        for block in reports:
            slot = p.by_out_ssrc.get(block.ssrc)
            if slot is not None:
                slot.fraction_lost = block.fraction_lost

    def _bye(self, p: Participant, sources: tuple[int, ...]) -> None:
        for ssrc in sources:
            stream = p.streams.get(ssrc)
            if stream is not None:
                stream.ended = True
        if p.streams and all(s.ended for s in p.streams.values()):
            self._schedule_leave(p, LeaveReason.BYE)

    def _forward_sender_report(self, stream: PublishedStream, report: rtcp.SenderReport) -> None:
        """Each subscriber gets the publisher's NTP↔RTP mapping in its own timestamp space."""
        for slot in stream.slots:
            offset = slot.rewriter.source_timestamp_offset(stream.ssrc)
            if offset is None:
                continue
            subscriber = slot.subscriber
            packet = rtcp.build_sr(
                rtcp.SenderReport(
                    ssrc=slot.writer.ssrc,
                    ntp=report.ntp,
                    rtp_timestamp=(report.rtp_timestamp + offset) & 0xFFFFFFFF,
                    packet_count=slot.rewriter.packets,
                    octet_count=slot.rewriter.octets,
                )
            ) + rtcp.build_sdes_cname(slot.writer.ssrc, subscriber.cname)
            if subscriber.port.send(packet):
                self.counters.sender_reports_sent += 1

    def request_keyframe(self, stream: PublishedStream, now: float) -> None:
        if stream.kind != "video":
            return
        if now - stream.last_pli < PLI_THROTTLE_SECONDS:
            self.counters.plis_throttled += 1
            return
        owner = stream.owner
        if owner.port.send(rtcp.build_pli(owner.rtcp_ssrc, stream.ssrc)):
            stream.last_pli = now
            self.counters.plis_sent += 1

    def _send_upstream_nacks(self, stream: PublishedStream, now: float) -> None:
        due = stream.stats.nacks_due(now)
        if due and stream.owner.port.send(
            rtcp.build_nack(stream.owner.rtcp_ssrc, stream.ssrc, due)
        ):
            self.counters.nacks_sent += 1

    def _upstream_reports(self, p: Participant, now: float) -> None:
        """Receiver reports for everything ``p`` publishes, plus REMB for its video."""
        if not p.streams or not p.port.connected:
            return
        blocks = []
        remb = b""
        for stream in p.streams.values():
            lsr = dlsr = 0
            if stream.last_sr is not None:
                lsr = (stream.last_sr.ntp >> 16) & 0xFFFFFFFF
                dlsr = int((now - stream.last_sr_at) * 65536)
            before = stream.stats.given_up
            blocks.append(stream.stats.report_block(stream.ssrc, lsr, dlsr))
            self.counters.upstream_lost += stream.stats.given_up - before
            if stream.kind == "video":
                target = self.remb.target(p.id, now)
                if target is not None:
                    remb = rtcp.build_remb(p.rtcp_ssrc, target, [stream.ssrc])
        if p.port.send(rtcp.build_rr(p.rtcp_ssrc, blocks) + remb):
            self.counters.receiver_reports_sent += 1
            if remb:
                self.counters.rembs_sent += 1

    # ---------------------------------------------------------------- periodic work
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_rtcp = self.clock() + RTCP_INTERVAL_SECONDS
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_SECONDS)
            self.loop_lag = max(0.0, loop.time() - before - TICK_SECONDS)
            now = self.clock()
            try:
                self._tick(now)
                if now >= next_rtcp:
                    next_rtcp = now + RTCP_INTERVAL_SECONDS
                    for p in list(self.participants.values()):
                        self._upstream_reports(p, now)
            except Exception:
                logger.exception("periodic SFU work failed")

    def _tick(self, now: float) -> None:
        for p in list(self.participants.values()):
            for stream in p.streams.values():
                self._send_upstream_nacks(stream, now)
            # A slot waiting for a key frame keeps asking (throttled) until one arrives: the
            # first request may have gone out before either side was connected.
            if p.port.connected:
                for _, video in p.slots:
                    source = video.source
                    if (
                        video.waiting_keyframe
                        and source is not None
                        and now - source.last_pli >= PLI_THROTTLE_SECONDS
                    ):
                        self.request_keyframe(source, now)
            silent = now - p.last_packet_at
            if p.state is State.CONNECTED and silent > self.media_timeout:
                self._schedule_leave(p, LeaveReason.TIMEOUT)
            elif p.state is State.JOINING and silent > max(30.0, 3 * self.media_timeout):
                self._schedule_leave(p, LeaveReason.FAILED)
        speaker = self.speaker.decide(now)
        if speaker is not None:
            self._emit(EventType.SPEAKER, speaker)

    # ---------------------------------------------------------------- introspection
    def participant_stats(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for p in self.participants.values():
            published = {
                s.kind: {
                    "packetsReceived": s.stats.received,
                    "packetsLost": s.stats.lost,
                    "subscribers": len(s.slots),
                }
                for s in p.streams.values()
            }
            slots = [
                {
                    "slot": audio.index,
                    "publisherId": p.table.publisher_in(audio.index),
                    "packetsSent": audio.rewriter.packets + video.rewriter.packets,
                    "fractionLost": round(max(audio.fraction_lost, video.fraction_lost) / 256, 3),
                }
                for audio, video in p.slots
            ]
            out.append(
                {
                    "participantId": p.id,
                    "state": p.state.value,
                    "joinedAt": round(p.joined_at, 3),
                    "published": published,
                    "slots": slots,
                    "activeSpeaker": self.speaker.current == p.id,
                }
            )
        return out

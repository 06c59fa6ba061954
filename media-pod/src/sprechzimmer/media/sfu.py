"""The call: who is in it, which slot carries whom, and the forwarding path.

One ``Call`` per pod. Each participant has one aiortc peer connection used only for ICE, DTLS and
SRTP (see ``_aiortc_hooks``). Incoming RTP is parsed (header only), accounted, cached and written
to every slot that carries it with that subscriber's SSRC, sequence number, timestamp, payload
type and extension ids; payload bytes go out exactly as they came in. A slot is written to only
once its subscriber's transport is up. RTCP is terminated in ``feedback``; offers are read in
``negotiation``; ``/v1/events`` is served from ``events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from . import negotiation
from .core.control import ControlError, EventType, LeaveReason, filter_offer_candidates
from .core.negotiation import plan_layout, plan_wiring
from .core.remb import RembAggregator
from .core.rtp import MalformedPacketError, RtpView, parse_rtp, vp8_keyframe_start
from .core.speaker import ActiveSpeaker
from .events import EventLog
from .feedback import Feedback
from .participant import Counters, OutSlot, Participant, PublishedStream, State

logger = logging.getLogger(__name__)

RTCP_INTERVAL_SECONDS: Final = 1.0
TICK_SECONDS: Final = 0.05  # housekeeping: NACK retries, key-frame requests, timeouts, speaker
# At the end of a drain: how long open event polls get to take the final events, and how long
# closing everyone's transport may take. Both fit in the kubelet's margin after the grace period
# (sprechzimmer.contract.mediapod.DRAIN_MARGIN_SECONDS).
POLLS_ANSWER_SECONDS: Final = 1.0
PORTS_CLOSE_SECONDS: Final = 2.0


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
        self.events = EventLog()
        self.feedback = Feedback(
            self.counters, self.remb, lambda p: self._schedule_leave(p, LeaveReason.BYE)
        )
        self.draining = False
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self._leaving: set[asyncio.Task[None]] = set()
        self.loop_lag = 0.0

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def drain(self, grace_seconds: float) -> None:
        """After SIGTERM: refuse joins, keep forwarding until the call is empty or the grace
        period has passed, then end the call whatever requests are still open."""
        self.draining = True
        logger.info("draining", extra={"participants": len(self.participants)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), grace_seconds)
        await self.stop()

    async def stop(self) -> None:
        """Everyone leaves (``shutdown``), open event polls get those events, transports close."""
        leaving = list(self.participants.values())
        for p in leaving:
            self._remove(p, LeaveReason.SHUTDOWN)
        await self.events.close(POLLS_ANSWER_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(
                    *(p.port.close() for p in leaving), *self._leaving, return_exceptions=True
                ),
                PORTS_CLOSE_SECONDS,
            )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---------------------------------------------------------------- join / leave
    async def join(self, participant_id: str, offer_sdp: str) -> str:
        if self.draining:
            raise ControlError(503, "the call is ending; no new participants")
        if participant_id in self.participants:
            await self.leave(participant_id, LeaveReason.REPLACED)
        if len(self.participants) >= self.max_participants:
            raise ControlError(409, f"the call is full ({self.max_participants} participants)")
        offer_sdp, dropped = filter_offer_candidates(offer_sdp)
        layout = plan_layout(negotiation.read_sdp(offer_sdp), self.max_participants)
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        p = Participant(self, self.events, participant_id, pc, self.clock())
        try:
            answer = await negotiation.answer(pc, offer_sdp, layout, p.port.prepare)
            p.wire(plan_wiring(layout, negotiation.read_sdp(answer)))
        except ControlError:
            await pc.close()
            raise
        p.port.on_connected = lambda: self._connected(p)
        p.port.on_closed = lambda: self._schedule_leave(p, LeaveReason.BYE)

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "failed":
                self._schedule_leave(p, LeaveReason.FAILED)

        self.participants[participant_id] = p
        self._empty.clear()
        self._assign_slots(p)
        self.counters.joins += 1
        logger.info(
            "participant joined",
            extra={"participant": p.log_id, "slots": len(p.slots), "dropped_candidates": dropped},
        )
        p._set_state(State.JOINING)
        return answer

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
        for slot in subscriber.slots[index]:
            stream = next((s for s in publisher.streams.values() if s.kind == slot.kind), None)
            self._attach(slot, stream)

    def _attach(self, slot: OutSlot, stream: PublishedStream | None) -> None:
        """Make ``stream`` the slot's source; it is forwarded to once the subscriber is
        connected (until then packets for it would only be dropped)."""
        if slot.source is not None and slot in slot.source.slots:
            slot.source.slots.remove(slot)
        slot.source = stream
        slot.rewriter.reset_source()
        slot.waiting_keyframe = slot.kind == "video"
        if stream is not None and slot.subscriber.state is State.CONNECTED:
            stream.slots.append(slot)
            if slot.kind == "video":
                self.feedback.request_keyframe(stream, self.clock())

    def _connected(self, p: Participant) -> None:
        if p.state is not State.JOINING:
            return
        p._set_state(State.CONNECTED)
        now = self.clock()
        p.last_packet_at = now
        for audio, video in p.slots:
            for slot in (audio, video):
                if slot.source is not None and slot not in slot.source.slots:
                    slot.source.slots.append(slot)
            video.waiting_keyframe = True
            if video.source is not None:
                self.feedback.request_keyframe(video.source, now)

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
        self._remove(p, reason)
        await p.port.close()

    def _remove(self, p: Participant, reason: LeaveReason) -> None:
        """Take ``p`` out of the call and hand its slots at others to whoever waits for one."""
        p._set_state(State.LEFT, reason)
        del self.participants[p.id]
        if not self.participants:
            self._empty.set()
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
            self.feedback.send_upstream_nacks(stream, now)
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

    def handle_rtcp(self, p: Participant, data: bytes) -> None:
        self.feedback.handle(p, data, self.clock())

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
                        self.feedback.upstream_reports(p, now)
            except Exception:
                logger.exception("periodic SFU work failed")

    def _tick(self, now: float) -> None:
        for p in list(self.participants.values()):
            for stream in p.streams.values():
                self.feedback.send_upstream_nacks(stream, now)
            self.feedback.keep_asking_for_keyframes(p, now)
            silent = now - p.last_packet_at
            if p.state is State.CONNECTED and silent > self.media_timeout:
                self._schedule_leave(p, LeaveReason.TIMEOUT)
            elif p.state is State.JOINING and silent > max(30.0, 3 * self.media_timeout):
                self._schedule_leave(p, LeaveReason.FAILED)
        speaker = self.speaker.decide(now)
        if speaker is not None:
            self.events.emit(EventType.SPEAKER, speaker)

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

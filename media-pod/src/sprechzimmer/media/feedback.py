"""RTCP, terminated at the SFU: what subscribers ask for, and what publishers are told.

From subscribers: NACKs are answered from the publisher's packet cache, PLI/FIR become one
PLI to the publisher at most once a second (a browser still waiting for an end-to-end key asks
every few hundred milliseconds), REMB estimates feed the per-publisher minimum, receiver reports
record the slot's loss, BYE for all of a participant's streams is a leave. To subscribers: each
slot gets the publisher's sender reports moved into its own timestamp space. To publishers:
receiver reports, NACKs for upstream gaps and REMB (the minimum over their subscribers).
"""

from __future__ import annotations

from collections.abc import Callable

from .core import rtcp
from .core.remb import RembAggregator
from .core.rtp import MalformedPacketError, abs_send_time
from .participant import (
    PLI_THROTTLE_SECONDS,
    SUBSCRIBER_PLI_INTERVAL_SECONDS,
    Counters,
    OutSlot,
    Participant,
    PublishedStream,
)


class Feedback:
    def __init__(
        self,
        counters: Counters,
        remb: RembAggregator,
        on_bye: Callable[[Participant], None],
    ) -> None:
        self.counters = counters
        self.remb = remb
        self._on_bye = on_bye

    # ---------------------------------------------------------------- from participants
    def handle(self, p: Participant, data: bytes, now: float) -> None:
        try:
            packets = rtcp.parse_rtcp(data)
        except MalformedPacketError:
            self.counters.dropped["rtcp_malformed"] += 1
            return
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
                    self.retransmit(slot, packet.lost, now)
            elif isinstance(packet, rtcp.Pli | rtcp.Fir):
                media = (packet.media_ssrc,) if isinstance(packet, rtcp.Pli) else packet.media_ssrcs
                for ssrc in media:
                    slot = p.by_out_ssrc.get(ssrc)
                    if slot is not None and slot.source is not None:
                        self.counters.plis_received += 1
                        self.request_keyframe(slot.source, now, SUBSCRIBER_PLI_INTERVAL_SECONDS)
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
            self._on_bye(p)

    # ---------------------------------------------------------------- to subscribers
    def retransmit(self, slot: OutSlot, sequences: tuple[int, ...], now: float) -> None:
        """Resend what a subscriber NACKed from the source's cache, rewritten as before."""
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
            if slot.send(packet):
                self.counters.retransmitted += 1
                self.counters.packets_out[slot.kind] += 1
                self.counters.bytes_out[slot.kind] += len(packet)

    def _forward_sender_report(self, stream: PublishedStream, report: rtcp.SenderReport) -> None:
        """Each subscriber gets the publisher's NTP↔RTP mapping in its own timestamp space."""
        for slot in stream.slots:
            offset = slot.rewriter.source_timestamp_offset(stream.ssrc)
            if offset is None:
                continue
            packet = rtcp.build_sr(
                rtcp.SenderReport(
                    ssrc=slot.writer.ssrc,
                    ntp=report.ntp,
                    rtp_timestamp=(report.rtp_timestamp + offset) & 0xFFFFFFFF,
                    packet_count=slot.rewriter.packets,
                    octet_count=slot.rewriter.octets,
                )
            ) + rtcp.build_sdes_cname(slot.writer.ssrc, slot.subscriber.cname)
            if slot.send(packet):
                self.counters.sender_reports_sent += 1

    # ---------------------------------------------------------------- to publishers
    def request_keyframe(
        self, stream: PublishedStream, now: float, interval: float = PLI_THROTTLE_SECONDS
    ) -> None:
        """A PLI to the publisher of ``stream`` unless one went out less than ``interval`` ago."""
        if stream.kind != "video":
            return
        if now - stream.last_pli < interval:
            self.counters.plis_throttled += 1
            return
        owner = stream.owner
        if owner.port.send(rtcp.build_pli(owner.rtcp_ssrc, stream.ssrc)):
            stream.last_pli = now
            self.counters.plis_sent += 1

    def keep_asking_for_keyframes(self, p: Participant, now: float) -> None:
        """A slot waiting for a key frame keeps asking (throttled) until one arrives: the first
        request may have gone out before either side was connected."""
        if not p.port.connected:
            return
        for _, video in p.slots:
            source = video.source
            if (
                video.waiting_keyframe
                and source is not None
                and now - source.last_pli >= PLI_THROTTLE_SECONDS
            ):
                self.request_keyframe(source, now)

    def send_upstream_nacks(self, stream: PublishedStream, now: float) -> None:
        due = stream.stats.nacks_due(now)
        if due and stream.owner.port.send(
            rtcp.build_nack(stream.owner.rtcp_ssrc, stream.ssrc, due)
        ):
            self.counters.nacks_sent += 1

    def upstream_reports(self, p: Participant, now: float) -> None:
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

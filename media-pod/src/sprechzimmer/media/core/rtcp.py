"""RTCP parsing and building for what the SFU terminates (RFC 3550, 4585, 5104, REMB). No I/O.

The SFU never forwards RTCP as received: every report and feedback message is read here and the
SFU writes its own, in the SSRC and sequence-number space of the hop it is sent on.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from .rtp import MalformedPacketError

PT_SR: Final = 200
PT_RR: Final = 201
PT_SDES: Final = 202
PT_BYE: Final = 203
PT_RTPFB: Final = 205
PT_PSFB: Final = 206
FMT_NACK: Final = 1
FMT_PLI: Final = 1
FMT_FIR: Final = 4
FMT_AFB: Final = 15
MAX_RTCP_SIZE: Final = 1500

_HEADER: Final = struct.Struct("!BBH")
_SSRC: Final = struct.Struct("!I")
_SENDER_INFO: Final = struct.Struct("!IIIII")
_REPORT: Final = struct.Struct("!IB3sIIII")
_FB: Final = struct.Struct("!II")
_NACK_ITEM: Final = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Nack:
    sender_ssrc: int
    media_ssrc: int
    lost: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Pli:
    sender_ssrc: int
    media_ssrc: int


@dataclass(frozen=True, slots=True)
class Fir:
    sender_ssrc: int
    media_ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Remb:
    sender_ssrc: int
    bitrate: int
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    sources: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed packet the SFU has no use for (SDES, XR, APP, unknown feedback)."""

    packet_type: int
    fmt: int = 0


RtcpPacket = SenderReport | ReceiverReport | Nack | Pli | Fir | Remb | Bye | Ignored


def _report_blocks(data: bytes, pos: int, count: int, end: int) -> tuple[ReportBlock, ...]:
    if pos + 24 * count > end:
        raise MalformedPacketError("RTCP report blocks overrun the packet")
    blocks = []
    for _ in range(count):
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT.unpack_from(data, pos)
        lost_value = int.from_bytes(lost, "big", signed=True)
        blocks.append(ReportBlock(ssrc, fraction, lost_value, highest, jitter, lsr, dlsr))
        pos += 24
    return tuple(blocks)


def _parse_one(data: bytes, pos: int, count: int, packet_type: int, end: int) -> RtcpPacket:
    body = pos + 4
    if packet_type == PT_SR:
        if body + 24 > end:
            raise MalformedPacketError("short RTCP SR")
        (ssrc,) = _SSRC.unpack_from(data, body)
        ntp_hi, ntp_lo, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(data, body + 4)
        blocks = _report_blocks(data, body + 24, count, end)
        return SenderReport(ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets, blocks)
    if packet_type == PT_RR:
        if body + 4 > end:
            raise MalformedPacketError("short RTCP RR")
        (ssrc,) = _SSRC.unpack_from(data, body)
        return ReceiverReport(ssrc, _report_blocks(data, body + 4, count, end))
    if packet_type == PT_BYE:
        if body + 4 * count > end:
            raise MalformedPacketError("short RTCP BYE")
        return Bye(struct.unpack_from(f"!{count}I", data, body))
    if packet_type in (PT_RTPFB, PT_PSFB):
        if body + 8 > end:
            raise MalformedPacketError("short RTCP feedback")
        sender, media = _FB.unpack_from(data, body)
        fci = body + 8
        if packet_type == PT_RTPFB and count == FMT_NACK:
            lost: list[int] = []
            for item in range(fci, end - 3, 4):
                pid, blp = _NACK_ITEM.unpack_from(data, item)
                lost.append(pid)
                lost.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if blp >> bit & 1)
            return Nack(sender, media, tuple(lost))
        if packet_type == PT_PSFB and count == FMT_PLI:
            return Pli(sender, media)
        if packet_type == PT_PSFB and count == FMT_FIR:
            ssrcs = tuple(_SSRC.unpack_from(data, item)[0] for item in range(fci, end - 7, 8))
            return Fir(sender, ssrcs)
        if packet_type == PT_PSFB and count == FMT_AFB and data[fci : fci + 4] == b"REMB":
            if fci + 8 > end:
                raise MalformedPacketError("short REMB")
            num, b1, b2, b3 = data[fci + 4 : fci + 8]
            exponent = b1 >> 2
            mantissa = ((b1 & 0x03) << 16) | (b2 << 8) | b3
            if fci + 8 + 4 * num > end:
                raise MalformedPacketError("REMB lists more SSRCs than it carries")
            ssrcs = struct.unpack_from(f"!{num}I", data, fci + 8)
            return Remb(sender, mantissa << exponent, ssrcs)
    return Ignored(packet_type, count)


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; raise MalformedPacketError if any part is malformed."""
    size = len(data)
    if size < 4 or size > MAX_RTCP_SIZE:
        raise MalformedPacketError(f"RTCP packet of {size} bytes")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < size:
        if pos + 4 > size:
            raise MalformedPacketError("truncated RTCP header")
        b0, packet_type, words = _HEADER.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise MalformedPacketError("RTCP version is not 2")
        end = pos + 4 * (words + 1)
        if end > size:
            raise MalformedPacketError("RTCP length exceeds the packet")
        packets.append(_parse_one(data, pos, b0 & 0x1F, packet_type, end))
        pos = end
    return packets


def _header(count: int, packet_type: int, body_length: int) -> bytes:
    return _HEADER.pack(0x80 | count, packet_type, body_length // 4)


def _blocks(reports: Sequence[ReportBlock]) -> bytes:
    out = b""
    for r in reports:
        lost = max(-0x800000, min(0x7FFFFF, r.packets_lost)).to_bytes(3, "big", signed=True)
        out += _REPORT.pack(
            r.ssrc, r.fraction_lost, lost, r.highest_sequence, r.jitter, r.lsr, r.dlsr
        )
    return out


def build_sr(report: SenderReport) -> bytes:
    body = _SSRC.pack(report.ssrc) + _SENDER_INFO.pack(
        report.ntp >> 32 & 0xFFFFFFFF,
        report.ntp & 0xFFFFFFFF,
        report.rtp_timestamp & 0xFFFFFFFF,
        report.packet_count & 0xFFFFFFFF,
        report.octet_count & 0xFFFFFFFF,
    )
    body += _blocks(report.reports)
    return _header(len(report.reports), PT_SR, len(body)) + body


def build_rr(ssrc: int, reports: Sequence[ReportBlock]) -> bytes:
    body = _SSRC.pack(ssrc) + _blocks(reports)
    return _header(len(reports), PT_RR, len(body)) + body


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    text = cname.encode("utf-8")[:255]
    chunk = _SSRC.pack(ssrc) + bytes((1, len(text))) + text + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return _header(1, PT_SDES, len(chunk)) + chunk


def build_nack(sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> bytes:
    """A generic NACK; ``lost`` is packed into (PID, BLP) items."""
    items = b""
    pending = sorted(set(lost))
    while pending:
        pid = pending.pop(0)
        blp = 0
        rest = []
        for seq in pending:
            d = (seq - pid) & 0xFFFF
            if 1 <= d <= 16:
                blp |= 1 << (d - 1)
            else:
                rest.append(seq)
        pending = rest
        items += _NACK_ITEM.pack(pid, blp)
    body = _FB.pack(sender_ssrc, media_ssrc) + items
    return _header(FMT_NACK, PT_RTPFB, len(body)) + body


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return _header(FMT_PLI, PT_PSFB, 8) + _FB.pack(sender_ssrc, media_ssrc)


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: Sequence[int]) -> bytes:
    exponent = 0
    mantissa = max(0, bitrate)
    while mantissa >= 1 << 18:
        mantissa >>= 1
        exponent += 1
    fci = b"REMB" + bytes(
        (len(ssrcs), (exponent << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF)
    )
    fci += struct.pack(f"!{len(ssrcs)}I", *ssrcs)
    body = _FB.pack(sender_ssrc, 0) + fci
    return _header(FMT_AFB, PT_PSFB, len(body)) + body

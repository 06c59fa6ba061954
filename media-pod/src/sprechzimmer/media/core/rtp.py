"""RTP header views and per-subscriber header rewriting (RFC 3550, RFC 8285, RFC 7741). No I/O.

The forwarding path parses a packet's fixed header and the header extensions the SFU needs, then
builds a fresh header for every subscriber (its SSRC, sequence number, timestamp, payload type,
its extension ids and its mid) and appends the payload unchanged. Payload bytes are never
modified or interpreted, except that the first bytes of a VP8 payload are *read* to recognise the
start of a key frame (browsers' end-to-end encryption leaves them in the clear for that reason).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

URI_MID: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_AUDIO_LEVEL: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
URI_ABS_SEND_TIME: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

# Anything larger cannot have come through a 1500-byte MTU path and is dropped.
MAX_RTP_SIZE: Final = 1500
RTP_HEADER_SIZE: Final = 12

_FIXED: Final = struct.Struct("!BBHII")
_EXT_HEADER: Final = struct.Struct("!HH")
_ONE_BYTE_PROFILE: Final = 0xBEDE


class MalformedPacketError(ValueError):
    """A datagram that is not a valid RTP/RTCP packet; it is dropped and counted."""


@dataclass(frozen=True, slots=True)
class ExtensionIds:
    """Negotiated one-byte header extension ids of one peer connection (0: not negotiated)."""

    mid: int = 0
    audio_level: int = 0
    abs_send_time: int = 0

    @classmethod
    def from_uris(cls, ids: Mapping[str, int]) -> ExtensionIds:
        """Pick the extensions the SFU uses from an ``uri -> id`` map of one SDP."""
        return cls(
            mid=ids.get(URI_MID, 0),
            audio_level=ids.get(URI_AUDIO_LEVEL, 0),
            abs_send_time=ids.get(URI_ABS_SEND_TIME, 0),
        )


@dataclass(slots=True)
class RtpView:
    """What the SFU reads from one RTP packet; ``data`` is the packet itself, unmodified."""

    data: bytes
    marker: int  # 0x80 or 0, ready to be or-ed into the second header byte
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload_offset: int
    padding: int  # 0x20 or 0, the padding flag to keep (padding bytes stay in the payload)
    mid: bytes | None
    audio_level: int  # 0..127 (-dBov), -1 when absent
    voice: bool


def parse_rtp(data: bytes, ids: ExtensionIds) -> RtpView:
    """Parse the fixed header and the extensions listed in ``ids``; raise on malformed input."""
    size = len(data)
    if size < RTP_HEADER_SIZE or size > MAX_RTP_SIZE:
        raise MalformedPacketError(f"RTP packet of {size} bytes")
    b0, b1, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    if b0 >> 6 != 2:
        raise MalformedPacketError("RTP version is not 2")
    offset = RTP_HEADER_SIZE + 4 * (b0 & 0x0F)
    mid: bytes | None = None
    level = -1
    voice = False
    if b0 & 0x10:
        if offset + 4 > size:
            raise MalformedPacketError("truncated RTP header extension")
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        start = offset + 4
        end = start + 4 * words
        if end > size:
            raise MalformedPacketError("RTP header extension longer than the packet")
        two_byte = (profile & 0xFFF0) == 0x1000
        if profile != _ONE_BYTE_PROFILE and not two_byte:
            start = end  # an extension profile we do not know: skip it as a whole
        i = start
        while i < end:
            head = data[i]
            if head == 0:  # padding between elements
                i += 1
                continue
            if two_byte:
                if i + 2 > end:
                    raise MalformedPacketError("truncated two-byte header extension")
                ext_id = head
                length = data[i + 1]
                i += 2
            else:
                ext_id = head >> 4
                if ext_id == 15:
                    break
                length = (head & 0x0F) + 1
                i += 1
            if i + length > end:
                raise MalformedPacketError("header extension element overruns its block")
            if ext_id == ids.mid:
                mid = data[i : i + length]
            elif ext_id == ids.audio_level and length >= 1:
                value = data[i]
                voice = bool(value & 0x80)
                level = value & 0x7F
            i += length
        offset = end
    if offset > size:
        raise MalformedPacketError("RTP header longer than the packet")
    padding = b0 & 0x20
    if padding:
        count = data[-1]
        if count == 0 or offset + count > size:
            raise MalformedPacketError("invalid RTP padding")
    return RtpView(
        data=data,
        marker=b1 & 0x80,
        payload_type=b1 & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload_offset=offset,
        padding=padding,
        mid=mid,
        audio_level=level,
        voice=voice,
    )


class HeaderWriter:
    """Builds RTP headers for one outgoing stream (one slot of one subscriber).

    Only extensions the subscriber negotiated are written, with its ids: its own mid (browsers
    route by it), the publisher's audio level, and abs-send-time stamped at forwarding time (the
    subscriber's bandwidth estimate measures the SFU → subscriber hop). Extensions the SFU does
    not understand are dropped rather than forwarded with ids the subscriber never agreed to.

    The header layouts are compiled once per slot into ``struct.Struct``s, so building a header is
    a single ``pack`` call on the forwarding path.
    """

    __slots__ = (
        "_ast",
        "_level_id",
        "_plain",
        "_with_level",
        "_without_level",
        "payload_type",
        "ssrc",
    )

    def __init__(self, ssrc: int, payload_type: int, ids: ExtensionIds, mid: str) -> None:
        self.ssrc = ssrc
        self.payload_type = payload_type
        encoded = mid.encode("ascii")
        if ids.mid and not 1 <= len(encoded) <= 16:
            raise ValueError(f"mid {mid!r} does not fit a one-byte header extension")
        mid_element = bytes([(ids.mid << 4) | (len(encoded) - 1)]) + encoded if ids.mid else b""
        self._level_id = ids.audio_level << 4
        self._ast = (ids.abs_send_time << 28) | (2 << 24) if ids.abs_send_time else 0
        self._plain = _FIXED
        self._without_level = self._layout(mid_element, level=False)
        self._with_level = self._layout(mid_element, level=bool(ids.audio_level))

    def _layout(self, mid_element: bytes, *, level: bool) -> tuple[struct.Struct, bytes] | None:
        size = len(mid_element) + (2 if level else 0) + (4 if self._ast else 0)
        if not size:
            return None
        pad = -size % 4
        prefix = _EXT_HEADER.pack(_ONE_BYTE_PROFILE, (size + pad) // 4) + mid_element
        fmt = f"!BBHII{len(prefix)}s" + ("BB" if level else "") + ("I" if self._ast else "")
        return struct.Struct(fmt + f"{pad}x"), prefix

    def header(self, view: RtpView, sequence: int, timestamp: int, abs_send_time: int) -> bytes:
        """The complete RTP header (fixed part and extension block) for ``view``."""
        level = self._level_id and view.audio_level >= 0
        layout = self._with_level if level else self._without_level
        b1 = view.marker | self.payload_type
        if layout is None:
            return self._plain.pack(0x80 | view.padding, b1, sequence, timestamp, self.ssrc)
        packer, prefix = layout
        b0 = 0x90 | view.padding
        if level:
            value = (0x80 if view.voice else 0) | view.audio_level
            if self._ast:
                return packer.pack(
                    b0,
                    b1,
                    sequence,
                    timestamp,
                    self.ssrc,
                    prefix,
                    self._level_id,
                    value,
                    self._ast | abs_send_time,
                )
            return packer.pack(
                b0, b1, sequence, timestamp, self.ssrc, prefix, self._level_id, value
            )
        if self._ast:
            return packer.pack(
                b0, b1, sequence, timestamp, self.ssrc, prefix, self._ast | abs_send_time
            )
        return packer.pack(b0, b1, sequence, timestamp, self.ssrc, prefix)


def abs_send_time(now: float) -> int:
    """The 24-bit abs-send-time value (6.18 fixed-point seconds) for ``now``."""
    return int(now * 262144.0) & 0xFFFFFF


def vp8_keyframe_start(data: bytes, offset: int) -> bool:
    """True when the VP8 payload at ``offset`` begins a key frame (RFC 7741 §4.2, §4.3).

    Reads only the payload descriptor and the first payload-header byte, which stay readable
    under insertable-streams encryption.
    """
    size = len(data)
    if offset >= size:
        return False
    b = data[offset]
    if not b & 0x10 or b & 0x07:  # not the start of partition 0
        return False
    i = offset + 1
    if b & 0x80:
        if i >= size:
            return False
        x = data[i]
        i += 1
        if x & 0x80:  # picture id, 7 or 15 bits
            if i >= size:
                return False
            i += 2 if data[i] & 0x80 else 1
        if x & 0x40:  # TL0PICIDX
            i += 1
        if x & 0x30:  # TID/KEYIDX
            i += 1
    return i < size and not data[i] & 0x01


def seq_distance(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 16-bit sequence numbers."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d

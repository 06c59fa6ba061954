"""RTP views and header rewriting (pure)."""

from __future__ import annotations

import struct

import pytest
from sprechzimmer.media.core.rtp import (
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    ExtensionIds,
    HeaderWriter,
    MalformedPacketError,
    abs_send_time,
    parse_rtp,
    seq_distance,
    vp8_keyframe_start,
)

pytestmark = pytest.mark.unit

IDS = ExtensionIds(mid=1, audio_level=2, abs_send_time=3)


def packet(
    *,
    extensions: bytes = b"",
    payload: bytes = b"\x10\x00\x9d\x01\x2a",
    pt: int = 96,
    marker: bool = False,
    csrcs: int = 0,
) -> bytes:
    b0 = 0x80 | csrcs | (0x10 if extensions else 0)
    header = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, 1000, 123456, 0xCAFE)
    header += b"\x00\x00\x00\x07" * csrcs
    if extensions:
        padded = extensions + b"\x00" * (-len(extensions) % 4)
        header += struct.pack("!HH", 0xBEDE, len(padded) // 4) + padded
    return header + payload


def test_parses_fixed_header_and_extensions() -> None:
    ext = bytes([0x10]) + b"5" + bytes([0x20, 0x80 | 30]) + bytes([0x32, 1, 2, 3])
    view = parse_rtp(packet(extensions=ext, marker=True), IDS)
    assert (view.sequence, view.timestamp, view.ssrc, view.payload_type) == (
        1000,
        123456,
        0xCAFE,
        96,
    )
    assert view.marker == 0x80
    assert view.mid == b"5"
    assert (view.audio_level, view.voice) == (30, True)
    assert view.data[view.payload_offset :] == b"\x10\x00\x9d\x01\x2a"


def test_skips_csrcs_and_unknown_extension_profiles() -> None:
    data = packet(csrcs=2)
    assert parse_rtp(data, IDS).payload_offset == 12 + 8
    two_byte = struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + struct.pack("!HH", 0x1000, 1)
    two_byte += bytes([1, 1, ord("7"), 0]) + b"payload"
    view = parse_rtp(two_byte, IDS)
    assert view.mid == b"7"
    assert view.data[view.payload_offset :] == b"payload"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x80\x60\x00", "too short"),
        (b"\x40" + bytes(20), "version 1"),
        (struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + struct.pack("!HH", 0xBEDE, 9), "ext overrun"),
        (struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + b"\xbe", "truncated ext header"),
        (struct.pack("!BBHII", 0x8F, 96, 1, 2, 3), "csrc overrun"),
        (struct.pack("!BBHII", 0xA0, 96, 1, 2, 3) + b"\x00\x00", "zero padding count"),
        (struct.pack("!BBHII", 0xA0, 96, 1, 2, 3) + b"\x00\x09", "padding overrun"),
        (struct.pack("!BBHII", 0x80, 96, 1, 2, 3) + bytes(1600), "oversized"),
        (
            struct.pack("!BBHII", 0x90, 96, 1, 2, 3)
            + struct.pack("!HH", 0xBEDE, 1)
            + b"\x1f\x00\x00\x00",
            "element overrun",
        ),
    ],
)
def test_rejects_malformed(data: bytes, why: str) -> None:
    with pytest.raises(MalformedPacketError):
        parse_rtp(data, IDS)


def test_writer_rewrites_header_and_keeps_payload() -> None:
    ext = (
        bytes([0x10])
        + b"0"
        + bytes([0x20, 0x80 | 12])
        + bytes([0x32, 9, 9, 9])
        + bytes([0x40, 0xEE])
    )
    original = packet(extensions=ext, marker=True, pt=111, payload=b"OPUS-CIPHERTEXT")
    view = parse_rtp(original, IDS)
    out_ids = ExtensionIds.from_uris({URI_MID: 4, URI_AUDIO_LEVEL: 5, URI_ABS_SEND_TIME: 6})
    writer = HeaderWriter(0xBEEF, 109, out_ids, "17")
    rewritten = writer.header(view, 7, 99, 0x123456) + original[view.payload_offset :]
    again = parse_rtp(rewritten, ExtensionIds(mid=4, audio_level=5, abs_send_time=6))
    assert (again.ssrc, again.sequence, again.timestamp, again.payload_type) == (0xBEEF, 7, 99, 109)
    assert again.marker == 0x80
    assert again.mid == b"17"
    assert (again.audio_level, again.voice) == (12, True)
    assert rewritten[again.payload_offset :] == b"OPUS-CIPHERTEXT"
    # abs-send-time stamped by the SFU, unknown extension (id 4 of the publisher) dropped
    assert b"\x62\x12\x34\x56" in rewritten
    assert b"\xee" not in rewritten[: again.payload_offset]


def test_writer_without_extensions_writes_plain_header() -> None:
    view = parse_rtp(packet(), IDS)
    header = HeaderWriter(1, 96, ExtensionIds(), "0").header(view, 1, 2, 3)
    assert len(header) == 12
    assert header[0] == 0x80


def test_writer_rejects_long_mid() -> None:
    with pytest.raises(ValueError, match="mid"):
        HeaderWriter(1, 96, IDS, "x" * 17)


@pytest.mark.parametrize(
    ("payload", "keyframe"),
    [
        (b"\x10\x00\x9d\x01\x2a", True),  # S=1, PID=0, P=0
        (b"\x10\x01", False),  # inter frame
        (b"\x00\x00", False),  # not a partition start
        (b"\x90\x80\x81\x23\x00", True),  # X, I with 15-bit picture id
        (b"\x90\xe0\x05\x07\x01", False),  # X, I, L, T; P=1
        (b"\x90", False),  # truncated
        (b"", False),
    ],
)
def test_vp8_keyframe_detection(payload: bytes, keyframe: bool) -> None:
    assert vp8_keyframe_start(payload, 0) is keyframe


def test_sequence_arithmetic_wraps() -> None:
    assert seq_distance(2, 65534) == 4
    assert seq_distance(65534, 2) == -4


def test_abs_send_time_is_24_bit_6_18() -> None:
    assert abs_send_time(1.0) == 1 << 18
    assert abs_send_time(64.0) == 0

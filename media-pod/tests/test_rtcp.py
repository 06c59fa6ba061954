"""RTCP parsing and building (pure)."""

from __future__ import annotations

import pytest
from sprechzimmer.media.core import rtcp
from sprechzimmer.media.core.rtp import MalformedPacketError

pytestmark = pytest.mark.unit


def test_sender_report_round_trip_with_blocks() -> None:
    block = rtcp.ReportBlock(7, 12, -3, 70000, 40, 0x11223344, 655)
    report = rtcp.SenderReport(1, (5 << 32) | 6, 90000, 10, 12000, (block,))
    (parsed,) = rtcp.parse_rtcp(rtcp.build_sr(report))
    assert parsed == report


def test_compound_rr_remb_sdes() -> None:
    data = (
        rtcp.build_rr(9, [rtcp.ReportBlock(3, 0, 0, 1, 0, 0, 0)])
        + rtcp.build_remb(9, 1_500_000, [3, 4])
        + rtcp.build_sdes_cname(9, "cname")
    )
    rr, remb, sdes = rtcp.parse_rtcp(data)
    assert isinstance(rr, rtcp.ReceiverReport)
    assert rr.reports[0].ssrc == 3
    assert isinstance(remb, rtcp.Remb)
    assert remb.ssrcs == (3, 4)
    assert abs(remb.bitrate - 1_500_000) / 1_500_000 < 0.001
    assert sdes == rtcp.Ignored(rtcp.PT_SDES, 1)


def test_nack_packs_and_unpacks_sequences() -> None:
    lost = [100, 101, 116, 117, 65535, 3]
    (nack,) = rtcp.parse_rtcp(rtcp.build_nack(1, 2, lost))
    assert isinstance(nack, rtcp.Nack)
    assert sorted(nack.lost) == sorted(lost)
    assert (nack.sender_ssrc, nack.media_ssrc) == (1, 2)


def test_pli_fir_bye() -> None:
    fir = (
        bytes([0x84, 206, 0, 4])
        + (1).to_bytes(4, "big")
        + bytes(4)
        + (77).to_bytes(4, "big")
        + bytes(4)
    )
    bye = bytes([0x82, 203, 0, 2]) + (5).to_bytes(4, "big") + (6).to_bytes(4, "big")
    pli, parsed_fir, parsed_bye = rtcp.parse_rtcp(rtcp.build_pli(1, 2) + fir + bye)
    assert pli == rtcp.Pli(1, 2)
    assert parsed_fir == rtcp.Fir(1, (77,))
    assert parsed_bye == rtcp.Bye((5, 6))


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\xc8",
        b"\x40\xc9\x00\x01\x00\x00\x00\x01",  # version 1
        b"\x80\xc9\x00\x09\x00\x00\x00\x01",  # length beyond the packet
        b"\x81\xc9\x00\x01\x00\x00\x00\x01",  # one report block announced, none present
        b"\x80\xc8\x00\x01\x00\x00\x00\x01",  # SR without sender info
        b"\x8f\xce\x00\x03" + bytes(8) + b"REMB",  # truncated REMB
        b"\x80\xc9\x00\x01" + bytes(1600),  # oversized
    ],
)
def test_rejects_malformed(data: bytes) -> None:
    with pytest.raises(MalformedPacketError):
        rtcp.parse_rtcp(data)

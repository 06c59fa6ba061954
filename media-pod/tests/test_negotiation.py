"""Offer layout and answer wiring (pure, table-driven), and reading SDP text into the views."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from sprechzimmer.media.core.control import ControlError
from sprechzimmer.media.core.negotiation import (
    Layout,
    PublishPlan,
    Sdp,
    Section,
    plan_layout,
    plan_wiring,
)
from sprechzimmer.media.core.rtp import URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID, ExtensionIds
from sprechzimmer.media.negotiation import read_sdp

pytestmark = pytest.mark.unit

OPUS = (("audio/opus", 111), ("audio/PCMU", 0))
VP8 = (("video/VP8", 96), ("video/rtx", 97), ("video/H264", 102))


def audio(mid: str, direction: str, **kw: object) -> Section:
    return Section("audio", mid, direction, codecs=OPUS, **kw)  # type: ignore[arg-type]


def video(mid: str, direction: str, **kw: object) -> Section:
    return Section("video", mid, direction, codecs=VP8, **kw)  # type: ignore[arg-type]


def offer(*sections: Section, bundle: tuple[str, ...] | None = None) -> Sdp:
    return Sdp(sections, tuple(s.mid for s in sections) if bundle is None else bundle)


def seats(slots: int) -> tuple[Section, ...]:
    """The documented layout: publish audio + video, then ``slots`` recvonly pairs."""
    return (
        audio("0", "sendonly", ssrc=11),
        video("1", "sendonly", ssrc=22),
        *(
            s
            for k in range(slots)
            for s in (audio(f"a{k}", "recvonly"), video(f"v{k}", "recvonly"))
        ),
    )


@pytest.mark.parametrize(
    ("sections", "publish", "slots", "answer"),
    [
        (
            seats(4),
            {"audio": ("0", 11), "video": ("1", 22)},
            (("a0", "v0"), ("a1", "v1"), ("a2", "v2"), ("a3", "v3")),
            ("recvonly", "recvonly", *["sendonly"] * 8),
        ),
        (  # receive only: a listener who publishes nothing
            seats(2)[2:],
            {},
            (("a0", "v0"), ("a1", "v1")),
            ("sendonly",) * 4,
        ),
        (  # publish only, SSRCs unsignalled (learnt from the mid later)
            (audio("0", "sendonly"), video("1", "sendonly")),
            {"audio": ("0", None), "video": ("1", None)},
            (),
            ("recvonly", "recvonly"),
        ),
        (  # slot sections interleaved differently: k-th audio pairs with k-th video
            (
                audio("a0", "recvonly"),
                audio("a1", "recvonly"),
                video("v0", "recvonly"),
                video("v1", "recvonly"),
            ),
            {},
            (("a0", "v0"), ("a1", "v1")),
            ("sendonly",) * 4,
        ),
        (  # an inactive section stays inactive and is no slot
            (audio("0", "sendonly", ssrc=5), video("1", "inactive")),
            {"audio": ("0", 5)},
            (),
            ("recvonly", "inactive"),
        ),
    ],
)
def test_layouts(
    sections: tuple[Section, ...],
    publish: dict[str, tuple[str, int | None]],
    slots: tuple[tuple[str, str], ...],
    answer: tuple[str, ...],
) -> None:
    layout = plan_layout(offer(*sections), max_participants=5)
    assert layout.publish == publish
    assert layout.slots == slots
    assert layout.answer_directions == tuple(zip((s.kind for s in sections), answer, strict=True))
    for index, (audio_mid, video_mid) in enumerate(slots):
        assert layout.slot_of(audio_mid) == layout.slot_of(video_mid) == index
    assert layout.slot_of("0") is None


@pytest.mark.parametrize(
    ("sdp", "message"),
    [
        (offer(), "no media sections"),
        (offer(*seats(6)), "more than 12 media sections"),
        (Sdp(seats(1), None), "one BUNDLE group"),
        (offer(*seats(1), bundle=("0", "1")), "one BUNDLE group"),
        (offer(Section("application", "2", "sendrecv")), "'application' (audio/video only)"),
        (offer(audio("0", "sendonly", rtcp_mux=False)), "rtcp-mux is required"),
        (offer(Section("audio", "0", "sendonly", codecs=(("audio/PCMU", 0),))), "audio/opus"),
        (offer(Section("video", "1", "sendonly", codecs=(("video/H264", 102),))), "video/VP8"),
        (offer(audio("0", "sendonly"), audio("1", "sendonly")), "at most one sendonly audio"),
        (offer(audio("0", "sendrecv")), "sendonly (publish) or recvonly (slots)"),
        (offer(audio("a0", "recvonly")), "one recvonly audio and one recvonly video each"),
        (offer(*seats(5)), "at most 4 receive slots"),
    ],
)
def test_offers_the_sfu_cannot_serve(sdp: Sdp, message: str) -> None:
    with pytest.raises(ControlError, match=re.escape(message)) as error:
        plan_layout(sdp, max_participants=5)
    assert error.value.status == 400


def test_fewer_seats_mean_fewer_slots() -> None:
    assert len(plan_layout(offer(*seats(2)), max_participants=3).slots) == 2
    with pytest.raises(ControlError, match="at most 2 receive slots"):
        plan_layout(offer(*seats(3)), max_participants=3)


def answer_for(layout: Layout) -> Sdp:
    """An answer as aiortc writes it: one codec, an SSRC and cname per section, extension ids."""
    ids = {
        "audio": {URI_MID: 1, URI_AUDIO_LEVEL: 2},
        "video": {URI_MID: 1, URI_ABS_SEND_TIME: 3},
    }
    pt = {"audio": 111, "video": 96}
    mime = {"audio": "audio/opus", "video": "video/VP8"}
    mids = [m for _, (m, _) in layout.publish.items()] + [m for pair in layout.slots for m in pair]
    kinds = {m: k for k, (m, _) in layout.publish.items()}
    kinds.update(
        {m: k for pair in layout.slots for m, k in zip(pair, ("audio", "video"), strict=True)}
    )
    return Sdp(
        tuple(
            Section(
                kinds[mid],
                mid,
                "x",
                codecs=((mime[kinds[mid]], pt[kinds[mid]]),),
                ssrc=1000 + i,
                cname="sfu-cname",
                extensions=ids[kinds[mid]],
            )
            for i, mid in enumerate(mids)
        ),
        tuple(mids),
    )


def test_wiring_follows_the_answer() -> None:
    layout = plan_layout(
        offer(audio("0", "sendonly", ssrc=11), video("1", "sendonly"), *seats(2)[2:]), 5
    )
    wiring = plan_wiring(layout, answer_for(layout))
    assert wiring.publish == (
        PublishPlan("audio", "0", 11, 111),
        PublishPlan("video", "1", None, 96),
    )
    assert wiring.extensions == ExtensionIds(mid=1, audio_level=2, abs_send_time=3)
    assert [
        (s.index, s.kind, s.mid, s.ssrc, s.payload_type) for pair in wiring.slots for s in pair
    ] == [
        (0, "audio", "a0", 1002, 111),
        (0, "video", "v0", 1003, 96),
        (1, "audio", "a1", 1004, 111),
        (1, "video", "v1", 1005, 96),
    ]
    audio_slot, video_slot = wiring.slots[0]
    assert audio_slot.extensions == ExtensionIds(mid=1, audio_level=2)
    assert video_slot.extensions == ExtensionIds(mid=1, abs_send_time=3)
    assert (wiring.rtcp_ssrc, wiring.cname) == (1000, "sfu-cname")


def test_wiring_refuses_an_answer_without_a_planned_section() -> None:
    layout = plan_layout(offer(*seats(1)), 5)
    answer = answer_for(layout)
    without_slot_ssrc = Sdp(
        tuple(replace(s, ssrc=None) if s.mid == "v0" else s for s in answer.sections), None
    )
    with pytest.raises(ControlError, match="no SSRC for slot section 'v0'"):
        plan_wiring(layout, without_slot_ssrc)
    with pytest.raises(ControlError, match="no 'a0' section"):
        plan_wiring(layout, Sdp(tuple(s for s in answer.sections if s.mid != "a0"), None))


def test_an_answer_without_ssrcs_leaves_the_rtcp_ssrc_to_the_shell() -> None:
    layout = plan_layout(offer(audio("0", "sendonly")), 5)
    wiring = plan_wiring(layout, Sdp((audio("0", "recvonly"),), None))
    assert (wiring.rtcp_ssrc, wiring.cname) == (None, "sfu")


OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
        "c=IN IP4 0.0.0.0",
        "a=mid:0",
        "a=sendonly",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:0 PCMU/8000",
        f"a=extmap:1 {URI_MID}",
        "a=ssrc:4001 cname:abc",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=sendonly",
        "a=rtcp-mux",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=ssrc-group:FID 5001 5002",
        "a=ssrc:5001 cname:abc",
        "a=ssrc:5002 cname:abc",
        "",
    ]
)


def test_read_sdp() -> None:
    sdp = read_sdp(OFFER)
    assert sdp.bundle == ("0", "1")
    first, second = sdp.sections
    assert (first.kind, first.mid, first.direction, first.rtcp_mux) == (
        "audio",
        "0",
        "sendonly",
        True,
    )
    assert (first.payload_type(), first.ssrc, first.cname) == (111, 4001, "abc")
    assert first.extensions == {URI_MID: 1}
    assert (second.payload_type(), second.ssrc) == (96, 5001)  # the FID group's media SSRC
    assert plan_layout(sdp, 5).publish == {"audio": ("0", 4001), "video": ("1", 5001)}


def test_unreadable_sdp_is_a_clear_error() -> None:
    with pytest.raises(ControlError, match="sdp could not be parsed") as error:
        read_sdp("v=0\r\nm=garbage\r\n")
    assert error.value.status == 400

"""Offer in, answer out: the aiortc side of a join. The decisions are in ``core/negotiation.py``.

``read_sdp`` turns SDP text into the core's ``Sdp`` view; ``answer`` pre-creates the answer's
transceivers (right direction, one codec, no RTX), applies the offer, installs the forwarding
hooks, groups each slot's audio and video into one stream and returns the SFU's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpsender import RTCRtpSender

from . import _aiortc_hooks as hooks
from .core.control import ControlError
from .core.negotiation import CODECS, OPUS_PARAMETERS, Layout, Sdp, Section


def _section(media: Any) -> Section:
    ssrc = media.ssrc[0].ssrc if media.ssrc else None
    if media.ssrc_group:
        ssrc = int(media.ssrc_group[0].items[0])
    return Section(
        kind=media.kind,
        mid=str(media.rtp.muxId or ""),
        direction=str(media.direction or ""),
        rtcp_mux=bool(media.rtcp_mux),
        codecs=tuple((c.mimeType, c.payloadType) for c in media.rtp.codecs),
        ssrc=ssrc,
        cname=media.ssrc[0].cname if media.ssrc else None,
        extensions={e.uri: e.id for e in media.rtp.headerExtensions},
    )


def read_sdp(text: str) -> Sdp:
    """Parse SDP text; ControlError (400) when aiortc cannot read it."""
    try:
        parsed = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:
        raise ControlError(400, f"sdp could not be parsed: {type(exc).__name__}") from exc
    bundle = next((g for g in parsed.group if g.semantic == "BUNDLE"), None)
    return Sdp(
        sections=tuple(_section(m) for m in parsed.media),
        bundle=None if bundle is None else tuple(str(i) for i in bundle.items),
    )


async def answer(
    pc: RTCPeerConnection, offer_sdp: str, layout: Layout, prepare: Callable[[], None]
) -> str:
    """Negotiate ``layout`` on ``pc``; ``prepare`` installs the forwarding hooks (after the offer
    is applied, before the answer starts ICE and DTLS). ControlError (400) if aiortc refuses."""
    try:
        for kind, direction in layout.answer_directions:
            transceiver = pc.addTransceiver(kind, direction=direction)
            wanted = CODECS[kind].lower()
            transceiver.setCodecPreferences(
                [
                    c
                    for c in RTCRtpSender.getCapabilities(kind).codecs
                    if c.mimeType.lower() == wanted
                ]
            )
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        prepare()
        for transceiver in pc.getTransceivers():
            index = layout.slot_of(transceiver.mid)
            if index is not None:
                hooks.set_stream_id(transceiver, f"slot{index}")
            if transceiver.kind == "audio":
                hooks.set_codec_parameters(transceiver, CODECS["audio"], OPUS_PARAMETERS)
        await pc.setLocalDescription(await pc.createAnswer())
    except ControlError:
        raise
    except Exception as exc:
        raise ControlError(400, f"offer rejected: {exc}") from exc
    return str(pc.localDescription.sdp)

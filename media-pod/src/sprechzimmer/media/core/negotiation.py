"""What the SFU makes of a participant's offer and of its own answer. No I/O.

The shell (``negotiation.py``) turns aiortc's parsed SDP into ``Sdp`` views; this module decides:

* ``plan_layout(offer, max_participants)`` validates the offer against the layout the SFU serves
  (one BUNDLE group with rtcp-mux; at most one sendonly audio and one sendonly video section to
  publish; pairs of recvonly audio + video sections as receive slots) and returns the ``Layout``:
  what the participant publishes, its slots, and the direction of each answer section;
* ``plan_wiring(layout, answer)`` reads the answer aiortc produced for that layout into the
  ``Wiring`` the forwarding path needs: payload types, SSRCs, header extension ids per slot.

Every refusal is a ``ControlError`` (HTTP 400) whose message names what is wrong with the offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from .control import ControlError
from .rtp import ExtensionIds

# The only codecs the SFU negotiates (no RTX: retransmissions reuse the original SSRC).
CODECS: Final = {"audio": "audio/opus", "video": "video/VP8"}
CLOCK_RATES: Final = {"audio": 48000, "video": 90000}
# Opus as browsers expect it from a peer (what Chromium offers itself): 10 ms frames allowed and
# in-band FEC, the only loss protection audio has here (no RTX or NACK for audio).
OPUS_PARAMETERS: Final[Mapping[str, int]] = {"minptime": 10, "useinbandfec": 1}
# The answer's direction for each direction in the offer (anything else: inactive).
_ANSWER_DIRECTION: Final = {"sendonly": "recvonly", "recvonly": "sendonly"}


@dataclass(frozen=True, slots=True)
class Section:
    """One m= section of an offer or answer, as far as the SFU reads it."""

    kind: str
    mid: str
    direction: str
    rtcp_mux: bool = True
    codecs: tuple[tuple[str, int], ...] = ()  # (MIME type, payload type), in SDP order
    ssrc: int | None = None  # the first SSRC (of the first ssrc-group, if there is one)
    cname: str | None = None
    extensions: Mapping[str, int] = field(default_factory=dict)  # uri -> id

    def payload_type(self) -> int | None:
        """Payload type of the SFU's codec for this kind, or None when it is not offered."""
        wanted = CODECS.get(self.kind, "").lower()
        return next((pt for mime, pt in self.codecs if mime.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class Sdp:
    sections: tuple[Section, ...]
    bundle: tuple[str, ...] | None  # mids of the BUNDLE group, None without one


@dataclass(frozen=True, slots=True)
class Layout:
    """What the SFU takes from one participant's offer."""

    publish: Mapping[str, tuple[str, int | None]]  # kind -> (mid, SSRC if the offer has one)
    slots: tuple[tuple[str, str], ...]  # (audio mid, video mid) per receive slot
    answer_directions: tuple[tuple[str, str], ...]  # (kind, direction) per section, offer order

    def slot_of(self, mid: str | None) -> int | None:
        """The receive slot a section belongs to (its stream id is ``slot<k>``)."""
        return next((i for i, pair in enumerate(self.slots) if mid in pair), None)


def plan_layout(offer: Sdp, max_participants: int) -> Layout:
    """Validate ``offer`` and return its layout; raises ControlError (400) naming the problem."""
    if not offer.sections:
        raise ControlError(400, "the offer has no media sections")
    limit = 2 * max_participants + 2  # room for a clearer error about slots below
    if len(offer.sections) > limit:
        raise ControlError(400, f"the offer has more than {limit} media sections")
    if offer.bundle is None or set(offer.bundle) != {s.mid for s in offer.sections}:
        raise ControlError(400, "all media sections must be in one BUNDLE group")
    publish: dict[str, tuple[str, int | None]] = {}
    receive: dict[str, list[str]] = {"audio": [], "video": []}
    for section in offer.sections:
        if section.kind not in CODECS:
            raise ControlError(
                400, f"unsupported media section {section.kind!r} (audio/video only)"
            )
        if not section.rtcp_mux:
            raise ControlError(400, "rtcp-mux is required")
        if section.payload_type() is None:
            raise ControlError(400, f"{section.kind} must offer {CODECS[section.kind]}")
        if section.direction == "sendonly":
            if section.kind in publish:
                raise ControlError(400, f"at most one sendonly {section.kind} section")
            publish[section.kind] = (section.mid, section.ssrc)
        elif section.direction == "recvonly":
            receive[section.kind].append(section.mid)
        elif section.direction != "inactive":
            raise ControlError(400, "media sections must be sendonly (publish) or recvonly (slots)")
    if len(receive["audio"]) != len(receive["video"]):
        raise ControlError(400, "receive slots need one recvonly audio and one recvonly video each")
    if len(receive["audio"]) > max_participants - 1:
        raise ControlError(400, f"at most {max_participants - 1} receive slots")
    return Layout(
        publish=publish,
        slots=tuple(zip(receive["audio"], receive["video"], strict=True)),
        answer_directions=tuple(
            (s.kind, _ANSWER_DIRECTION.get(s.direction, "inactive")) for s in offer.sections
        ),
    )


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """A stream the participant publishes; without an SSRC it is learnt from the mid later."""

    kind: str
    mid: str
    ssrc: int | None
    payload_type: int


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """One outgoing stream of a receive slot, as the answer fixed it."""

    index: int
    kind: str
    mid: str
    ssrc: int
    payload_type: int
    extensions: ExtensionIds


@dataclass(frozen=True, slots=True)
class Wiring:
    extensions: ExtensionIds  # the participant's ids, for parsing what it sends
    publish: tuple[PublishPlan, ...]
    slots: tuple[tuple[SlotPlan, SlotPlan], ...]  # (audio, video) per slot
    rtcp_ssrc: int | None  # the SSRC the SFU's RTCP to this participant comes from
    cname: str


def plan_wiring(layout: Layout, answer: Sdp) -> Wiring:
    """Read the SFU's answer for ``layout``; raises ControlError if it lacks what was planned."""
    by_mid = {s.mid: s for s in answer.sections}

    def section(mid: str) -> tuple[Section, int]:
        found = by_mid.get(mid)
        payload_type = None if found is None else found.payload_type()
        if found is None or payload_type is None:
            raise ControlError(400, f"offer rejected: no {mid!r} section with the SFU's codec")
        return found, payload_type

    publish = []
    for kind, (mid, ssrc) in layout.publish.items():
        _, payload_type = section(mid)
        publish.append(PublishPlan(kind, mid, ssrc, payload_type))
    slots = []
    for index, mids in enumerate(layout.slots):
        pair = []
        for kind, mid in zip(("audio", "video"), mids, strict=True):
            found, payload_type = section(mid)
            if found.ssrc is None:
                raise ControlError(400, f"offer rejected: no SSRC for slot section {mid!r}")
            ids = ExtensionIds.from_uris(found.extensions)
            pair.append(SlotPlan(index, kind, mid, found.ssrc, payload_type, ids))
        slots.append((pair[0], pair[1]))
    first = answer.sections[0]
    return Wiring(
        extensions=ExtensionIds.from_uris(
            {uri: i for s in answer.sections for uri, i in s.extensions.items()}
        ),
        publish=tuple(publish),
        slots=tuple(slots),
        rtcp_ssrc=first.ssrc,
        cname=first.cname if first.cname is not None else "sfu",
    )

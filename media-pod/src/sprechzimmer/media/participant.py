"""One participant of the call: its state machine, the streams it publishes, its receive slots.

``Participant`` is the aiortc ``PacketSink`` of its ``MediaPort``: packets go synchronously from
the socket callback to the ``Router`` (the call). Its state changes in one place,
``_set_state()``, which logs "old -> new" and emits the matching ``/v1/events`` event.
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Final, Protocol

from . import _aiortc_hooks as hooks
from .core import rtcp
from .core.cache import PacketCache
from .core.control import EventType, LeaveReason
from .core.negotiation import CLOCK_RATES, SlotPlan, Wiring
from .core.receive import ReceiveStats
from .core.rewriter import SlotRewriter
from .core.rtp import ExtensionIds, HeaderWriter
from .core.slots import SlotTable
from .events import EventLog

logger = logging.getLogger(__name__)

PLI_THROTTLE_SECONDS: Final = 0.5
# A subscriber's own PLI/FIR reaches the publisher at most this often. A browser that cannot yet
# decrypt a slot (its end-to-end key is still on its way) keeps asking; each key frame it causes
# costs every other subscriber bandwidth. The SFU's own requests (a slot starting) keep the
# shorter throttle above.
SUBSCRIBER_PLI_INTERVAL_SECONDS: Final = 1.0
DROP_REASONS: Final = (
    "malformed",
    "unknown_ssrc",
    "srtp",
    "queue_full",
    "not_connected",
    "rtcp_malformed",
)


class State(enum.Enum):
    NEW = "new"  # negotiating; not in the call yet
    JOINING = "joining"  # answered, ICE/DTLS not up yet: nothing is forwarded to it
    CONNECTED = "connected"
    LEFT = "left"


_EVENTS: Final = {
    State.JOINING: EventType.JOINED,
    State.CONNECTED: EventType.CONNECTED,
    State.LEFT: EventType.LEFT,
}


@dataclass
class Counters:
    """Hot-path counters, plain ints; exported at scrape time by ``metrics.SfuCollector``."""

    packets_in: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    bytes_in: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    packets_out: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    bytes_out: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
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


class Router(Protocol):
    """Where a participant's packets go: the call."""

    counters: Counters

    def forward_rtp(self, p: Participant, data: bytes) -> None: ...
    def handle_rtcp(self, p: Participant, data: bytes) -> None: ...


class PublishedStream:
    """One incoming stream (a participant's audio or video)."""

    def __init__(self, owner: Participant, kind: str, ssrc: int, payload_type: int) -> None:
        self.owner = owner
        self.kind = kind
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.stats = ReceiveStats(CLOCK_RATES[kind])
        self.cache = PacketCache()
        self.slots: list[OutSlot] = []  # slots of connected subscribers only: forwarded to
        self.last_sr: rtcp.SenderReport | None = None
        self.last_sr_at = 0.0
        self.last_pli = -PLI_THROTTLE_SECONDS
        self.ended = False


class OutSlot:
    """One outgoing stream of a subscriber: fixed SSRC, changing source."""

    def __init__(self, subscriber: Participant, plan: SlotPlan) -> None:
        self.subscriber = subscriber
        self.send = subscriber.port.send  # bound once: called for every forwarded packet
        self.index = plan.index
        self.kind = plan.kind
        self.writer = HeaderWriter(plan.ssrc, plan.payload_type, plan.extensions, plan.mid)
        self.rewriter = SlotRewriter(
            CLOCK_RATES[plan.kind], secrets.randbelow(0x10000), secrets.randbelow(0x100000000)
        )
        self.source: PublishedStream | None = None
        self.waiting_keyframe = plan.kind == "video"
        self.fraction_lost = 0


class Participant:
    def __init__(
        self,
        router: Router,
        events: EventLog,
        participant_id: str,
        pc: hooks.PeerConnection,
        now: float,
    ) -> None:
        self.router = router
        self.events = events
        self.id = participant_id
        self.log_id = secrets.token_hex(4)  # logs carry this, never the participant id
        self.pc = pc
        self.port = hooks.MediaPort(pc, self)
        self.state = State.NEW
        self.ext = ExtensionIds()
        self.streams: dict[int, PublishedStream] = {}
        self.pending_mids: dict[bytes, tuple[str, int]] = {}  # unsignalled SSRCs, learnt by mid
        self.slots: list[tuple[OutSlot, OutSlot]] = []
        self.by_out_ssrc: dict[int, OutSlot] = {}
        self.table = SlotTable(0)
        self.rtcp_ssrc = 0
        self.cname = ""
        self.joined_at = time.time()
        self.last_packet_at = now  # of the call's clock: media or RTCP from it

    def wire(self, wiring: Wiring) -> None:
        """Set up publishing and receive slots as the SFU's answer fixed them."""
        self.ext = wiring.extensions
        for publish in wiring.publish:
            if publish.ssrc is not None:
                self.streams[publish.ssrc] = PublishedStream(
                    self, publish.kind, publish.ssrc, publish.payload_type
                )
            else:
                self.pending_mids[publish.mid.encode()] = (publish.kind, publish.payload_type)
        for audio, video in wiring.slots:
            pair = (OutSlot(self, audio), OutSlot(self, video))
            for slot, plan in zip(pair, (audio, video), strict=True):
                self.by_out_ssrc[plan.ssrc] = slot
            self.slots.append(pair)
        self.table = SlotTable(len(self.slots))
        self.rtcp_ssrc = wiring.rtcp_ssrc if wiring.rtcp_ssrc is not None else secrets.randbits(32)
        self.cname = wiring.cname

    def _set_state(self, state: State, reason: LeaveReason | None = None) -> None:
        if state is self.state:
            return
        logger.info(
            "participant state changed",
            extra={
                "participant": self.log_id,
                "old": self.state.value,
                "new": state.value,
                **({"reason": str(reason)} if reason is not None else {}),
            },
        )
        self.state = state
        self.events.emit(_EVENTS[state], self.id, reason)

    # PacketSink: called synchronously from the socket callback.
    def on_rtp(self, data: bytes) -> None:
        self.router.forward_rtp(self, data)

    def on_rtcp(self, data: bytes) -> None:
        self.router.handle_rtcp(self, data)

    def on_srtp_error(self) -> None:
        self.router.counters.dropped["srtp"] += 1

    def on_queue_overflow(self) -> None:
        self.router.counters.dropped["queue_full"] += 1

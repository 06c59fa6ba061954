"""The one adapter that reaches into aiortc and aioice internals; pinned to exact versions.

aiortc has no public API to forward RTP without decoding it. This module takes over one
participant's bundled DTLS transport once aiortc has negotiated ICE, DTLS and SRTP:

* incoming SRTP/SRTCP is taken straight from the nominated socket's ``datagram_received``,
  unprotected with the transport's own libsrtp session and handed to the SFU synchronously
  (no aioice queue, no task wake-up); anything else (STUN, DTLS) goes the usual way, and
  ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data`` are replaced as well, so no
  packet can ever reach aiortc's receivers, depacketizers or decoders;
* outgoing packets are protected with the transport's libsrtp session and written to the
  nominated socket directly — what ``RTCDtlsTransport._send_rtp`` does, minus two awaits;
* the senders' and receivers' own RTP/RTCP loops are replaced by no-ops (left running they
  poll while idle and send zeroed sender reports and empty receiver reports), since the SFU
  writes all RTCP itself;
* aioice's unbounded receive queue is bounded.

``check_aiortc()`` verifies every internal this module touches; ``test_aiortc_hooks.py`` runs it so
an aiortc upgrade fails loudly instead of silently falling back to decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, TypeAlias

import aioice
import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pylibsrtp
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from pylibsrtp._binding import ffi, lib

PINNED_AIORTC: Final = "1.16.0"
PINNED_AIOICE: Final = "0.13."
PINNED_PYLIBSRTP: Final = "1.0."
_SRTP_TRAILER: Final = 16 + 128  # pylibsrtp's SRTP_MAX_TRAILER_LEN
_SRTCP_TRAILER: Final = 4 + 16 + 128
ICE_QUEUE_LIMIT: Final = 256  # datagrams waiting for aiortc (STUN/DTLS only once forwarding runs)
# Key frames of several publishers can arrive at once; the default ~200 KiB socket buffer holds
# ~170 packets. The kernel caps this at net.core.rmem_max (the effective size is reported).
RECEIVE_BUFFER_BYTES: Final = 2 * 1024 * 1024

logger = logging.getLogger(__name__)

# The peer connection type, for modules that hold one but must not import aiortc themselves.
PeerConnection: TypeAlias = RTCPeerConnection


class PacketSink(Protocol):
    """What a port delivers to: the SFU's per-participant handlers."""

    def on_rtp(self, data: bytes) -> None: ...
    def on_rtcp(self, data: bytes) -> None: ...
    def on_srtp_error(self) -> None: ...
    def on_queue_overflow(self) -> None: ...


class AiortcChangedError(RuntimeError):
    """aiortc or aioice is not the version whose internals this adapter was written against."""


def check_aiortc() -> None:
    """Raise AiortcChangedError unless every internal used here exists as expected."""
    problems: list[str] = []
    if aiortc.__version__ != PINNED_AIORTC:
        problems.append(f"aiortc {aiortc.__version__} installed, adapter pinned to {PINNED_AIORTC}")
    if not aioice.__version__.startswith(PINNED_AIOICE):
        problems.append(f"aioice {aioice.__version__} installed, adapter written for 0.13.x")
    if not pylibsrtp.__version__.startswith(PINNED_PYLIBSRTP):
        problems.append(f"pylibsrtp {pylibsrtp.__version__} installed, adapter written for 1.0.x")
    session_attributes = ("_srtp", "_cdata", "_buffer")
    probe = pylibsrtp.Session(
        pylibsrtp.Policy(key=bytes(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    )
    problems.extend(
        f"pylibsrtp.Session.{name} is gone"
        for name in session_attributes
        if not hasattr(probe, name)
    )
    for owner, names in (
        (RTCDtlsTransport, ("_handle_rtp_data", "_handle_rtcp_data", "_send_rtp")),
        (aiortc.rtcrtpsender.RTCRtpSender, ("_run_rtp", "_run_rtcp")),
        (aiortc.rtcrtpreceiver.RTCRtpReceiver, ("_run_rtcp", "_handle_rtp_packet")),
        (aioice.ice.StunProtocol, ("datagram_received",)),
        (aioice.ice.Connection, ("data_received",)),
    ):
        problems.extend(
            f"{owner.__qualname__}.{name} is gone" for name in names if not hasattr(owner, name)
        )
    for module, name in (
        (aioice.ice, "get_host_addresses"),
        (aiortc.rtcrtpreceiver, "get_decoder"),
        (aiortc.rtcrtpreceiver, "depayload"),
        (aiortc.rtcrtpsender, "get_encoder"),
    ):
        if not hasattr(module, name):
            problems.append(f"{module.__name__}.{name} is gone")
    if problems:
        raise AiortcChangedError("; ".join(problems))


def bind_media_to_loopback() -> None:
    """Gather host candidates on 127.0.0.1 only (aioice skips loopback by default)."""

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    setattr(aioice.ice, "get_host_addresses", loopback)  # noqa: B010 - looked up per gather


def install_codec_tripwires(on_entry: Callable[[str], None]) -> None:
    """Make any entry into aiortc's codec paths visible and fatal for that packet.

    The SFU must never decode or encode (end-to-end encryption depends on it). These functions
    are only reached if a packet slipped past the hooks; ``on_entry`` counts it for /metrics.
    """

    def tripwire(name: str) -> Callable[..., Any]:
        def entered(*args: object, **kwargs: object) -> Any:
            on_entry(name)
            raise RuntimeError(f"SFU entered aiortc {name}: the forwarding hooks were bypassed")

        return entered

    # setattr: these are module globals that aiortc's receiver/sender look up at call time.
    setattr(aiortc.rtcrtpreceiver, "get_decoder", tripwire("decoder"))  # noqa: B010
    setattr(aiortc.rtcrtpreceiver, "depayload", tripwire("depayloader"))  # noqa: B010
    setattr(aiortc.rtcrtpsender, "get_encoder", tripwire("encoder"))  # noqa: B010


def _stub_sender(sender: Any) -> None:
    """Replace a sender's RTP and RTCP loops; keep the events ``stop()`` waits for."""
    mangled = "_RTCRtpSender__"

    async def no_rtp(codec: object) -> None:
        getattr(sender, mangled + "rtp_started").set()
        getattr(sender, mangled + "rtp_exited").set()

    async def no_rtcp() -> None:
        getattr(sender, mangled + "rtcp_started").set()
        getattr(sender, mangled + "rtcp_exited").set()

    sender._run_rtp = no_rtp
    sender._run_rtcp = no_rtcp


def _stub_receiver(receiver: Any) -> None:
    mangled = "_RTCRtpReceiver__"

    async def no_rtcp() -> None:
        getattr(receiver, mangled + "rtcp_started").set()
        getattr(receiver, mangled + "rtcp_exited").set()

    receiver._run_rtcp = no_rtcp


def set_stream_id(transceiver: Any, stream_id: str) -> None:
    """Group a slot's audio and video into one MediaStream (msid), so browsers lip-sync them."""
    transceiver.sender._stream_id = stream_id


def set_codec_parameters(transceiver: Any, mime_type: str, parameters: Mapping[str, int]) -> None:
    """Put ``parameters`` on the negotiated codec (the answer's ``a=fmtp``); call between
    setRemoteDescription and createAnswer. aiortc copies its own codec table, which has none."""
    codecs = getattr(transceiver, "_codecs", None)
    if codecs is None:
        raise AiortcChangedError("RTCRtpTransceiver._codecs is gone")
    for codec in codecs:
        if codec.mimeType.lower() == mime_type.lower():
            codec.parameters.update(parameters)


class _Srtp:
    """Direct libsrtp calls on a pylibsrtp session's own buffer.

    pylibsrtp's ``protect()`` allocates a length cell and re-checks its argument on every call;
    at tens of thousands of packets per second that is a measurable share of the forwarding
    cost (see docs/benchmarks.md). Returns None instead of raising on a libsrtp error.
    """

    __slots__ = ("_buffer", "_cdata", "_length", "_session", "_size", "_srtp")

    def __init__(self, session: pylibsrtp.Session) -> None:
        self._session = session  # keeps the C state alive
        self._srtp = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._size = len(session._buffer)
        self._length = ffi.new("int *")

    def _run(self, function: Any, data: bytes, trailer: int) -> bytes | None:
        size = len(data)
        if size > self._size - trailer:
            return None
        self._buffer[0:size] = data
        length = self._length
        length[0] = size
        if function(self._srtp, self._cdata, length):
            return None
        out: bytes = self._buffer[0 : length[0]]  # a copy, as bytes
        return out

    def protect(self, data: bytes) -> bytes | None:
        if 191 < data[1] < 224:
            return self._run(lib.srtp_protect_rtcp, data, _SRTCP_TRAILER)
        return self._run(lib.srtp_protect, data, _SRTP_TRAILER)

    def unprotect_rtp(self, data: bytes) -> bytes | None:
        return self._run(lib.srtp_unprotect, data, 0)

    def unprotect_rtcp(self, data: bytes) -> bytes | None:
        return self._run(lib.srtp_unprotect_rtcp, data, 0)


class MediaPort:
    """One participant's bundled transport, taken over below the decoder."""

    def __init__(self, pc: RTCPeerConnection, sink: PacketSink) -> None:
        self._pc = pc
        self._sink = sink
        self._dtls: Any = None
        self._tx: _Srtp | None = None
        self._socket: asyncio.DatagramTransport | None = None
        self._remote: tuple[str, int] | None = None
        self.on_connected: Callable[[], None] | None = None
        self.on_closed: Callable[[], None] | None = None

    @property
    def connected(self) -> bool:
        return self._tx is not None

    def prepare(self) -> None:
        """Install the hooks; call after setRemoteDescription, before setLocalDescription."""
        transceivers = self._pc.getTransceivers()
        if not transceivers:
            raise ValueError("nothing negotiated")
        for transceiver in transceivers:
            _stub_sender(transceiver.sender)
            _stub_receiver(transceiver.receiver)
        dtls: Any = transceivers[0].receiver.transport
        if any(t.receiver.transport is not dtls for t in transceivers):
            raise ValueError("media is not bundled on one transport")
        self._dtls = dtls
        sink = self._sink

        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            sink.on_rtp(data)

        async def handle_rtcp_data(data: bytes) -> None:
            sink.on_rtcp(data)

        dtls._handle_rtp_data = handle_rtp_data
        dtls._handle_rtcp_data = handle_rtcp_data
        self._bound_ice_queue(dtls.transport._connection)
        dtls.on("statechange", self._dtls_state_changed)

    def _bound_ice_queue(self, connection: Any) -> None:
        queue: asyncio.Queue[Any] = connection._queue
        original = connection.data_received
        sink = self._sink

        def data_received(data: bytes, component: int) -> None:
            if queue.qsize() >= ICE_QUEUE_LIMIT:
                sink.on_queue_overflow()
                return
            original(data, component)

        connection.data_received = data_received  # instance attribute shadows the method

    def _dtls_state_changed(self) -> None:
        state = self._dtls.state
        if state == "connected":
            self._take_over_socket()
            if self.on_connected is not None:
                self.on_connected()
        elif state in ("closed", "failed"):
            self._tx = None
            if self.on_closed is not None:
                self.on_closed()

    def _take_over_socket(self) -> None:
        dtls = self._dtls
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None or type(pair.protocol) is not aioice.ice.StunProtocol:
            # Not a plain UDP host candidate (e.g. a TURN client): stay on the slow path.
            logger.warning("fast path unavailable: nominated pair is not a host UDP socket")
            return
        protocol = pair.protocol
        remote = tuple(pair.remote_addr)
        rx = _Srtp(dtls._rx_srtp)
        original = protocol.datagram_received
        sink = self._sink
        on_rtp = sink.on_rtp
        on_rtcp = sink.on_rtcp
        unprotect_rtp = rx.unprotect_rtp
        unprotect_rtcp = rx.unprotect_rtcp

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if data and 127 < data[0] < 192 and addr[0] == remote[0] and addr[1] == remote[1]:
                if len(data) > 1 and 191 < data[1] < 224:
                    plain = unprotect_rtcp(data)
                    if plain is not None:
                        on_rtcp(plain)
                        return
                else:
                    plain = unprotect_rtp(data)
                    if plain is not None:
                        on_rtp(plain)
                        return
                sink.on_srtp_error()
                return
            original(data, addr)

        setattr(protocol, "datagram_received", datagram_received)  # noqa: B010 - instance only
        self._socket = protocol.transport
        with contextlib.suppress(OSError, AttributeError):
            protocol.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES
            )
        self._remote = (remote[0], remote[1])
        self._tx = _Srtp(dtls._tx_srtp)

    def send(self, data: bytes) -> bool:
        """Protect and send one RTP or RTCP packet; False when it could not be sent."""
        tx = self._tx
        if tx is None:
            return False
        packet = tx.protect(data)
        if packet is None:
            return False
        transport = self._socket
        if transport is None or transport.is_closing():
            self._tx = None
            return False
        transport.sendto(packet, self._remote)
        return True

    async def close(self) -> None:
        self._tx = None
        with contextlib.suppress(Exception):
            await self._pc.close()

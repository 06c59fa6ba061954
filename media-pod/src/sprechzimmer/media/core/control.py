"""Control-API messages between the signaling service and the SFU (docs/media-pod.md). No I/O.

Every request body is parsed into a dataclass with validation that names the offending field;
every response and event is a dataclass with ``serialize()``. Participant ids are the opaque
DNS-1123 labels of the VideoSession contract; nothing else about a person reaches the SFU.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Final

from sprechzimmer.contract import DNS1123_LABEL
from sprechzimmer.contract.mediapod import MAX_SDP_BYTES

MAX_BODY_BYTES: Final = 64 * 1024  # an SDP offer (MAX_SDP_BYTES) and its JSON envelope
MAX_CANDIDATE_CHARS: Final = 512
MIN_CREDENTIAL_TTL: Final = 60
MAX_CREDENTIAL_TTL: Final = 24 * 3600
DEFAULT_CREDENTIAL_TTL: Final = 3600

# candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
_CANDIDATE: Final = re.compile(
    r"^(?:a=)?candidate:\S{1,32} \d{1,3} (?i:udp|tcp) \d{1,10} (\S{1,64}) \d{1,5} typ "
    r"(host|srflx|prflx|relay)(?: .*)?$"
)


class ControlError(ValueError):
    """A request the SFU refuses; ``status`` is the HTTP status, the message is for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ControlError(400, "request body must be a JSON object")
    return body


def parse_participant_id(value: object) -> str:
    if not isinstance(value, str) or not DNS1123_LABEL.fullmatch(value):
        raise ControlError(400, "participantId must be a DNS-1123 label (a-z, 0-9, '-')")
    return value


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """``POST /v1/participants``: a participant's SDP offer."""

    participant_id: str
    sdp: str

    @classmethod
    def parse(cls, body: object) -> JoinRequest:
        obj = _object(body)
        participant_id = parse_participant_id(obj.get("participantId"))
        if obj.get("type", "offer") != "offer":
            raise ControlError(400, "type must be 'offer'")
        sdp = obj.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise ControlError(400, "sdp must be an SDP offer starting with 'v=0'")
        if len(sdp.encode()) > MAX_SDP_BYTES:
            raise ControlError(413, f"sdp is larger than {MAX_SDP_BYTES} bytes")
        return cls(participant_id, sdp)


@dataclass(frozen=True, slots=True)
class JoinResponse:
    participant_id: str
    sdp: str

    def serialize(self) -> dict[str, object]:
        return {"participantId": self.participant_id, "type": "answer", "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class CandidateRequest:
    """``POST /v1/participants/{id}/candidates``: one trickled candidate, or end-of-candidates."""

    candidate: str | None  # without the "candidate:" prefix handling; None = end of candidates
    sdp_mid: str | None
    sdp_mline_index: int | None

    @classmethod
    def parse(cls, body: object) -> CandidateRequest:
        obj = _object(body)
        candidate = obj.get("candidate")
        mid = obj.get("sdpMid")
        index = obj.get("sdpMLineIndex")
        if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
            raise ControlError(400, "sdpMid must be a short string")
        if index is not None and (not isinstance(index, int) or not 0 <= index < 64):
            raise ControlError(400, "sdpMLineIndex must be an integer between 0 and 63")
        if candidate in (None, ""):
            return cls(None, mid, index)
        if not isinstance(candidate, str) or len(candidate) > MAX_CANDIDATE_CHARS:
            raise ControlError(400, "candidate must be an ICE candidate string")
        if not _CANDIDATE.match(candidate):
            raise ControlError(400, "candidate is not a valid ICE candidate line")
        return cls(candidate.removeprefix("a="), mid, index)

    @property
    def usable(self) -> bool:
        """Only candidates the loopback-bound SFU can reach: TURN relays on this pod."""
        return self.candidate is None or candidate_is_loopback(self.candidate)


def candidate_is_loopback(candidate: str) -> bool:
    """True when the candidate's address is a loopback IP literal (no mDNS names)."""
    match = _CANDIDATE.match(candidate)
    if match is None:
        return False
    try:
        return ipaddress.ip_address(match.group(1)).is_loopback
    except ValueError:
        return False


def filter_offer_candidates(sdp: str) -> tuple[str, int]:
    """Drop candidate lines the SFU must not use; returns the SDP and how many were dropped.

    The SFU binds to loopback and only ever talks to coturn's relayed addresses in the same pod,
    so host, reflexive and mDNS candidates are removed before aiortc could act on them.
    """
    kept: list[str] = []
    dropped = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and not candidate_is_loopback(line[2:]):
            dropped += 1
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", dropped


@dataclass(frozen=True, slots=True)
class CredentialsRequest:
    """``POST /v1/turn-credentials``."""

    ttl_seconds: int

    @classmethod
    def parse(cls, body: object) -> CredentialsRequest:
        obj = _object(body if body is not None else {})
        ttl = obj.get("ttlSeconds", DEFAULT_CREDENTIAL_TTL)
        if not isinstance(ttl, int) or not MIN_CREDENTIAL_TTL <= ttl <= MAX_CREDENTIAL_TTL:
            raise ControlError(
                400,
                f"ttlSeconds must be an integer from {MIN_CREDENTIAL_TTL} to {MAX_CREDENTIAL_TTL}",
            )
        return cls(ttl)


class EventType(enum.StrEnum):
    JOINED = "participant.joined"
    CONNECTED = "participant.connected"
    LEFT = "participant.left"
    SPEAKER = "speaker.changed"


class LeaveReason(enum.StrEnum):
    """Why a participant left; a bounded set, used as a metric label."""

    REMOVED = "removed"  # DELETE by the signaling service
    BYE = "bye"  # the client said goodbye (RTCP BYE or DTLS close)
    TIMEOUT = "timeout"  # no media for SPRECHZIMMER_MEDIA_TIMEOUT_SECONDS: vanished
    FAILED = "failed"  # ICE/DTLS failed or never connected
    REPLACED = "replaced"  # the same participant joined again
    SHUTDOWN = "shutdown"  # the pod is terminating


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of ``GET /v1/events``; ``id`` increases by one per event."""

    id: int
    type: EventType
    at: float  # Unix seconds
    participant_id: str | None
    reason: LeaveReason | None = None

    def serialize(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "type": str(self.type),
            "at": round(self.at, 3),
            "participantId": self.participant_id,
        }
        if self.reason is not None:
            out["reason"] = str(self.reason)
        return out

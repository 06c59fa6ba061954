"""WebSocket protocol v1 between browsers and signaling: messages, limits, close codes. No I/O.

Every frame is one JSON object ``{"v": 1, "type": ..., ...}``. Client messages are parsed
strictly: an unknown ``type``, an unknown or ill-typed field, or an oversized frame raises
``ProtocolError`` carrying the close code for *that* socket; nothing else is affected.
Server messages are dataclasses whose ``serialize()`` gives the JSON object. The contract for
browser clients is documented in docs/signaling.md.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from sprechzimmer.contract.mediapod import MAX_SDP_BYTES

VERSION: Final = 1
MAX_FRAME_BYTES: Final = 64 * 1024
MAX_E2E_PAYLOAD_CHARS: Final = 16 * 1024
MAX_NAME_CHARS: Final = 64
MAX_CANDIDATE_CHARS: Final = 1024
MAX_HOST_CHARS: Final = 63
MAX_CODE_CHARS: Final = 64
MAX_RESUME_CHARS: Final = 64
SFU: Final = "sfu"
EVERYONE: Final = "*"
PEER_ID: Final = re.compile(r"^p-[0-9a-f]{10}$")
_BASE64URL: Final = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
_MID: Final = re.compile(r"^[A-Za-z0-9_.-]{0,32}$")


class CloseCode(enum.IntEnum):
    """WebSocket close codes signaling uses (4xxx: application codes, after the HTTP analogue)."""

    NORMAL = 1000  # leave
    GOING_AWAY = 1001  # server shutdown: reconnect with `resume`
    TOO_BIG = 1009  # frame above MAX_FRAME_BYTES
    BAD_MESSAGE = 4400  # malformed message
    ADMISSION = 4401  # unknown code / link (also not-started misuse)
    CONFLICT = 4409  # call full, or the seat was taken over by a newer connection
    ENDED = 4410  # expired, cancelled, or the session ended
    RATE_LIMITED = 4429  # too many failed attempts: wait `retryAfter`
    UNAVAILABLE = 4503  # the session cannot be joined right now (media failed, overloaded)


class ErrorCode(enum.StrEnum):
    UNKNOWN_CODE = "unknown-code"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    NOT_STARTED = "not-started"
    RATE_LIMITED = "rate-limited"
    FULL = "full"
    BAD_MESSAGE = "bad-message"
    UNAVAILABLE = "unavailable"


ERROR_CLOSE: Final[dict[ErrorCode, CloseCode]] = {
    ErrorCode.UNKNOWN_CODE: CloseCode.ADMISSION,
    ErrorCode.NOT_STARTED: CloseCode.ADMISSION,
    ErrorCode.EXPIRED: CloseCode.ENDED,
    ErrorCode.CANCELLED: CloseCode.ENDED,
    ErrorCode.RATE_LIMITED: CloseCode.RATE_LIMITED,
    ErrorCode.FULL: CloseCode.CONFLICT,
    ErrorCode.BAD_MESSAGE: CloseCode.BAD_MESSAGE,
    ErrorCode.UNAVAILABLE: CloseCode.UNAVAILABLE,
}


class EndReason(enum.StrEnum):
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REPLACED = "replaced"
    LEFT = "left"


END_CLOSE: Final[dict[EndReason, CloseCode]] = {
    EndReason.EXPIRED: CloseCode.ENDED,
    EndReason.CANCELLED: CloseCode.ENDED,
    EndReason.REPLACED: CloseCode.CONFLICT,
    EndReason.LEFT: CloseCode.NORMAL,
}


class Role(enum.StrEnum):
    HOST = "host"
    CLIENT = "client"


class RoomState(enum.StrEnum):
    WAITING = "waiting"
    OPEN = "open"


class ProtocolError(ValueError):
    """A client frame this server will not accept; ``close`` is the socket's close code."""

    def __init__(self, reason: str, close: CloseCode = CloseCode.BAD_MESSAGE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close = close


# --------------------------------------------------------------------------- field checks
def _fields(obj: dict[str, Any], kind: str, required: set[str], optional: set[str]) -> None:
    allowed = required | optional | {"v", "type"}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ProtocolError(f"{kind}: unknown field {unknown[0]!r}")
    missing = sorted(required - set(obj))
    if missing:
        raise ProtocolError(f"{kind}: missing field {missing[0]!r}")


def _str(obj: dict[str, Any], key: str, kind: str, limit: int, *, empty: bool = False) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{kind}.{key} must be a string")
    if len(value) > limit:
        raise ProtocolError(f"{kind}.{key} longer than {limit} characters")
    if not value and not empty:
        raise ProtocolError(f"{kind}.{key} must not be empty")
    return value


def _target(obj: dict[str, Any], kind: str, *extra: str) -> str:
    to = _str(obj, "to", kind, 16)
    if to not in extra and not PEER_ID.fullmatch(to):
        choices = " or ".join(["a peer id", *(repr(e) for e in extra)])
        raise ProtocolError(f"{kind}.to must be {choices}")
    return to


# --------------------------------------------------------------------------- client → server
@dataclass(frozen=True, slots=True)
class LinkAuth:
    token: str


@dataclass(frozen=True, slots=True)
class CodeAuth:
    host: str
    code: str


@dataclass(frozen=True, slots=True)
class Hello:
    auth: LinkAuth | CodeAuth
    resume: str | None = None
    lang: str | None = None

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Hello:
        _fields(obj, "hello", {"auth"}, {"resume", "lang"})
        auth = obj["auth"]
        if not isinstance(auth, dict):
            raise ProtocolError("hello.auth must be an object")
        parsed: LinkAuth | CodeAuth
        if set(auth) == {"link"}:
            parsed = LinkAuth(_str(auth, "link", "hello.auth", 128))
        elif set(auth) == {"host", "code"}:
            parsed = CodeAuth(
                _str(auth, "host", "hello.auth", MAX_HOST_CHARS + 16),
                _str(auth, "code", "hello.auth", MAX_CODE_CHARS),
            )
        else:
            raise ProtocolError("hello.auth must be {link} or {host, code}")
        resume = _str(obj, "resume", "hello", MAX_RESUME_CHARS) if "resume" in obj else None
        lang = obj.get("lang")
        if lang is not None and lang not in ("de", "en"):
            raise ProtocolError("hello.lang must be 'de' or 'en'")
        return cls(parsed, resume, lang)


@dataclass(frozen=True, slots=True)
class Join:
    name: str | None = None

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Join:
        _fields(obj, "join", set(), {"name"})
        name = obj.get("name")
        if name is None:
            return cls()
        text = _str(obj, "name", "join", MAX_NAME_CHARS, empty=True).strip()
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ProtocolError("join.name must not contain control characters")
        return cls(text or None)


@dataclass(frozen=True, slots=True)
class Sdp:
    to: str
    kind: str  # "offer" | "answer"
    sdp: str

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Sdp:
        _fields(obj, "sdp", {"to", "description"}, set())
        to = _target(obj, "sdp", SFU)
        description = obj["description"]
        if not isinstance(description, dict) or set(description) != {"type", "sdp"}:
            raise ProtocolError("sdp.description must be {type, sdp}")
        kind = description["type"]
        if kind not in ("offer", "answer"):
            raise ProtocolError("sdp.description.type must be 'offer' or 'answer'")
        if to == SFU and kind != "offer":
            raise ProtocolError("sdp to the sfu must be an offer")
        text = _str(description, "sdp", "sdp.description", MAX_SDP_BYTES)
        if len(text.encode()) > MAX_SDP_BYTES:
            raise ProtocolError(f"sdp.description.sdp larger than {MAX_SDP_BYTES} bytes")
        return cls(to, kind, text)

    def relayed(self, sender: str) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": "sdp",
            "from": sender,
            "description": {"type": self.kind, "sdp": self.sdp},
        }


@dataclass(frozen=True, slots=True)
class Candidate:
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    username_fragment: str | None = None

    def serialize(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "candidate": self.candidate,
            "sdpMid": self.sdp_mid,
            "sdpMLineIndex": self.sdp_mline_index,
        }
        if self.username_fragment is not None:
            out["usernameFragment"] = self.username_fragment
        return out


@dataclass(frozen=True, slots=True)
class Ice:
    to: str
    candidate: Candidate | None  # None: end of candidates

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Ice:
        _fields(obj, "ice", {"to", "candidate"}, set())
        to = _target(obj, "ice", SFU)
        raw = obj["candidate"]
        if raw is None:
            return cls(to, None)
        if not isinstance(raw, dict):
            raise ProtocolError("ice.candidate must be an object or null")
        _fields(
            raw, "ice.candidate", {"candidate"}, {"sdpMid", "sdpMLineIndex", "usernameFragment"}
        )
        text = _str(raw, "candidate", "ice.candidate", MAX_CANDIDATE_CHARS, empty=True)
        mid = raw.get("sdpMid")
        if mid is not None and (not isinstance(mid, str) or not _MID.fullmatch(mid)):
            raise ProtocolError("ice.candidate.sdpMid must be a short token or null")
        index = raw.get("sdpMLineIndex")
        if index is not None and (
            not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 64
        ):
            raise ProtocolError("ice.candidate.sdpMLineIndex must be 0..63 or null")
        ufrag = raw.get("usernameFragment")
        if ufrag is not None:
            ufrag = _str(raw, "usernameFragment", "ice.candidate", 256, empty=True)
        return cls(to, Candidate(text, mid, index, ufrag))

    def relayed(self, sender: str) -> dict[str, Any]:
        candidate = None if self.candidate is None else self.candidate.serialize()
        return {"v": VERSION, "type": "ice", "from": sender, "candidate": candidate}


@dataclass(frozen=True, slots=True)
class E2e:
    to: str
    payload: str

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> E2e:
        _fields(obj, "e2e", {"to", "payload"}, set())
        to = _target(obj, "e2e", EVERYONE)
        payload = _str(obj, "payload", "e2e", MAX_E2E_PAYLOAD_CHARS)
        if not _BASE64URL.fullmatch(payload):
            raise ProtocolError("e2e.payload must be base64url")
        return cls(to, payload)

    def relayed(self, sender: str) -> dict[str, Any]:
        return {"v": VERSION, "type": "e2e", "from": sender, "payload": self.payload}


@dataclass(frozen=True, slots=True)
class Leave:
    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Leave:
        _fields(obj, "leave", set(), set())
        return cls()


@dataclass(frozen=True, slots=True)
class Ping:
    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Ping:
        _fields(obj, "ping", set(), set())
        return cls()


ClientMessage = Hello | Join | Sdp | Ice | E2e | Leave | Ping
_CLIENT_TYPES: Final[dict[str, Any]] = {
    "hello": Hello,
    "join": Join,
    "sdp": Sdp,
    "ice": Ice,
    "e2e": E2e,
    "leave": Leave,
    "ping": Ping,
}


def parse(frame: str | bytes) -> ClientMessage:
    """One client frame → its message, or ProtocolError (with the close code to use)."""
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame larger than {MAX_FRAME_BYTES} bytes", CloseCode.TOO_BIG)
    if isinstance(frame, bytes):
        raise ProtocolError("binary frames are not part of the protocol")
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError) as err:  # deep nesting fits in 64 KiB
        raise ProtocolError("not JSON") from err
    if not isinstance(obj, dict):
        raise ProtocolError("a message must be a JSON object")
    if obj.get("v") != VERSION or isinstance(obj.get("v"), bool):
        raise ProtocolError(f"unsupported protocol version (this server speaks v{VERSION})")
    kind = obj.get("type")
    message_class = _CLIENT_TYPES.get(kind) if isinstance(kind, str) else None
    if message_class is None:
        raise ProtocolError("unknown message type")
    result: ClientMessage = message_class.parse(obj)
    return result


# --------------------------------------------------------------------------- server → client
@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str
    credential: str

    def serialize(self) -> dict[str, Any]:
        return {"urls": list(self.urls), "username": self.username, "credential": self.credential}


@dataclass(frozen=True, slots=True)
class Welcome:
    you: str
    role: Role
    resume: str
    mode: str
    scheduled_start: str
    expires_at: str
    state: RoomState
    ice_servers: tuple[IceServer, ...]
    relay_only: bool
    max_participants: int
    logo: str | None = None  # the practice logo's URL (core/logo.py), only to admitted people

    def serialize(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": VERSION,
            "type": "welcome",
            "you": self.you,
            "role": self.role.value,
            "resume": self.resume,
            "mode": self.mode,
            "scheduledStart": self.scheduled_start,
            "expiresAt": self.expires_at,
            "state": self.state.value,
            "iceServers": [s.serialize() for s in self.ice_servers],
            "iceTransportPolicy": "relay" if self.relay_only else "all",
            "maxParticipants": self.max_participants,
        }
        if self.logo:
            out["logo"] = self.logo
        return out


@dataclass(frozen=True, slots=True)
class Open:
    ice_servers: tuple[IceServer, ...] | None = None  # group calls: the pod's TURN, once known

    def serialize(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "type": "open"}
        if self.ice_servers is not None:
            out["iceServers"] = [s.serialize() for s in self.ice_servers]
            out["iceTransportPolicy"] = "relay"
        return out


@dataclass(frozen=True, slots=True)
class PeerInfo:
    id: str
    role: Role
    name: str | None
    joined: bool

    def serialize(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role.value, "name": self.name, "joined": self.joined}


@dataclass(frozen=True, slots=True)
class Roster:
    peers: tuple[PeerInfo, ...]

    def serialize(self) -> dict[str, Any]:
        return {"v": VERSION, "type": "roster", "peers": [p.serialize() for p in self.peers]}


@dataclass(frozen=True, slots=True)
class Slots:
    slots: tuple[str | None, ...]  # index = slot number, value = peer id or None

    def serialize(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": "slots",
            "slots": [{"slot": i, "peer": p} for i, p in enumerate(self.slots)],
        }


@dataclass(frozen=True, slots=True)
class Speaker:
    peer: str | None

    def serialize(self) -> dict[str, Any]:
        return {"v": VERSION, "type": "speaker", "peer": self.peer}


@dataclass(frozen=True, slots=True)
class SfuAnswer:
    sdp: str

    def serialize(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": "sdp",
            "from": SFU,
            "description": {"type": "answer", "sdp": self.sdp},
        }


@dataclass(frozen=True, slots=True)
class Error:
    code: ErrorCode
    retry_after: int | None = None
    scheduled_start: str | None = None

    @property
    def close(self) -> CloseCode:
        return ERROR_CLOSE[self.code]

    def serialize(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "type": "error", "code": self.code.value}
        if self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        if self.scheduled_start is not None:
            out["scheduledStart"] = self.scheduled_start
        return out


@dataclass(frozen=True, slots=True)
class Ended:
    reason: EndReason

    @property
    def close(self) -> CloseCode:
        return END_CLOSE[self.reason]

    def serialize(self) -> dict[str, Any]:
        return {"v": VERSION, "type": "ended", "reason": self.reason.value}


@dataclass(frozen=True, slots=True)
class Pong:
    def serialize(self) -> dict[str, Any]:
        return {"v": VERSION, "type": "pong"}


ServerMessage = Welcome | Open | Roster | Slots | Speaker | SfuAnswer | Error | Ended | Pong


def encode(message: ServerMessage | dict[str, Any]) -> str:
    """The text frame for a server message (or an already serialized relay)."""
    obj = message if isinstance(message, dict) else message.serialize()
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

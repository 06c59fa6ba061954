"""Who may join: credentials → digest → session → admitted (role, waiting/open) or an error. No I/O.

Signaling never sees plaintext codes of a session: it computes the keyed digest of what the
person typed (``keys.code_digest``) or of the link token (``keys.link_digest``) and looks the
digest up in the index the watch keeps. The same answer, ``unknown-code``, is given for an
unknown handle and for a wrong code, and every wrong answer costs the same work: the HMAC is
always computed (over a placeholder when the input is malformed), all lookups are made, and the
final comparison is constant-time.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sprechzimmer.contract import DNS1123_LABEL, Phase
from sprechzimmer.contract.keys import LINK_TOKEN_PATTERN, code_digest, link_digest, normalize_code
from sprechzimmer.contract.mediapod import JoinMode

from .protocol import CodeAuth, ErrorCode, LinkAuth, Role, RoomState
from .sessions import CODE_KINDS, LINK_KINDS, DigestKind, SessionIndex, SessionView

# Stand-ins hashed instead of malformed input, so a malformed guess costs what a wrong one does.
_PLACEHOLDER_CODE: Final = "000-000-000"
_PLACEHOLDER_HOST: Final = "invalid"
_PLACEHOLDER_TOKEN: Final = "0" * 64
_HOST_JUNK: Final = re.compile("[\\s_\u2013\u2014-]+")
OPEN_PHASES: Final = frozenset({Phase.READY, Phase.ACTIVE})


@dataclass(frozen=True, slots=True)
class Admitted:
    session: SessionView
    role: Role
    revoked: bool = False  # found through a digest the operator has since removed


@dataclass(frozen=True, slots=True)
class Rejected:
    code: ErrorCode


def normalize_host(text: str) -> str | None:
    """A practice handle as typed (``Dr Muster ``) → ``dr-muster``, or None if it cannot be one.

    Case, surrounding space and spaces/underscores/dashes of any kind inside are forgiven."""
    host = _HOST_JUNK.sub("-", text.strip().lower())
    return host if DNS1123_LABEL.fullmatch(host) else None


def find(key: bytes, auth: LinkAuth | CodeAuth, index: SessionIndex) -> Admitted | None:
    """The session and role these credentials open, or None. Same work for every miss."""
    if isinstance(auth, LinkAuth):
        token = auth.token.strip().lower()
        well_formed = LINK_TOKEN_PATTERN.fullmatch(token) is not None
        digest = link_digest(key, token if well_formed else _PLACEHOLDER_TOKEN)
        kinds: tuple[DigestKind, ...] = LINK_KINDS
        host = None
    else:
        host = normalize_host(auth.host)
        code = normalize_code(auth.code)
        well_formed = host is not None and code is not None
        digest = code_digest(key, host or _PLACEHOLDER_HOST, code or _PLACEHOLDER_CODE)
        kinds = CODE_KINDS
    found: Admitted | None = None
    for kind in kinds:  # look in both, always
        view = index.lookup(kind, digest)
        stored = view.digests.get(kind, "") if view is not None else ""
        revoked = view is not None and not stored
        # A revoked digest (expired/cancelled session) was removed from the labels: compare
        # with the digest itself so the comparison still runs.
        match = hmac.compare_digest(stored if not revoked else digest, digest)
        same_host = view is not None and (host is None or hmac.compare_digest(view.host, host))
        if view is not None and match and same_host and well_formed and found is None:
            found = Admitted(view, kind.role, revoked)
    return found


def decide(found: Admitted | None, now: datetime) -> Admitted | Rejected:
    """Whether the session these credentials opened can be entered now."""
    if found is None:
        return Rejected(ErrorCode.UNKNOWN_CODE)
    view = found.session
    if view.deleting or (view.gone and not _expired(view, now)):
        return Rejected(ErrorCode.CANCELLED)
    if _expired(view, now):
        return Rejected(ErrorCode.EXPIRED)
    if found.revoked:  # labels removed without expiry or deletion: the codes are void
        return Rejected(ErrorCode.UNKNOWN_CODE)
    if view.phase is Phase.FAILED:
        return Rejected(ErrorCode.UNAVAILABLE)
    return found


def _expired(view: SessionView, now: datetime) -> bool:
    return view.phase is Phase.EXPIRED or (view.expires_at is not None and now >= view.expires_at)


def ended(view: SessionView, now: datetime) -> ErrorCode | None:
    """For a running room: EXPIRED/CANCELLED once everyone must be disconnected, else None."""
    if view.deleting or (view.gone and not _expired(view, now)):
        return ErrorCode.CANCELLED
    if _expired(view, now):
        return ErrorCode.EXPIRED
    return None


def room_state(view: SessionView, media_reachable: bool) -> RoomState:
    """``open`` once media can flow: 1:1 from the start window, groups once the pod is Ready."""
    if view.mode is JoinMode.PEER_TO_PEER:
        ready = view.phase in OPEN_PHASES or view.phase is Phase.IDLE
    else:
        ready = view.phase in OPEN_PHASES and media_reachable
    return RoomState.OPEN if ready else RoomState.WAITING

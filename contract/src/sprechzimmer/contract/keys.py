"""Everything the operator and signaling derive from their shared key, written once. No I/O.

Signaling never reads the codes Secret: it recomputes these keyed digests and compares them with
the labels the operator put on the session. TURN secrets and SFU control tokens are derived per
session, so the operator stores them only in the session's media Secret (for the pod) and
signaling derives the same values. ``tests/test_keys.py`` pins each function with a test vector:
changing one breaks every live session, so it must be deliberate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

from sprechzimmer.contract import is_valid_code

# 128 bits, hex: fits a label value (≤ 63 characters) and makes a collision irrelevant.
DIGEST_HEX_CHARS: Final = 32
LINK_TOKEN_BYTES: Final = 32
LINK_TOKEN_PATTERN: Final = re.compile(r"^[0-9a-f]{64}$")
# Separators people type: spaces, dashes (also en/em dashes from word processors), dots.
_CODE_JUNK: Final = re.compile("[\\s\\-_.\u2013\u2014]+")


def _derive(key: bytes, purpose: str, *parts: str) -> str:
    message = "\x00".join((purpose, *parts)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def normalize_code(text: str) -> str | None:
    """A code as typed by a person (``C3F E04 D96``, ``c3fe04d96``) → ``c3f-e04-d96``, or None.

    Forgiving on case, spaces and dashes; strict on everything else, so a wrong character is
    reported as a wrong code rather than guessed at.
    """
    digits = _CODE_JUNK.sub("", text.strip().lower())
    if len(digits) != 9:
        return None
    code = f"{digits[0:3]}-{digits[3:6]}-{digits[6:9]}"
    return code if is_valid_code(code) else None


def code_digest(key: bytes, host: str, code: str) -> str:
    """HMAC-SHA256(key, "code-digest\\0" host "\\0" code)[:32 hex]: the session's code label.

    Keyed, because 36 bits of code are brute-forced in seconds without the key.
    """
    if not is_valid_code(code):
        raise ValueError("not a well-formed code")
    return _derive(key, "code-digest", host, code)[:DIGEST_HEX_CHARS]


def link_digest(key: bytes, token: str) -> str:
    """HMAC-SHA256(key, "link-digest\\0" token)[:32 hex]: the session's link label.

    A link token is 256 random bits, so it needs no host to be unique; the key keeps a leaked
    label list from being useful.
    """
    if not LINK_TOKEN_PATTERN.fullmatch(token):
        raise ValueError("not a well-formed link token")
    return _derive(key, "link-digest", token)[:DIGEST_HEX_CHARS]


def turn_secret(key: bytes, session_uid: str) -> str:
    """coturn ``static-auth-secret`` of one session's media pod."""
    return _derive(key, "turn-secret", session_uid)


def control_token(key: bytes, session_uid: str) -> str:
    """Bearer token for the SFU control API of one session's media pod."""
    return _derive(key, "control-token", session_uid)


def shared_turn_secret(key: bytes) -> str:
    """``static-auth-secret`` of the shared TURN server that 1:1 calls use."""
    return _derive(key, "shared-turn-secret")


def turn_rest_credentials(secret: str, expires_unix: int, nonce: str) -> tuple[str, str]:
    """TURN REST credentials (coturn ``use-auth-secret``): ``(username, credential)``.

    username = ``<expiry>:<nonce>``, credential = base64(HMAC-SHA1(secret, username)). The
    caller chooses the expiry, never past the session's ``expiresAt``.
    """
    username = f"{expires_unix}:{nonce}"
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(mac).decode()

"""Access codes, link tokens and the keyed values derived from the shared key. No I/O.

Plaintext codes and tokens exist only in the codes Secret. Signaling verifies a code through
its digest (a label on the VideoSession) without ever seeing the plaintext; TURN secrets and
SFU control tokens are derived per session, so neither side stores them anywhere but the
session's media Secret. Randomness is injected (``secrets.token_bytes`` in production).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sprechzimmer.contract import is_valid_code

RandomBytes = Callable[[int], bytes]

# 128 bits, hex: fits a label value (≤ 63) and makes a digest collision irrelevant.
DIGEST_HEX_CHARS = 32
LINK_TOKEN_BYTES = 32
MAX_ATTEMPTS = 64


class CodeSpaceExhausted(RuntimeError):
    """The CSPRNG kept producing codes already live for this host (should never happen)."""


@dataclass(frozen=True)
class CodePair:
    """The plaintext credentials of one session. Never logged: repr hides them."""

    host_code: str
    client_code: str
    host_link_token: str
    client_link_token: str

    def __repr__(self) -> str:
        return "CodePair(<redacted>)"


def new_code(random_bytes: RandomBytes) -> str:
    """``xxx-xxx-xxx``: nine lowercase hex digits (36 bits) from the CSPRNG."""
    digits = random_bytes(5).hex()[:9]
    return f"{digits[0:3]}-{digits[3:6]}-{digits[6:9]}"


def issue_codes(
    *,
    key: bytes,
    host: str,
    live_digests: Collection[str],
    random_bytes: RandomBytes,
) -> CodePair:
    """A host and a client code that differ and are not live for this host, plus link tokens.

    ``live_digests`` are the code digests of the host's live sessions (labels on their objects);
    since the digest is keyed by host, equal digests mean a reused code.
    """
    taken = set(live_digests)
    codes: list[str] = []
    for _ in range(MAX_ATTEMPTS):
        code = new_code(random_bytes)
        digest = code_digest(key, host, code)
        if digest in taken or code in codes:
            continue
        codes.append(code)
        taken.add(digest)
        if len(codes) == 2:
            return CodePair(
                host_code=codes[0],
                client_code=codes[1],
                host_link_token=random_bytes(LINK_TOKEN_BYTES).hex(),
                client_link_token=random_bytes(LINK_TOKEN_BYTES).hex(),
            )
    raise CodeSpaceExhausted(f"no free code after {MAX_ATTEMPTS} attempts")


def _derive(key: bytes, purpose: str, *parts: str) -> str:
    message = "\x00".join((purpose, *parts)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def code_digest(key: bytes, host: str, code: str) -> str:
    """What signaling compares: HMAC-SHA256(key, "code-digest\\0" host "\\0" code)[:32 hex].

    Keyed, because 36 bits of code are brute-forced in seconds without the key.
    """
    if not is_valid_code(code):
        raise ValueError("not a well-formed code")
    return _derive(key, "code-digest", host, code)[:DIGEST_HEX_CHARS]


def turn_secret(key: bytes, session_uid: str) -> str:
    """coturn ``static-auth-secret`` of one session's media pod; signaling derives the same."""
    return _derive(key, "turn-secret", session_uid)


def control_token(key: bytes, session_uid: str) -> str:
    """Bearer token for the SFU control API of one session's media pod."""
    return _derive(key, "control-token", session_uid)

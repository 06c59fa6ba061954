"""Issuing access codes and link tokens. No I/O.

Plaintext codes and tokens exist only in the codes Secret. Signaling verifies a code or link
through its keyed digest (labels on the VideoSession) without ever seeing the plaintext; the
derivations live in ``sprechzimmer.contract.keys``, shared with signaling. Randomness is
injected (``secrets.token_bytes`` in production).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from sprechzimmer.contract.keys import LINK_TOKEN_BYTES, code_digest

RandomBytes = Callable[[int], bytes]

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

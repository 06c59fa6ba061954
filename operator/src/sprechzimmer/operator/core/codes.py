"""Issuing access codes and link tokens, and the labels that let signaling verify them. No I/O.

Plaintext codes and tokens exist only in the codes Secret. Signaling verifies a code or link
through its keyed digest (labels on the VideoSession) without ever seeing the plaintext; the
derivations live in ``sprechzimmer.contract.keys``, shared with signaling. Randomness is
injected (``secrets.token_bytes`` in production).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sprechzimmer.contract import (
    FINALIZER,
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_CLIENT_LINK_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    LABEL_HOST_LINK_DIGEST,
    SecretKey,
)
from sprechzimmer.contract.keys import LINK_TOKEN_BYTES, code_digest, link_digest

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


# Every label that carries a digest of a credential: set when codes are issued, removed when
# they are revoked.
DIGEST_LABELS = (
    LABEL_HOST_CODE_DIGEST,
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_HOST_LINK_DIGEST,
    LABEL_CLIENT_LINK_DIGEST,
)


def pair_from_secret(secret: Mapping[str, Any]) -> CodePair:
    """The codes a stored codes Secret holds (``data``, base64, as the API returns it)."""
    data = secret.get("data") or {}

    def read(key: SecretKey) -> str:
        return base64.b64decode(data[key.value]).decode()

    return CodePair(
        host_code=read(SecretKey.HOST_CODE),
        client_code=read(SecretKey.CLIENT_CODE),
        host_link_token=read(SecretKey.HOST_LINK_TOKEN),
        client_link_token=read(SecretKey.CLIENT_LINK_TOKEN),
    )


def code_digests(key: bytes, host: str, pair: CodePair) -> tuple[str, str]:
    return code_digest(key, host, pair.host_code), code_digest(key, host, pair.client_code)


def digest_labels(key: bytes, host: str, pair: CodePair) -> dict[str, str]:
    """The labels signaling looks a code or link up by."""
    host_digest, client_digest = code_digests(key, host, pair)
    return {
        LABEL_HOST_CODE_DIGEST: host_digest,
        LABEL_CLIENT_CODE_DIGEST: client_digest,
        LABEL_HOST_LINK_DIGEST: link_digest(key, pair.host_link_token),
        LABEL_CLIENT_LINK_DIGEST: link_digest(key, pair.client_link_token),
    }


@dataclass(frozen=True)
class SessionLabels:
    """The metadata patch recording issued codes, finished from the Secret the API holds.

    If an earlier attempt created the codes Secret (and crashed before labelling), its codes are
    the session's codes: they may already have been handed out. The finalizer list is replaced
    as a whole, so the patch carries the resourceVersion it was computed from.
    """

    key: bytes = field(repr=False)
    host: str
    finalizers: tuple[str, ...]
    resource_version: str

    def patch(self, stored_secret: Mapping[str, Any]) -> dict[str, Any]:
        finalizers = list(self.finalizers)
        if FINALIZER not in finalizers:
            finalizers.append(FINALIZER)
        pair = pair_from_secret(stored_secret)
        return {
            "metadata": {
                "resourceVersion": self.resource_version,
                "finalizers": finalizers,
                "labels": digest_labels(self.key, self.host, pair),
            }
        }

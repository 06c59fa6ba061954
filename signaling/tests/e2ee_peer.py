"""docs/e2ee.md implemented a second time, in Python with ``cryptography``, for the browser tests.

A test participant built on this takes part in a group call's key exchange the way a page does
(announce its X25519 public key, receive every page's sender key sealed to it, ratchet keys
forward) without any of the page's code. That it can open the pages' frames proves the format and
the key schedule are the documented ones; a participant that left keeping these keys shows that
the key after a leave is out of its reach.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
ANNOUNCE, KEY = 1, 2
IV_LENGTH, TAG_LENGTH, TRAILER_LENGTH = 12, 16, 2
RATCHET_WINDOW = 8
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf(ikm: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)


def ratchet(material: bytes) -> bytes:
    return hkdf(material, b"sprechzimmer e2ee v1 ratchet")


def frame_cipher(material: bytes) -> AESGCM:
    return AESGCM(hkdf(material, b"sprechzimmer e2ee v1 frame"))


def clear_prefix(kind: str, data: bytes, media_length: int) -> int:
    nominal = 1 if kind == "audio" else (10 if not data[0] & 0x01 else 3)
    return min(nominal, media_length)


def key_index(frame: bytes) -> int | None:
    """The key index of an encrypted frame, or None when the frame is not in the format."""
    if len(frame) < TAG_LENGTH + IV_LENGTH + TRAILER_LENGTH or frame[-2] != IV_LENGTH:
        return None
    return frame[-1]


def decrypt_frame(material: bytes, frame: bytes, kind: str = "video") -> bytes:
    """The plain frame; raises InvalidTag (or ValueError) when ``material`` is not its key."""
    if key_index(frame) is None:
        raise ValueError("not an encrypted frame")
    media_length = len(frame) - TAG_LENGTH - IV_LENGTH - TRAILER_LENGTH
    clear = clear_prefix(kind, frame, media_length)
    iv = frame[-TRAILER_LENGTH - IV_LENGTH : -TRAILER_LENGTH]
    sealed = frame[clear : -TRAILER_LENGTH - IV_LENGTH]
    return frame[:clear] + frame_cipher(material).decrypt(iv, sealed, frame[:clear])


def key_aad(sender: bytes, recipient: bytes, index: int) -> bytes:
    return b"sprechzimmer e2ee v1 key" + sender + recipient + bytes([index])


def verification_code(kind: str, items: list[str]) -> str:
    parts = [f"sprechzimmer verification v1 {kind}", *sorted(items)]
    data = b"".join(len(p.encode()).to_bytes(2, "big") + p.encode() for p in parts)
    value = int.from_bytes(hashlib.sha256(data).digest()[:8], "big") % 10**12
    digits = f"{value:012d}"
    return " ".join(digits[i : i + 3] for i in range(0, 12, 3))


@dataclass
class E2eePeer:
    """One participant's keys: its X25519 pair, its sender key, and what the others sent it."""

    private: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    material: bytes = field(default_factory=lambda: os.urandom(32))
    index: int = 0
    public_keys: dict[str, bytes] = field(default_factory=dict)  # peer id → public key
    received: dict[str, dict[int, bytes]] = field(default_factory=dict)  # peer → index → material

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(*_RAW)

    def announce(self) -> str:
        return b64url(bytes([VERSION, ANNOUNCE]) + self.public)

    def _pairwise(self, their: bytes) -> AESGCM:
        secret = self.private.exchange(X25519PublicKey.from_public_bytes(their))
        salt = b"".join(sorted([self.public, their]))
        return AESGCM(hkdf(secret, b"sprechzimmer e2ee v1 wrap", salt))

    def key_message(self, peer: str) -> str:
        """This participant's sender key, sealed for ``peer``."""
        their = self.public_keys[peer]
        iv = os.urandom(12)
        sealed = self._pairwise(their).encrypt(
            iv, self.material, key_aad(self.public, their, self.index)
        )
        return b64url(bytes([VERSION, KEY]) + self.public + bytes([self.index]) + iv + sealed)

    def accept(self, sender: str, payload: str) -> int:
        """A page's `e2e` payload; returns its type. Raises when it is not valid."""
        data = unb64url(payload)
        assert data[0] == VERSION, data[:2]
        their = data[2:34]
        self.public_keys[sender] = their
        if data[1] == KEY:
            assert len(data) == 95, len(data)
            index, iv, sealed = data[34], data[35:47], data[47:]
            material = self._pairwise(their).decrypt(iv, sealed, key_aad(their, self.public, index))
            self.received.setdefault(sender, {})[index] = material
        else:
            assert data[1] == ANNOUNCE, data[:2]
            assert len(data) == 34, len(data)
        return data[1]

    def candidate_keys(self) -> dict[int, list[bytes]]:
        """Key index → every material this participant has or can ratchet to for that index."""
        found: dict[int, list[bytes]] = {}
        for keys in self.received.values():
            for index, material in keys.items():
                step = material
                for ahead in range(RATCHET_WINDOW + 1):
                    found.setdefault((index + ahead) % 256, []).append(step)
                    step = ratchet(step)
        return found

    def open_frame(self, frame: bytes, kind: str = "video") -> bytes | None:
        """The plain frame if any key this participant holds (or ratchets to) opens it."""
        index = key_index(frame)
        for material in self.candidate_keys().get(index, []) if index is not None else []:
            try:
                return decrypt_frame(material, frame, kind)
            except InvalidTag:
                continue
        return None

"""Test vectors for the values operator and signaling derive from the shared key.

If one of these changes, every live session's labels, links, TURN secrets and control tokens
stop matching: change a vector only together with a migration.
"""

from __future__ import annotations

import pytest
from sprechzimmer.contract import keys

pytestmark = pytest.mark.unit

KEY = b"k" * 32


def test_code_digest_vector() -> None:
    assert keys.code_digest(KEY, "dr-muster", "c3f-e04-d96") == "263656109cffd4bf65e8c920bcbb0e8f"


def test_code_digest_depends_on_host_and_key() -> None:
    digest = keys.code_digest(KEY, "dr-muster", "c3f-e04-d96")
    assert keys.code_digest(KEY, "dr-other", "c3f-e04-d96") != digest
    assert keys.code_digest(b"j" * 32, "dr-muster", "c3f-e04-d96") != digest


def test_code_digest_refuses_malformed_code() -> None:
    with pytest.raises(ValueError, match="well-formed"):
        keys.code_digest(KEY, "dr-muster", "C3F-E04-D96")


def test_link_digest_vector() -> None:
    assert keys.link_digest(KEY, "ab" * 32) == "930b6bf865d296e60b1743fe5341c017"


@pytest.mark.parametrize("token", ["", "ab" * 31, "AB" * 32, "zz" * 32, "ab" * 32 + "\n"])
def test_link_digest_refuses_malformed_token(token: str) -> None:
    with pytest.raises(ValueError, match="link token"):
        keys.link_digest(KEY, token)


def test_media_secrets_vectors() -> None:
    assert keys.turn_secret(KEY, "uid-1") == (
        "76309778526cd1247709c42ca0098b9421288732c54aa0db42694cab8f2c3612"
    )
    assert keys.control_token(KEY, "uid-1") == (
        "0faaba90c2651a57566a4f4e08e62cd8fa5e47a36d167ad663359d2153baaab3"
    )
    assert keys.shared_turn_secret(KEY) == (
        "61dd098b0a17f2b864043312e7fb37e2a9d9d318deedf3d03bee3935d4730f66"
    )


def test_turn_rest_credentials_vector() -> None:
    assert keys.turn_rest_credentials("s" * 32, 1767000000, "n0nce") == (
        "1767000000:n0nce",
        "lPhXN9BcHEuAJ/wEFy5Imo6knFI=",
    )


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("c3f-e04-d96", "c3f-e04-d96"),
        ("C3F-E04-D96", "c3f-e04-d96"),
        (" c3f e04 d96 ", "c3f-e04-d96"),
        ("c3fe04d96", "c3f-e04-d96"),
        ("c3f\u2013e04\u2014d96", "c3f-e04-d96"),
        ("c3f-e04-d9", None),
        ("c3f-e04-d96-1", None),
        ("g3f-e04-d96", None),
        ("", None),
    ],
)
def test_normalize_code(typed: str, code: str | None) -> None:
    assert keys.normalize_code(typed) == code

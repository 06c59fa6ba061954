from __future__ import annotations

import itertools
import secrets

import pytest
from sprechzimmer.contract import is_valid_code
from sprechzimmer.operator.core import codes

pytestmark = pytest.mark.unit
KEY = b"k" * 32


def scripted(*chunks: bytes):  # a deterministic "CSPRNG" for the table tests
    stream = itertools.cycle(chunks)

    def random_bytes(n: int) -> bytes:
        return next(stream)[:n].ljust(n, b"\0")

    return random_bytes


def test_codes_are_well_formed_distinct_and_tokens_long() -> None:
    for _ in range(200):
        pair = codes.issue_codes(
            key=KEY, host="dr-a", live_digests=(), random_bytes=secrets.token_bytes
        )
        assert is_valid_code(pair.host_code)
        assert is_valid_code(pair.client_code)
        assert pair.host_code != pair.client_code
        assert len(pair.host_link_token) == 64
        assert len(pair.client_link_token) == 64


@pytest.mark.parametrize(
    ("chunks", "live", "expected"),
    [
        # equal draws are skipped: host and client code never match
        ((b"\xaa" * 5, b"\xaa" * 5, b"\xbb" * 5), (), ("aaa-aaa-aaa", "bbb-bbb-bbb")),
        # a code live in another session of the host is skipped
        ((b"\xaa" * 5, b"\xbb" * 5, b"\xcc" * 5), ("aaa-aaa-aaa",), ("bbb-bbb-bbb", "ccc-ccc-ccc")),
    ],
)
def test_codes_skip_equal_and_live(
    chunks: tuple[bytes, ...], live: tuple[str, ...], expected: tuple[str, str]
) -> None:
    digests = [codes.code_digest(KEY, "dr-a", c) for c in live]
    pair = codes.issue_codes(
        key=KEY, host="dr-a", live_digests=digests, random_bytes=scripted(*chunks, b"\x01" * 32)
    )
    assert (pair.host_code, pair.client_code) == expected


def test_exhausted_code_space_is_an_error() -> None:
    digest = codes.code_digest(KEY, "dr-a", "aaa-aaa-aaa")
    with pytest.raises(codes.CodeSpaceExhausted):
        codes.issue_codes(
            key=KEY, host="dr-a", live_digests=[digest], random_bytes=scripted(b"\xaa" * 5)
        )


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (("dr-a", "abc-def-012"), ("dr-a", "abc-def-012"), True),
        (("dr-a", "abc-def-012"), ("dr-b", "abc-def-012"), False),  # keyed per host
        (("dr-a", "abc-def-012"), ("dr-a", "abc-def-013"), False),
    ],
)
def test_digest_is_keyed_by_host_and_code(
    a: tuple[str, str], b: tuple[str, str], equal: bool
) -> None:
    da, db = codes.code_digest(KEY, *a), codes.code_digest(KEY, *b)
    assert (da == db) is equal
    assert len(da) == 32
    assert int(da, 16) >= 0


def test_digest_depends_on_key_and_rejects_malformed_codes() -> None:
    assert codes.code_digest(KEY, "h", "abc-def-012") != codes.code_digest(
        b"x" * 32, "h", "abc-def-012"
    )
    with pytest.raises(ValueError, match="well-formed"):
        codes.code_digest(KEY, "h", "ABC-DEF-012")


def test_derived_secrets_differ_per_purpose_and_session() -> None:
    values = {
        codes.turn_secret(KEY, "uid-1"),
        codes.turn_secret(KEY, "uid-2"),
        codes.control_token(KEY, "uid-1"),
    }
    assert len(values) == 3


def test_code_pair_repr_hides_plaintext() -> None:
    pair = codes.issue_codes(key=KEY, host="h", live_digests=(), random_bytes=secrets.token_bytes)
    assert pair.host_code not in repr(pair)
    assert pair.client_link_token not in repr(pair)

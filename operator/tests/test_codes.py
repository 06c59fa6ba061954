from __future__ import annotations

import itertools
import secrets

import pytest
from sprechzimmer.contract import is_valid_code, keys
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
    digests = [keys.code_digest(KEY, "dr-a", c) for c in live]
    pair = codes.issue_codes(
        key=KEY, host="dr-a", live_digests=digests, random_bytes=scripted(*chunks, b"\x01" * 32)
    )
    assert (pair.host_code, pair.client_code) == expected


def test_exhausted_code_space_is_an_error() -> None:
    digest = keys.code_digest(KEY, "dr-a", "aaa-aaa-aaa")
    with pytest.raises(codes.CodeSpaceExhausted):
        codes.issue_codes(
            key=KEY, host="dr-a", live_digests=[digest], random_bytes=scripted(b"\xaa" * 5)
        )


def test_code_pair_repr_hides_plaintext() -> None:
    pair = codes.issue_codes(key=KEY, host="h", live_digests=(), random_bytes=secrets.token_bytes)
    assert pair.host_code not in repr(pair)
    assert pair.client_link_token not in repr(pair)

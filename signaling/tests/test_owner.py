"""Rendezvous ownership over live presence Leases."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from builders import T0
from sprechzimmer.contract.rfc3339 import format_time
from sprechzimmer.signaling.core.owner import (
    ADDRESS_ANNOTATION,
    Replica,
    internal_token,
    owner,
    remote_owner,
)

pytestmark = pytest.mark.unit


def lease(name: str, renewed: int = 0, seconds: int = 30, address: str | None = "a:1") -> dict:
    meta: dict = {"name": name}
    if address:
        meta["annotations"] = {ADDRESS_ANNOTATION: address}
    return {
        "metadata": meta,
        "spec": {
            "renewTime": format_time(T0 + timedelta(seconds=renewed)),
            "leaseDurationSeconds": seconds,
        },
    }


def replicas(*bodies: dict) -> list[Replica]:
    return [r for r in (Replica.from_lease(b) for b in bodies) if r is not None]


def test_everyone_agrees_and_load_spreads() -> None:
    live = replicas(lease("a"), lease("b"), lease("c"))
    owners = Counter(owner(f"uid-{i}", live, T0).name for i in range(3000))  # type: ignore[union-attr]
    assert set(owners) == {"a", "b", "c"}
    assert min(owners.values()) > 800
    assert owner("uid-7", list(reversed(live)), T0) == owner("uid-7", live, T0)


def test_only_the_dead_replicas_sessions_move() -> None:
    three = replicas(lease("a"), lease("b"), lease("c"))
    two = replicas(lease("a"), lease("b"), lease("c", renewed=-100))
    for i in range(500):
        before = owner(f"uid-{i}", three, T0)
        after = owner(f"uid-{i}", two, T0)
        assert after is not None
        assert after.name != "c"
        if before is not None and before.name != "c":
            assert after == before


@pytest.mark.parametrize(
    ("body", "live"),
    [
        (lease("a"), True),
        (lease("a", renewed=-31), False),
        (lease("a", renewed=-61, seconds=3600), False),  # capped at 60 s like the operator
        (lease("a", address=None), False),  # no internal address: cannot own
    ],
)
def test_liveness(body: dict, live: bool) -> None:
    assert (owner("u", replicas(body), T0) is not None) is live


def test_malformed_leases_are_skipped() -> None:
    assert Replica.from_lease({"metadata": {"name": "x"}, "spec": {}}) is None
    assert Replica.from_lease({"metadata": {}, "spec": {"renewTime": "bad"}}) is None


def test_remote_owner_is_none_for_ourselves_or_nobody() -> None:
    live = replicas(lease("a"), lease("b"))
    mine = owner("uid-1", live, T0)
    assert mine is not None
    assert remote_owner("uid-1", {}, live, mine.name, T0) is None
    other = "b" if mine.name == "a" else "a"
    assert remote_owner("uid-1", {}, live, other, T0) == mine
    assert remote_owner("uid-1", {}, [], "a", T0) is None


def test_a_running_call_stays_with_the_replica_that_vouches_for_it() -> None:
    live = replicas(lease("a"), lease("b"), lease("c"))
    hashed = owner("uid-1", live, T0)
    assert hashed is not None
    writer = next(r for r in live if r != hashed)
    running = {"connected": 2, "vouchedBy": writer.name}
    assert remote_owner("uid-1", running, live, hashed.name, T0) == writer
    assert remote_owner("uid-1", running, live, writer.name, T0) is None
    # Nobody connected any more, or the writer is dead: back to the hash.
    assert remote_owner("uid-1", {**running, "connected": 0}, live, writer.name, T0) == hashed
    dead = [r for r in live if r != writer]
    assert remote_owner("uid-1", running, dead, "x", T0) == hashed


def test_internal_token_is_keyed() -> None:
    assert internal_token(b"k" * 32) == internal_token(b"k" * 32)
    assert internal_token(b"k" * 32) != internal_token(b"j" * 32)
    assert len(internal_token(b"k" * 32)) == 64

"""The session index: how many sessions it holds, kept through every kind of change."""

from __future__ import annotations

import sys
from datetime import timedelta
from types import FrameType
from typing import Any

import pytest
from builders import T0, body
from sprechzimmer.signaling.core.sessions import TOMBSTONE, SessionIndex, SessionView

pytestmark = pytest.mark.unit


def view(name: str, uid: str | None = None, **options: Any) -> SessionView:
    return SessionView.from_body(body(name=name, uid=uid or f"uid-{name}", labels=False, **options))


def python_calls_during(work: Any) -> int:
    """How many Python frames (functions, generator steps) ``work()`` starts."""
    calls = 0

    def count(_frame: FrameType, event: str, _arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        work()
    finally:
        sys.setprofile(None)
    return calls


def test_len_does_not_walk_the_sessions() -> None:
    """The gauge reads len() on every watch event: it must not cost one step per session
    (that made the join benchmark's cost grow with the square of the session count)."""
    index = SessionIndex()
    for i in range(2_000):
        index.upsert(view(f"s{i}"))
    assert python_calls_during(lambda: len(index)) <= 2
    assert len(index) == 2_000


def test_len_counts_live_sessions_through_every_change() -> None:
    index = SessionIndex()
    now = T0

    def check(expected: int) -> None:
        assert len(index) == expected
        assert len(index) == sum(1 for _ in index)  # the same as walking them

    for name in ("a", "b", "c"):
        index.upsert(view(name))
    check(3)
    index.upsert(view("a", phase="Active"))  # an update is not a new session
    check(3)
    index.delete(view("b"), now)  # tombstone: no longer counted
    check(2)
    index.delete(view("b"), now)  # deleted twice (watch replay)
    check(2)
    index.delete(view("zz"), now)  # never seen
    check(2)
    index.upsert(view("b", uid="uid-b2"))  # recreated under the same name
    check(3)
    index.upsert(view("c", uid="uid-c2"))  # replaced by a new object without a delete event
    check(3)
    index.delete(view("c", uid="uid-c"), now)  # a stale delete of the old object
    check(3)
    removed = index.replace_all([view("a"), view("d")], now)  # relist: b, c gone; d new
    assert sorted(v.name for v in removed) == ["b", "c"]
    check(2)
    index.upsert(view("c", uid="uid-c2"))  # back from the tombstone
    check(3)
    assert index.sweep(now + TOMBSTONE + timedelta(seconds=1)) == 1  # b's tombstone
    check(3)

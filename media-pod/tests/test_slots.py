"""Slot mapping (pure, table-driven)."""

from __future__ import annotations

import pytest
from sprechzimmer.media.core.slots import SlotTable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([("+", "a"), ("+", "b")], {0: "a", 1: "b"}),
        ([("+", "a"), ("+", "b"), ("-", "a"), ("+", "c")], {0: "c", 1: "b"}),
        ([("+", "a"), ("+", "a")], {0: "a"}),
        ([("+", "a"), ("+", "b"), ("+", "c")], {0: "a", 1: "b"}),  # full: c waits
        ([("-", "x")], {}),
    ],
)
def test_assignments(steps: list[tuple[str, str]], expected: dict[int, str]) -> None:
    table = SlotTable(2)
    for op, who in steps:
        if op == "+":
            table.assign(who)
        else:
            table.release(who)
    assert {i: table.publisher_in(i) for i in range(2) if table.publisher_in(i)} == expected


def test_full_table_returns_none_and_release_reports_slot() -> None:
    table = SlotTable(1)
    assert table.assign("a") == 0
    assert table.assign("b") is None
    assert table.release("a") == 0
    assert table.release("a") is None
    assert table.slot_of("a") is None

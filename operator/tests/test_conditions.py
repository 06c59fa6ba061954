from __future__ import annotations

import pytest
from operator_builders import at
from sprechzimmer.contract import ConditionType
from sprechzimmer.operator.core.conditions import Condition, merge, same

pytestmark = pytest.mark.unit


def test_transition_time_kept_when_status_unchanged() -> None:
    first = merge([], [Condition(ConditionType.READY, False, "A", "a")], now=at(0), generation=1)
    again = merge(first, [Condition(ConditionType.READY, False, "B", "b")], now=at(5), generation=1)
    flipped = merge(
        again, [Condition(ConditionType.READY, True, "C", "c")], now=at(9), generation=1
    )
    assert again[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert flipped[0]["lastTransitionTime"] != first[0]["lastTransitionTime"]
    assert same(first, first)
    assert not same(first, again)


def test_order_follows_the_contract_and_others_are_kept() -> None:
    merged = merge(
        [
            {
                "type": "Custom",
                "status": "True",
                "reason": "x",
                "message": "",
                "lastTransitionTime": "t",
            }
        ],
        [
            Condition(ConditionType.BILLING, None, "R", "m"),
            Condition(ConditionType.READY, True, "R", "m"),
        ],
        now=at(0),
        generation=3,
    )
    assert [c["type"] for c in merged] == ["Ready", "Billing", "Custom"]
    assert merged[1]["status"] == "Unknown"
    assert merged[0]["observedGeneration"] == 3

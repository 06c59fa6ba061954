"""Kubernetes-style conditions (type, status, reason, message, lastTransitionTime). No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sprechzimmer.contract import ConditionType
from sprechzimmer.contract.rfc3339 import format_time


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool | None  # None: Unknown
    reason: str
    message: str


def _status_word(status: bool | None) -> str:
    return "Unknown" if status is None else ("True" if status else "False")


def merge(
    current: Iterable[Mapping[str, Any]],
    desired: Iterable[Condition],
    *,
    now: datetime,
    generation: int,
) -> list[dict[str, Any]]:
    """The full conditions list: desired ones updated, others kept, transition times kept
    when the status did not change."""
    by_type: dict[str, dict[str, Any]] = {str(c.get("type")): dict(c) for c in current}
    for cond in desired:
        old = by_type.get(cond.type.value)
        word = _status_word(cond.status)
        transitioned = old is None or old.get("status") != word
        by_type[cond.type.value] = {
            "type": cond.type.value,
            "status": word,
            "reason": cond.reason,
            "message": cond.message,
            "observedGeneration": generation,
            "lastTransitionTime": (
                format_time(now) if transitioned or old is None else old["lastTransitionTime"]
            ),
        }
    order = [t.value for t in ConditionType]
    return sorted(
        by_type.values(),
        key=lambda c: (order.index(c["type"]) if c["type"] in order else 99, c["type"]),
    )


def same(current: Iterable[Mapping[str, Any]], merged: Iterable[Mapping[str, Any]]) -> bool:
    """Whether writing ``merged`` would change anything visible."""
    keys = ("type", "status", "reason", "message", "observedGeneration")

    def norm(items: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(tuple(c.get(k) for k in keys) for c in items)

    return norm(current) == norm(merged)

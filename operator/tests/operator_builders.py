"""Builders for the operator's tests: a fixed clock, the test key, session bodies.

A module of its own, not conftest.py: several test folders have a conftest, and only one of
them can be imported under that name in a whole-repository run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sprechzimmer.operator.core.settings import OperatorSettings

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
KEY = "test-shared-key-0123456789abcdef0123"


def at(seconds: float = 0, *, minutes: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(seconds=seconds, minutes=minutes, hours=hours)


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def settings(**overrides: Any) -> OperatorSettings:
    return OperatorSettings(shared_key=KEY, **overrides)


def session_body(
    *,
    clients: int = 1,
    start: datetime = T0,
    ttl: str = "24h",
    region: str = "de",
    status: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    finalizers: list[str] | None = None,
    deletion: datetime | None = None,
    note: str | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "termin",
        "namespace": "praxis",
        "uid": "11111111-2222-3333-4444-555555555555",
        "generation": generation,
        "resourceVersion": "100",
        "creationTimestamp": iso(start - timedelta(hours=1)),
        "labels": labels or {},
        "finalizers": finalizers or [],
    }
    if deletion is not None:
        meta["deletionTimestamp"] = iso(deletion)
    spec: dict[str, Any] = {
        "host": "dr-muster",
        "participants": [{"id": f"klient-{i}"} for i in range(clients)],
        "scheduledStart": iso(start),
        "codeTTL": ttl,
        "region": region,
    }
    if note:
        spec["note"] = note
    return {"metadata": meta, "spec": spec, "status": status or {}}

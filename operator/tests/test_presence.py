from __future__ import annotations

from datetime import timedelta

import pytest
from operator_builders import at
from sprechzimmer.operator.core.model import Lease, Presence
from sprechzimmer.operator.core.presence import effective, vouched_until

pytestmark = pytest.mark.unit
MAX = timedelta(seconds=60)


def leases(renew_s: float | None = 0, duration: int = 30) -> dict[str, Lease]:
    if renew_s is None:
        return {}
    return {"sig-0": Lease("sig-0", at(renew_s), timedelta(seconds=duration))}


P = Presence(connected=3, host_connected=True, peak=3, changed_at=at(-10), vouched_by="sig-0")


@pytest.mark.parametrize(
    ("presence", "ls", "now", "connected", "until"),
    [
        (P, leases(0), at(10), 3, at(30)),
        (P, leases(0), at(30), 0, None),  # lease ran out: nobody counts
        (P, leases(None), at(10), 0, None),  # no lease at all
        (P, leases(0, 600), at(59), 3, at(60)),  # capped at 60 s
        (P, leases(0, 600), at(61), 0, None),
        (Presence(), leases(0), at(10), 0, None),
        (Presence(connected=2, changed_at=at(0), vouched_by=None), leases(0), at(1), 0, None),
    ],
)
def test_effective_presence(
    presence: Presence, ls: dict[str, Lease], now: object, connected: int, until: object
) -> None:
    eff = effective(presence, ls, MAX, now)  # type: ignore[arg-type]
    assert eff.connected == connected
    assert eff.vouched_until == until


def test_unvouched_presence_counts_as_empty_from_the_deadline() -> None:
    eff = effective(P, leases(0), MAX, at(100))
    assert eff.changed_at == at(30)


def test_lease_without_renew_time_does_not_vouch() -> None:
    assert vouched_until(P, {"sig-0": Lease("sig-0", None, timedelta(seconds=30))}, MAX) is None

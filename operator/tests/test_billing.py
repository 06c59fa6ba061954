from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from operator_builders import at
from sprechzimmer.operator.core.billing import advance
from sprechzimmer.operator.core.model import BillingState, Lease, Presence, minutes_for

pytestmark = pytest.mark.unit
LEASE = "signaling-0"
MAX = timedelta(seconds=60)
EXP = at(hours=24)


def lease(renewed: datetime, seconds: int = 30) -> dict[str, Lease]:
    return {LEASE: Lease(LEASE, renewed, timedelta(seconds=seconds))}


def step(
    state: BillingState,
    presence: Presence,
    leases: dict[str, Lease],
    now: datetime,
    stop: datetime = EXP,
):
    return advance(
        state,
        presence,
        leases,
        now=now,
        stop_at=stop,
        checkpoint_interval=timedelta(seconds=30),
        max_vouch=MAX,
    )


@pytest.mark.parametrize(
    ("seconds", "minutes"),
    [(0, 0), (1, 1), (59, 1), (60, 1), (61, 2), (3600, 60), (3601, 61)],
)
def test_every_started_minute_counts(seconds: int, minutes: int) -> None:
    assert minutes_for(seconds) == minutes


def two(changed: datetime) -> Presence:
    return Presence(connected=2, host_connected=True, peak=2, changed_at=changed, vouched_by=LEASE)


@pytest.mark.parametrize(
    ("name", "state", "presence", "leases", "now", "seconds", "billing"),
    [
        ("nobody", BillingState(checkpoint_at=at(0)), Presence(), {}, at(100), 0, False),
        (
            "one person",
            BillingState(checkpoint_at=at(0)),
            Presence(1, True, 1, at(10), LEASE),
            lease(at(95)),
            at(100),
            0,
            False,
        ),
        (
            "two since 10s",
            BillingState(checkpoint_at=at(0)),
            two(at(10)),
            lease(at(95)),
            at(100),
            90,
            True,
        ),
        (
            "fractional now floored",
            BillingState(checkpoint_at=at(0)),
            two(at(10)),
            lease(at(95)),
            at(100.9),
            90,
            True,
        ),
        (
            "resume running",
            BillingState(30, 1, at(40), True, LEASE),
            two(at(10)),
            lease(at(95)),
            at(100),
            90,
            True,
        ),
        (
            "left while operator was away",
            BillingState(30, 1, at(40), True, LEASE),
            Presence(1, True, 2, at(70), LEASE),
            lease(at(95)),
            at(100),
            60,
            False,
        ),
        (
            "no lease: never billed",
            BillingState(checkpoint_at=at(0)),
            two(at(10)),
            {},
            at(100),
            0,
            False,
        ),
        (
            "lease expired at 65+30=95",
            BillingState(checkpoint_at=at(0)),
            two(at(10)),
            lease(at(65)),
            at(200),
            85,
            False,
        ),
        (
            "lease duration capped at 60s",
            BillingState(checkpoint_at=at(0)),
            two(at(10)),
            lease(at(0), 600),
            at(200),
            50,
            False,
        ),
        (
            "stops at expiry",
            BillingState(checkpoint_at=EXP - timedelta(seconds=20)),
            two(at(10)),
            lease(EXP),
            EXP + timedelta(seconds=50),
            20,
            False,
        ),
    ],
)
def test_billing_table(
    name: str,
    state: BillingState,
    presence: Presence,
    leases: dict[str, Lease],
    now: datetime,
    seconds: int,
    billing: bool,
) -> None:
    result = step(state, presence, leases, now)
    assert result.state.billable_seconds == seconds, name
    assert result.billing is billing, name
    assert result.state.billed_minutes == minutes_for(seconds), name


def test_replay_from_same_checkpoint_is_identical() -> None:
    state = BillingState(checkpoint_at=at(0))
    first = step(state, two(at(10)), lease(at(95)), at(100))
    again = step(state, two(at(10)), lease(at(95)), at(100))
    assert first == again


def test_gaps_do_not_start_extra_minutes() -> None:
    """Two stretches of 20 s each, separated by a pause: 40 s → 1 minute, not 2."""
    s = step(BillingState(checkpoint_at=at(0)), two(at(0)), lease(at(15)), at(20)).state
    s = step(s, Presence(1, True, 2, at(20), LEASE), lease(at(35)), at(40)).state
    s = step(s, two(at(60)), lease(at(75)), at(80)).state
    assert (s.billable_seconds, s.billed_minutes) == (40, 1)


def test_checkpoint_is_due_on_changes_and_intervals_not_otherwise() -> None:
    base = step(BillingState(checkpoint_at=at(0)), Presence(), {}, at(10))
    assert not base.due  # nothing changed, nothing to write
    started = step(base.state, two(at(20)), lease(at(25)), at(25))
    assert started.due
    assert started.billing
    quiet = step(started.state, two(at(20)), lease(at(30)), at(30))
    assert not quiet.due
    interval = step(started.state, two(at(20)), lease(at(60)), at(56))
    assert interval.due
    assert started.next_wakeup is not None
    assert started.next_wakeup <= at(25 + 30)


def test_clock_going_backwards_never_uncounts() -> None:
    state = BillingState(100, 2, at(100), True, LEASE)
    result = step(state, two(at(0)), lease(at(95)), at(90))
    assert result.state.billable_seconds == 100

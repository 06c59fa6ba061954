from __future__ import annotations

from dataclasses import replace
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
            BillingState(30, 1, at(40), True, LEASE, presence_changed_at=at(10)),
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
            BillingState(checkpoint_at=EXP - timedelta(seconds=20), presence_changed_at=at(10)),
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
    state = BillingState(100, 2, at(100), True, LEASE, presence_changed_at=at(0))
    result = step(state, two(at(0)), lease(at(95)), at(90))
    assert result.state.billable_seconds == 100


def left(changed: datetime) -> Presence:
    return Presence(0, False, 2, changed, LEASE)


def seen(total: int, cp: float, running: bool, changed: float | None) -> BillingState:
    """A checkpoint at ``cp`` computed from the presence change at ``changed`` (None: no record)."""
    return BillingState(
        total,
        minutes_for(total),
        at(cp),
        running,
        LEASE if running else None,
        presence_changed_at=None if changed is None else at(changed),
    )


# A checkpoint (cp) planned from the presence before a change can land after the change was
# stamped (signaling stamps changedAt, then patches; the operator plans from its watch). Rows:
# name, checkpoint, presence now, then seconds, minutes, billing and due after the step.
# "no record": a checkpoint that saw no presence (or a status from before presenceChangedAt)
# keeps what it counted; "same second": a change stamped in the second of the seen one.
LATE = [
    ("leave stamped before cp", seen(16, 20, True, 4), left(at(18)), 14, 1, False, True),
    ("join stamped before cp", seen(0, 20, False, 5), two(at(18)), 12, 1, True, True),
    ("seen change not recounted", seen(16, 20, True, 4), two(at(4)), 26, 1, True, False),
    ("same second as the seen one", seen(16, 20, False, 20), left(at(20)), 16, 1, False, False),
    ("no record: cp kept", seen(16, 20, True, None), left(at(18)), 16, 1, False, True),
    ("stale cp gives a minute back", seen(65, 25, True, -40), left(at(15)), 55, 1, False, True),
]


@pytest.mark.parametrize(
    ("name", "state", "presence", "seconds", "minutes", "billing", "due"), LATE
)
def test_late_presence_change_table(
    name: str,
    state: BillingState,
    presence: Presence,
    seconds: int,
    minutes: int,
    billing: bool,
    due: bool,
) -> None:
    result = step(state, presence, lease(at(25)), at(30))
    assert result.state.billable_seconds == seconds, name
    assert result.state.billed_minutes == minutes, name
    assert result.billing is billing, name
    assert result.due is due, name
    assert result.state.presence_changed_at == presence.changed_at, name
    assert result.state.checkpoint_at == at(30), name


def test_stale_checkpoint_bills_the_same_as_watching_every_change() -> None:
    """The SIGKILL test's timeline (seed 106652866): join at 0, a checkpoint at 2, a leave
    stamped at 4 that reaches the operator only after it checkpointed at 5 from the join."""
    joined, gone = two(at(0)), left(at(4))
    s = step(BillingState(), joined, lease(at(0)), at(0)).state
    s = step(s, joined, lease(at(0)), at(2)).state
    stale = step(s, joined, lease(at(0)), at(5)).state
    assert stale.billable_seconds == 5  # what was billed before the fix, and stayed billed
    after = step(stale, gone, lease(at(0)), at(25)).state
    watched = step(s, gone, lease(at(0)), at(25)).state
    assert after.billable_seconds == watched.billable_seconds == 4
    assert after == replace(watched, checkpoint_at=after.checkpoint_at)

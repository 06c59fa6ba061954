"""Billing: seconds with at least two vouched people present, billed per started minute. No I/O.

Billing is a fold over checkpoints. ``status.billing`` holds the seconds counted up to
``checkpointAt`` and whether billing was running at that instant (as the operator then saw
presence). Each reconcile extends the count from the checkpoint to now:

- from the checkpoint to the last presence change, at the state recorded in the checkpoint
  (capped by how long the voucher of that state stayed alive);
- from the last presence change to now, at the current presence, capped by its voucher.

The checkpoint records the presence change it was computed from. A change stamped before the
checkpoint that the checkpoint did not see (signaling stamps ``changedAt``, then patches; the
operator plans from its watch) rewinds the fold to the change: what the checkpoint counted from
there at the old state is taken back and counted again at the new one.

All instants are floored to whole seconds, so the arithmetic is exact integers and replaying
a reconcile from the same checkpoint (after a crash before the status patch) gives the same
answer: a restart neither loses nor double-counts a second. Billed minutes are
``ceil(billableSeconds / 60)``: every started minute counts, and pauses do not start extra ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sprechzimmer.operator.core.model import (
    BillingState,
    Lease,
    Presence,
    floor_second,
    minutes_for,
)
from sprechzimmer.operator.core.presence import vouched_until

MIN_PRESENT = 2


@dataclass(frozen=True)
class BillingStep:
    state: BillingState
    billing: bool  # billing runs right now
    due: bool  # the checkpoint should be written now
    next_wakeup: datetime | None


def _overlap(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds()))


def advance(
    state: BillingState,
    presence: Presence,
    leases: Mapping[str, Lease],
    *,
    now: datetime,
    stop_at: datetime,
    checkpoint_interval: timedelta,
    max_vouch: timedelta,
) -> BillingStep:
    """Extend the checkpoint to ``min(now, stop_at)``.

    ``stop_at`` is when billing ends regardless of presence (expiry or deletion).
    """
    end = floor_second(min(now, stop_at))
    changed = floor_second(presence.changed_at) if presence.changed_at else None
    total = state.billable_seconds
    cp = state.checkpoint_at
    if cp is None:
        # First look at this session: nothing can have been billed before.
        start = changed if changed is not None else end
        cp = min(start, end)
    elif (
        changed is not None and changed < cp and state.presence_changed_at and _new(state, changed)
    ):
        # A change stamped before the checkpoint that the checkpoint did not see: it reached the
        # operator after a checkpoint planned from the presence before it (signaling stamps
        # changedAt, then patches; the operator plans from its watch). From the change on, the
        # checkpoint counted the old state; take that back and count again from the change.
        if state.billing_at_checkpoint:
            total -= _overlap(changed, cp)
        cp = changed
    if end < cp:  # clocks of two replicas differ by a little; never count backwards
        end = cp

    current_until = vouched_until(presence, leases, max_vouch)
    billing_now_state = presence.connected >= MIN_PRESENT and current_until is not None

    seconds = 0
    if changed is not None and changed > cp:
        # [cp, changed): the state the checkpoint recorded, while its voucher was alive.
        if state.billing_at_checkpoint:
            old_until = _voucher_deadline(state.voucher, leases, max_vouch, cp)
            seconds += _overlap(cp, min(changed, end, old_until))
        segment_start = min(changed, end)
    else:
        segment_start = cp
    if billing_now_state and current_until is not None:
        seconds += _overlap(segment_start, min(end, floor_second(current_until)))

    running = (
        billing_now_state
        and current_until is not None
        and end < current_until
        and end < floor_second(stop_at)
    )
    total += seconds
    rewound = total < state.billable_seconds
    new_state = replace(
        state,
        billable_seconds=total,
        # Minutes never go down, except when a late change took seconds back.
        billed_minutes=minutes_for(total)
        if rewound
        else max(state.billed_minutes, minutes_for(total)),
        checkpoint_at=end,
        billing_at_checkpoint=running,
        voucher=presence.vouched_by if running else None,
        presence_changed_at=changed,
    )
    due = (
        state.checkpoint_at is None
        or (changed is not None and _new(state, changed))
        or running != state.billing_at_checkpoint
        or (running and end - state.checkpoint_at >= checkpoint_interval)
        or new_state.billed_minutes != state.billed_minutes
    )
    wakeups: list[datetime] = []
    if running and current_until is not None:
        wakeups.append(current_until)
        wakeups.append((state.checkpoint_at or end) + checkpoint_interval)
        # The next started minute, so billedMinutes in status never lags behind reality.
        into_minute = total % 60
        wakeups.append(end + timedelta(seconds=(60 - into_minute) if into_minute else 1))
    next_wakeup = min(wakeups) if wakeups else None
    if next_wakeup is not None and next_wakeup <= now:
        next_wakeup = now + timedelta(seconds=1)
    return BillingStep(new_state, running, due, next_wakeup)


def _new(state: BillingState, changed: datetime) -> bool:
    """Whether presence changed after the change the checkpoint was computed from (without a
    record of that — no presence then, or a status from before the record — after the
    checkpoint)."""
    seen = state.presence_changed_at or state.checkpoint_at
    return seen is None or changed > floor_second(seen)


def _voucher_deadline(
    voucher: str | None, leases: Mapping[str, Lease], max_vouch: timedelta, checkpoint: datetime
) -> datetime:
    """How long the checkpointed state stayed vouched: its Lease's deadline, or — if that Lease
    is gone — at most ``max_vouch`` past the checkpoint."""
    lease = leases.get(voucher) if voucher else None
    if lease is None or lease.renew_time is None:
        return checkpoint + max_vouch
    return floor_second(max(lease.renew_time + min(lease.duration, max_vouch), checkpoint))

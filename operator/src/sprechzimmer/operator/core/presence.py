"""Whether presence counts: a signaling replica vouches for it through its Lease. No I/O.

Contract (docs/operator.md): signaling writes ``status.presence`` with ``vouchedBy`` = the name
of its own Lease in the presence namespace, labelled ``sprechzimmer.io/presence=signaling``, and
renews that Lease. Presence is vouched until ``renewTime + min(leaseDurationSeconds, 60 s)``;
after that it counts as nobody present, from that deadline on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sprechzimmer.operator.core.model import Lease, Presence


@dataclass(frozen=True)
class EffectivePresence:
    """Presence as the lifecycle sees it: ``connected`` counts only while vouched."""

    connected: int
    changed_at: datetime | None
    # Until when the current value stays vouched for (None: nothing to vouch, connected == 0).
    vouched_until: datetime | None


def vouched_until(
    presence: Presence, leases: Mapping[str, Lease], max_vouch: timedelta
) -> datetime | None:
    """Deadline up to which ``presence`` is vouched; None when no Lease vouches at all."""
    if presence.vouched_by is None:
        return None
    lease = leases.get(presence.vouched_by)
    if lease is None or lease.renew_time is None:
        return None
    return lease.renew_time + min(lease.duration, max_vouch)


def effective(
    presence: Presence, leases: Mapping[str, Lease], max_vouch: timedelta, now: datetime
) -> EffectivePresence:
    """Connected people as far as billing and idleness are concerned."""
    if presence.connected == 0:
        return EffectivePresence(0, presence.changed_at, None)
    until = vouched_until(presence, leases, max_vouch)
    if until is None:
        # Nobody vouches: counts as empty since the change (or forever, if no time is known).
        return EffectivePresence(0, presence.changed_at, None)
    if now >= until:
        changed = until if presence.changed_at is None else max(until, presence.changed_at)
        return EffectivePresence(0, changed, None)
    return EffectivePresence(presence.connected, presence.changed_at, until)

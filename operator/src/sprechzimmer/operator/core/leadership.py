"""Whether this replica is the active one among its Kopf peers. No I/O.

Kopf peering pauses the watch streams of every replica but the one with the highest priority
among live peers (``status`` of the ``ClusterKopfPeering`` object: identity → priority,
lifetime, lastseen). The operator's own wake-up scheduler must pause with them, so it reads the
same object and applies the same rule here. Priorities are derived from the start time (older
replica = higher priority), so a restarted replica joins as standby instead of taking over.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sprechzimmer.contract.rfc3339 import parse_time

# Leaves room below 2**53 so JSON clients never round a priority.
_PRIORITY_BASE_MS = 10**13


def priority_for(started: datetime, tiebreak: int) -> int:
    """Older replicas get higher priorities; ``tiebreak`` in [0, 100) separates equal starts."""
    epoch_ms = int(started.timestamp() * 1000)
    return (_PRIORITY_BASE_MS - epoch_ms) * 100 + tiebreak % 100


def is_active(
    peers: Mapping[str, Mapping[str, Any]], identity: str, priority: int, now: datetime
) -> bool:
    """Active unless a live peer has a higher or equal priority (Kopf pauses both on a tie)."""
    for peer_id, info in peers.items():
        if peer_id == identity or not isinstance(info, Mapping):
            continue
        lastseen = parse_time(info.get("lastseen"))
        lifetime = timedelta(seconds=int(info.get("lifetime") or 60))
        if lastseen is None or lastseen + lifetime <= now:
            continue
        if int(info.get("priority") or 0) >= priority:
            return False
    return True


def leads(
    peers: Mapping[str, Mapping[str, Any]], identity: str, priority: int, now: datetime
) -> bool:
    """Whether this replica should reconcile: active, and its own keep-alive already visible in
    the peering (Kopf has not started its watches otherwise)."""
    return identity in peers and is_active(peers, identity, priority, now)

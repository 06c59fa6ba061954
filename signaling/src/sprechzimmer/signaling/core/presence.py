"""What signaling writes into ``status.presence`` (docs/operator.md, "Presence"). No I/O.

Given what the room holds now and what the session's status says, return the merge patch to
write, or None when status already says it. ``changedAt`` moves only when ``connected``
changes; ``peak`` never goes down; a replica that was not the writer rewrites presence under
its own Lease name (``vouchedBy``), which is how a takeover becomes visible to the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sprechzimmer.contract import MAX_PARTICIPANTS
from sprechzimmer.contract.rfc3339 import format_time

from .room import Presence


def patch(
    current: Mapping[str, Any], now_present: Presence, lease: str, now: datetime
) -> dict[str, Any] | None:
    """The status merge patch for ``now_present``, or None if nothing needs writing."""
    connected = max(0, min(MAX_PARTICIPANTS, now_present.connected))
    old_connected = current.get("connected")
    old_peak = current.get("peak")
    peak = max(old_peak if isinstance(old_peak, int) else 0, connected)
    changed = old_connected != connected
    if (
        not changed
        and current.get("hostConnected") == now_present.host_connected
        and current.get("peak") == peak
        and current.get("vouchedBy") == lease
    ):
        return None
    if not changed and connected == 0 and current.get("vouchedBy") != lease:
        # Nobody here, and somebody else vouched for "nobody": nothing of ours to vouch for.
        return None
    presence: dict[str, Any] = {
        "connected": connected,
        "hostConnected": now_present.host_connected,
        "peak": peak,
        "changedAt": format_time(now) if changed else current.get("changedAt", format_time(now)),
        "vouchedBy": lease,
    }
    return {"status": {"presence": presence}}

"""What signaling writes into ``status.presence`` (docs/operator.md, "Presence"). No I/O.

Given what the room holds now and what the session's status says, return the merge patch to
write, or None when status already says it. Status that says nothing yet counts as "nobody":
a socket that only said ``hello`` (never ``join``) is not presence and never costs a write.
``changedAt`` moves only when ``connected`` changes; ``peak`` never goes down; a replica that
was not the writer rewrites presence under its own Lease name (``vouchedBy``), which is how a
takeover becomes visible to the operator.
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
    old_connected = current.get("connected", 0)  # never written: nobody has joined yet
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
        # Nobody here, and somebody else (or nobody yet) said "nobody": nothing to vouch for.
        # Sockets that said hello but never joined land here: they are not presence.
        return None
    presence: dict[str, Any] = {
        "connected": connected,
        "hostConnected": now_present.host_connected,
        "peak": peak,
        "changedAt": format_time(now) if changed else current.get("changedAt", format_time(now)),
        "vouchedBy": lease,
    }
    return {"status": {"presence": presence}}

"""Which replica owns a session: rendezvous hashing over the live presence Leases. No I/O.

Every replica computes the same answer from the same Lease list: the owner of a session is the
live replica with the highest ``sha256(uid ‖ replica name)``. When a replica dies only its
sessions move; when one starts it takes about 1/n of new sessions. A Lease is live while
``now < renewTime + leaseDurationSeconds`` (capped like the operator caps it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sprechzimmer.contract import MAX_PRESENCE_LEASE_SECONDS
from sprechzimmer.contract.rfc3339 import parse_time

ADDRESS_ANNOTATION: Final = "sprechzimmer.io/signaling-address"
INTERNAL_PATH: Final = "/internal/ws"


def internal_token(key: bytes) -> str:
    """Bearer token replicas present to each other's internal endpoint (from the shared key;
    only signaling derives it, so it lives here rather than in ``contract.keys``)."""
    return hmac.new(key, b"signaling-internal\x00v1", hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Replica:
    name: str
    address: str | None  # host:port of its internal endpoint
    expires: datetime

    @classmethod
    def from_lease(cls, body: Mapping[str, Any]) -> Replica | None:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        try:
            renew = parse_time(spec.get("renewTime"))
        except ValueError:
            return None
        duration = spec.get("leaseDurationSeconds")
        if renew is None or not isinstance(duration, int) or not meta.get("name"):
            return None
        seconds = max(0, min(duration, MAX_PRESENCE_LEASE_SECONDS))
        address = (meta.get("annotations") or {}).get(ADDRESS_ANNOTATION) or None
        return cls(str(meta["name"]), address, renew + timedelta(seconds=seconds))


def score(uid: str, replica: str) -> bytes:
    return hashlib.sha256(f"{uid}\x00{replica}".encode()).digest()


def remote_owner(
    uid: str,
    presence: Mapping[str, Any],
    replicas: Iterable[Replica],
    me: str,
    now: datetime,
) -> Replica | None:
    """The owner if it is another live replica; None when this one owns it (or none is live,
    then this replica serves the session itself rather than nobody).

    A call in progress stays where it is: if the session's presence says people are connected
    and its writer (``vouchedBy``) is live, that replica owns it even when a replica started
    since would win the hash; otherwise a reconnect after a scale-out would split the call.
    """
    live = list(replicas)
    writer, connected = presence.get("vouchedBy"), presence.get("connected")
    host = next((r for r in live if r.name == writer and r.expires > now and r.address), None)
    running = host is not None and isinstance(connected, int) and connected > 0
    found = host if running else owner(uid, live, now)
    return None if found is None or found.name == me else found


def owner(uid: str, replicas: Iterable[Replica], now: datetime) -> Replica | None:
    """The live replica owning session ``uid`` (None if no Lease is live)."""
    live = [r for r in replicas if r.expires > now and r.address]
    if not live:
        return None
    return max(live, key=lambda r: score(uid, r.name))

"""What the connection test page (``/test``, no code needed) gets from signaling: TURN REST
credentials for the shared TURN server that live minutes, not hours, marked as test-only in the
username, and how often one address may ask. No I/O, no clock (``now`` is passed in).

Without a code anybody can ask, so what one request opens is bounded: new allocations for
``TTL_SECONDS`` only, ``user-quota`` allocations per username on the shared server, five
requests per address before growing delays. coturn 4.6 keeps refreshing an allocation made in
time after the credentials expired (measured), so the lifetime bounds when relays can be
opened, not how long one is kept; docs/signaling.md weighs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sprechzimmer.contract.keys import turn_rest_credentials

from .protocol import IceServer
from .ratelimit import MAX_KEYS, Allowance, Policy, Verdict

TTL_SECONDS: Final = 300
# the username is ``<expiry>:test-<nonce>``: test traffic is recognisable in coturn's log
USERNAME_TAG: Final = "test-"
# AT_ONCE requests at once (a person reloading the test page, a family behind one NAT), then
# waits of 2 s, 4 s, … up to 10 min; one request is forgotten per quiet 10 minutes.
AT_ONCE: Final = 5
POLICY: Final = Policy(free=AT_ONCE - 1, base=2.0, cap=600.0, decay=600.0)


@dataclass(frozen=True, slots=True)
class Issued:
    ice_servers: tuple[IceServer, ...]  # empty when the platform has no shared TURN server
    expires_at: int  # Unix seconds

    def serialize(self) -> dict[str, object]:
        return {
            "iceServers": [server.serialize() for server in self.ice_servers],
            "expiresAt": self.expires_at,
        }


class TestCredentials:
    """Issues the test page's credentials, rate limited per client address."""

    __test__ = False  # not a pytest class

    def __init__(
        self, ttl_seconds: int = TTL_SECONDS, policy: Policy = POLICY, max_keys: int = MAX_KEYS
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._allowance = Allowance(policy, max_keys)

    def issue(
        self,
        client: str,
        turn_urls: Sequence[str],
        secret: str,
        *,
        mono: float,
        unix: float,
        nonce: str,
    ) -> Issued | Verdict:
        """Credentials for ``client``, or the refusal with its ``retry_after``."""
        verdict = self._allowance.take(client, mono)
        if not verdict.allowed:
            return verdict
        expires_at = int(unix) + self.ttl_seconds
        if not turn_urls:
            return Issued((), expires_at)
        username, credential = turn_rest_credentials(secret, expires_at, USERNAME_TAG + nonce)
        return Issued((IceServer(tuple(turn_urls), username, credential),), expires_at)

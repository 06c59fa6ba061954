"""Growing delays for failed admission attempts, per client address and per practice handle.

No I/O, no clock: every call takes ``now`` (monotonic seconds). Nothing is ever locked out:
after a few free failures each further failure makes the next attempt wait longer (doubling,
capped), and remembered failures decay, so a person who mistyped can always try again soon.

Two keys are limited:

- the client address (IPv4, or the IPv6 /64 — see ``client_key``): bounds what one machine
  can try across all practices;
- the practice handle: bounds what everybody together can try against one practice. An
  attack on a handle must not lock its patients out, so the handle's delay applies only to
  addresses that have failed before (within ``taint_seconds``): a person on a clean address
  gets their attempts through even while the handle is under attack, and the attacker's
  addresses are all tainted after their first miss.

docs/signaling.md turns the defaults into guesses per hour and day and the chance of a hit.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Policy:
    free: int  # failures without any delay
    base: float  # delay after the first failure beyond `free` (seconds)
    cap: float  # longest delay
    decay: float  # one remembered failure is forgotten per this many quiet seconds


IP_POLICY: Final = Policy(free=5, base=1.0, cap=900.0, decay=600.0)
HANDLE_POLICY: Final = Policy(free=20, base=1.0, cap=60.0, decay=120.0)
TAINT_SECONDS: Final = 24 * 3600.0
MAX_KEYS: Final = 100_000
_MAX_DOUBLINGS: Final = 20


@dataclass(slots=True)
class _Counter:
    failures: float
    at: float  # when `failures` was last brought up to date
    next_allowed: float
    last_failure: float


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # whole seconds, ≥ 1 when not allowed


def client_key(address: str) -> str:
    """The unit one client controls: an IPv4 address, or the /64 of an IPv6 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class _Bucket:
    """Failure counters per key, least recently touched dropped beyond ``limit`` keys."""

    def __init__(self, policy: Policy, limit: int) -> None:
        self.policy = policy
        self._limit = limit
        self._counters: OrderedDict[str, _Counter] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counters)

    def _current(self, key: str, now: float) -> _Counter | None:
        counter = self._counters.get(key)
        if counter is None:
            return None
        quiet = max(0.0, now - counter.at)
        counter.failures = max(0.0, counter.failures - quiet / self.policy.decay)
        counter.at = now
        return counter

    def wait(self, key: str, now: float) -> float:
        counter = self._current(key, now)
        return 0.0 if counter is None else max(0.0, counter.next_allowed - now)

    def failed_since(self, key: str, since: float) -> bool:
        counter = self._counters.get(key)
        return counter is not None and counter.last_failure >= since

    def fail(self, key: str, now: float) -> None:
        counter = self._current(key, now) or _Counter(0.0, now, now, now)
        # Remembered failures stop growing once the delay is capped (no float overflow, and an
        # attack's backlog decays within a bounded time once it stops).
        counter.failures = min(counter.failures + 1, self.policy.free + _MAX_DOUBLINGS)
        counter.last_failure = now
        beyond = counter.failures - self.policy.free
        delay = 0.0 if beyond <= 0 else min(self.policy.cap, self.policy.base * 2 ** (beyond - 1))
        counter.next_allowed = now + delay
        self._counters[key] = counter
        self._counters.move_to_end(key)
        while len(self._counters) > self._limit:
            self._counters.popitem(last=False)

    def forget_idle(self, now: float, keep: float) -> int:
        """Drop counters without a failure for ``keep`` seconds and nothing left to wait."""
        idle = [
            k
            for k, c in self._counters.items()
            if now - c.last_failure > keep and c.next_allowed <= now
        ]
        for key in idle:
            del self._counters[key]
        return len(idle)


class Limiter:
    """Per-address and per-handle growing delays; ``check`` before, ``failed`` after a miss."""

    def __init__(
        self,
        ip_policy: Policy = IP_POLICY,
        handle_policy: Policy = HANDLE_POLICY,
        taint_seconds: float = TAINT_SECONDS,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._ips = _Bucket(ip_policy, max_keys)
        self._handles = _Bucket(handle_policy, max_keys)
        self._taint = taint_seconds

    def check(self, client: str, handle: str | None, now: float) -> Verdict:
        """May this client try (a code for ``handle``, or a link when None) now?"""
        wait = self._ips.wait(client, now)
        if handle is not None and self._ips.failed_since(client, now - self._taint):
            wait = max(wait, self._handles.wait(handle, now))
        if wait > 0:
            return Verdict(False, max(1, int(wait + 0.999)))
        return Verdict(True)

    def failed(self, client: str, handle: str | None, now: float) -> None:
        self._ips.fail(client, now)
        if handle is not None:
            self._handles.fail(handle, now)

    def sweep(self, now: float) -> int:
        keep = max(self._taint, self._ips.policy.decay * self._ips.policy.free * 4)
        return self._ips.forget_idle(now, keep) + self._handles.forget_idle(
            now, self._handles.policy.decay * self._handles.policy.free * 4
        )

    @property
    def tracked(self) -> int:
        return len(self._ips) + len(self._handles)


class Allowance:
    """Requests that cost something even when they succeed (credentials handed out without a
    code): every request counts like a failure above, so an address gets ``policy.free + 1``
    at once (the last of them starts the first wait), then growing delays, and the count decays
    while it is quiet."""

    def __init__(self, policy: Policy, max_keys: int = MAX_KEYS) -> None:
        self._bucket = _Bucket(policy, max_keys)

    def take(self, client: str, now: float) -> Verdict:
        wait = self._bucket.wait(client, now)
        if wait > 0:
            return Verdict(False, max(1, int(wait + 0.999)))
        self._bucket.fail(client, now)
        return Verdict(True)


class MessageBudget:
    """Frames one socket may send: ``rate`` per second, bursts up to ``burst`` (token bucket).

    A browser sends a handful per second while negotiating (ICE candidates come in bursts of
    ten or twenty); a socket far beyond that is broken or hostile and is closed, so it cannot
    make the call's other sockets wait for relays.
    """

    def __init__(self, now: float, rate: float = 50.0, burst: float = 200.0) -> None:
        self._rate, self._burst = rate, burst
        self._tokens, self._at = burst, now

    def take(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

"""Growing delays, never lockouts; a clean address gets through an attack on its practice."""

from __future__ import annotations

import heapq
import random

import pytest
from builders import KEY, body
from sprechzimmer.signaling.core import admission
from sprechzimmer.signaling.core.protocol import CodeAuth
from sprechzimmer.signaling.core.ratelimit import (
    HANDLE_POLICY,
    IP_POLICY,
    Limiter,
    MessageBudget,
    Policy,
    client_key,
)
from sprechzimmer.signaling.core.sessions import SessionIndex, SessionView

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # same /64, same client
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unix", "unix"),
    ],
)
def test_client_key(address: str, key: str) -> None:
    assert client_key(address) == key


def test_delays_grow_and_are_capped() -> None:
    limiter = Limiter(ip_policy=Policy(free=2, base=1, cap=8, decay=1e9))
    now = 0.0
    waits = []
    for _ in range(8):
        verdict = limiter.check("ip", None, now)
        if not verdict.allowed:
            now += verdict.retry_after
            assert limiter.check("ip", None, now).allowed
        limiter.failed("ip", None, now)
        waits.append(limiter.check("ip", None, now).retry_after)
    assert waits == [0, 0, 1, 2, 4, 8, 8, 8]


def test_an_endless_attack_stays_bounded() -> None:
    limiter = Limiter()
    for i in range(5000):
        limiter.failed("ip", "dr-muster", float(i))
    assert limiter.check("ip", "dr-muster", 5000.0).retry_after <= IP_POLICY.cap
    # Once the attack stops, the backlog is forgotten within a bounded time.
    quiet = (IP_POLICY.free + 20) * IP_POLICY.decay
    assert limiter.check("ip", "dr-muster", 5000.0 + quiet + IP_POLICY.cap).allowed


def test_failures_decay() -> None:
    limiter = Limiter(ip_policy=Policy(free=1, base=10, cap=100, decay=60))
    for _ in range(3):
        limiter.failed("ip", None, 0.0)
    assert not limiter.check("ip", None, 1.0).allowed
    # Three failures, one forgotten per minute: after 3 minutes a miss costs nothing again.
    assert limiter.check("ip", None, 181.0).allowed
    limiter.failed("ip", None, 181.0)
    assert limiter.check("ip", None, 181.0).allowed


def test_attack_on_a_handle_does_not_lock_out_a_clean_address() -> None:
    limiter = Limiter()
    now = 1000.0
    attackers = [f"198.51.100.{i}" for i in range(200)]
    for i in range(2000):
        ip = attackers[i % len(attackers)]
        if limiter.check(ip, "dr-muster", now).allowed:
            limiter.failed(ip, "dr-muster", now)
        now += 0.01
    # The handle is throttled for every address that already missed ...
    verdict = limiter.check(attackers[0], "dr-muster", now)
    assert not verdict.allowed
    assert 1 <= verdict.retry_after <= IP_POLICY.cap
    # ... but the patient's own, clean address gets its attempt at once.
    assert limiter.check("192.0.2.10", "dr-muster", now).allowed
    # After one typo that address waits like everybody else, at most the handle's cap.
    limiter.failed("192.0.2.10", "dr-muster", now)
    later = limiter.check("192.0.2.10", "dr-muster", now)
    assert later.retry_after <= HANDLE_POLICY.cap


def test_memory_is_bounded() -> None:
    limiter = Limiter(max_keys=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", f"h{i}", float(i))
    assert limiter.tracked == 200
    assert limiter.sweep(1e9) == 200
    assert limiter.tracked == 0


def test_ten_thousand_wrong_guesses_never_succeed() -> None:
    """10 000 guesses from 1 000 addresses against a live session: 0 successes, and the
    limiter let through only what its policy promises."""
    index = SessionIndex()
    index.upsert(SessionView.from_body(body()))
    limiter = Limiter()
    rng = random.Random(9)
    now, tried, successes, limited = 0.0, 0, 0, 0
    for i in range(10_000):
        ip = f"100.64.{i % 1000 // 256}.{i % 1000 % 256}"
        verdict = limiter.check(ip, "dr-muster", now)
        if not verdict.allowed:
            limited += 1
        else:
            guess = f"{rng.getrandbits(36):09x}"
            if guess in ("c3fe04d96", "a11b22c33"):
                continue  # the one draw that would be right is not a guess of an attacker
            found = admission.find(KEY, CodeAuth("dr-muster", guess), index)
            tried += 1
            if found is not None:
                successes += 1
            else:
                limiter.failed(ip, "dr-muster", now)
        now += 0.1  # 10 guesses per second for 1 000 s
    assert successes == 0
    assert limited > 0
    # Each address's first miss goes through (it is clean); after that the handle allows its
    # free misses and then about one per HANDLE_POLICY.cap (1 000 s here).
    assert tried <= 1000 + HANDLE_POLICY.free + 2 * 1000 / HANDLE_POLICY.cap


def attacker_guesses(addresses: int, practices: int, seconds: float) -> int:
    """Wrong guesses the default limiter lets through when every address retries the moment
    it is allowed, rotating over ``practices`` handles (docs/signaling.md's table)."""
    limiter = Limiter(max_keys=10**7)
    queue = [(0.0, i) for i in range(addresses)]
    tried = turn = 0
    while queue:
        at, address = heapq.heappop(queue)
        if at > seconds:
            break
        handle = f"h{turn % practices}"
        turn += 1
        verdict = limiter.check(f"a{address}", handle, at)
        if verdict.allowed:
            limiter.failed(f"a{address}", handle, at)
            tried += 1
            heapq.heappush(queue, (at + 0.05, address))
        else:
            heapq.heappush(queue, (at + verdict.retry_after, address))
    return tried


@pytest.mark.parametrize(
    ("addresses", "practices", "seconds", "guesses"),
    [
        (1, 1, 3600, 21),
        (1, 1, 86400, 159),
        (1000, 1, 3600, 1059),  # a day: 2 439 (17 s to simulate, so not run here)
        (1000, 100_000, 3600, 21_000),
    ],
)
def test_attacker_budget(addresses: int, practices: int, seconds: float, guesses: int) -> None:
    assert attacker_guesses(addresses, practices, seconds) == guesses


def test_message_budget_allows_bursts_and_a_steady_rate() -> None:
    budget = MessageBudget(0.0, rate=10, burst=20)
    assert all(budget.take(0.0) for _ in range(20))
    assert not budget.take(0.0)
    assert budget.take(0.1)  # one more token after 0.1 s at 10/s
    assert not budget.take(0.1)
    assert sum(budget.take(1.0 + i / 10) for i in range(100)) == 100  # 10/s is sustainable

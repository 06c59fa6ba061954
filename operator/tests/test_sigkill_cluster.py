"""SIGKILL the operator at random points of the lifecycle; it must converge exactly.

One namespace, a mix of 1:1 and group sessions with short TTLs. While the sessions go through
their lifecycle (codes → media pod → Ready → presence → billing → leave / cancel → expiry →
usage record → finalizer), the operator is started, killed with SIGKILL after a random delay and
restarted, at least ``MIN_KILLS`` times. Then one last operator runs until everything converged,
and the test checks:

- every session has exactly one usage record, with billable seconds and billed minutes equal to
  what the pure billing function computes from the presence timeline the test wrote;
- expired sessions say so in status with the same numbers; cancelled ones are gone (finalizer
  released); no Secret, no media pod is left over, none without a live owner;
- no reconcile ever crashed.

The kill delays come from a seeded RNG; the seed is printed (``SPRECHZIMMER_KILL_SEED`` replays
it). Presence is written as signaling writes it (docs/operator.md). One property of the contract
shapes the script: status holds only the *latest* presence, so a join followed by a leave while
no operator runs is indistinguishable from nothing; a session therefore leaves only after the
operator has checkpointed its join (``billingAtCheckpoint``), as it would with any real restart
longer than a join-and-leave.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Secret
from sprechzimmer.contract import FINALIZER
from sprechzimmer.contract.rfc3339 import parse_time
from sprechzimmer.operator.core import billing
from sprechzimmer.operator.core.model import BillingState, Lease, Presence, minutes_for
from support import (
    OperatorProcess,
    VideoSession,
    create_session,
    delete_sessions,
    media_pods,
    now,
    operators,
    renew_lease,
    set_presence,
    usage_records,
    wait_for,
)

pytestmark = pytest.mark.cluster

MIN_KILLS = 20
LEASE = "signaling-kill"
LEASE_SECONDS = 30
CHECKPOINT_INTERVAL = 2


@dataclass
class Script:
    """What the test does to one session, and what it observed doing it."""

    name: str
    clients: int
    ttl: int  # seconds
    join: bool = True
    leave_after: float | None = None  # seconds after the join was checkpointed
    leave_to: int = 1
    cancel_after: float | None = None  # seconds after the join was checkpointed
    # observed
    state: str = "new"
    uid: str = ""
    created: datetime | None = None
    expires: datetime | None = None
    joined: datetime | None = None
    checkpointed: float = 0.0
    left: datetime | None = None
    delete_window: tuple[datetime, datetime] | None = None

    def expected_seconds(self, ended: datetime) -> int:
        """Billable seconds from the presence timeline, by the operator's pure billing rule,
        as if one operator had watched every change without a restart."""
        if self.joined is None:
            return 0
        lease = {LEASE: Lease(LEASE, ended, timedelta(seconds=LEASE_SECONDS))}
        timeline = [(self.joined, 2)]
        if self.left is not None:
            timeline.append((self.left, self.leave_to))
        state = BillingState()
        for i, (changed, connected) in enumerate(timeline):
            until = timeline[i + 1][0] if i + 1 < len(timeline) else ended
            step = billing.advance(
                state,
                Presence(connected, connected > 0, 2, changed, LEASE),
                lease,
                now=max(until, changed),
                stop_at=ended,
                checkpoint_interval=timedelta(seconds=CHECKPOINT_INTERVAL),
                max_vouch=timedelta(seconds=60),
            )
            state = step.state
        # The same number by hand, so the rule is not only checked against itself.
        end_of_call = min(self.left or ended, ended)
        by_hand = max(0, int((end_of_call - self.joined).total_seconds()))
        assert state.billable_seconds == by_hand, (self.name, state, by_hand)
        return state.billable_seconds


def scripts(rng: random.Random) -> list[list[Script]]:
    """Five waves of four sessions: group and 1:1, leaving, cancelled, never joined, long."""
    waves: list[list[Script]] = [
        [
            Script("lang-gruppe", clients=3, ttl=75),  # bills into a second minute
            Script("lang-eins", clients=1, ttl=70, leave_after=62, leave_to=0),
            Script("w0-gruppe", clients=2, ttl=25, leave_after=4, leave_to=0),
            Script("w0-eins", clients=1, ttl=20, join=False),
        ]
    ]
    for w in range(1, 5):
        wave = []
        for i in range(4):
            group = i % 2 == 0
            s = Script(
                f"w{w}-{i}", clients=rng.randint(2, 4) if group else 1, ttl=rng.randint(15, 35)
            )
            kind = (w + i) % 4
            if kind == 0:
                s.leave_after, s.leave_to = rng.uniform(1, 6), rng.choice([0, 1])
            elif kind == 1:
                s.cancel_after = rng.uniform(1, 8)
            elif kind == 3 and w % 2:
                s.join = False
            wave.append(s)
        waves.append(wave)
    return waves


class Driver:
    """Moves every script forward as far as the cluster allows, without blocking."""

    def __init__(self, kube: Client, namespace: str) -> None:
        self.kube = kube
        self.ns = namespace
        self.scripts: dict[str, Script] = {}
        self.renewed = 0.0

    def add(self, script: Script) -> None:
        body = create_session(
            self.kube, self.ns, script.name, clients=script.clients, ttl=f"{script.ttl}s"
        )
        script.uid = body["metadata"]["uid"]
        script.created = parse_time(body["spec"]["scheduledStart"])
        assert script.created is not None
        script.expires = script.created + timedelta(seconds=script.ttl)
        script.state = "created"
        self.scripts[script.name] = script

    def step(self) -> None:
        if time.monotonic() - self.renewed > 5:
            renew_lease(self.kube, self.ns, LEASE, seconds=LEASE_SECONDS)
            self.renewed = time.monotonic()
        bodies = {
            o.metadata.name: o.to_dict()  # type: ignore[union-attr,attr-defined]
            for o in self.kube.list(VideoSession, namespace=self.ns)
        }
        for s in self.scripts.values():
            body = bodies.get(s.name)
            if body is None or s.state in ("done", "deleted"):
                continue
            st = body.get("status") or {}
            assert s.expires is not None
            live = st.get("phase") not in ("Expired", None) and now() < s.expires - timedelta(
                seconds=2
            )
            if s.state == "created" and st.get("phase") == "Ready" and live:
                if s.join:
                    s.joined = set_presence(self.kube, self.ns, s.name, 2, lease=LEASE)
                    s.joined = s.joined.replace(microsecond=0)
                    s.state = "joined"
                else:
                    s.state = "done"
            elif s.state == "joined" and (st.get("billing") or {}).get("billingAtCheckpoint"):
                s.state, s.checkpointed = "billing", time.monotonic()
            elif s.state == "billing" and live:
                since = time.monotonic() - s.checkpointed
                if s.leave_after is not None and since >= s.leave_after:
                    s.left = set_presence(
                        self.kube, self.ns, s.name, s.leave_to, lease=LEASE, peak=2
                    ).replace(microsecond=0)
                    s.state = "done"
                elif s.cancel_after is not None and since >= s.cancel_after:
                    before = now()
                    self.kube.delete(VideoSession, s.name, namespace=self.ns)
                    s.delete_window = (before.replace(microsecond=0), now())
                    s.state = "deleted"

    def all_over(self) -> bool:
        """Every session expired by the clock or was cancelled: nothing left to drive."""
        return all(
            s.state == "deleted" or (s.expires is not None and now() > s.expires)
            for s in self.scripts.values()
        )

    def converged(self) -> bool:
        bodies = {
            o.metadata.name: o.to_dict()  # type: ignore[union-attr,attr-defined]
            for o in self.kube.list(VideoSession, namespace=self.ns)
        }
        for s in self.scripts.values():
            body = bodies.get(s.name)
            if s.state == "deleted":
                if body is not None:
                    return False
            elif body is None or (body.get("status") or {}).get("phase") != "Expired":
                return False
        return True


@pytest.fixture
def start_operator(
    cluster: Any, namespace: str, kube: Client, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    with operators(cluster.kubeconfig, tmp_path) as start:
        yield start
        delete_sessions(kube, namespace)


def test_sigkill_at_random_points_converges_exactly(
    start_operator: Callable[..., OperatorProcess],
    namespace: str,
    kube: Client,
    region: Callable[..., str],
) -> None:
    seed = int(os.environ.get("SPRECHZIMMER_KILL_SEED") or random.randrange(2**32))
    print(f"\nSIGKILL test seed: {seed} (replay with SPRECHZIMMER_KILL_SEED={seed})")
    rng = random.Random(seed)
    de = region(2)
    settings = {
        "standalone": "true",
        "presence_namespace": namespace,
        "usage_namespace": namespace,
        "region_allow_list": json.dumps({"de": [de], "at": ["at-vie"]}),
        "idle_timeout": "3",
        "retention": "10m",
        "billing_checkpoint_interval": str(CHECKPOINT_INTERVAL),
    }
    driver = Driver(kube, namespace)
    waves = scripts(rng)
    renew_lease(kube, namespace, LEASE, seconds=LEASE_SECONDS)
    ops: list[OperatorProcess] = []
    kills: list[str] = []
    started = time.monotonic()
    while len(kills) < MIN_KILLS or not driver.all_over():
        if waves and len(kills) % 2 == 0:
            for script in waves.pop(0):
                driver.add(script)
        op = start_operator("kill", **settings)
        ops.append(op)
        if rng.random() < 0.25:  # during start-up: seeding, the first list, the first plans
            where, delay = "from start", rng.uniform(0.2, 1.5)
            deadline = time.monotonic() + delay
        else:  # while leading: anywhere in reconciles, patches, creates, teardowns
            op.wait_leader()
            where, delay = "after leading", rng.uniform(0.0, 3.0)
            deadline = time.monotonic() + delay
        while time.monotonic() < deadline:  # the random kill point is what is under test
            driver.step()
            time.sleep(0.05)
        op.kill()
        kills.append(f"{delay:.2f}s {where}")
        assert time.monotonic() - started < 150, "the kill loop took too long"
    print(f"{len(kills)} SIGKILLs: " + ", ".join(kills))

    final = start_operator("final", **settings)
    ops.append(final)
    final.wait_leader()
    wait_for("every session expired or deleted", driver.converged, timeout=60)
    print(f"converged {time.monotonic() - started:.1f}s after the first start")

    # --- exactly one usage record per session, with the exact numbers ---------------------
    records = {r["spec"]["sessionUID"]: r for r in usage_records(kube, namespace)}
    by_name = {s.name: s for s in driver.scripts.values()}
    sessions = {
        o.metadata.name: o.to_dict()  # type: ignore[union-attr,attr-defined]
        for o in kube.list(VideoSession, namespace=namespace)
    }
    assert len(records) == len(by_name), (len(records), sorted(by_name))
    by_uid = {s.uid: s for s in by_name.values()}
    assert set(records) == set(by_uid), "a usage record is missing or belongs to nobody"
    for uid, record in records.items():
        spec = record["spec"]
        s = by_uid[uid]
        name = s.name
        ended = parse_time(spec["endedAt"])
        assert ended is not None
        if s.delete_window is not None:
            assert spec["endReason"] == "Deleted", name
            lo, hi = s.delete_window
            assert lo <= ended <= hi, (name, ended, s.delete_window)
        else:
            assert spec["endReason"] == "Expired", name
            assert ended == s.expires, (name, ended, s.expires)
        expected = s.expected_seconds(ended)
        assert spec["durationSeconds"] == expected, (name, spec, s)
        assert spec["billedMinutes"] == minutes_for(expected), (name, spec, s)
        assert spec["mode"] == ("MediaPod" if s.clients > 1 else "PeerToPeer")
        if s.name in sessions:  # expired: status carries the same, final numbers
            st = sessions[s.name]["status"]
            assert st["billing"]["billableSeconds"] == expected, (name, st["billing"])
            assert st["billing"]["billedMinutes"] == minutes_for(expected)
            assert st["billing"]["usageRecord"] == record["metadata"]["name"]
            assert FINALIZER not in (sessions[s.name]["metadata"].get("finalizers") or []) or (
                s.delete_window is None
            )
    assert any(r["spec"]["billedMinutes"] >= 2 for r in records.values()), "no multi-minute bill"

    # --- nothing left over ------------------------------------------------------------------
    wait_for("no media pod left", lambda: not media_pods(kube, namespace), timeout=20)
    names = [o.metadata.name or "" for o in kube.list(Secret, namespace=namespace) if o.metadata]
    leftover = [n for n in names if n.endswith("-codes") or n.endswith("-media")]
    assert not leftover, leftover
    for name, s in by_name.items():
        if s.delete_window is not None:
            assert name not in sessions, f"{name} kept its finalizer"
    crashed = [op.name for op in ops if "reconcile crashed" in op.log()]
    assert not crashed, f"reconcile crashed in {crashed}"
    assert len(kills) >= MIN_KILLS

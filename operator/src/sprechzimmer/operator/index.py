"""What the watches told the operator, parsed into the core's views: the in-memory index.

Sessions, media pods, nodes and presence Leases by key, plus the two cluster-wide views plans
read live instead of copying: TURN host ports in use (with reservations for pods about to be
created) and the code digests of each host's live sessions (with claims for codes about to be
issued). Only the reconciler writes it; nothing here decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sprechzimmer.operator.core.hostports import PortUse
from sprechzimmer.operator.core.model import Lease, MediaPod, Node, Session

Key = tuple[str, str]
_NO_DIGESTS: Mapping[Key, tuple[str, ...]] = {}


def _rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return -1


@dataclass
class Index:
    clock: Callable[[], float] = time.monotonic
    sessions: dict[Key, Session] = field(default_factory=dict)
    by_uid: dict[str, Key] = field(default_factory=dict)
    pods: dict[Key, MediaPod] = field(default_factory=dict)
    pods_by_uid: dict[str, set[Key]] = field(default_factory=dict)
    port_uses: dict[Key, PortUse] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    host_digests: dict[str, dict[Key, tuple[str, ...]]] = field(default_factory=dict)
    first_seen: dict[Key, float] = field(default_factory=dict)

    # --- sessions ---------------------------------------------------------------------------

    def upsert_session(self, session: Session) -> bool:
        """Store unless older than what we have (a late watch event after our own patch)."""
        old = self.sessions.get(session.key)
        if old is not None and _rv(session.resource_version) < _rv(old.resource_version):
            return False
        self.sessions[session.key] = session
        self.by_uid[session.uid] = session.key
        self.first_seen.setdefault(session.key, self.clock())
        digests = tuple(d for d in session.code_digests if d)
        self.claim_digests(session.host, session.key, digests)
        return True

    def remove_session(self, key: Key) -> None:
        session = self.sessions.pop(key, None)
        self.first_seen.pop(key, None)
        if session is not None:
            self.by_uid.pop(session.uid, None)
            self.claim_digests(session.host, key, ())

    def claim_digests(self, host: str, key: Key, digests: tuple[str, ...]) -> None:
        """The code digests session ``key`` holds (or is about to), replacing earlier ones."""
        per_host = self.host_digests.setdefault(host, {})
        if digests:
            per_host[key] = digests
        else:
            per_host.pop(key, None)
            if not per_host:
                self.host_digests.pop(host, None)

    def digests_of_host(self, host: str) -> Mapping[Key, tuple[str, ...]]:
        """A live view: the code digests of the host's sessions, by session key."""
        return self.host_digests.get(host, _NO_DIGESTS)

    def sessions_vouched_by(self, lease: str) -> list[Key]:
        """Sessions whose presence or billing rests on this presence Lease."""
        return [
            s.key
            for s in self.sessions.values()
            if lease in (s.presence.vouched_by, s.billing.voucher)
        ]

    # --- pods ---------------------------------------------------------------------------------

    def upsert_pod(self, pod: MediaPod) -> None:
        key = (pod.namespace, pod.name)
        self.pods[key] = pod
        self.pods_by_uid.setdefault(pod.session_uid, set()).add(key)
        if pod.alive and pod.turn_port is not None:
            self.port_uses[key] = PortUse(pod.turn_port, pod.node_name)
        else:
            self.port_uses.pop(key, None)

    def remove_pod(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        pod = self.pods.pop(key, None)
        self.port_uses.pop(key, None)
        if pod is not None:
            keys = self.pods_by_uid.get(pod.session_uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.pods_by_uid[pod.session_uid]

    def pods_of(self, uid: str) -> list[MediaPod]:
        return [self.pods[k] for k in self.pods_by_uid.get(uid, ())]

    def sessions_on_node(self, node: str) -> list[Key]:
        """Sessions whose media pod runs on ``node``."""
        keys = (self.by_uid.get(p.session_uid) for p in self.pods.values() if p.node_name == node)
        return [k for k in keys if k is not None]

    def reserve_port(self, namespace: str, pod_name: str, port: int) -> None:
        """Hold a planned pod's port before it exists, so concurrent plans never pick it."""
        self.port_uses.setdefault((namespace, pod_name), PortUse(port, None))

    def release_reservation(self, namespace: str, pod_name: str) -> None:
        """Drop the hold unless the pod arrived (then the pod itself holds the port)."""
        if (namespace, pod_name) not in self.pods:
            self.port_uses.pop((namespace, pod_name), None)

    # --- metrics ------------------------------------------------------------------------------

    def phase_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for s in self.sessions.values():
            k = (s.phase.value if s.phase else "New", s.region.value)
            counts[k] = counts.get(k, 0) + 1
        return counts

    def pod_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self.pods.values():
            if pod.alive:
                key = self.by_uid.get(pod.session_uid)
                session = self.sessions.get(key) if key else None
                region = session.region.value if session else "unknown"
                counts[region] = counts.get(region, 0) + 1
        return counts

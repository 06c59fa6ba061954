"""TURN host ports: collision-free per node, deterministic, restart-proof. No I/O.

The allocation is recorded on the media pod itself (its hostPort and an annotation), so the
set of ports in use is always derived from live pods: nothing is lost when the operator
restarts. A port is in use on a node if a live media pod bound to that node holds it; a pod not
yet scheduled may land on any allowed node, so its port counts as taken on all of them. The
kube-scheduler's NodePorts filter is the second line of defence: it never binds two pods with
the same hostPort to one node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int  # inclusive

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high <= 65535:
            raise ValueError(f"invalid port range {self.low}-{self.high}")

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high


@dataclass(frozen=True)
class PortUse:
    """One live media pod's claim: its port and its node (None while unscheduled)."""

    port: int
    node: str | None


def _start_offset(seed: str, size: int) -> int:
    # A stable spread over the range: few probes even when many ports are taken.
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % size


def allocate(
    ports: PortRange,
    allowed_nodes: Collection[str],
    in_use: Iterable[PortUse],
    seed: str,
) -> int | None:
    """A port for a new media pod, or None if every port is taken on every allowed node.

    Prefers a port free on all allowed nodes (the pod can go anywhere), then one free on at
    least one; scans from a start derived from ``seed`` (the session UID), so the same inputs
    always give the same port.
    """
    if not allowed_nodes:
        return None
    allowed = frozenset(allowed_nodes)
    reserved: set[int] = set()  # taken on every allowed node
    per_node: dict[int, set[str]] = {}
    for use in in_use:
        if use.port not in ports:
            continue
        if use.node is None:
            reserved.add(use.port)
        elif use.node in allowed:
            per_node.setdefault(use.port, set()).add(use.node)
    start = _start_offset(seed, ports.size)
    fallback: int | None = None
    for i in range(ports.size):
        port = ports.low + (start + i) % ports.size
        if port in reserved:
            continue
        holders = per_node.get(port)
        if not holders:
            return port
        if fallback is None and len(holders) < len(allowed):
            fallback = port
    return fallback


def collisions(uses: Iterable[PortUse]) -> Mapping[tuple[str, int], int]:
    """(node, port) pairs held by more than one pod: must always be empty."""
    counts: dict[tuple[str, int], int] = {}
    for use in uses:
        if use.node is not None:
            counts[(use.node, use.port)] = counts.get((use.node, use.port), 0) + 1
    return {k: v for k, v in counts.items() if v > 1}

"""Where a group call's media may run and what the scheduler made of it. No I/O.

Media runs only on nodes whose ``topology.kubernetes.io/region`` is in the allow-list of the
session's country. This is a *required* node affinity: the scheduler never relaxes it, so under
pressure the pod stays unschedulable and the session fails closed instead of moving abroad.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from sprechzimmer.contract import REGION_LABEL
from sprechzimmer.contract.mediapod import CONTROL_PORT
from sprechzimmer.operator.core.model import MediaPod, Node


class MediaState(enum.Enum):
    """The media pod as the lifecycle cares about it."""

    MISSING = "Missing"  # no live pod (never created, deleted, or finished)
    PENDING = "Pending"  # created, not yet scheduled
    UNSCHEDULABLE = "Unschedulable"  # the scheduler found no allowed node with room
    STARTING = "Starting"  # bound to a node, not Ready yet
    READY = "Ready"


def node_affinity(allowed_regions: Iterable[str]) -> dict[str, Any]:
    """Required node affinity pinning a pod to the allowed regions."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": REGION_LABEL,
                                "operator": "In",
                                "values": sorted(allowed_regions),
                            }
                        ]
                    }
                ]
            }
        }
    }


def allowed_nodes(nodes: Iterable[Node], allowed_regions: frozenset[str]) -> list[str]:
    """Names of schedulable nodes in the allowed regions."""
    return sorted(n.name for n in nodes if n.schedulable and n.region in allowed_regions)


def media_state(pod: MediaPod | None) -> MediaState:
    if pod is None or not pod.alive:
        return MediaState.MISSING
    if pod.node_name is None:
        return MediaState.UNSCHEDULABLE if pod.unschedulable else MediaState.PENDING
    return MediaState.READY if pod.ready else MediaState.STARTING


def endpoint(node: Node | None, port: int | None) -> str | None:
    """``external-ip:port`` where participants reach the media pod's TURN server."""
    if node is None or node.external_ip is None or port is None:
        return None
    return f"{node.external_ip}:{port}"


def control_endpoint(pod: MediaPod | None) -> str | None:
    """``pod-ip:control-port`` where signaling reaches the SFU's control API (pod network)."""
    if pod is None or pod.pod_ip is None:
        return None
    return f"{pod.pod_ip}:{CONTROL_PORT}"

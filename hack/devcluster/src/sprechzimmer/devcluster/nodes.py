"""Simulated nodes: which ones a local cluster gets and what their Node objects look like.

No I/O. KWOK manages every node annotated ``kwok.x-k8s.io/node: fake``; it keeps them Ready
and runs the pods scheduled onto them. External IPs come from the documentation ranges
(RFC 5737), so nothing ever sends traffic to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sprechzimmer.contract import REGION_LABEL, ZONE_LABEL

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
# Label that makes KWOK's chaos stage turn a Running pod into Failed (see hack/kwok/stages.yaml).
FAIL_POD_LABEL = "pod-container-running-failed.stage.kwok.x-k8s.io"


@dataclass(frozen=True)
class NodeSpec:
    """One simulated node."""

    name: str
    region: str
    zone: str
    external_ip: str
    cpu: str = "8"
    memory: str = "32Gi"
    pods: int = 110


DEFAULT_NODES: tuple[NodeSpec, ...] = (
    NodeSpec("de-fra-1", "de-fra", "de-fra-a", "203.0.113.11"),
    NodeSpec("de-fra-2", "de-fra", "de-fra-b", "203.0.113.12"),
    NodeSpec("de-ber-1", "de-ber", "de-ber-a", "203.0.113.21"),
    NodeSpec("at-vie-1", "at-vie", "at-vie-a", "198.51.100.11"),
    NodeSpec("at-vie-2", "at-vie", "at-vie-b", "198.51.100.12"),
    NodeSpec("nl-ams-1", "nl-ams", "nl-ams-a", "192.0.2.31"),
)


def node_manifest(node: NodeSpec) -> dict[str, Any]:
    """The Node object for ``node``; status is set at creation, which Node objects allow."""
    resources = {"cpu": node.cpu, "memory": node.memory, "pods": str(node.pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "annotations": {
                KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": node.name,
                "node.kubernetes.io/instance-type": "kwok",
                "type": "kwok",
                REGION_LABEL: node.region,
                ZONE_LABEL: node.zone,
            },
        },
        "spec": {},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "addresses": [{"type": "ExternalIP", "address": node.external_ip}],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "containerRuntimeVersion": "kwok",
            },
        },
    }

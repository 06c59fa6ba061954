from __future__ import annotations

from typing import Any

import pytest
from planning import media_pod
from sprechzimmer.contract import REGION_LABEL
from sprechzimmer.operator.core.model import MediaPod, Node
from sprechzimmer.operator.core.placement import (
    MediaState,
    allowed_nodes,
    endpoint,
    media_state,
    node_affinity,
)

pytestmark = pytest.mark.unit


def pod(**kw: Any) -> MediaPod:
    """A media pod still waiting for the scheduler, unless ``kw`` says otherwise."""
    waiting: dict[str, Any] = {"node_name": None, "phase": "Pending", "ready": False}
    return media_pod(**{**waiting, **kw})


@pytest.mark.parametrize(
    ("p", "state"),
    [
        (None, MediaState.MISSING),
        (pod(), MediaState.PENDING),
        (pod(unschedulable=True), MediaState.UNSCHEDULABLE),
        (pod(node_name="n", phase="Running"), MediaState.STARTING),
        (pod(node_name="n", phase="Running", ready=True), MediaState.READY),
        (pod(node_name="n", phase="Failed"), MediaState.MISSING),
        (pod(node_name="n", phase="Running", ready=True, deleting=True), MediaState.MISSING),
    ],
)
def test_media_state(p: MediaPod | None, state: MediaState) -> None:
    assert media_state(p) is state


def test_affinity_is_required_and_only_allowed_regions() -> None:
    aff = node_affinity({"de-fra", "de-ber"})
    terms = aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [
                {"key": REGION_LABEL, "operator": "In", "values": ["de-ber", "de-fra"]}
            ]
        }
    ]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in aff["nodeAffinity"]


def test_allowed_nodes_filters_region_and_cordoned() -> None:
    nodes = [
        Node("fra", "de-fra", "1.1.1.1", True),
        Node("ams", "nl-ams", "2.2.2.2", True),
        Node("ber", "de-ber", "3.3.3.3", False),
        Node("x", None, None, True),
    ]
    assert allowed_nodes(nodes, frozenset({"de-fra", "de-ber"})) == ["fra"]


def test_endpoint() -> None:
    assert endpoint(Node("n", "de-fra", "203.0.113.1", True), 10001) == "203.0.113.1:10001"
    assert endpoint(Node("n", "de-fra", None, True), 10001) is None
    assert endpoint(None, 10001) is None


def test_pod_parse_reads_scheduler_verdict() -> None:
    body = {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "labels": {},
            "annotations": {"sprechzimmer.io/turn-port": "10007"},
        },
        "spec": {},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
    }
    parsed = MediaPod.parse(body)
    assert parsed.unschedulable
    assert parsed.turn_port == 10007
    assert media_state(parsed) is MediaState.UNSCHEDULABLE

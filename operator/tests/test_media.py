"""A group call's media step: placement, ports, the scheduler's verdict, endpoints."""

from __future__ import annotations

import pytest
from operator_builders import KEY, at
from planning import CFG, MEDIA1, NODES, issued, media_pod, plan, present, status, status_patch
from sprechzimmer.contract import REGION_LABEL, Phase, Region
from sprechzimmer.contract.keys import control_token
from sprechzimmer.contract.mediapod import TERMINATION_GRACE_PERIOD_SECONDS, MediaEnv
from sprechzimmer.operator.core import actions as act
from sprechzimmer.operator.core.hostports import PortUse

pytestmark = pytest.mark.unit


def test_group_endpoint_and_media_in_status() -> None:
    p = plan(
        issued(clients=3, status=status(Phase.SCHEDULED, media=MEDIA1)),
        at(1),
        pods=[media_pod(pod_ip="10.244.0.7")],
    )
    st = status_patch(p)
    assert st["join"]["mediaEndpoint"] == "203.0.113.1:10003"
    assert st["media"]["nodeRegion"] == "de-fra"
    assert p.media_ready
    assert st["media"]["controlEndpoint"] == "10.244.0.7:8080"


def test_control_endpoint_only_with_the_media_endpoint() -> None:
    starting = plan(
        issued(clients=3, status=status(Phase.SCHEDULED, media=MEDIA1)),
        at(1),
        pods=[media_pod(ready=False, pod_ip="10.244.0.7")],
    )
    assert status_patch(starting)["media"]["controlEndpoint"] is None
    ready = {
        **MEDIA1,
        "nodeName": "fra",
        "nodeRegion": "de-fra",
        "controlEndpoint": "10.0.0.1:8080",
    }
    body = issued(
        clients=3,
        status=status(
            Phase.READY,
            media=ready,
            join={"mediaEndpoint": "203.0.113.1:10003"},
            presence=present(0, at(minutes=1)),
        ),
    )
    idle = status_patch(plan(body, at(minutes=12), pods=[media_pod(pod_ip="10.0.0.1")]))
    assert idle["join"]["mediaEndpoint"] is None
    assert idle["media"]["controlEndpoint"] is None


def test_pod_name_recorded_before_creation() -> None:
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1))
    create = next(i for i, a in enumerate(p.actions) if isinstance(a, act.CreateMediaPod))
    before = p.actions[create - 1]
    assert isinstance(before, act.PatchStatus)
    assert before.patch["status"]["media"]["podName"].endswith("-media-1")


def test_no_allowed_node_fails_closed_even_with_foreign_capacity() -> None:
    only_foreign = {"ams": NODES["ams"]}
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1), nodes=only_foreign)
    assert p.phase is Phase.FAILED
    assert p.placement_failed
    assert not any(isinstance(a, act.CreateMediaPod) for a in p.actions)
    assert status_patch(p)["reason"] == "NoCapacityInRegion"
    assert any(e.type == "Warning" for e in p.events)


def test_all_ports_taken_fails_closed() -> None:
    uses = [PortUse(port, "fra") for port in range(10000, 10010)]
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1), uses=uses)
    assert p.phase is Phase.FAILED


def test_allocated_port_avoids_ports_in_use() -> None:
    uses = [PortUse(port, None) for port in range(10000, 10009)]
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1), uses=uses)
    create = next(a for a in p.actions if isinstance(a, act.CreateMediaPod))
    assert create.turn_port == 10009


def test_ports_held_only_by_pending_pods_mean_wait_not_fail() -> None:
    uses = [PortUse(port, None) for port in range(10000, 10010)]
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1), uses=uses)
    assert p.phase is Phase.SCHEDULED
    assert not p.placement_failed
    assert p.next_wakeup == at(2)


def test_unschedulable_within_grace_waits_then_fails() -> None:
    body = issued(clients=3, status=status(Phase.SCHEDULED, media=MEDIA1))
    pod = media_pod(
        node_name=None,
        phase="Pending",
        ready=False,
        unschedulable=True,
        unschedulable_since=at(0),
        scheduler_message="0/2 nodes are available",
    )
    waiting = plan(body, at(5), pods=[pod])
    assert waiting.phase is Phase.SCHEDULED
    assert waiting.next_wakeup == at(15)
    failed = plan(body, at(15), pods=[pod])
    assert failed.phase is Phase.FAILED
    assert "0/2 nodes are available" in status_patch(failed)["message"]


def test_the_plan_carries_the_finished_media_secret_and_pod() -> None:
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1))
    [secret] = [a for a in p.actions if isinstance(a, act.EnsureMediaSecret)]
    uid = "11111111-2222-3333-4444-555555555555"
    assert secret.body["stringData"]["control-token"] == control_token(KEY.encode(), uid)
    assert "control-token" not in repr(secret)  # credentials stay out of logs
    [create] = p.pods_to_create
    spec = create.body["spec"]
    assert create.body["metadata"]["name"] == create.name
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    [expression] = terms["nodeSelectorTerms"][0]["matchExpressions"]
    assert expression["key"] == REGION_LABEL
    assert set(expression["values"]) == CFG.allowed_regions(Region.DE)
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env[MediaEnv.EXPIRES_AT] == "2026-11-22T10:00:00Z"
    assert env[MediaEnv.TURN_PORT] == str(create.turn_port)
    assert spec["terminationGracePeriodSeconds"] == TERMINATION_GRACE_PERIOD_SECONDS

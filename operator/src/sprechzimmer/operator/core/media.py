"""A live group call's media: place, start, watch and release its media pod. No I/O.

One step of the phase machine (``lifecycle``), for sessions with three to five people inside
their start window. It reads the pod as the scheduler left it (``placement.media_state``) and
says what to create or delete, what to write into ``status.media`` and ``status.join``, and
whether the call is joinable. Media runs only on nodes of the session's country; when none can
take it the call fails closed (``NoCapacityInRegion``), never moving abroad.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sprechzimmer.contract import ConditionType
from sprechzimmer.contract.keys import control_token, turn_secret
from sprechzimmer.operator.core import expiry, hostports, manifests, placement
from sprechzimmer.operator.core.actions import (
    Action,
    CreateMediaPod,
    EnsureMediaSecret,
    Event,
    Observed,
)
from sprechzimmer.operator.core.conditions import Condition
from sprechzimmer.operator.core.model import MediaPod, Session
from sprechzimmer.operator.core.settings import OperatorSettings

PORT_RETRY = timedelta(seconds=1)
_WAITING_FOR_SCHEDULER = ("Pending", "Waiting for the scheduler")
# status.media when no pod is wanted (idle): everything cleared, the incarnation kept.
RELEASED: dict[str, Any] = {
    "podName": None,
    "nodeName": None,
    "nodeRegion": None,
    "turnPort": None,
    "controlEndpoint": None,
}


@dataclass
class MediaStep:
    """What the media step decided; ``lifecycle`` folds it into the plan."""

    conditions: list[Condition] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)  # before the status patch
    create_pod: CreateMediaPod | None = None  # after the status patch
    events: list[Event] = field(default_factory=list)
    delete_names: list[str] = field(default_factory=list)
    wakeups: list[datetime] = field(default_factory=list)
    media: dict[str, Any] | None = None  # status.media to write, if it changes
    endpoint: str | None = None  # status.join.mediaEndpoint
    failed_reason: tuple[str, str] | None = None
    placement_failed: bool = False
    media_ready: bool = False
    joinable: bool = False


def current_pod(s: Session, live_pods: list[MediaPod]) -> MediaPod | None:
    """The live pod the status points at; else the newest live one."""
    for pod in live_pods:
        if pod.name == s.media.pod_name:
            return pod
    return max(live_pods, key=lambda p: p.name, default=None)


def step(
    observed: Observed, settings: OperatorSettings, current: MediaPod | None, *, idle: bool
) -> MediaStep:
    s, now = observed.session, observed.now
    out = MediaStep()
    state = placement.media_state(current)
    if idle:
        if current is not None:
            out.delete_names.append(current.name)
        out.media = dict(RELEASED)
        out.conditions.append(
            Condition(ConditionType.MEDIA_PLACED, False, "Released", "Media released while idle")
        )
    elif state is placement.MediaState.MISSING:
        _start(observed, settings, out)
    elif state is placement.MediaState.UNSCHEDULABLE and not _grace_over(current, now, settings):
        assert current is not None
        out.conditions.append(
            Condition(ConditionType.MEDIA_PLACED, False, "Unschedulable", current.scheduler_message)
        )
        out.wakeups.append((current.unschedulable_since or now) + settings.placement_grace)
    elif state is placement.MediaState.UNSCHEDULABLE:
        assert current is not None
        out.placement_failed = True
        out.delete_names.append(current.name)
        out.failed_reason = (
            "NoCapacityInRegion",
            f"No node in {s.region.value.upper()} can take the media pod"
            f" (never placed elsewhere): {current.scheduler_message}",
        )
    elif state is placement.MediaState.PENDING:
        out.conditions.append(Condition(ConditionType.MEDIA_PLACED, False, *_WAITING_FOR_SCHEDULER))
    else:
        assert current is not None
        _bound(observed, current, state, out)
    return out


def _start(observed: Observed, settings: OperatorSettings, out: MediaStep) -> None:
    """No live pod: allocate a TURN port on an allowed node and request the next incarnation."""
    s, now = observed.session, observed.now
    nodes = placement.allowed_nodes(observed.nodes.values(), settings.allowed_regions(s.region))
    ports = hostports.PortRange(settings.host_port_min, settings.host_port_max)
    port = hostports.allocate(
        ports, nodes, observed.port_uses, seed=f"{s.uid}/{s.media.incarnation + 1}"
    )
    settled = (u for u in observed.port_uses if u.node is not None)
    if nodes and port is None and hostports.allocate(ports, nodes, settled, seed=s.uid):
        # Only pods still waiting for the scheduler hold the ports: wait, do not fail.
        out.conditions.append(
            Condition(ConditionType.MEDIA_PLACED, False, "WaitingForPort", "Ports busy")
        )
        out.wakeups.append(now + PORT_RETRY)
        return
    if not nodes or port is None:
        out.placement_failed = True
        why = "no schedulable node in the allowed regions" if not nodes else "all TURN ports taken"
        out.failed_reason = (
            "NoCapacityInRegion",
            f"Media cannot run in {s.region.value.upper()}: {why}",
        )
        return
    incarnation = s.media.incarnation + 1
    name = manifests.media_pod_name(s, incarnation)
    out.media = {**RELEASED, "podName": name, "turnPort": port, "incarnation": incarnation}
    key = settings.shared_key.get_secret_value().encode()
    out.actions.append(
        EnsureMediaSecret(
            manifests.media_secret(
                s, control_token=control_token(key, s.uid), turn_secret=turn_secret(key, s.uid)
            )
        )
    )
    # Created after the status patch that records its name: see lifecycle.
    out.create_pod = CreateMediaPod(
        name=name,
        turn_port=port,
        body=manifests.media_pod(
            s,
            incarnation=incarnation,
            turn_port=port,
            expires_at=expiry.expires_at(s),
            now=now,
            allowed_regions=settings.allowed_regions(s.region),
            settings=settings,
        ),
    )
    verb = "MediaPodRecreated" if s.media.incarnation else "MediaPodCreated"
    out.events.append(
        Event("Normal", verb, f"Media pod {incarnation} requested on TURN port {port}")
    )
    out.conditions.append(Condition(ConditionType.MEDIA_PLACED, False, *_WAITING_FOR_SCHEDULER))


def _bound(
    observed: Observed, current: MediaPod, state: placement.MediaState, out: MediaStep
) -> None:
    """The pod is on a node: record where, and once Ready, where to reach it."""
    node = observed.nodes.get(current.node_name or "")
    out.media_ready = state is placement.MediaState.READY
    if out.media_ready:
        out.endpoint = placement.endpoint(node, current.turn_port)
    out.media = {
        "podName": current.name,
        "nodeName": current.node_name,
        "nodeRegion": node.region if node else None,
        "turnPort": current.turn_port,
        # Written and cleared together with join.mediaEndpoint.
        "controlEndpoint": (
            placement.control_endpoint(current) if out.endpoint is not None else None
        ),
    }
    out.conditions.append(
        Condition(
            ConditionType.MEDIA_PLACED, True, "Scheduled", "Media pod bound to an allowed node"
        )
    )
    out.joinable = out.media_ready and out.endpoint is not None


def _grace_over(pod: MediaPod | None, now: datetime, settings: OperatorSettings) -> bool:
    """The scheduler retries when nodes change; fail only once it kept saying no."""
    since = pod.unschedulable_since if pod is not None else None
    return since is None or now >= since + settings.placement_grace

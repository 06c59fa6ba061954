"""The VideoSession phase machine: one pure function from observations to a plan. No I/O.

``plan(observed, settings)`` is the whole lifecycle (docs/operator.md, "Lifecycle"):

    Scheduled ─start window─▶ Ready ─≥2 present─▶ Active ─everyone gone─▶ … ─idleTimeout─▶ Idle
        │                       ▲                                                        │
        │                       └──────────────── someone rejoins ───────────────────────┘
        ├─ group call, no allowed node can take the media pod ─▶ Failed (until the spec changes)
        └─ at expiresAt, from any phase ─▶ Expired ─retention─▶ deleted

Deleting the object runs the same teardown through the finalizer. The plan lists idempotent
actions in the order they must happen (so a crash between any two leaves a state the next
plan completes), the status to write, events, and the next instant anything can change by the
clock alone. The reconciler executes plans and never decides anything itself.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sprechzimmer.contract import ConditionType, Phase
from sprechzimmer.contract.mediapod import JoinMode
from sprechzimmer.contract.rfc3339 import format_time
from sprechzimmer.operator.core import billing as billing_rules
from sprechzimmer.operator.core import expiry, hostports, placement
from sprechzimmer.operator.core import presence as presence_rules
from sprechzimmer.operator.core.conditions import Condition, merge, same
from sprechzimmer.operator.core.manifests import (
    codes_secret_name,
    media_pod_name,
)
from sprechzimmer.operator.core.model import (
    BillingState,
    Lease,
    MediaPod,
    Node,
    Session,
)
from sprechzimmer.operator.core.settings import OperatorSettings
from sprechzimmer.operator.core.usage import usage_record, usage_record_name

PORT_RETRY = timedelta(seconds=1)


class EndReason(enum.StrEnum):
    EXPIRED = "Expired"
    DELETED = "Deleted"


# --- actions, executed in list order by the reconciler ----------------------------------------


@dataclass(frozen=True)
class IssueCodes:
    """Create the codes Secret and label the session with the code digests and finalizer."""


@dataclass(frozen=True)
class EnsureMediaSecret:
    """Create the per-session media Secret (control token, TURN secret)."""


@dataclass(frozen=True)
class CreateMediaPod:
    incarnation: int
    turn_port: int


@dataclass(frozen=True)
class DeletePod:
    name: str


@dataclass(frozen=True)
class WriteUsageRecord:
    reason: EndReason
    body: Mapping[str, Any]


@dataclass(frozen=True)
class RevokeCodes:
    """Delete the codes and media Secrets (plaintext codes, TURN secret, control token)."""


@dataclass(frozen=True)
class ScrubSession:
    """Remove the note and the code digests from the object."""


@dataclass(frozen=True)
class PatchStatus:
    patch: Mapping[str, Any]


@dataclass(frozen=True)
class ReleaseFinalizer:
    pass


@dataclass(frozen=True)
class DeleteSession:
    pass


Action = (
    IssueCodes
    | EnsureMediaSecret
    | CreateMediaPod
    | DeletePod
    | WriteUsageRecord
    | RevokeCodes
    | ScrubSession
    | PatchStatus
    | ReleaseFinalizer
    | DeleteSession
)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """Everything a decision may depend on."""

    session: Session
    pods: Sequence[MediaPod]  # the session's media pods, alive or not
    nodes: Mapping[str, Node]
    leases: Mapping[str, Lease]
    # All live media pods' ports (cluster-wide); read only when a pod is to be placed, so the
    # shell passes a live view instead of copying it for every reconcile.
    port_uses: Collection[hostports.PortUse]
    now: datetime


@dataclass(frozen=True)
class Plan:
    phase: Phase
    actions: tuple[Action, ...]
    events: tuple[Event, ...] = ()
    next_wakeup: datetime | None = None
    billing: BillingState | None = None  # the checkpoint this plan writes, if any
    billed_minutes_delta: int = 0
    placement_failed: bool = False
    media_ready: bool = False


_WAITING_FOR_SCHEDULER = ("Pending", "Waiting for the scheduler")

# Events are for what a person may want to trace or act on, and each one is an API write:
# reaching Scheduled or Ready is routine for every appointment and shows in the PHASE column and
# the conditions, so those phases post none.
_PHASE_EVENTS: dict[Phase, tuple[str, str, str]] = {
    Phase.ACTIVE: ("Normal", "Active", "At least two people are present; billing runs"),
    Phase.IDLE: ("Normal", "Idle", "Everyone left; media released"),
    Phase.EXPIRED: ("Normal", "Expired", "Codes revoked, media and personal data removed"),
    Phase.FAILED: ("Warning", "Failed", "Session failed"),
}


def urgent(s: Session) -> bool:
    """Whether a session waits for the operator's first or next step (new, changed, being
    deleted) rather than a re-check of a settled state. After a takeover every session is
    re-planned; these go first, so a client waiting to join is not queued behind thousands of
    sessions for which the plan will write nothing."""
    return (
        s.phase is None
        or s.deleting
        or not s.has_finalizer
        or s.observed_generation != s.generation
    )


def plan(observed: Observed, settings: OperatorSettings) -> Plan:
    s = observed.session
    if s.deleting:
        return _teardown(observed, settings, EndReason.DELETED)
    if s.phase == Phase.EXPIRED:
        return _after_expiry(observed, settings)
    if observed.now >= expiry.expires_at(s):
        return _teardown(observed, settings, EndReason.EXPIRED)
    return _live(observed, settings)


# --- live sessions ------------------------------------------------------------------------------


def _live(observed: Observed, settings: OperatorSettings) -> Plan:
    s, now = observed.session, observed.now
    actions: list[Action] = []
    events: list[Event] = []
    wakeups: list[datetime | None] = [expiry.expires_at(s)]
    if not s.has_finalizer or None in s.code_digests:
        actions.append(IssueCodes())

    eff = presence_rules.effective(s.presence, observed.leases, settings.presence_max_vouch, now)
    wakeups.append(eff.vouched_until)
    step = billing_rules.advance(
        s.billing,
        s.presence,
        observed.leases,
        now=now,
        stop_at=expiry.expires_at(s),
        checkpoint_interval=settings.billing_checkpoint_interval,
        max_vouch=settings.presence_max_vouch,
    )
    wakeups.append(step.next_wakeup)

    live_pods = [p for p in observed.pods if p.alive]
    current = _current_pod(s, live_pods)
    conds: list[Condition] = [
        Condition(ConditionType.CODES_ISSUED, True, "Issued", "Codes are in the codes Secret"),
        Condition(
            ConditionType.BILLING,
            step.billing,
            "Counting" if step.billing else "NotCounting",
            "At least two people are present" if step.billing else "Fewer than two people present",
        ),
    ]
    media: dict[str, Any] | None = None
    endpoint: str | None = None
    placement_failed = False
    media_ready = False
    failed_reason: tuple[str, str] | None = None
    create_pod: CreateMediaPod | None = None
    delete_names = [p.name for p in live_pods if current is None or p.name != current.name]
    # Dead pods are removed too, so a finished pod never lingers next to its replacement.
    delete_names += [p.name for p in observed.pods if not p.alive and not p.deleting]

    in_window = now >= expiry.start_window(s, settings)
    idle_at = expiry.idle_deadline(s, eff.changed_at, settings)
    empty = eff.connected == 0
    idle = in_window and empty and now >= idle_at
    if in_window and empty and not idle:
        wakeups.append(idle_at)
    sticky_failed = s.phase == Phase.FAILED and s.observed_generation == s.generation

    if sticky_failed:
        phase = Phase.FAILED
        failed_reason = (s.reason or "Failed", "See the MediaPlaced condition")
        if current is not None:
            delete_names.append(current.name)
    elif not in_window:
        phase = Phase.SCHEDULED
        wakeups.append(expiry.start_window(s, settings))
        conds.append(
            Condition(
                ConditionType.READY,
                False,
                "BeforeStartWindow",
                "The start window has not opened yet",
            )
        )
    elif not s.group:
        joinable = True
        phase = _presence_phase(idle, eff.connected, joinable)
        conds.append(
            Condition(
                ConditionType.READY,
                True,
                JoinMode.PEER_TO_PEER.value,
                "Two people join peer-to-peer via signaling",
            )
        )
    else:
        allowed_regions = settings.allowed_regions(s.region)
        state = placement.media_state(current)
        if idle:
            if current is not None:
                delete_names.append(current.name)
            media = {
                "podName": None,
                "nodeName": None,
                "nodeRegion": None,
                "turnPort": None,
                "controlEndpoint": None,
            }
            conds.append(
                Condition(
                    ConditionType.MEDIA_PLACED, False, "Released", "Media released while idle"
                )
            )
            joinable = False
        elif state is placement.MediaState.MISSING:
            nodes = placement.allowed_nodes(observed.nodes.values(), allowed_regions)
            ports = hostports.PortRange(settings.host_port_min, settings.host_port_max)
            port = hostports.allocate(
                ports,
                nodes,
                observed.port_uses,
                seed=f"{s.uid}/{s.media.incarnation + 1}",
            )
            settled = (u for u in observed.port_uses if u.node is not None)
            if nodes and port is None and hostports.allocate(ports, nodes, settled, seed=s.uid):
                # Only pods still waiting for the scheduler hold the ports: wait, do not fail.
                conds.append(
                    Condition(ConditionType.MEDIA_PLACED, False, "WaitingForPort", "Ports busy")
                )
                wakeups.append(now + PORT_RETRY)
            elif not nodes or port is None:
                placement_failed = True
                why = (
                    "no schedulable node in the allowed regions"
                    if not nodes
                    else "all TURN ports taken"
                )
                failed_reason = (
                    "NoCapacityInRegion",
                    f"Media cannot run in {s.region.value.upper()}: {why}",
                )
            else:
                incarnation = s.media.incarnation + 1
                media = {
                    "podName": media_pod_name(s, incarnation),
                    "nodeName": None,
                    "nodeRegion": None,
                    "turnPort": port,
                    "incarnation": incarnation,
                    "controlEndpoint": None,
                }
                actions.append(EnsureMediaSecret())
                # The status patch (with the pod name) goes before the pod: see below.
                create_pod = CreateMediaPod(incarnation, port)
                verb = "MediaPodRecreated" if s.media.incarnation else "MediaPodCreated"
                events.append(
                    Event("Normal", verb, f"Media pod {incarnation} requested on TURN port {port}")
                )
                conds.append(Condition(ConditionType.MEDIA_PLACED, False, *_WAITING_FOR_SCHEDULER))
            joinable = False
        elif state is placement.MediaState.UNSCHEDULABLE and not _grace_over(
            current, now, settings
        ):
            assert current is not None
            conds.append(
                Condition(
                    ConditionType.MEDIA_PLACED, False, "Unschedulable", current.scheduler_message
                )
            )
            wakeups.append((current.unschedulable_since or now) + settings.placement_grace)
            joinable = False
        elif state is placement.MediaState.UNSCHEDULABLE:
            assert current is not None
            placement_failed = True
            delete_names.append(current.name)
            failed_reason = (
                "NoCapacityInRegion",
                f"No node in {s.region.value.upper()} can take the media pod"
                f" (never placed elsewhere): {current.scheduler_message}",
            )
            joinable = False
        elif state is placement.MediaState.PENDING:
            conds.append(Condition(ConditionType.MEDIA_PLACED, False, *_WAITING_FOR_SCHEDULER))
            joinable = False
        else:
            assert current is not None
            node = observed.nodes.get(current.node_name or "")
            media = {
                "podName": current.name,
                "nodeName": current.node_name,
                "nodeRegion": node.region if node else None,
                "turnPort": current.turn_port,
            }
            conds.append(
                Condition(
                    ConditionType.MEDIA_PLACED,
                    True,
                    "Scheduled",
                    "Media pod bound to an allowed node",
                )
            )
            media_ready = state is placement.MediaState.READY
            if media_ready:
                endpoint = placement.endpoint(node, current.turn_port)
            # Written and cleared together with join.mediaEndpoint.
            media["controlEndpoint"] = (
                placement.control_endpoint(current) if endpoint is not None else None
            )
            joinable = media_ready and endpoint is not None
        if failed_reason is not None:
            phase = Phase.FAILED
            conds.append(
                Condition(ConditionType.MEDIA_PLACED, False, failed_reason[0], failed_reason[1])
            )
            conds.append(Condition(ConditionType.READY, False, failed_reason[0], failed_reason[1]))
        else:
            phase = _presence_phase(idle, eff.connected, joinable)
            if phase is Phase.SCHEDULED:
                conds.append(
                    Condition(
                        ConditionType.READY, False, "MediaStarting", "The media pod is starting"
                    )
                )
            elif idle:
                conds.append(
                    Condition(ConditionType.READY, True, "Idle", "Joining re-creates the media pod")
                )
            else:
                conds.append(
                    Condition(ConditionType.READY, True, "MediaReady", "The media pod is ready")
                )

    if media is None and endpoint is None and s.media.control_endpoint is not None:
        media = {"controlEndpoint": None}
    actions.extend(DeletePod(name) for name in dict.fromkeys(delete_names))

    status: dict[str, Any] = {
        "phase": phase.value,
        "observedGeneration": s.generation,
        "expiresAt": format_time(expiry.expires_at(s)),
        "codesSecretName": codes_secret_name(s),
        "join": {
            "mode": s.join_mode.value,
            "signalingURL": settings.signaling_url,
            "mediaEndpoint": endpoint,
        },
    }
    if failed_reason is not None:
        status["reason"], status["message"] = failed_reason
    elif phase is not Phase.FAILED:
        status["reason"], status["message"] = None, None
    if media is not None:
        status["media"] = media
    status_patch = _diff_status(s, status, conds, now)
    billing_write: BillingState | None = None
    if step.due:
        billing_write = step.state
        status_patch["billing"] = step.state.serialize()
    if status_patch:
        actions.append(PatchStatus({"status": status_patch}))
    if create_pod is not None:
        # After the status that records the pod's name and incarnation: a crash in between
        # leaves a recorded incarnation without a pod, and the next plan moves on to the next
        # incarnation and port instead of creating a second pod for the same one.
        actions.append(create_pod)
    if phase != s.phase and phase in _PHASE_EVENTS and not events:
        # One event per step: a plan that already says what happened (e.g. MediaPodCreated)
        # does not also announce the phase it implies.
        kind, reason, message = _PHASE_EVENTS[phase]
        if phase is Phase.FAILED and failed_reason is not None:
            reason, message = failed_reason
        events.append(Event(kind, reason, message))
    return Plan(
        phase=phase,
        actions=tuple(actions),
        events=tuple(events),
        next_wakeup=_earliest(wakeups, now),
        billing=billing_write,
        billed_minutes_delta=step.state.billed_minutes - s.billing.billed_minutes,
        placement_failed=placement_failed and s.phase != Phase.FAILED,
        media_ready=media_ready,
    )


def _presence_phase(idle: bool, connected: int, joinable: bool) -> Phase:
    if idle:
        return Phase.IDLE
    if connected >= billing_rules.MIN_PRESENT:
        return Phase.ACTIVE
    return Phase.READY if joinable else Phase.SCHEDULED


def _grace_over(pod: MediaPod | None, now: datetime, settings: OperatorSettings) -> bool:
    """The scheduler retries when nodes change; fail only once it kept saying no."""
    since = pod.unschedulable_since if pod is not None else None
    return since is None or now >= since + settings.placement_grace


def _current_pod(s: Session, live_pods: Sequence[MediaPod]) -> MediaPod | None:
    """The live pod the status points at; else the newest live one."""
    for pod in live_pods:
        if pod.name == s.media.pod_name:
            return pod
    return max(live_pods, key=lambda p: p.name, default=None)


def _diff_status(
    s: Session, desired: Mapping[str, Any], conds: Sequence[Condition], now: datetime
) -> dict[str, Any]:
    """Only what differs from the current status, plus conditions when they changed."""
    current = {
        "phase": s.phase.value if s.phase else None,
        "observedGeneration": s.observed_generation,
        "codesSecretName": s.codes_secret_name,
        "reason": s.reason,
    }
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if key in current and current[key] == value:
            continue
        if key == "expiresAt" and s.phase is not None:
            continue  # derived from an immutable-enough spec; written with the first status
        if key == "message" and desired.get("reason") == s.reason:
            continue
        if key == "join" and s.phase is not None and value.get("mediaEndpoint") == s.media_endpoint:
            continue
        if key == "media" and _same_media(s, value):
            continue
        patch[key] = value
    if s.phase is None:
        patch["expiresAt"] = desired["expiresAt"]
        patch["join"] = desired["join"]
    merged = merge(s.conditions, conds, now=now, generation=s.generation)
    if not same(s.conditions, merged):
        patch["conditions"] = merged
    if patch and "observedGeneration" not in patch and s.observed_generation != s.generation:
        patch["observedGeneration"] = s.generation
    return patch


def _same_media(s: Session, media: Mapping[str, Any]) -> bool:
    m = s.media
    current = {
        "podName": m.pod_name,
        "nodeName": m.node_name,
        "nodeRegion": m.node_region,
        "turnPort": m.turn_port,
        "controlEndpoint": m.control_endpoint,
    }
    return all(media.get(key) == value for key, value in current.items() if key in media)


def _earliest(candidates: Sequence[datetime | None], now: datetime) -> datetime | None:
    future = [t for t in candidates if t is not None and t > now]
    return min(future) if future else None


# --- the end ----------------------------------------------------------------------------------


def _teardown(observed: Observed, settings: OperatorSettings, reason: EndReason) -> Plan:
    """Expiry or deletion: usage record first, then revoke and remove, then status/finalizer."""
    s, now = observed.session, observed.now
    exp = expiry.expires_at(s)
    if reason is EndReason.DELETED and not s.has_finalizer:
        return Plan(phase=s.phase or Phase.SCHEDULED, actions=())
    stop_at = min(exp, s.deleted_at or exp) if reason is EndReason.DELETED else exp
    actions: list[Action] = []
    step = billing_rules.advance(
        s.billing,
        s.presence,
        observed.leases,
        now=max(now, stop_at),
        stop_at=stop_at,
        checkpoint_interval=settings.billing_checkpoint_interval,
        max_vouch=settings.presence_max_vouch,
    )
    final = step.state
    recorded = s.billing.usage_record is not None
    codes_issued = s.has_finalizer and None not in s.code_digests
    if not recorded and (codes_issued or s.phase is not None):
        body = usage_record(
            s,
            namespace=settings.usage_namespace,
            billable_seconds=final.billable_seconds,
            billed_minutes=final.billed_minutes,
            peak=s.presence.peak,
            media_region=s.media.node_region,
            ended_at=stop_at,
            end_reason=reason.value,
        )
        actions.append(WriteUsageRecord(reason, body))
        final = BillingState(
            billable_seconds=final.billable_seconds,
            billed_minutes=final.billed_minutes,
            checkpoint_at=final.checkpoint_at,
            billing_at_checkpoint=False,
            voucher=None,
            usage_record=usage_record_name(s.uid),
        )
    for pod in observed.pods:
        if not pod.deleting:
            actions.append(DeletePod(pod.name))
    actions.append(RevokeCodes())
    events: list[Event] = []
    if reason is EndReason.DELETED:
        actions.append(ReleaseFinalizer())
        return Plan(
            phase=s.phase or Phase.SCHEDULED,
            actions=tuple(actions),
            billing=final if not recorded else None,
            billed_minutes_delta=final.billed_minutes - s.billing.billed_minutes,
        )
    actions.append(ScrubSession())
    conds = [
        Condition(ConditionType.READY, False, "Expired", "The codes have expired"),
        Condition(ConditionType.CODES_ISSUED, False, "Revoked", "Codes revoked at expiry"),
        Condition(ConditionType.BILLING, False, "Ended", "The session has ended"),
        Condition(ConditionType.USAGE_RECORDED, True, "Recorded", "The usage record was written"),
    ]
    if s.group:
        conds.append(
            Condition(ConditionType.MEDIA_PLACED, False, "Released", "Media released at expiry")
        )
    status: dict[str, Any] = {
        "phase": Phase.EXPIRED.value,
        "reason": "Expired",
        "message": "Codes revoked, media and personal data removed",
        "observedGeneration": s.generation,
        "expiresAt": format_time(exp),
        "conditions": merge(s.conditions, conds, now=now, generation=s.generation),
        "join": {"mediaEndpoint": None},
        "media": {"podName": None, "nodeName": None, "turnPort": None, "controlEndpoint": None},
        "billing": final.serialize(),
    }
    # Last: an Expired phase in status means everything above is done.
    actions.append(PatchStatus({"status": status}))
    events.append(Event(*_PHASE_EVENTS[Phase.EXPIRED]))
    return Plan(
        phase=Phase.EXPIRED,
        actions=tuple(actions),
        events=tuple(events),
        next_wakeup=_earliest([expiry.delete_at(s, settings)], now),
        billing=final,
        billed_minutes_delta=final.billed_minutes - s.billing.billed_minutes,
    )


def _after_expiry(observed: Observed, settings: OperatorSettings) -> Plan:
    s, now = observed.session, observed.now
    if s.billing.usage_record is None:  # the status write of the teardown did not happen
        return _teardown(observed, settings, EndReason.EXPIRED)
    actions: list[Action] = [DeletePod(p.name) for p in observed.pods if not p.deleting]
    due = expiry.delete_at(s, settings)
    if now >= due:
        actions.append(DeleteSession())
    return Plan(phase=Phase.EXPIRED, actions=tuple(actions), next_wakeup=_earliest([due], now))

"""The VideoSession phase machine: one pure function from observations to a plan. No I/O.

``plan(observed, settings)`` is the whole lifecycle (docs/operator.md, "Lifecycle"):

    Scheduled ─start window─▶ Ready ─≥2 present─▶ Active ─everyone gone─▶ … ─idleTimeout─▶ Idle
        │                       ▲                                                        │
        │                       └──────────────── someone rejoins ───────────────────────┘
        ├─ group call, no allowed node can take the media pod ─▶ Failed (until the spec changes)
        └─ at expiresAt, from any phase ─▶ Expired ─retention─▶ deleted

Deleting the object runs the same teardown through the finalizer. The plan lists idempotent
actions with finished bodies in the order they must happen (so a crash between any two leaves a
state the next plan completes), events, and the next instant anything can change by the clock
alone. Live sessions are planned here, with the group call's media in ``media``; the end in
``teardown``; what status gets in ``status``; the plan's vocabulary in ``actions``. The
reconciler executes plans and never decides anything itself.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sprechzimmer.contract import ConditionType, Phase
from sprechzimmer.contract.mediapod import JoinMode
from sprechzimmer.contract.rfc3339 import format_time
from sprechzimmer.operator.core import billing as billing_rules
from sprechzimmer.operator.core import codes, expiry, manifests, media, status
from sprechzimmer.operator.core import presence as presence_rules
from sprechzimmer.operator.core.actions import (
    Action,
    DeletePod,
    EndReason,
    Event,
    IssueCodes,
    Observed,
    PatchStatus,
    Plan,
)
from sprechzimmer.operator.core.conditions import Condition
from sprechzimmer.operator.core.model import BillingState, Session
from sprechzimmer.operator.core.settings import OperatorSettings
from sprechzimmer.operator.core.teardown import after_expiry, teardown


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
        planned = teardown(observed, settings, EndReason.DELETED)
    elif s.phase == Phase.EXPIRED:
        planned = after_expiry(observed, settings)
    elif observed.now >= expiry.expires_at(s):
        planned = teardown(observed, settings, EndReason.EXPIRED)
    else:
        planned = _live(observed, settings)
    return _tally(s, planned, settings)


def _tally(s: Session, planned: Plan, settings: OperatorSettings) -> Plan:
    """What the operator's counters and logs record about this plan."""
    first_ready = (
        planned.phase in (Phase.READY, Phase.ACTIVE)
        and s.phase in (None, Phase.SCHEDULED)
        and s.media.incarnation <= 1
        # Only sessions created inside their start window measure the operator's latency.
        and expiry.start_window(s, settings) <= s.created_at
    )
    return replace(
        planned,
        expired=planned.phase is Phase.EXPIRED and s.phase is not Phase.EXPIRED,
        first_ready=s.join_mode if first_ready else None,
        transition=(s.phase, planned.phase) if planned.phase != s.phase else None,
    )


# --- live sessions ------------------------------------------------------------------------------


def _issue_codes(observed: Observed, settings: OperatorSettings) -> IssueCodes:
    """A fresh code pair from the injected CSPRNG, never live twice for the host."""
    s = observed.session
    key = settings.shared_key.get_secret_value().encode()
    pair = codes.issue_codes(
        key=key,
        host=s.host,
        live_digests=observed.live_digests(),
        random_bytes=observed.random_bytes,
    )
    return IssueCodes(
        secret=manifests.codes_secret(s, pair, settings.signaling_url),
        digests=codes.code_digests(key, s.host, pair),
        labels=codes.SessionLabels(key, s.host, s.finalizers, s.resource_version),
    )


def _live(observed: Observed, settings: OperatorSettings) -> Plan:
    s, now = observed.session, observed.now
    actions: list[Action] = []
    events: list[Event] = []
    wakeups: list[datetime | None] = [expiry.expires_at(s)]
    if not s.has_finalizer or None in s.code_digests:
        actions.append(_issue_codes(observed, settings))

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
    current = media.current_pod(s, live_pods)
    conds: list[Condition] = [
        Condition(ConditionType.CODES_ISSUED, True, "Issued", "Codes are in the codes Secret"),
        Condition(
            ConditionType.BILLING,
            step.billing,
            "Counting" if step.billing else "NotCounting",
            "At least two people are present" if step.billing else "Fewer than two people present",
        ),
    ]
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

    step_media = media.MediaStep()
    if sticky_failed:
        phase = Phase.FAILED
        step_media.failed_reason = (s.reason or "Failed", "See the MediaPlaced condition")
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
        phase = _presence_phase(idle, eff.connected, joinable=True)
        conds.append(
            Condition(
                ConditionType.READY,
                True,
                JoinMode.PEER_TO_PEER.value,
                "Two people join peer-to-peer via signaling",
            )
        )
    else:
        step_media = media.step(observed, settings, current, idle=idle)
        actions.extend(step_media.actions)
        events.extend(step_media.events)
        delete_names += step_media.delete_names
        wakeups += step_media.wakeups
        phase, ready = _group_phase(step_media, idle, eff.connected)
        conds += step_media.conditions + ready

    failed_reason = step_media.failed_reason
    actions.extend(DeletePod(name) for name in dict.fromkeys(delete_names))
    desired = _desired_status(s, settings, phase, step_media)
    status_patch = status.diff(s, desired, conds, now)
    billing_write: BillingState | None = None
    if step.due:
        billing_write = step.state
        status_patch["billing"] = step.state.serialize()
    if status_patch:
        actions.append(PatchStatus({"status": status_patch}))
    if step_media.create_pod is not None:
        # After the status that records the pod's name and incarnation: a crash in between
        # leaves a recorded incarnation without a pod, and the next plan moves on to the next
        # incarnation and port instead of creating a second pod for the same one.
        actions.append(step_media.create_pod)
    announced = status.phase_event(s, phase, failed_reason, events)
    if announced is not None:
        events.append(announced)
    return Plan(
        phase=phase,
        actions=tuple(actions),
        events=tuple(events),
        next_wakeup=status.earliest(wakeups, now),
        billing=billing_write,
        billed_minutes_delta=step.state.billed_minutes - s.billing.billed_minutes,
        placement_failed=step_media.placement_failed and s.phase != Phase.FAILED,
        media_ready=step_media.media_ready,
    )


def _group_phase(
    step: media.MediaStep, idle: bool, connected: int
) -> tuple[Phase, list[Condition]]:
    """A group call's phase and its Ready (and failed MediaPlaced) conditions."""
    if step.failed_reason is not None:
        reason, message = step.failed_reason
        return Phase.FAILED, [
            Condition(ConditionType.MEDIA_PLACED, False, reason, message),
            Condition(ConditionType.READY, False, reason, message),
        ]
    phase = _presence_phase(idle, connected, joinable=step.joinable)
    if phase is Phase.SCHEDULED:
        ready = Condition(ConditionType.READY, False, "MediaStarting", "The media pod is starting")
    elif idle:
        ready = Condition(ConditionType.READY, True, "Idle", "Joining re-creates the media pod")
    else:
        ready = Condition(ConditionType.READY, True, "MediaReady", "The media pod is ready")
    return phase, [ready]


def _desired_status(
    s: Session, settings: OperatorSettings, phase: Phase, step: media.MediaStep
) -> dict[str, Any]:
    desired: dict[str, Any] = {
        "phase": phase.value,
        "observedGeneration": s.generation,
        "expiresAt": format_time(expiry.expires_at(s)),
        "codesSecretName": manifests.codes_secret_name(s),
        "join": {
            "mode": s.join_mode.value,
            "signalingURL": settings.signaling_url,
            "mediaEndpoint": step.endpoint,
        },
    }
    if step.failed_reason is not None:
        desired["reason"], desired["message"] = step.failed_reason
    elif phase is not Phase.FAILED:
        desired["reason"], desired["message"] = None, None
    media_status = step.media
    if media_status is None and step.endpoint is None and s.media.control_endpoint is not None:
        media_status = {"controlEndpoint": None}  # cleared with the media endpoint
    if media_status is not None:
        desired["media"] = media_status
    return desired


def _presence_phase(idle: bool, connected: int, *, joinable: bool) -> Phase:
    if idle:
        return Phase.IDLE
    if connected >= billing_rules.MIN_PRESENT:
        return Phase.ACTIVE
    return Phase.READY if joinable else Phase.SCHEDULED

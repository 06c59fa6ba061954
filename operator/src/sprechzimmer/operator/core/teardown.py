"""The end of a session: expiry and deletion share one teardown. No I/O.

Order, so that a crash between any two steps leaves a state the next plan completes:

1. the usage record (the bill), before anything that would let the session go: it is written
   into the operator's own namespace, so a practice's terminating namespace cannot refuse it;
2. media pods deleted, codes and media Secrets deleted (codes revoked);
3. expiry: note and digest labels removed, then status ``Expired`` — written last, so an
   ``Expired`` phase in status means everything above is done;
   deletion: the finalizer released, which lets Kubernetes delete the object.

An expired session is deleted ``retention`` after its expiry.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sprechzimmer.contract import FINALIZER, ConditionType, Phase
from sprechzimmer.contract.rfc3339 import format_time
from sprechzimmer.operator.core import billing as billing_rules
from sprechzimmer.operator.core import expiry, manifests
from sprechzimmer.operator.core.actions import (
    Action,
    DeletePod,
    DeleteSession,
    EndReason,
    Event,
    Observed,
    PatchStatus,
    Plan,
    ReleaseFinalizer,
    RevokeCodes,
    ScrubSession,
    WriteUsageRecord,
)
from sprechzimmer.operator.core.codes import DIGEST_LABELS
from sprechzimmer.operator.core.conditions import Condition, merge
from sprechzimmer.operator.core.model import Session
from sprechzimmer.operator.core.settings import OperatorSettings
from sprechzimmer.operator.core.status import PHASE_EVENTS, earliest
from sprechzimmer.operator.core.usage import usage_record, usage_record_name


def teardown(observed: Observed, settings: OperatorSettings, reason: EndReason) -> Plan:
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
        final = replace(
            final,
            billing_at_checkpoint=False,
            voucher=None,
            usage_record=usage_record_name(s.uid),
        )
    actions.extend(DeletePod(pod.name) for pod in observed.pods if not pod.deleting)
    actions.append(RevokeCodes((manifests.codes_secret_name(s), manifests.media_secret_name(s))))
    billed_delta = final.billed_minutes - s.billing.billed_minutes
    if reason is EndReason.DELETED:
        actions.append(ReleaseFinalizer(_release_finalizer(s)))
        return Plan(
            phase=s.phase or Phase.SCHEDULED,
            actions=tuple(actions),
            billing=final if not recorded else None,
            billed_minutes_delta=billed_delta,
        )
    actions.append(ScrubSession(_scrub(s)))
    # Last: an Expired phase in status means everything above is done.
    actions.append(PatchStatus({"status": _expired_status(s, final.serialize(), observed)}))
    return Plan(
        phase=Phase.EXPIRED,
        actions=tuple(actions),
        events=(Event(*PHASE_EVENTS[Phase.EXPIRED]),),
        next_wakeup=earliest([expiry.delete_at(s, settings)], now),
        billing=final,
        billed_minutes_delta=billed_delta,
    )


def after_expiry(observed: Observed, settings: OperatorSettings) -> Plan:
    s, now = observed.session, observed.now
    if s.billing.usage_record is None:  # the status write of the teardown did not happen
        return teardown(observed, settings, EndReason.EXPIRED)
    actions: list[Action] = [DeletePod(p.name) for p in observed.pods if not p.deleting]
    due = expiry.delete_at(s, settings)
    if now >= due:
        actions.append(DeleteSession())
    return Plan(phase=Phase.EXPIRED, actions=tuple(actions), next_wakeup=earliest([due], now))


def _scrub(s: Session) -> dict[str, Any]:
    """Personal data and credential digests off the object (merge patch: None removes)."""
    patch: dict[str, Any] = {"metadata": {"labels": dict.fromkeys(DIGEST_LABELS)}}
    if s.has_note:
        patch["spec"] = {"note": None}
    return patch


def _release_finalizer(s: Session) -> dict[str, Any]:
    """Our finalizer off the list; the resourceVersion guards others' finalizers."""
    return {
        "metadata": {
            "finalizers": [f for f in s.finalizers if f != FINALIZER],
            "resourceVersion": s.resource_version,
        }
    }


def _expired_status(s: Session, billing: dict[str, Any], observed: Observed) -> dict[str, Any]:
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
    return {
        "phase": Phase.EXPIRED.value,
        "reason": "Expired",
        "message": "Codes revoked, media and personal data removed",
        "observedGeneration": s.generation,
        "expiresAt": format_time(expiry.expires_at(s)),
        "conditions": merge(s.conditions, conds, now=observed.now, generation=s.generation),
        "join": {"mediaEndpoint": None},
        "media": {"podName": None, "nodeName": None, "turnPort": None, "controlEndpoint": None},
        "billing": billing,
    }

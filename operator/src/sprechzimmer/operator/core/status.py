"""What a plan writes into ``status``, and the events it posts. No I/O.

Status is written as one merge patch per reconcile holding only what differs, so a settled
session costs no write at all. Events mark what a person may want to trace or act on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sprechzimmer.contract import Phase
from sprechzimmer.operator.core.actions import Event
from sprechzimmer.operator.core.conditions import Condition, merge, same
from sprechzimmer.operator.core.model import Session

# Events are for what a person may want to trace or act on, and each one is an API write:
# reaching Scheduled or Ready is routine for every appointment and shows in the PHASE column and
# the conditions, so those phases post none.
PHASE_EVENTS: dict[Phase, tuple[str, str, str]] = {
    Phase.ACTIVE: ("Normal", "Active", "At least two people are present; billing runs"),
    Phase.IDLE: ("Normal", "Idle", "Everyone left; media released"),
    Phase.EXPIRED: ("Normal", "Expired", "Codes revoked, media and personal data removed"),
    Phase.FAILED: ("Warning", "Failed", "Session failed"),
}


def phase_event(
    s: Session, phase: Phase, failed_reason: tuple[str, str] | None, events: Sequence[Event]
) -> Event | None:
    """The event announcing a new phase, if it deserves one.

    One event per step: a plan that already says what happened (e.g. MediaPodCreated) does not
    also announce the phase it implies.
    """
    if phase == s.phase or phase not in PHASE_EVENTS or events:
        return None
    kind, reason, message = PHASE_EVENTS[phase]
    if phase is Phase.FAILED and failed_reason is not None:
        reason, message = failed_reason
    return Event(kind, reason, message)


def diff(
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


def earliest(candidates: Sequence[datetime | None], now: datetime) -> datetime | None:
    """The next instant anything can change by the clock alone."""
    future = [t for t in candidates if t is not None and t > now]
    return min(future) if future else None

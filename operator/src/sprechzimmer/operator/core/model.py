"""Typed, read-only views of the objects the operator decides about. No I/O.

Bodies arrive as JSON dicts from the watch; ``parse`` functions take what the decisions need and
nothing more (never names of people, codes or notes — only whether a note exists).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sprechzimmer.contract import (
    FINALIZER,
    GROUP,
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    LABEL_SESSION_UID,
    REGION_LABEL,
    Phase,
    Region,
    parse_duration,
)
from sprechzimmer.contract.mediapod import JoinMode
from sprechzimmer.contract.rfc3339 import format_time, parse_time

Body = Mapping[str, Any]

# On media pods: the allocated TURN host port, so allocations survive operator restarts.
ANNOTATION_TURN_PORT = f"{GROUP}/turn-port"


def floor_second(value: datetime) -> datetime:
    """Billing counts whole seconds; every time it uses is floored first."""
    return value.replace(microsecond=0)


def ceil_second(value: datetime) -> datetime:
    return value if value.microsecond == 0 else value.replace(microsecond=0) + timedelta(seconds=1)


@dataclass(frozen=True)
class Presence:
    """``status.presence`` as written by signaling."""

    connected: int = 0
    host_connected: bool = False
    peak: int = 0
    changed_at: datetime | None = None
    vouched_by: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Presence:
        if not raw:
            return cls()
        return cls(
            connected=int(raw.get("connected") or 0),
            host_connected=bool(raw.get("hostConnected")),
            peak=int(raw.get("peak") or 0),
            changed_at=parse_time(raw.get("changedAt")),
            vouched_by=raw.get("vouchedBy") or None,
        )


@dataclass(frozen=True)
class BillingState:
    """``status.billing``: the checkpoint billing resumes from after any restart."""

    billable_seconds: int = 0
    billed_minutes: int = 0
    checkpoint_at: datetime | None = None
    # Whether ≥ 2 vouched people were present at checkpoint_at, as the operator last saw it.
    billing_at_checkpoint: bool = False
    # The presence Lease that vouched for billing at checkpoint_at (None when not billing).
    voucher: str | None = None
    usage_record: str | None = None
    # The presence change (``changedAt``) the checkpoint was computed from; None: no change yet.
    presence_changed_at: datetime | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> BillingState:
        if not raw:
            return cls()
        return cls(
            billable_seconds=int(raw.get("billableSeconds") or 0),
            billed_minutes=int(raw.get("billedMinutes") or 0),
            checkpoint_at=parse_time(raw.get("checkpointAt")),
            billing_at_checkpoint=bool(raw.get("billingAtCheckpoint")),
            voucher=raw.get("voucher") or None,
            usage_record=raw.get("usageRecord") or None,
            presence_changed_at=parse_time(raw.get("presenceChangedAt")),
        )

    def serialize(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "billableSeconds": self.billable_seconds,
            "billedMinutes": self.billed_minutes,
            "billingAtCheckpoint": self.billing_at_checkpoint,
        }
        if self.checkpoint_at is not None:
            out["checkpointAt"] = format_time(self.checkpoint_at)
        out["voucher"] = self.voucher
        if self.presence_changed_at is not None:
            out["presenceChangedAt"] = format_time(self.presence_changed_at)
        if self.usage_record is not None:
            out["usageRecord"] = self.usage_record
        return out


def minutes_for(seconds: int) -> int:
    """Each started minute counts."""
    return math.ceil(seconds / 60) if seconds > 0 else 0


@dataclass(frozen=True)
class MediaStatus:
    """``status.media``: the desired media pod (name written before the pod is created)."""

    pod_name: str | None = None
    node_name: str | None = None
    node_region: str | None = None
    turn_port: int | None = None
    incarnation: int = 0
    # ``<pod IP>:<control port>``: where signaling reaches the SFU's control API.
    control_endpoint: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> MediaStatus:
        if not raw:
            return cls()
        port = raw.get("turnPort")
        return cls(
            pod_name=raw.get("podName") or None,
            node_name=raw.get("nodeName") or None,
            node_region=raw.get("nodeRegion") or None,
            turn_port=int(port) if port else None,
            incarnation=int(raw.get("incarnation") or 0),
            control_endpoint=raw.get("controlEndpoint") or None,
        )


@dataclass(frozen=True)
class Session:
    """One VideoSession as far as the lifecycle is concerned."""

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    created_at: datetime
    deleting: bool
    deleted_at: datetime | None
    finalizers: tuple[str, ...]
    host: str
    clients: int
    scheduled_start: datetime
    code_ttl: timedelta
    region: Region
    has_note: bool
    code_digests: tuple[str | None, str | None]
    # status
    phase: Phase | None
    observed_generation: int | None
    reason: str | None
    codes_secret_name: str | None
    media: MediaStatus
    presence: Presence
    billing: BillingState
    media_endpoint: str | None
    conditions: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def has_finalizer(self) -> bool:
        return FINALIZER in self.finalizers

    @property
    def group(self) -> bool:
        """Three to five people: needs a media pod; two people go peer-to-peer."""
        return self.clients >= 2

    @property
    def join_mode(self) -> JoinMode:
        return JoinMode.MEDIA_POD if self.group else JoinMode.PEER_TO_PEER

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def parse(cls, body: Body) -> Session:
        """Raises ValueError for a body admission should have rejected (e.g. old objects)."""
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        labels = meta.get("labels") or {}
        start = parse_time(spec.get("scheduledStart"))
        if start is None:
            raise ValueError("spec.scheduledStart is missing")
        created = parse_time(meta.get("creationTimestamp")) or start
        raw_phase = status.get("phase")
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta["name"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 1),
            resource_version=str(meta.get("resourceVersion", "")),
            created_at=created,
            deleting=bool(meta.get("deletionTimestamp")),
            deleted_at=parse_time(meta.get("deletionTimestamp")),
            finalizers=tuple(meta.get("finalizers") or ()),
            host=str(spec.get("host", "")),
            clients=len(spec.get("participants") or []),
            scheduled_start=start,
            code_ttl=parse_duration(str(spec.get("codeTTL") or "24h")),
            region=Region(spec.get("region", "de")),
            has_note=bool(spec.get("note")),
            code_digests=(labels.get(LABEL_HOST_CODE_DIGEST), labels.get(LABEL_CLIENT_CODE_DIGEST)),
            phase=Phase(raw_phase) if raw_phase else None,
            observed_generation=status.get("observedGeneration"),
            reason=status.get("reason"),
            codes_secret_name=status.get("codesSecretName"),
            media=MediaStatus.parse(status.get("media")),
            presence=Presence.parse(status.get("presence")),
            billing=BillingState.parse(status.get("billing")),
            media_endpoint=(status.get("join") or {}).get("mediaEndpoint"),
            conditions=tuple(status.get("conditions") or ()),
        )


@dataclass(frozen=True)
class MediaPod:
    """A media pod as the watch shows it."""

    namespace: str
    name: str
    session_uid: str
    node_name: str | None
    turn_port: int | None
    phase: str
    ready: bool
    unschedulable: bool
    deleting: bool
    created_at: datetime | None
    # The scheduler's verdict while unschedulable: since when, and its explanation.
    unschedulable_since: datetime | None = None
    scheduler_message: str = ""
    pod_ip: str | None = None

    @property
    def alive(self) -> bool:
        """Counts as the session's media: not finished, not being deleted."""
        return not self.deleting and self.phase not in ("Failed", "Succeeded")

    @classmethod
    def parse(cls, body: Body) -> MediaPod:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        annotations = meta.get("annotations") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or ()}
        scheduled = conditions.get("PodScheduled") or {}
        ready = conditions.get("Ready") or {}
        port = annotations.get(ANNOTATION_TURN_PORT)
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta["name"]),
            session_uid=str((meta.get("labels") or {}).get(LABEL_SESSION_UID, "")),
            node_name=spec.get("nodeName") or None,
            turn_port=int(port) if port else None,
            phase=str(status.get("phase") or "Pending"),
            ready=ready.get("status") == "True",
            unschedulable=(
                scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
            ),
            deleting=bool(meta.get("deletionTimestamp")),
            created_at=parse_time(meta.get("creationTimestamp")),
            unschedulable_since=parse_time(scheduled.get("lastTransitionTime")),
            scheduler_message=str(scheduled.get("message") or "")[:300],
            pod_ip=status.get("podIP") or None,
        )


@dataclass(frozen=True)
class Node:
    name: str
    region: str | None
    external_ip: str | None
    schedulable: bool

    @classmethod
    def parse(cls, body: Body) -> Node:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or ()}
        return cls(
            name=str(meta["name"]),
            region=(meta.get("labels") or {}).get(REGION_LABEL),
            external_ip=addresses.get("ExternalIP") or addresses.get("InternalIP"),
            schedulable=not spec.get("unschedulable", False),
        )


@dataclass(frozen=True)
class Lease:
    """A signaling replica's presence Lease."""

    name: str
    renew_time: datetime | None
    duration: timedelta

    @classmethod
    def parse(cls, body: Body) -> Lease:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        return cls(
            name=str(meta["name"]),
            renew_time=parse_time(spec.get("renewTime")),
            duration=timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0)),
        )

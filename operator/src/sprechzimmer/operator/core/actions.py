"""The vocabulary of plans: what a plan sees (``Observed``) and what it says (``Plan``). No I/O.

Every action carries its finished body or patch, so the reconciler executes a plan without
deciding anything: it sends each body to the API in list order. Where an action depends on the
API's answer — the codes Secret an earlier attempt already created, the usage record an earlier
attempt already wrote — the action carries the pure function that finishes it from that answer.
Bodies that hold credentials are left out of ``repr`` so a plan can be logged.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sprechzimmer.contract import Phase
from sprechzimmer.contract.mediapod import JoinMode
from sprechzimmer.operator.core.codes import RandomBytes, SessionLabels
from sprechzimmer.operator.core.hostports import PortUse
from sprechzimmer.operator.core.model import BillingState, Lease, MediaPod, Node, Session

Body = Mapping[str, Any]
Key = tuple[str, str]


class EndReason(enum.StrEnum):
    EXPIRED = "Expired"
    DELETED = "Deleted"


# --- actions, executed in list order by the reconciler ----------------------------------------


@dataclass(frozen=True)
class IssueCodes:
    """Create the codes Secret, then one metadata PATCH: code and link digests as labels (of the
    codes the stored Secret holds, ours or an earlier attempt's) and the finalizer.

    ``digests`` are the new codes' digests: the reconciler claims them for the host before its
    first await, so two sessions of one host planned at once never draw the same code.
    """

    secret: Body = field(repr=False)
    digests: tuple[str, str] = field(repr=False)
    labels: SessionLabels

    def metadata_patch(self, stored_secret: Body) -> dict[str, Any]:
        return self.labels.patch(stored_secret)


@dataclass(frozen=True)
class EnsureMediaSecret:
    """Create the per-session media Secret (control token, TURN secret)."""

    body: Body = field(repr=False)


@dataclass(frozen=True)
class CreateMediaPod:
    """Create the media pod; its TURN port is reserved in the index before the first await."""

    name: str
    turn_port: int
    body: Body = field(repr=False)


@dataclass(frozen=True)
class DeletePod:
    name: str


@dataclass(frozen=True)
class WriteUsageRecord:
    """Create the usage record; if an earlier attempt wrote it, that one is the bill."""

    reason: EndReason
    body: Body


@dataclass(frozen=True)
class RevokeCodes:
    """Delete the codes and media Secrets (plaintext codes, TURN secret, control token)."""

    secret_names: tuple[str, ...]


@dataclass(frozen=True)
class ScrubSession:
    """One metadata/spec PATCH removing the note and the code and link digests."""

    patch: Body


@dataclass(frozen=True)
class PatchStatus:
    """One status PATCH: everything this plan changes in status."""

    patch: Body

    def finished(self, usage_record: Body | None) -> Body:
        """The patch to send, given the usage record this plan wrote or found (if any).

        A record an earlier attempt wrote is the bill: status repeats its numbers instead of
        a recount that presence written since may have changed.
        """
        status = self.patch.get("status") or {}
        if usage_record is None or "billing" not in status:
            return self.patch
        spec = usage_record.get("spec") or {}
        billing = {
            **status["billing"],
            "billableSeconds": int(spec.get("durationSeconds") or 0),
            "billedMinutes": int(spec.get("billedMinutes") or 0),
        }
        return {**self.patch, "status": {**status, "billing": billing}}


@dataclass(frozen=True)
class ReleaseFinalizer:
    """One metadata PATCH: the finalizer list without ours (guarded by resourceVersion)."""

    patch: Body


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


def _no_randomness(n: int) -> bytes:
    raise RuntimeError("issuing codes needs random_bytes (secrets.token_bytes)")


@dataclass(frozen=True)
class Observed:
    """Everything a decision may depend on, and the tools it may use."""

    session: Session
    pods: Sequence[MediaPod]  # the session's media pods, alive or not
    nodes: Mapping[str, Node]
    leases: Mapping[str, Lease]
    # All live media pods' ports (cluster-wide); read only when a pod is to be placed, so the
    # shell passes a live view instead of copying it for every reconcile.
    port_uses: Collection[PortUse]
    now: datetime
    # Code digests of the host's live sessions by session key (ours excluded when read); read
    # only when codes are issued, a live view like port_uses.
    host_digests: Mapping[Key, tuple[str, ...]] = field(default_factory=dict)
    # The CSPRNG (``secrets.token_bytes``); injected so tests can script it.
    random_bytes: RandomBytes = _no_randomness

    def live_digests(self) -> set[str]:
        key = self.session.key
        return {d for k, ds in self.host_digests.items() if k != key for d in ds}


@dataclass(frozen=True)
class Plan:
    phase: Phase
    actions: tuple[Action, ...]
    events: tuple[Event, ...] = ()
    next_wakeup: datetime | None = None
    billing: BillingState | None = None  # the checkpoint this plan writes, if any
    # What the operator's counters and logs record about this plan (bounded labels only).
    billed_minutes_delta: int = 0
    placement_failed: bool = False
    media_ready: bool = False
    expired: bool = False  # this plan expires the session
    first_ready: JoinMode | None = None  # first Ready of a session created inside its window
    transition: tuple[Phase | None, Phase] | None = None  # (from, to) when the phase changes

    @property
    def pods_to_create(self) -> tuple[CreateMediaPod, ...]:
        return tuple(a for a in self.actions if isinstance(a, CreateMediaPod))

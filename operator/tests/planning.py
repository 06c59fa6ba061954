"""Builders for the tests of the phase machine (``test_lifecycle``, ``test_media``,
``test_teardown``): observed state as the watches would show it, and plans read back."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from operator_builders import T0, at, iso, session_body, settings
from sprechzimmer.contract import FINALIZER, LABEL_CLIENT_CODE_DIGEST, LABEL_HOST_CODE_DIGEST, Phase
from sprechzimmer.operator.core import actions as act
from sprechzimmer.operator.core import lifecycle as lc
from sprechzimmer.operator.core.hostports import PortUse
from sprechzimmer.operator.core.model import Lease, MediaPod, Node, Session

CFG = settings(host_port_min=10000, host_port_max=10009)
ISSUED = {LABEL_HOST_CODE_DIGEST: "a" * 32, LABEL_CLIENT_CODE_DIGEST: "b" * 32}
NODES = {
    "fra": Node("fra", "de-fra", "203.0.113.1", True),
    "ams": Node("ams", "nl-ams", "192.0.2.1", True),
}
LEASES = {"sig-0": Lease("sig-0", at(hours=1), timedelta(seconds=30))}


def issued(**kw: Any) -> dict[str, Any]:
    kw.setdefault("labels", ISSUED)
    kw.setdefault("finalizers", [FINALIZER])
    return session_body(**kw)


def status(phase: Phase, **extra: Any) -> dict[str, Any]:
    out = {"phase": phase.value, "observedGeneration": 1, "codesSecretName": "termin-codes"}
    out.update(extra)
    return out


def media_pod(name: str = "vs-11111111-2222-3333-4444-555555555555-media-1", **kw: Any) -> MediaPod:
    base: dict[str, Any] = dict(
        namespace="praxis",
        name=name,
        session_uid="11111111-2222-3333-4444-555555555555",
        node_name="fra",
        turn_port=10003,
        phase="Running",
        ready=True,
        unschedulable=False,
        deleting=False,
        created_at=T0,
    )
    base.update(kw)
    return MediaPod(**base)


def plan(
    body: dict[str, Any],
    now: datetime,
    *,
    pods: list[MediaPod] = (),
    uses: list[PortUse] = (),
    nodes: dict[str, Node] = NODES,
    host_digests: dict[tuple[str, str], tuple[str, ...]] | None = None,
) -> act.Plan:  # type: ignore[assignment]
    observed = act.Observed(
        Session.parse(body),
        list(pods),
        nodes,
        LEASES,
        list(uses),
        now,
        host_digests=host_digests or {},
        random_bytes=random.Random(7).randbytes,  # a scripted "CSPRNG"
    )
    return lc.plan(observed, CFG)


def kinds(p: act.Plan) -> list[str]:
    return [type(a).__name__ for a in p.actions]


def status_patch(p: act.Plan) -> dict[str, Any]:
    patches = [a.patch["status"] for a in p.actions if isinstance(a, act.PatchStatus)]
    return patches[-1] if patches else {}


def present(n: int, since: datetime = T0) -> dict[str, Any]:
    return {
        "connected": n,
        "hostConnected": n > 0,
        "peak": n,
        "changedAt": iso(since),
        "vouchedBy": "sig-0",
    }


MEDIA1 = {
    "podName": "vs-11111111-2222-3333-4444-555555555555-media-1",
    "turnPort": 10003,
    "incarnation": 1,
}

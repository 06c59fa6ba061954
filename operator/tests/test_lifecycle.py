"""The phase machine, scenario by scenario: observed state + now → plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import KEY, T0, at, iso, session_body, settings
from sprechzimmer.contract import FINALIZER, LABEL_CLIENT_CODE_DIGEST, LABEL_HOST_CODE_DIGEST, Phase
from sprechzimmer.operator.core import lifecycle as lc
from sprechzimmer.operator.core.hostports import PortUse
from sprechzimmer.operator.core.model import Lease, MediaPod, Node, Session

pytestmark = pytest.mark.unit
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
) -> lc.Plan:  # type: ignore[assignment]
    observed = lc.Observed(Session.parse(body), list(pods), nodes, LEASES, list(uses), now)
    return lc.plan(observed, CFG)


def kinds(p: lc.Plan) -> list[str]:
    return [type(a).__name__ for a in p.actions]


def status_patch(p: lc.Plan) -> dict[str, Any]:
    patches = [a.patch["status"] for a in p.actions if isinstance(a, lc.PatchStatus)]
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


@pytest.mark.parametrize(
    ("name", "body", "now", "pods", "phase", "actions"),
    [
        (
            "new 1:1 before window",
            session_body(),
            at(minutes=-30),
            [],
            Phase.SCHEDULED,
            ["IssueCodes", "PatchStatus"],
        ),
        (
            "new 1:1 in window",
            session_body(),
            at(minutes=-1),
            [],
            Phase.READY,
            ["IssueCodes", "PatchStatus"],
        ),
        (
            "1:1 ready, unchanged",
            issued(status=status(Phase.READY)),
            at(1),
            [],
            Phase.READY,
            ["PatchStatus"],
        ),
        (
            "1:1 two present → Active",
            issued(status=status(Phase.READY, presence=present(2))),
            at(10),
            [],
            Phase.ACTIVE,
            ["PatchStatus"],
        ),
        (
            "1:1 everyone gone 10 min → Idle",
            issued(status=status(Phase.ACTIVE, presence=present(0, at(minutes=5)))),
            at(minutes=15),
            [],
            Phase.IDLE,
            ["PatchStatus"],
        ),
        (
            "1:1 gone but within idle timeout stays Ready",
            issued(status=status(Phase.ACTIVE, presence=present(0, at(minutes=5)))),
            at(minutes=14),
            [],
            Phase.READY,
            ["PatchStatus"],
        ),
        (
            "group in window: pod requested",
            issued(clients=3, status=status(Phase.SCHEDULED)),
            at(minutes=-4),
            [],
            Phase.SCHEDULED,
            ["EnsureMediaSecret", "PatchStatus", "CreateMediaPod"],
        ),
        (
            "group before window: no pod",
            issued(clients=3, status=status(Phase.SCHEDULED)),
            at(minutes=-6),
            [],
            Phase.SCHEDULED,
            ["PatchStatus"],
        ),
        (
            "group pod ready → Ready with endpoint",
            issued(clients=3, status=status(Phase.SCHEDULED, media=MEDIA1)),
            at(1),
            [media_pod()],
            Phase.READY,
            ["PatchStatus"],
        ),
        (
            "group pod died → next incarnation, dead one removed",
            issued(clients=3, status=status(Phase.ACTIVE, media=MEDIA1, presence=present(3))),
            at(60),
            [media_pod(phase="Failed", ready=False)],
            Phase.ACTIVE,
            ["EnsureMediaSecret", "DeletePod", "PatchStatus", "CreateMediaPod"],
        ),
        (
            "group unschedulable → Failed, pod removed",
            issued(clients=3, status=status(Phase.SCHEDULED, media=MEDIA1)),
            at(1),
            [media_pod(node_name=None, phase="Pending", ready=False, unschedulable=True)],
            Phase.FAILED,
            ["DeletePod", "PatchStatus"],
        ),
        (
            "group idle → pod released",
            issued(
                clients=3,
                status=status(Phase.READY, media=MEDIA1, presence=present(0, at(minutes=1))),
            ),
            at(minutes=12),
            [media_pod()],
            Phase.IDLE,
            ["DeletePod", "PatchStatus"],
        ),
        (
            "group rejoin after idle → pod again",
            issued(
                clients=3,
                status=status(
                    Phase.IDLE, media={"incarnation": 1}, presence=present(1, at(minutes=30))
                ),
            ),
            at(minutes=30),
            [],
            Phase.SCHEDULED,
            ["EnsureMediaSecret", "PatchStatus", "CreateMediaPod"],
        ),
        (
            "Failed sticks while the spec is unchanged",
            issued(clients=3, status=status(Phase.FAILED, reason="NoCapacityInRegion")),
            at(60),
            [],
            Phase.FAILED,
            ["PatchStatus"],
        ),
        (
            "Failed retries after a spec change",
            issued(
                clients=3, generation=2, status=status(Phase.FAILED, reason="NoCapacityInRegion")
            ),
            at(60),
            [],
            Phase.SCHEDULED,
            ["EnsureMediaSecret", "PatchStatus", "CreateMediaPod"],
        ),
        (
            "expiry tears down in order",
            issued(clients=3, note="x", status=status(Phase.READY, media=MEDIA1)),
            at(hours=24),
            [media_pod()],
            Phase.EXPIRED,
            ["WriteUsageRecord", "DeletePod", "RevokeCodes", "ScrubSession", "PatchStatus"],
        ),
        (
            "expired: wait for retention",
            issued(status=status(Phase.EXPIRED, billing={"usageRecord": "vs-x"})),
            at(hours=24, minutes=30),
            [],
            Phase.EXPIRED,
            [],
        ),
        (
            "expired past retention → delete",
            issued(status=status(Phase.EXPIRED, billing={"usageRecord": "vs-x"})),
            at(hours=25),
            [],
            Phase.EXPIRED,
            ["DeleteSession"],
        ),
        (
            "expired but record not in status → teardown again",
            issued(status=status(Phase.EXPIRED)),
            at(hours=25),
            [],
            Phase.EXPIRED,
            ["WriteUsageRecord", "RevokeCodes", "ScrubSession", "PatchStatus"],
        ),
        (
            "deleted → record, revoke, release finalizer",
            issued(status=status(Phase.READY), deletion=at(30)),
            at(31),
            [],
            Phase.READY,
            ["WriteUsageRecord", "RevokeCodes", "ReleaseFinalizer"],
        ),
        (
            "deleted after expiry: only release",
            issued(
                status=status(Phase.EXPIRED, billing={"usageRecord": "vs-x"}), deletion=at(hours=25)
            ),
            at(hours=25),
            [],
            Phase.EXPIRED,
            ["RevokeCodes", "ReleaseFinalizer"],
        ),
        (
            "deleted without finalizer: nothing",
            session_body(deletion=at(1)),
            at(1),
            [],
            Phase.SCHEDULED,
            [],
        ),
    ],
)
def test_lifecycle_table(
    name: str,
    body: dict[str, Any],
    now: datetime,
    pods: list[MediaPod],
    phase: Phase,
    actions: list[str],
) -> None:
    p = plan(body, now, pods=pods)
    assert (p.phase, kinds(p)) == (phase, actions), name


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
    create = next(i for i, a in enumerate(p.actions) if isinstance(a, lc.CreateMediaPod))
    before = p.actions[create - 1]
    assert isinstance(before, lc.PatchStatus)
    assert before.patch["status"]["media"]["podName"].endswith("-media-1")


def test_no_allowed_node_fails_closed_even_with_foreign_capacity() -> None:
    only_foreign = {"ams": NODES["ams"]}
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1), nodes=only_foreign)
    assert p.phase is Phase.FAILED
    assert p.placement_failed
    assert not any(isinstance(a, lc.CreateMediaPod) for a in p.actions)
    assert status_patch(p)["reason"] == "NoCapacityInRegion"
    assert any(e.type == "Warning" for e in p.events)


def test_all_ports_taken_fails_closed() -> None:
    uses = [PortUse(port, "fra") for port in range(10000, 10010)]
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1), uses=uses)
    assert p.phase is Phase.FAILED


def test_allocated_port_avoids_ports_in_use() -> None:
    uses = [PortUse(port, None) for port in range(10000, 10009)]
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1), uses=uses)
    create = next(a for a in p.actions if isinstance(a, lc.CreateMediaPod))
    assert create.turn_port == 10009


def test_usage_record_contents_have_no_client_data() -> None:
    body = issued(
        clients=3,
        note="Frau Beispiel",
        status=status(
            Phase.READY,
            presence=present(3),
            billing={
                "billableSeconds": 61,
                "billedMinutes": 2,
                "checkpointAt": iso(at(hours=24)),
                "billingAtCheckpoint": False,
            },
        ),
    )
    p = plan(body, at(hours=24, seconds=5))
    record = next(a for a in p.actions if isinstance(a, lc.WriteUsageRecord)).body
    assert record["metadata"]["name"] == "vs-11111111-2222-3333-4444-555555555555"
    assert record["metadata"]["namespace"] == CFG.usage_namespace != "praxis"
    spec = record["spec"]
    assert (spec["billedMinutes"], spec["durationSeconds"], spec["peakParticipants"]) == (2, 61, 3)
    assert (spec["practiceNamespace"], spec["host"], spec["date"], spec["region"]) == (
        "praxis",
        "dr-muster",
        "2026-11-21",
        "de",
    )
    text = repr(record)
    assert "klient" not in text
    assert "Beispiel" not in text


def test_billing_checkpoint_written_when_presence_changes() -> None:
    body = issued(
        status=status(
            Phase.READY,
            presence=present(2, at(0)),
            billing={"checkpointAt": iso(at(-10)), "billingAtCheckpoint": False},
        )
    )
    p = plan(body, at(45))
    billing = status_patch(p)["billing"]
    assert (
        billing["billableSeconds"],
        billing["billedMinutes"],
        billing["billingAtCheckpoint"],
    ) == (45, 1, True)
    assert p.next_wakeup is not None
    assert p.next_wakeup <= at(45 + 30)


def test_wakeups_are_absolute_deadlines() -> None:
    assert plan(session_body(), at(minutes=-30)).next_wakeup == at(minutes=-5)
    p = plan(issued(status=status(Phase.READY)), at(1))
    assert p.next_wakeup == at(minutes=10)  # no-show idle deadline
    p = plan(issued(status=status(Phase.IDLE)), at(minutes=11))
    assert p.next_wakeup == at(hours=24)


def test_status_never_contains_codes_or_note() -> None:
    p = plan(issued(note="vertraulich", status=status(Phase.READY)), at(1))
    assert "vertraulich" not in repr(p.actions)
    assert KEY not in repr(p.actions)


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


def test_one_event_per_step() -> None:
    """MediaPodCreated already says the call is starting: no second event for the phase; routine
    phases (Scheduled, Ready) post none at all."""
    p = plan(issued(clients=3, status=status(Phase.SCHEDULED)), at(1))
    assert [e.reason for e in p.events] == ["MediaPodCreated"]
    one_to_one = plan(issued(clients=1, status=status(Phase.SCHEDULED)), at(1))
    assert one_to_one.phase is Phase.READY
    assert one_to_one.events == (), "routine phases post no event"


def test_urgent_sessions_are_the_ones_waiting_for_a_step() -> None:
    new = Session.parse(issued(clients=1, status={}))
    settled = Session.parse(issued(clients=1, status=status(Phase.READY)))
    assert lc.urgent(new)
    assert not lc.urgent(settled)
    changed = issued(clients=1, status=status(Phase.READY))
    changed["metadata"]["generation"] = 2
    assert lc.urgent(Session.parse(changed))

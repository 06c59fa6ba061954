"""The phase machine, scenario by scenario: observed state + now → plan."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest
from operator_builders import KEY, at, iso, session_body
from planning import CFG, MEDIA1, issued, kinds, media_pod, plan, present, status, status_patch
from sprechzimmer.contract import (
    FINALIZER,
    LABEL_CLIENT_LINK_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    Phase,
    SecretKey,
)
from sprechzimmer.contract.keys import code_digest, link_digest
from sprechzimmer.operator.core import actions as act
from sprechzimmer.operator.core import lifecycle as lc
from sprechzimmer.operator.core.model import MediaPod, Session

pytestmark = pytest.mark.unit


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


def test_a_new_session_carries_its_codes_secret_and_the_labels_to_finish() -> None:
    p = plan(session_body(), at(minutes=-1))
    [issue] = [a for a in p.actions if isinstance(a, act.IssueCodes)]
    data = issue.secret["stringData"]
    assert data[SecretKey.HOST_LINK.value] == (
        f"{CFG.signaling_url}/j#{data[SecretKey.HOST_LINK_TOKEN.value]}"
    )
    assert data[SecretKey.HOST_CODE.value] not in repr(p.actions)
    # The API answers with base64 ``data``: the labels are those of the stored codes.
    stored = {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    meta = issue.metadata_patch(stored)["metadata"]
    key = KEY.encode()
    assert meta["finalizers"] == [FINALIZER]
    assert meta["resourceVersion"] == "100"
    assert (
        meta["labels"][LABEL_HOST_CODE_DIGEST]
        == issue.digests[0]
        == code_digest(key, "dr-muster", data[SecretKey.HOST_CODE.value])
    )
    assert meta["labels"][LABEL_CLIENT_LINK_DIGEST] == link_digest(
        key, data[SecretKey.CLIENT_LINK_TOKEN.value]
    )


def test_codes_live_for_the_host_elsewhere_are_never_drawn_but_our_own_may_be() -> None:
    first = plan(session_body(), at(minutes=-1))
    [issue] = [a for a in first.actions if isinstance(a, act.IssueCodes)]
    elsewhere = plan(session_body(), at(minutes=-1), host_digests={("praxis", "x"): issue.digests})
    [other] = [a for a in elsewhere.actions if isinstance(a, act.IssueCodes)]
    assert set(other.digests).isdisjoint(issue.digests)
    ours = plan(session_body(), at(minutes=-1), host_digests={("praxis", "termin"): issue.digests})
    [again] = [a for a in ours.actions if isinstance(a, act.IssueCodes)]
    assert again.digests == issue.digests

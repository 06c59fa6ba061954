"""The reconciler executes plans: order of API calls, what it does with the API's answers,
claims and reservations before the first await, backoff. With fakes of our own Protocols
(``fakes.FakeKube``, ``fakes.FakeMetrics``); the real API server path is the cluster tests'."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fakes import FakeClock, FakeKube, FakeMetrics
from operator_builders import KEY, at, session_body, settings
from sprechzimmer.contract import (
    FINALIZER,
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    LABEL_HOST_LINK_DIGEST,
    LABEL_SESSION_UID,
    USAGE_RECORD_KIND,
    SecretKey,
)
from sprechzimmer.contract.keys import code_digest, link_digest
from sprechzimmer.contract.mediapod import MediaEnv
from sprechzimmer.operator.ports import Retry
from sprechzimmer.operator.reconciler import Reconciler

pytestmark = pytest.mark.unit
CFG = settings(host_port_min=10000, host_port_max=10009)
NODE = {
    "metadata": {"name": "fra", "labels": {"topology.kubernetes.io/region": "de-fra"}},
    "spec": {},
    "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.1"}]},
}
ISSUED = {LABEL_HOST_CODE_DIGEST: "a" * 32, LABEL_CLIENT_CODE_DIGEST: "b" * 32}


def scripted(*codes: str) -> Callable[[int], bytes]:
    """A "CSPRNG" drawing the given codes (``abc-def-012``) in order, then codes and link tokens
    that count up."""
    queue = [bytes.fromhex(c.replace("-", "") + "0") for c in codes]
    counter = itertools.count(1)

    def random_bytes(n: int) -> bytes:
        if n == 5 and queue:
            return queue.pop(0)
        return next(counter).to_bytes(n, "big")

    return random_bytes


def make(
    kube: FakeKube,
    now: datetime,
    *,
    random_bytes: Callable[[int], bytes] | None = None,
    clock: FakeClock | None = None,
) -> tuple[Reconciler, FakeMetrics]:
    metrics = FakeMetrics()
    reconciler = Reconciler(
        kube,
        CFG,
        metrics,
        identity="op-test",
        priority=1,
        clock=clock or FakeClock(),
        wallclock=lambda: now,
        random_bytes=random_bytes or scripted("111-111-111", "222-222-222"),
    )
    reconciler.on_node("ADDED", NODE)
    return reconciler, metrics


def add_session(kube: FakeKube, reconciler: Reconciler, name: str = "termin", **kw: Any) -> Any:
    body = session_body(**kw)
    body["metadata"]["name"] = name
    body["metadata"]["uid"] = f"uid-{name}"
    stored = kube.put({"apiVersion": "sprechzimmer.io/v1alpha1", **body})
    reconciler.on_session("ADDED", stored)
    return ("praxis", name)


def stored_code(secret: dict[str, Any], key: SecretKey) -> str:
    return base64.b64decode(secret["data"][key.value]).decode()


async def test_new_session_one_secret_one_metadata_patch_one_status_patch() -> None:
    kube = FakeKube()
    reconciler, metrics = make(kube, at(minutes=-1))
    key = add_session(kube, reconciler)
    await reconciler.reconcile(key)

    assert kube.calls == [
        ("create", "Secret", "termin-codes"),
        ("patch", "VideoSession", "termin"),
        ("patch-status", "VideoSession", "termin"),
    ]
    session = kube.get("VideoSession", "praxis", "termin")
    secret = kube.get("Secret", "praxis", "termin-codes")
    assert session is not None
    assert secret is not None
    assert stored_code(secret, SecretKey.HOST_CODE) == "111-111-111"
    labels = session["metadata"]["labels"]
    assert labels[LABEL_HOST_CODE_DIGEST] == code_digest(KEY.encode(), "dr-muster", "111-111-111")
    token = stored_code(secret, SecretKey.HOST_LINK_TOKEN)
    assert labels[LABEL_HOST_LINK_DIGEST] == link_digest(KEY.encode(), token)
    assert session["metadata"]["finalizers"] == [FINALIZER]
    assert session["status"]["phase"] == "Ready"
    # The index learned the labels from the patch's answer.
    assert set(reconciler.index.digests_of_host("dr-muster")[key]) == {
        labels[LABEL_HOST_CODE_DIGEST],
        labels[LABEL_CLIENT_CODE_DIGEST],
    }
    [(region, plan)] = metrics.plans
    assert (region, plan.first_ready) == ("de", None)  # created an hour before its window


async def test_codes_secret_left_by_an_earlier_attempt_is_the_sessions() -> None:
    kube = FakeKube()
    reconciler, _ = make(kube, at(minutes=-1))
    key = add_session(kube, reconciler)
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "termin-codes", "namespace": "praxis"},
            "stringData": {
                SecretKey.HOST_CODE.value: "abc-abc-abc",
                SecretKey.CLIENT_CODE.value: "def-def-def",
                SecretKey.HOST_LINK_TOKEN.value: "1" * 64,
                SecretKey.CLIENT_LINK_TOKEN.value: "2" * 64,
            },
        }
    )
    await reconciler.reconcile(key)
    session = kube.get("VideoSession", "praxis", "termin")
    assert session is not None
    labels = session["metadata"]["labels"]
    assert labels[LABEL_HOST_CODE_DIGEST] == code_digest(KEY.encode(), "dr-muster", "abc-abc-abc")
    assert labels[LABEL_HOST_LINK_DIGEST] == link_digest(KEY.encode(), "1" * 64)
    assert reconciler.index.digests_of_host("dr-muster")[key] == (
        code_digest(KEY.encode(), "dr-muster", "abc-abc-abc"),
        code_digest(KEY.encode(), "dr-muster", "def-def-def"),
    )


async def test_two_sessions_of_one_host_planned_at_once_never_share_a_code() -> None:
    kube = FakeKube()
    # Both plans draw 111 first: the second must see the first's claim, made before any await.
    draws = scripted(*["111-111-111", "222-222-222"] * 2, "333-333-333", "444-444-444")
    reconciler, _ = make(kube, at(minutes=-1), random_bytes=draws)
    first = add_session(kube, reconciler, "eins")
    second = add_session(kube, reconciler, "zwei")
    await asyncio.gather(reconciler.reconcile(first), reconciler.reconcile(second))
    codes = set()
    for name in ("eins", "zwei"):
        secret = kube.get("Secret", "praxis", f"{name}-codes")
        assert secret is not None
        codes |= {
            stored_code(secret, SecretKey.HOST_CODE),
            stored_code(secret, SecretKey.CLIENT_CODE),
        }
    assert len(codes) == 4


async def test_group_call_records_its_pod_in_status_before_creating_it() -> None:
    kube = FakeKube()
    reconciler, metrics = make(kube, at(1))
    status = {"phase": "Scheduled", "observedGeneration": 1, "codesSecretName": "termin-codes"}
    key = add_session(
        kube, reconciler, clients=3, labels=ISSUED, finalizers=[FINALIZER], status=status
    )
    await reconciler.reconcile(key)

    pod_name = "vs-uid-termin-media-1"
    assert kube.calls == [
        ("create", "Secret", "vs-uid-termin-media"),
        ("patch-status", "VideoSession", "termin"),
        ("create", "Pod", pod_name),
    ]
    session = kube.get("VideoSession", "praxis", "termin")
    pod = kube.get("Pod", "praxis", pod_name)
    assert session is not None
    assert pod is not None
    assert session["status"]["media"]["podName"] == pod_name
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env[MediaEnv.EXPIRES_AT] == "2026-11-22T10:00:00Z"
    port = session["status"]["media"]["turnPort"]
    assert env[MediaEnv.TURN_PORT] == str(port)
    # The pod, not a reservation, now holds its port; the metric counted one new pod.
    assert reconciler.index.pods[("praxis", pod_name)].turn_port == port
    assert ("media_pod_created", "de") in metrics.seen


async def test_teardown_keeps_the_bill_an_earlier_attempt_wrote() -> None:
    kube = FakeKube()
    reconciler, metrics = make(kube, at(hours=24, seconds=5))
    status = {"phase": "Ready", "observedGeneration": 1, "codesSecretName": "termin-codes"}
    key = add_session(
        kube, reconciler, labels=ISSUED, finalizers=[FINALIZER], status=status, note="privat"
    )
    earlier = {"durationSeconds": 999, "billedMinutes": 17}
    kube.put(
        {
            "apiVersion": "sprechzimmer.io/v1alpha1",
            "metadata": {"name": "vs-uid-termin", "namespace": CFG.usage_namespace},
            "spec": earlier,
        },
        USAGE_RECORD_KIND,
    )
    await reconciler.reconcile(key)

    assert kube.calls == [
        ("create", USAGE_RECORD_KIND, "vs-uid-termin"),
        ("delete", "Secret", "termin-codes"),
        ("delete", "Secret", "vs-uid-termin-media"),
        ("patch", "VideoSession", "termin"),
        ("patch-status", "VideoSession", "termin"),  # Expired, last
    ]
    session = kube.get("VideoSession", "praxis", "termin")
    assert session is not None
    billing = session["status"]["billing"]
    assert (billing["billableSeconds"], billing["billedMinutes"]) == (999, 17)
    assert session["status"]["phase"] == "Expired"
    assert "note" not in session["spec"]
    assert not session["metadata"]["labels"]
    assert "usage_record_written" not in metrics.names()  # found, not written


async def test_deletion_writes_the_record_before_releasing_the_finalizer() -> None:
    kube = FakeKube()
    reconciler, metrics = make(kube, at(31))
    status = {"phase": "Ready", "observedGeneration": 1, "codesSecretName": "termin-codes"}
    key = add_session(
        kube,
        reconciler,
        labels=ISSUED,
        finalizers=[FINALIZER, "example.com/other"],
        status=status,
        deletion=at(30),
    )
    await reconciler.reconcile(key)
    verbs = [(verb, kind) for verb, kind, _ in kube.calls]
    assert verbs.index(("create", USAGE_RECORD_KIND)) < verbs.index(("patch", "VideoSession"))
    session = kube.get("VideoSession", "praxis", "termin")
    assert session is not None
    assert session["metadata"]["finalizers"] == ["example.com/other"]
    [record] = kube.of_kind(USAGE_RECORD_KIND)
    assert record["metadata"]["namespace"] == CFG.usage_namespace
    assert ("usage_record_written", "Deleted") in metrics.seen


async def test_a_failing_reconcile_backs_off_on_the_clock() -> None:
    kube = FakeKube()
    clock = FakeClock()
    reconciler, metrics = make(kube, at(minutes=-1), clock=clock)
    key = add_session(kube, reconciler)
    for _ in range(2):
        kube.fail_next[("create", "Secret")] = Retry("busy")
        await reconciler._reconcile_one(key)
    assert metrics.names().count("reconcile_error") == 2
    clock.advance(0.49)
    assert reconciler.timers.due() == []  # the second failure waits 0.5 s
    clock.advance(0.01)
    assert reconciler.timers.due() == [key]
    await reconciler._reconcile_one(key)
    session = kube.get("VideoSession", "praxis", "termin")
    assert session is not None
    assert session["status"]["phase"] == "Ready"


async def test_the_sweep_deletes_old_records_of_the_usage_namespace_only() -> None:
    kube = FakeKube()
    reconciler, _ = make(kube, at(hours=24 * 100))

    def record(name: str, namespace: str, created: str) -> None:
        meta = {"name": name, "namespace": namespace, "creationTimestamp": created}
        kube.put({"apiVersion": "sprechzimmer.io/v1alpha1", "metadata": meta}, USAGE_RECORD_KIND)

    record("vs-old", CFG.usage_namespace, "2026-08-01T00:00:00Z")  # > 90 days
    record("vs-new", CFG.usage_namespace, "2027-02-20T00:00:00Z")
    record("vs-elsewhere", "praxis", "2026-08-01T00:00:00Z")  # not the operator's to sweep
    await reconciler.sweep_usage_records()
    left = {r["metadata"]["name"] for r in kube.of_kind(USAGE_RECORD_KIND)}
    assert left == {"vs-new", "vs-elsewhere"}


async def test_watch_events_queue_the_sessions_they_concern() -> None:
    kube = FakeKube()
    reconciler, _ = make(kube, at(1))
    reconciler.active = True
    presence = {"connected": 2, "vouchedBy": "sig-0", "changedAt": "2026-11-21T10:00:00Z"}
    vouched = add_session(kube, reconciler, "gruppe", clients=3, status={"presence": presence})
    other = add_session(kube, reconciler, "eins")
    await drain(reconciler)
    lease = {"metadata": {"name": "sig-0", "namespace": CFG.presence_namespace}, "spec": {}}
    reconciler.on_lease("ADDED", lease)
    reconciler.on_lease("MODIFIED", lease)  # a renewal: only deadlines move, nothing queued
    assert await drain(reconciler) == [vouched]
    reconciler.on_lease("ADDED", {**lease, "metadata": {**lease["metadata"], "namespace": "x"}})
    assert await drain(reconciler) == []
    pod = {
        "metadata": {"name": "p", "namespace": "praxis", "labels": {LABEL_SESSION_UID: "uid-eins"}},
        "spec": {"nodeName": "fra"},
        "status": {"phase": "Running"},
    }
    reconciler.on_pod("ADDED", pod)
    assert await drain(reconciler) == [other]
    reconciler.on_node("MODIFIED", NODE)  # unchanged: nothing to do
    assert await drain(reconciler) == []
    reconciler.on_node("MODIFIED", {**NODE, "spec": {"unschedulable": True}})
    assert await drain(reconciler) == [other]


async def drain(reconciler: Reconciler) -> list[tuple[str, str]]:
    taken = []
    while len(reconciler.queue):
        key = await reconciler.queue.take()
        taken.append(key)
        reconciler.queue.done(key)
    return taken

"""The lifecycle end to end on the real control plane (KWOK nodes), one operator per test."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Pod, Secret
from sprechzimmer.contract import (
    FINALIZER,
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_CLIENT_LINK_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    LABEL_HOST_LINK_DIGEST,
    REGION_LABEL,
    SecretKey,
    is_valid_code,
)
from sprechzimmer.contract.keys import code_digest, link_digest
from sprechzimmer.contract.mediapod import CONTROL_PORT
from sprechzimmer.contract.rfc3339 import parse_time
from support import (
    SHARED_KEY,
    OperatorProcess,
    VideoSession,
    create_session,
    delete_sessions,
    get_session,
    media_pods,
    now,
    operators,
    phase_is,
    renew_lease,
    seconds_between,
    secret_exists,
    set_presence,
    status,
    usage_records,
    wait_for,
)

pytestmark = pytest.mark.cluster
StartOperator = Callable[..., OperatorProcess]


@pytest.fixture
def start_operator(
    cluster: Any, namespace: str, kube: Client, tmp_path: Path
) -> Iterator[StartOperator]:
    """Operators for one test; before they stop, the test's sessions are deleted through
    the finalizer path, so nothing is left waiting for an operator after the test."""
    with operators(cluster.kubeconfig, tmp_path) as start:
        yield start
        delete_sessions(kube, namespace)


def standalone(
    start: StartOperator, namespace: str, *, de: list[str] | None = None, **settings: str
) -> OperatorProcess:
    values = {
        "standalone": "true",
        "presence_namespace": namespace,
        "usage_namespace": namespace,
        # Long, so a no-show's media pod stays while a slow machine checks it; the idle test
        # sets its own.
        "idle_timeout": "600",
        "retention": "3",
        "billing_checkpoint_interval": "2",
        **settings,
    }
    if de is not None:
        values["region_allow_list"] = json.dumps({"de": de, "at": ["at-vie"]})
    op = start(**values)
    op.wait_leader()
    return op


def codes_of(kube: Client, namespace: str, secret: str) -> tuple[str, str]:
    data = kube.get(Secret, secret, namespace=namespace).data or {}
    return (
        base64.b64decode(data[SecretKey.HOST_CODE.value]).decode(),
        base64.b64decode(data[SecretKey.CLIENT_CODE.value]).decode(),
    )


def test_one_to_one_lifecycle(start_operator: StartOperator, namespace: str, kube: Client) -> None:
    op = standalone(start_operator, namespace, idle_timeout="4")
    create_session(kube, namespace, "eins", note="nur für die Praxis")
    wait_for("Ready", phase_is(kube, namespace, "eins", "Ready"))
    body = get_session(kube, namespace, "eins")
    assert body is not None
    st = body["status"]
    assert FINALIZER in body["metadata"]["finalizers"]
    host_code, client_code = codes_of(kube, namespace, st["codesSecretName"])
    assert is_valid_code(host_code)
    assert is_valid_code(client_code)
    assert host_code != client_code
    labels = body["metadata"]["labels"]
    key = SHARED_KEY.encode()
    assert labels[LABEL_HOST_CODE_DIGEST] == code_digest(key, "dr-muster", host_code)
    assert labels[LABEL_CLIENT_CODE_DIGEST] == code_digest(key, "dr-muster", client_code)
    secret = kube.get(Secret, st["codesSecretName"], namespace=namespace).data or {}
    for token_key, link_key, label in (
        (SecretKey.HOST_LINK_TOKEN, SecretKey.HOST_LINK, LABEL_HOST_LINK_DIGEST),
        (SecretKey.CLIENT_LINK_TOKEN, SecretKey.CLIENT_LINK, LABEL_CLIENT_LINK_DIGEST),
    ):
        token = base64.b64decode(secret[token_key.value]).decode()
        assert base64.b64decode(secret[link_key.value]).decode().endswith(f"/j#{token}")
        assert labels[label] == link_digest(key, token)
    assert st["join"]["mode"] == "PeerToPeer"
    assert not media_pods(kube, namespace)
    assert host_code not in json.dumps(st)
    assert host_code not in op.log()

    renew_lease(kube, namespace, "signaling-0")
    set_presence(kube, namespace, "eins", 2, lease="signaling-0")
    wait_for("Active", phase_is(kube, namespace, "eins", "Active"))
    set_presence(kube, namespace, "eins", 0, lease="signaling-0", peak=2)
    wait_for("Idle after the idle timeout", phase_is(kube, namespace, "eins", "Idle"), timeout=20)
    set_presence(kube, namespace, "eins", 1, lease="signaling-0", peak=2)
    wait_for("Ready again after rejoining", phase_is(kube, namespace, "eins", "Ready"))
    assert "nur für die Praxis" not in op.log()


def test_group_lifecycle_pins_media_to_region(
    start_operator: StartOperator, namespace: str, kube: Client, region: Callable[..., str]
) -> None:
    de = region(2)
    standalone(start_operator, namespace, de=[de])
    session = create_session(kube, namespace, "gruppe", clients=3)
    wait_for(
        "Ready with a media endpoint",
        lambda: status(kube, namespace, "gruppe").get("join", {}).get("mediaEndpoint"),
    )
    st = status(kube, namespace, "gruppe")
    assert st["phase"] == "Ready"
    [pod] = media_pods(kube, namespace, session["metadata"]["uid"])
    assert pod.spec is not None
    assert pod.metadata is not None
    assert pod.spec.nodeName is not None
    assert pod.spec.nodeName.startswith(de)
    port = st["media"]["turnPort"]
    assert st["join"]["mediaEndpoint"].endswith(f":{port}")
    assert st["media"]["nodeRegion"] == de
    assert pod.status is not None
    assert st["media"]["controlEndpoint"] == f"{pod.status.podIP}:{CONTROL_PORT}"
    turn = next(c for c in pod.spec.containers if c.name == "turn")
    assert {p.hostPort for p in turn.ports or []} == {port}
    assert pod.metadata.ownerReferences
    assert pod.metadata.ownerReferences[0].uid == session["metadata"]["uid"]


def test_fail_closed_when_region_is_full(
    start_operator: StartOperator, namespace: str, kube: Client, region: Callable[..., str]
) -> None:
    """Each DE node fits one media pod (2 containers x 700m on 2 CPUs); the third group call
    fails instead of going abroad, although AT and NL nodes have room."""
    de = region(2, cpu="2")
    op = standalone(
        start_operator,
        namespace,
        de=[de],
        placement_grace="2",
        idle_timeout="10m",
        media_resources=json.dumps({"requests_cpu": "700m", "limits_cpu": "700m"}),
    )
    for name in ("a", "b"):
        create_session(kube, namespace, name, clients=2)
    for name in ("a", "b"):
        wait_for(f"{name} Ready", phase_is(kube, namespace, name, "Ready"))
    create_session(kube, namespace, "c", clients=2)
    wait_for("c Failed", phase_is(kube, namespace, "c", "Failed"))
    st = status(kube, namespace, "c")
    assert st["reason"] == "NoCapacityInRegion"
    for pod in media_pods(kube, namespace):
        node = kube.get(type(pod), pod.metadata.name, namespace=namespace).spec.nodeName  # type: ignore[union-attr]
        assert node is None or node.startswith(de)
    wait_for(
        "a placement failure counted",
        lambda: op.metric("sprechzimmer_operator_placement_failures_total", region="de") >= 1,
    )
    events = op.metrics_text()
    assert "NoCapacityInRegion" not in events  # reasons are not metric labels values with ids


def test_host_ports_never_collide_on_few_nodes(
    start_operator: StartOperator, namespace: str, kube: Client, region: Callable[..., str]
) -> None:
    de = region(2)
    standalone(start_operator, namespace, de=[de], host_port_min="10000", host_port_max="10004")
    names = [f"g{i}" for i in range(9)]
    for name in names:  # 9 calls, 5 ports, 2 nodes: every pod needs a per-node port
        create_session(kube, namespace, name, clients=2)
    for name in names:
        wait_for(f"{name} Ready", phase_is(kube, namespace, name, "Ready"), timeout=60)
    seen: dict[tuple[str, int], str] = {}
    for pod in media_pods(kube, namespace):
        assert pod.spec is not None
        assert pod.metadata is not None
        turn = next(c for c in pod.spec.containers if c.name == "turn")
        port = (turn.ports or [])[0].hostPort
        assert port is not None
        assert 10000 <= port <= 10004
        key = (pod.spec.nodeName or "", port)
        assert key not in seen, f"{pod.metadata.name} and {seen[key]} share {key}"
        seen[key] = pod.metadata.name or ""
    assert len(seen) == 9


def test_dead_or_deleted_media_pod_is_recreated(
    cluster: Any,
    start_operator: StartOperator,
    namespace: str,
    kube: Client,
    region: Callable[..., str],
) -> None:
    de = region(2)
    standalone(start_operator, namespace, de=[de])
    uid = create_session(kube, namespace, "gruppe", clients=2)["metadata"]["uid"]
    wait_for("Ready", phase_is(kube, namespace, "gruppe", "Ready"))
    first = status(kube, namespace, "gruppe")["media"]["podName"]
    kube.delete(Pod, first, namespace=namespace)
    wait_for(
        "a second pod",
        lambda: status(kube, namespace, "gruppe").get("media", {}).get("podName", first) != first,
    )
    wait_for(
        "Ready again",
        lambda: (
            phase_is(kube, namespace, "gruppe", "Ready")()
            and status(kube, namespace, "gruppe")["join"].get("mediaEndpoint")
        ),
    )
    second = status(kube, namespace, "gruppe")["media"]["podName"]
    cluster.fail_pod(namespace, second)
    wait_for(
        "a third pod",
        lambda: (
            status(kube, namespace, "gruppe").get("media", {}).get("podName") not in (first, second)
        ),
    )
    wait_for(
        "only one live media pod",
        lambda: (
            len(
                [
                    p
                    for p in media_pods(kube, namespace, uid)
                    if p.status and p.status.phase == "Running"
                ]
            )
            == 1
        ),
    )
    wait_for("Ready after the crash", phase_is(kube, namespace, "gruppe", "Ready"))


def test_expiry_tears_everything_down(
    start_operator: StartOperator, namespace: str, kube: Client, region: Callable[..., str]
) -> None:
    de = region(1)
    op = standalone(start_operator, namespace, de=[de], retention="4")
    uid = create_session(kube, namespace, "kurz", clients=2, ttl="8s", note="persönlich")[
        "metadata"
    ]["uid"]
    wait_for("Ready", phase_is(kube, namespace, "kurz", "Ready"))
    secret = status(kube, namespace, "kurz")["codesSecretName"]
    wait_for("Expired", phase_is(kube, namespace, "kurz", "Expired"), timeout=20)
    body = get_session(kube, namespace, "kurz")
    assert body is not None
    assert "note" not in body["spec"]
    assert LABEL_HOST_CODE_DIGEST not in (body["metadata"].get("labels") or {})
    assert LABEL_HOST_LINK_DIGEST not in (body["metadata"].get("labels") or {})
    assert not secret_exists(kube, namespace, secret)
    assert not secret_exists(kube, namespace, f"vs-{uid}-media")
    wait_for(
        "media pod gone",
        lambda: (
            not [
                p
                for p in media_pods(kube, namespace, uid)
                if not (p.metadata and p.metadata.deletionTimestamp)
            ]
        ),
    )
    [record] = usage_records(kube, namespace)
    assert record["metadata"]["name"] == f"vs-{uid}"
    assert record["spec"]["endReason"] == "Expired"
    wait_for(
        "deleted after the retention",
        lambda: get_session(kube, namespace, "kurz") is None,
        timeout=20,
    )
    assert len(usage_records(kube, namespace)) == 1
    assert op.metric("sprechzimmer_operator_expirations_total", region="de") == 1


def test_deletion_runs_the_finalizer(
    start_operator: StartOperator, namespace: str, kube: Client
) -> None:
    standalone(start_operator, namespace)
    uid = create_session(kube, namespace, "abgesagt")["metadata"]["uid"]
    wait_for("Ready", phase_is(kube, namespace, "abgesagt", "Ready"))
    secret = status(kube, namespace, "abgesagt")["codesSecretName"]

    kube.delete(VideoSession, "abgesagt", namespace=namespace)
    wait_for("gone", lambda: get_session(kube, namespace, "abgesagt") is None)
    [record] = usage_records(kube, namespace)
    assert record["metadata"]["name"] == f"vs-{uid}"
    assert record["spec"]["endReason"] == "Deleted"
    assert record["spec"]["billedMinutes"] == 0
    assert "participants" not in json.dumps(record)
    wait_for("codes Secret gone", lambda: not secret_exists(kube, namespace, secret))


def test_billing_counts_vouched_presence_only(
    start_operator: StartOperator, namespace: str, kube: Client
) -> None:
    standalone(start_operator, namespace)
    create_session(kube, namespace, "bill")
    create_session(kube, namespace, "stale")
    wait_for(
        "Ready",
        lambda: (
            phase_is(kube, namespace, "bill", "Ready")()
            and phase_is(kube, namespace, "stale", "Ready")()
        ),
    )
    renew_lease(kube, namespace, "signaling-live")
    renew_lease(kube, namespace, "signaling-dead", at=now().replace(year=2020))
    joined = set_presence(kube, namespace, "bill", 2, lease="signaling-live")
    set_presence(kube, namespace, "stale", 2, lease="signaling-dead")
    wait_for(
        "billing",
        lambda: status(kube, namespace, "bill").get("billing", {}).get("billingAtCheckpoint"),
    )
    wait_for(
        "some seconds billed",
        lambda: status(kube, namespace, "bill")["billing"]["billableSeconds"] >= 3,
        timeout=15,
    )
    left = set_presence(kube, namespace, "bill", 1, lease="signaling-live", peak=2)
    wait_for(
        "billing stopped",
        lambda: status(kube, namespace, "bill")["billing"]["billingAtCheckpoint"] is False,
    )
    billing = status(kube, namespace, "bill")["billing"]
    assert billing["billableSeconds"] == seconds_between(joined, left)
    assert billing["billedMinutes"] == 1
    first = billing["billableSeconds"]

    # A leave that signaling stamped before a checkpoint the operator wrote without seeing it
    # (stamp, then a slow patch) bills up to its stamp, not up to that checkpoint.
    rejoined = set_presence(kube, namespace, "bill", 2, lease="signaling-live")
    renew_lease(kube, namespace, "signaling-live")
    wait_for(
        "a checkpoint 4 s into the second stretch",
        lambda: (
            (cp := parse_time(status(kube, namespace, "bill")["billing"].get("checkpointAt")))
            is not None
            and cp >= rejoined.replace(microsecond=0) + timedelta(seconds=4)
        ),
        timeout=30,
    )
    checkpoint = parse_time(status(kube, namespace, "bill")["billing"]["checkpointAt"])
    assert checkpoint is not None
    late = set_presence(
        kube,
        namespace,
        "bill",
        1,
        lease="signaling-live",
        peak=2,
        changed=checkpoint - timedelta(seconds=2),
    )
    wait_for(
        "billing stopped again",
        lambda: status(kube, namespace, "bill")["billing"]["billingAtCheckpoint"] is False,
    )
    billing = status(kube, namespace, "bill")["billing"]
    assert billing["billableSeconds"] == first + seconds_between(rejoined, late), billing
    assert billing["billedMinutes"] == 1
    stale = status(kube, namespace, "stale")
    assert stale.get("phase") == "Ready"  # unvouched: nobody counts
    assert stale.get("billing", {}).get("billableSeconds", 0) == 0
    assert REGION_LABEL  # (contract import kept for readers: media regions are node labels)

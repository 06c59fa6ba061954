"""The operator under its own service account, bound exactly as operator/deploy/rbac.yaml says.

- ``test_lifecycle_under_the_operator_account``: a real token of the ServiceAccount, a
  kubeconfig with only that token, and the whole lifecycle (peering, usage-record sweep, codes,
  media Secret and pod, Ready, presence → billing, expiry → usage record → retention delete,
  cancellation → finalizer). A missing verb shows as a 403 in the log or a lifecycle that
  never completes: both fail the test.
- ``test_role_grants_exactly_what_the_code_uses``: the ClusterRole's rules equal ``API_ACCESS``
  and the Role's (in the operator's namespace, where usage records live) equal
  ``OWN_NAMESPACE_ACCESS`` (the lists of what the code calls, kept next to the calls), and the
  apiserver's own authorizer (SubjectAccessReview) allows exactly those verbs where they are
  granted — and nothing else on those resources, nor anything on what the operator never
  touches (usage records in a practice namespace included).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.models.authorization_v1 import ResourceAttributes, SubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SubjectAccessReview
from lightkube.resources.core_v1 import Event
from sprechzimmer.contract import FINALIZER
from sprechzimmer.operator.adapters.kube import API_ACCESS, OWN_NAMESPACE_ACCESS
from support import (
    UsageRecord,
    VideoSession,
    create_session,
    delete_sessions,
    get_session,
    media_pods,
    operators,
    phase_is,
    renew_lease,
    secret_exists,
    set_presence,
    status,
    usage_records,
    wait_for,
)

pytestmark = pytest.mark.cluster

RBAC = Path(__file__).resolve().parents[1] / "deploy" / "rbac.yaml"
SYSTEM_NAMESPACE = "sprechzimmer-system"
ACCOUNT = "sprechzimmer-operator"
USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{ACCOUNT}"
GROUPS = [
    "system:serviceaccounts",
    f"system:serviceaccounts:{SYSTEM_NAMESPACE}",
    "system:authenticated",
]
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@pytest.fixture(scope="module")
def operator_kubeconfig(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Apply rbac.yaml, mint a token for its ServiceAccount, write a kubeconfig with only it."""
    if cluster.kubectl("get", "namespace", SYSTEM_NAMESPACE, check=False).returncode:
        cluster.kubectl("create", "namespace", SYSTEM_NAMESPACE)
    cluster.kubectl("apply", "-f", str(RBAC))
    token = cluster.kubectl(
        "create", "token", ACCOUNT, "-n", SYSTEM_NAMESPACE, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    [entry] = admin["clusters"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [entry],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": ACCOUNT, "context": {"cluster": entry["name"], "user": ACCOUNT}}],
        "current-context": ACCOUNT,
    }
    path = tmp_path_factory.mktemp("rbac") / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture
def peering(cluster: Any) -> Iterator[str]:
    name = f"rbac-{secrets.token_hex(3)}"
    yield name
    cluster.kubectl("delete", "clusterkopfpeering", name, "--ignore-not-found")


def old_usage_record(namespace: str) -> dict[str, Any]:
    uid = f"old-{secrets.token_hex(4)}"
    return {
        "apiVersion": "sprechzimmer.io/v1alpha1",
        "kind": "UsageRecord",
        "metadata": {"name": f"vs-{uid}", "namespace": SYSTEM_NAMESPACE},
        "spec": {
            "practiceNamespace": namespace,
            "host": "dr-muster",
            "sessionUID": uid,
            "date": "2026-01-01",
            "billedMinutes": 1,
            "durationSeconds": 42,
            "region": "de",
        },
    }


def test_lifecycle_under_the_operator_account(
    cluster: Any,
    operator_kubeconfig: Path,
    peering: str,
    namespace: str,
    kube: Client,
    tmp_path: Path,
    region: Callable[..., str],
) -> None:
    de = region(1)
    # A record past its retention: the sweep on becoming active must list and delete it. The
    # operator keeps usage records in its own namespace (usage_namespace, default
    # SYSTEM_NAMESPACE, the namespace of the Role); the sweep there deletes every record older
    # than this test's retention of 1 s, so point SPRECHZIMMER_KUBECONFIG at no cluster whose
    # records in SYSTEM_NAMESPACE matter.
    stale = kube.create(UsageRecord.from_dict(old_usage_record(namespace)))  # type: ignore[attr-defined]
    settings = {
        "peering_name": peering,  # with peering: Kopf's and our peering calls run too
        "presence_namespace": namespace,
        "region_allow_list": json.dumps({"de": [de], "at": ["at-vie"]}),
        "idle_timeout": "3",
        "retention": "2",
        "billing_checkpoint_interval": "2",
        "usage_record_retention": "1s",
    }
    with operators(operator_kubeconfig, tmp_path) as start:
        op = start("rbac", **settings)
        op.wait_leader()
        wait_for(
            "the stale usage record swept",
            lambda: (
                stale.metadata.name
                not in {
                    r["metadata"]["name"]
                    for r in usage_records(kube, namespace, kept_in=SYSTEM_NAMESPACE)
                }
            ),  # type: ignore[attr-defined]
        )
        group = create_session(kube, namespace, "gruppe", clients=2, ttl="14s", note="privat")
        single = create_session(kube, namespace, "eins")
        wait_for(
            "group call Ready with a media endpoint",
            lambda: status(kube, namespace, "gruppe").get("join", {}).get("mediaEndpoint"),
        )
        wait_for("1:1 Ready", phase_is(kube, namespace, "eins", "Ready"))
        uid = group["metadata"]["uid"]
        assert secret_exists(kube, namespace, "gruppe-codes")
        assert secret_exists(kube, namespace, f"vs-{uid}-media")
        assert len(media_pods(kube, namespace, uid)) == 1

        renew_lease(kube, namespace, "signaling-rbac")
        set_presence(kube, namespace, "gruppe", 2, lease="signaling-rbac")
        wait_for(
            "billing",
            lambda: status(kube, namespace, "gruppe").get("billing", {}).get("billingAtCheckpoint"),
        )
        kube.delete(VideoSession, "eins", namespace=namespace)
        wait_for(
            "cancelled session gone (finalizer released)",
            lambda: get_session(kube, namespace, "eins") is None,
        )
        wait_for("Expired", phase_is(kube, namespace, "gruppe", "Expired"), timeout=30)
        wait_for("no media pod", lambda: not media_pods(kube, namespace, uid))
        assert not secret_exists(kube, namespace, "gruppe-codes")
        assert not secret_exists(kube, namespace, f"vs-{uid}-media")
        wait_for(
            "deleted after the retention", lambda: get_session(kube, namespace, "gruppe") is None
        )

        kept = usage_records(kube, namespace, kept_in=SYSTEM_NAMESPACE)
        records = {r["spec"]["sessionUID"]: r["spec"] for r in kept}
        assert set(records) == {uid, single["metadata"]["uid"]}
        assert records[uid]["endReason"] == "Expired"
        assert records[uid]["billedMinutes"] == 1
        assert records[single["metadata"]["uid"]]["endReason"] == "Deleted"
        events = list(kube.list(Event, namespace=namespace))
        assert any(e.reason == "Expired" for e in events), [e.reason for e in events]
        delete_sessions(kube, namespace)
        log = op.log()
    forbidden = [line for line in log.splitlines() if "forbidden" in line.lower() or " 403" in line]
    assert not forbidden, "\n".join(forbidden[:5])
    assert "reconcile crashed" not in log
    assert FINALIZER  # the finalizer path ran: "eins" could only go away through it


def _allowed(kube: Client, group: str, resource: str, verb: str, namespace: str | None) -> bool:
    plural, _, sub = resource.partition("/")
    review = kube.create(
        SubjectAccessReview(
            spec=SubjectAccessReviewSpec(
                user=USER,
                groups=GROUPS,
                resourceAttributes=ResourceAttributes(
                    group=group,
                    resource=plural,
                    subresource=sub or None,
                    verb=verb,
                    namespace=namespace,
                ),
            )
        )
    )
    return bool(review.status and review.status.allowed)


def _granted(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule, rule
        assert "nonResourceURLs" not in rule, rule
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def test_role_grants_exactly_what_the_code_uses(
    operator_kubeconfig: Path, namespace: str, kube: Client
) -> None:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    [cluster_role] = [d for d in docs if d["kind"] == "ClusterRole"]
    assert _granted(cluster_role) == {k: set(v) for k, v in API_ACCESS.items()}
    [role] = [d for d in docs if d["kind"] == "Role"]
    assert role["metadata"]["namespace"] == SYSTEM_NAMESPACE
    assert _granted(role) == {k: set(v) for k, v in OWN_NAMESPACE_ACCESS.items()}
    subject = {"kind": "ServiceAccount", "name": ACCOUNT, "namespace": SYSTEM_NAMESPACE}
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        [binding] = [d for d in docs if d["kind"] == kind]
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == role_kind

    # The apiserver agrees: exactly these verbs, in a practice namespace and cluster-wide, and
    # usage records only in the operator's own namespace.
    wrong = []
    for access, where in ((API_ACCESS, namespace), (OWN_NAMESPACE_ACCESS, SYSTEM_NAMESPACE)):
        for (group, resource), verbs in access.items():
            scope = None if resource in ("nodes", "clusterkopfpeerings") else where
            for verb in VERBS:
                if _allowed(kube, group, resource, verb, scope) != (verb in verbs):
                    wrong.append(f"{verb} {resource}.{group or 'core'} in {scope}")
    for group, resource in OWN_NAMESPACE_ACCESS:
        for verb in VERBS:
            if _allowed(kube, group, resource, verb, namespace):
                wrong.append(f"{verb} {resource}.{group} in a practice namespace")
    assert not wrong, wrong
    # Nothing the operator never touches.
    for group, resource, verb in [
        ("", "configmaps", "get"),
        ("", "namespaces", "list"),
        ("", "serviceaccounts", "create"),
        ("", "serviceaccounts/token", "create"),
        ("", "pods/exec", "create"),
        ("", "pods/log", "get"),
        ("", "services", "create"),
        ("apps", "deployments", "create"),
        ("rbac.authorization.k8s.io", "clusterroles", "escalate"),
        ("rbac.authorization.k8s.io", "rolebindings", "create"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("events.k8s.io", "events", "create"),
        ("coordination.k8s.io", "leases", "create"),
    ]:
        assert not _allowed(kube, group, resource, verb, namespace), f"{verb} {resource}.{group}"

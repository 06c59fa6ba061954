"""The local control plane does what the product's tests rely on."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from sprechzimmer.contract import REGION_LABEL
from sprechzimmer.devcluster.cluster import Cluster, wait_for
from sprechzimmer.devcluster.nodes import DEFAULT_NODES


def _json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def _pod(name: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}], **spec},
        }
    )


def _phase(cluster: Cluster, namespace: str, name: str) -> str:
    pod = _json(cluster, "-n", namespace, "get", "pod", name)
    return str(pod.get("status", {}).get("phase", ""))


def test_default_nodes_are_ready_with_regions_and_addresses(cluster: Cluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in _json(cluster, "get", "nodes")["items"]}
    for spec in DEFAULT_NODES:
        node = nodes[spec.name]
        assert node["metadata"]["labels"][REGION_LABEL] == spec.region
        assert {"type": "ExternalIP", "address": spec.external_ip} in node["status"]["addresses"]
        assert node["status"]["capacity"]["cpu"] == spec.cpu
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
    regions = sorted(n.region for n in DEFAULT_NODES)
    assert regions == ["at-vie", "at-vie", "de-ber", "de-fra", "de-fra", "nl-ams"]


def test_scheduled_pod_becomes_running_and_ready(cluster: Cluster, namespace: str) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": REGION_LABEL, "operator": "In", "values": ["at-vie"]}
                        ]
                    }
                ]
            }
        }
    }
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=_pod("p", affinity=affinity))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/p", "--timeout=30s")
    pod = _json(cluster, "-n", namespace, "get", "pod", "p")
    assert pod["spec"]["nodeName"].startswith("at-vie-")
    assert pod["status"]["phase"] == "Running"


def test_unsatisfiable_pod_stays_pending(cluster: Cluster, namespace: str) -> None:
    selector = {REGION_LABEL: "us-east"}
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=_pod("p", nodeSelector=selector))
    wait_for(
        "scheduler to report Unschedulable",
        lambda: any(
            c.get("reason") == "Unschedulable"
            for c in _json(cluster, "-n", namespace, "get", "pod", "p")["status"]["conditions"]
        ),
        timeout=30,
    )
    assert _phase(cluster, namespace, "p") == "Pending"


def test_pod_can_be_made_to_fail(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=_pod("p"))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/p", "--timeout=30s")
    cluster.fail_pod(namespace, "p")
    wait_for("pod Failed", lambda: _phase(cluster, namespace, "p") == "Failed", timeout=30)


def test_deleted_pod_goes_away(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=_pod("p"))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/p", "--timeout=30s")
    cluster.kubectl("-n", namespace, "delete", "pod", "p", "--timeout=30s")
    assert cluster.kubectl("-n", namespace, "get", "pod", "p", check=False).returncode != 0


def test_garbage_collector_deletes_dependents(cluster: Cluster, namespace: str) -> None:
    owner = _json(cluster, "-n", namespace, "create", "configmap", "owner")
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
    }
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(dependent))
    cluster.kubectl("-n", namespace, "delete", "configmap", "owner")
    wait_for(
        "dependent collected",
        lambda: (
            cluster.kubectl("-n", namespace, "get", "cm", "dependent", check=False).returncode != 0
        ),
        timeout=30,
    )


def test_added_node_joins_and_can_be_removed(cluster: Cluster) -> None:
    cluster.add_node("de-fra-extra", "de-fra", "de-fra-c", cpu="2")
    node = _json(cluster, "get", "node", "de-fra-extra")
    assert node["status"]["allocatable"]["cpu"] == "2"
    cluster.delete_node("de-fra-extra")


def _api(cluster: Cluster, path: str, token: str) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only the token matters here; TLS is tested below
    request = urllib.request.Request(
        cluster.server + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_service_account_tokens_and_rbac(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "reader")
    token = cluster.kubectl("-n", namespace, "create", "token", "reader").stdout.strip()
    pods = f"/api/v1/namespaces/{namespace}/pods"
    assert _api(cluster, pods, token) == 403  # authenticated, but RBAC grants nothing yet
    assert _api(cluster, pods, "not-a-token") == 401
    cluster.kubectl("-n", namespace, "create", "role", "r", "--verb=list", "--resource=pods")
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "r",
        "--role=r",
        f"--serviceaccount={namespace}:reader",
    )
    wait_for("RBAC grant", lambda: _api(cluster, pods, token) == 200, timeout=30)
    assert _api(cluster, f"/api/v1/namespaces/{namespace}/secrets", token) == 403


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_apiserver_refuses_old_tls(cluster: Cluster, version: ssl.TLSVersion) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = version
    context.maximum_version = version
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(OSError, match="ALERT_PROTOCOL_VERSION"):  # the server's refusal
        urllib.request.urlopen(cluster.server + "/healthz", context=context, timeout=5)


def test_apiserver_offers_only_aead_forward_secret_suites(cluster: Cluster) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES+SHA:RSA+AES")
    host, port = cluster.server.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        name, version, _ = tls.cipher()
    assert version == "TLSv1.2"
    assert name.startswith("ECDHE-")
    assert "GCM" in name

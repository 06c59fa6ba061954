"""Pure parts of the harness: command lines and node objects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from sprechzimmer.contract import REGION_LABEL, ZONE_LABEL
from sprechzimmer.devcluster import components
from sprechzimmer.devcluster.cluster import REPO_ROOT, free_ports
from sprechzimmer.devcluster.nodes import DEFAULT_NODES, KWOK_ANNOTATION, node_manifest

pytestmark = pytest.mark.unit

LAYOUT = components.Layout(
    bin_dir=Path("/bin"),
    state_dir=Path("/state"),
    ports=components.Ports(1, 2, 3, 4, 5, 6),
    kwok_config=Path("/kwok.yaml"),
)


def test_apiserver_enforces_tls_rbac_and_service_account_tokens() -> None:
    argv = components.kube_apiserver(LAYOUT)
    assert "--authorization-mode=Node,RBAC" in argv
    assert "--tls-min-version=VersionTLS12" in argv
    suites = next(a for a in argv if a.startswith("--tls-cipher-suites=")).split("=")[1].split(",")
    assert suites
    assert all("ECDHE" in s and "GCM" in s for s in suites)
    assert "--service-account-signing-key-file=/state/pki/sa.key" in argv
    assert "--bind-address=127.0.0.1" in argv


@pytest.mark.parametrize("build", [components.kube_controller_manager, components.kube_scheduler])
def test_controllers_serve_only_on_loopback_with_strong_tls(build) -> None:  # type: ignore[no-untyped-def]
    argv = build(LAYOUT)
    assert "--bind-address=127.0.0.1" in argv
    assert "--tls-min-version=VersionTLS12" in argv


def test_etcd_listens_on_loopback_only() -> None:
    argv = components.etcd(LAYOUT)
    urls = [a.split("=", 1)[1] for a in argv if "urls=" in a]
    assert urls
    assert all(u.startswith("http://127.0.0.1:") for u in urls)


def test_default_nodes_cover_de_at_and_one_foreign_region() -> None:
    regions = {n.region for n in DEFAULT_NODES}
    assert regions == {"de-fra", "de-ber", "at-vie", "nl-ams"}
    assert len({n.external_ip for n in DEFAULT_NODES}) == len(DEFAULT_NODES)


def test_node_manifest_is_managed_by_kwok_with_topology() -> None:
    node = node_manifest(DEFAULT_NODES[0])
    assert node["metadata"]["annotations"][KWOK_ANNOTATION] == "fake"
    labels = node["metadata"]["labels"]
    assert labels[REGION_LABEL] == "de-fra"
    assert labels[ZONE_LABEL] == "de-fra-a"
    assert node["status"]["addresses"] == [{"type": "ExternalIP", "address": "203.0.113.11"}]
    assert node["status"]["capacity"] == {"cpu": "8", "memory": "32Gi", "pods": "110"}


def test_free_ports_are_distinct() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20


def test_kind_config_matches_the_simulated_nodes() -> None:
    config = yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())
    workers = [n["labels"] for n in config["nodes"] if n["role"] == "worker"]
    assert sorted((w[REGION_LABEL], w[ZONE_LABEL]) for w in workers) == sorted(
        (n.region, n.zone) for n in DEFAULT_NODES
    )


def test_apiserver_reaches_kubelets_by_ip_with_a_client_cert_and_verifies_them() -> None:
    argv = components.kube_apiserver(LAYOUT)
    assert "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname" in argv
    assert "--kubelet-client-certificate=/state/pki/apiserver-kubelet-client.crt" in argv
    assert "--kubelet-certificate-authority=/state/pki/ca.crt" in argv
    assert "--advertise-address=127.0.0.1" in argv


def test_apiserver_advertises_and_listens_beyond_loopback_only_when_asked() -> None:
    layout = dataclasses.replace(LAYOUT, advertise_address="198.51.100.7")
    argv = components.kube_apiserver(layout)
    assert "--advertise-address=198.51.100.7" in argv
    assert "--bind-address=0.0.0.0" in argv

"""The real node's files and command lines (pure), and the host record's format."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from sprechzimmer.contract import REGION_LABEL
from sprechzimmer.devcluster import hoststate
from sprechzimmer.devcluster import realnode_config as config

pytestmark = pytest.mark.unit

LAYOUT = config.NodeLayout(
    root=Path("/node"),
    bin_dir=Path("/bin"),
    node_ip="198.51.100.7",
    pki=Path("/state/pki"),
    ports=config.NodePorts(kubelet=1, kubelet_healthz=2, proxy_metrics=3, proxy_healthz=4),
)


def test_containerd_keeps_its_own_socket_state_and_cni_and_spares_oom_score_adj() -> None:
    doc = tomllib.loads(config.containerd_config(LAYOUT))
    assert doc["grpc"]["address"] == "/node/containerd/containerd.sock"
    assert doc["root"].startswith("/node/")
    assert doc["state"].startswith("/node/")
    assert doc["plugins"]["io.containerd.internal.v1.opt"]["path"].startswith("/node/")
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == config.PAUSE_IMAGE
    assert cri["cni"]["conf_dir"] == "/node/cni/net.d"  # not /etc/cni/net.d
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False


def test_cni_is_a_bridge_on_its_own_subnet_with_host_ports() -> None:
    bridge, portmap = config.cni_conflist(LAYOUT)["plugins"]
    assert bridge["bridge"] == config.BRIDGE
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.245.0.0/24"}]]
    assert bridge["ipam"]["dataDir"].startswith("/node/")
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


def test_kubelet_has_its_own_identity_region_taint_and_address() -> None:
    argv = config.kubelet(LAYOUT)
    assert "--hostname-override=real-de-fra-1" in argv
    assert "--node-ip=198.51.100.7" in argv
    assert "--kubeconfig=/state/pki/kubelet.kubeconfig" in argv
    labels = dict(
        kv.split("=")
        for kv in next(a for a in argv if a.startswith("--node-labels="))[14:].split(",")
    )
    assert labels[REGION_LABEL] == "de-fra"
    assert labels[config.REAL_NODE_LABEL] == "true"
    kubelet = config.kubelet_config(LAYOUT)
    assert kubelet["registerWithTaints"] == [config.TAINT]
    assert kubelet["address"] == "198.51.100.7"
    assert kubelet["readOnlyPort"] == 0
    assert kubelet["authentication"]["anonymous"] == {"enabled": False}
    assert kubelet["authorization"] == {"mode": "Webhook"}
    assert kubelet["failCgroupV1"] is False
    assert kubelet["containerRuntimeEndpoint"] == "unix:///node/containerd/containerd.sock"
    assert kubelet["clusterDNS"] == []


def test_kube_proxy_leaves_kernel_settings_alone() -> None:
    proxy = config.kube_proxy_config(LAYOUT)
    assert proxy["mode"] == "iptables"
    assert proxy["clusterCIDR"] == config.POD_SUBNET
    assert proxy["conntrack"]["maxPerCore"] == 0
    assert proxy["conntrack"]["tcpEstablishedTimeout"] == "0s"
    assert proxy["iptables"]["localhostNodePorts"] is False
    assert proxy["metricsBindAddress"].startswith("127.0.0.1:")
    assert config.kube_proxy(LAYOUT, cleanup=True)[-1] == "--cleanup"


def test_json_renderer_round_trips() -> None:
    doc = config.cni_conflist(LAYOUT)
    assert json.loads(config.render_json(doc)) == doc


def test_host_record_round_trips(tmp_path: Path) -> None:
    before = hoststate.HostSnapshot(
        sysctls={"kernel/panic": "1"},
        chains=["iptables nat CNI-HOSTPORT-DNAT"],
        absent_paths=["/run/netns"],
        absent_cgroups=["/sys/fs/cgroup/pids/kubepods"],
        netns=["other"],
    )
    before.save(tmp_path / "record.json")
    assert hoststate.HostSnapshot.load(tmp_path / "record.json") == before


def test_operator_media_env_places_media_pods_on_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fed to the operator's own settings parser: media pods tolerate exactly the node's taint,
    select its label, and never pull (the image is imported)."""
    from sprechzimmer.operator.core.settings import OperatorSettings

    for name, value in config.operator_media_env("sprechzimmer/media-pod:0.1.0").items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings(shared_key="k" * 32)
    assert settings.media_image == settings.turn_image == "sprechzimmer/media-pod:0.1.0"
    assert settings.image_pull_policy == "Never"
    [toleration] = settings.media_tolerations
    taint = config.kubelet_config(LAYOUT)["registerWithTaints"][0]
    assert {k: toleration[k] for k in ("key", "value", "effect")} == taint
    assert toleration["operator"] == "Equal"
    assert settings.media_node_selector.items() <= config.node_labels().items()

"""Configuration files and command lines of the real node (containerd, CNI, kubelet, kube-proxy).

No I/O: given where the node keeps its state and which address and ports it uses, say what each
file contains and how each process starts. ``realnode.py`` writes and runs them. The choices that
matter on these machines are explained in ``/work/shared/notes/real-node.md`` and
``docs/development.md`` ("Real node").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sprechzimmer.contract import REGION_LABEL, ZONE_LABEL

NODE_NAME = "real-de-fra-1"
REGION = "de-fra"
ZONE = "de-fra-r"
REAL_NODE_LABEL = "sprechzimmer.io/real-node"
# Only pods that tolerate this land here: without it the scheduler would send the node any de-fra
# pod, whose image it does not have (there is no registry).
TAINT = {"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
# What a pod meant for the node carries: this toleration and this nodeSelector.
TOLERATION = {"operator": "Equal", **TAINT}
NODE_SELECTOR = {REAL_NODE_LABEL: "true"}
BRIDGE = "realnode0"
# Not KWOK's 10.244.0.0/16: those pod IPs are fake and must never route here.
POD_SUBNET = "10.245.0.0/24"
# The sandbox image containerd asks for; realnode.py builds and imports it under this tag.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
CNI_BIN_DIR = Path("/usr/lib/cni")
# Where the node keeps containerd's and the kubelet's state and sockets. Not under the cluster's
# state directory: a unix socket path has at most 104-108 bytes, which the kubelet's sockets
# (``<root-dir>/pod-resources/<n>``) exceed below a deep checkout or pytest's tmp_path. One real
# node per machine (realnode.claim), so one fixed place; removed on stop.
NODE_ROOT = Path("/var/lib/sprechzimmer-realnode")


@dataclass(frozen=True)
class NodePorts:
    """Ports chosen for one real node (free ones, so nothing clashes with the defaults)."""

    kubelet: int
    kubelet_healthz: int
    proxy_metrics: int
    proxy_healthz: int


@dataclass(frozen=True)
class NodeLayout:
    """Where the real node keeps its state, and how it reaches the cluster."""

    root: Path  # NODE_ROOT
    bin_dir: Path  # kubelet, kube-proxy (the pinned toolchain)
    node_ip: str  # this machine's own non-loopback address
    pki: Path  # the cluster's: its CA signs the node's identities
    ports: NodePorts

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def containerd_dir(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.containerd_dir / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.kubelet_dir / "config.yaml"

    def kubeconfig(self, component: str) -> Path:
        return self.pki / f"{component}.kubeconfig"

    @property
    def proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"


def containerd_config(layout: NodeLayout) -> str:
    """containerd 1.6's config: own socket, root, state and CNI directory."""
    d = layout.containerd_dir
    return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"

[grpc]
  address = "{layout.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # CRI asks for oom_score_adj -998 on every sandbox; without CAP_SYS_RESOURCE (these machines)
  # lowering it fails and no pod starts.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    # Not /etc/cni/net.d: other tools (podman) keep their networks there.
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_conflist(layout: NodeLayout) -> dict[str, Any]:
    """A bridge with NAT to the outside and host ports (portmap, TCP and UDP)."""
    return {
        "cniVersion": "1.0.0",
        "name": "realnode",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.root / "cni" / "ipam"),
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def operator_media_env(media_image: str) -> dict[str, str]:
    """The operator's settings that put every media pod on this node, with the media image
    imported into its containerd (``imagePullPolicy: Never``: there is no registry)."""
    prefix = "SPRECHZIMMER_OPERATOR_"
    return {
        f"{prefix}MEDIA_IMAGE": media_image,
        f"{prefix}TURN_IMAGE": media_image,  # the media image brings coturn's turnserver
        f"{prefix}IMAGE_PULL_POLICY": "Never",
        f"{prefix}MEDIA_TOLERATIONS": json.dumps([TOLERATION]),
        f"{prefix}MEDIA_NODE_SELECTOR": json.dumps(NODE_SELECTOR),
    }


def node_labels() -> dict[str, str]:
    return {REGION_LABEL: REGION, ZONE_LABEL: ZONE, REAL_NODE_LABEL: "true"}


def kubelet_config(layout: NodeLayout) -> dict[str, Any]:
    socket = f"unix://{layout.containerd_socket}"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": layout.ports.kubelet,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": layout.ports.kubelet_healthz,
        "readOnlyPort": 0,
        "tlsCertFile": str(layout.pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(layout.pki / "kubelet-serving.key"),
        "tlsMinVersion": "VersionTLS12",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(layout.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": socket,
        "imageServiceEndpoint": socket,
        # containerd 1.6 cannot tell the kubelet its cgroup driver; these hosts have no systemd.
        "cgroupDriver": "cgroupfs",
        # cgroup v1 hosts: a deprecation warning, not a refusal to start.
        "failCgroupV1": False,
        "failSwapOn": False,
        "podLogsDir": str(layout.kubelet_dir / "pod-logs"),
        "registerWithTaints": [TAINT],
        "maxPods": 32,
        # Images come from archives, not a registry: never garbage-collect them, and do not let a
        # busy shared disk evict pods that a test is watching.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        # No cluster DNS: pods fall back to this machine's resolv.conf, and in-cluster clients
        # find the API through KUBERNETES_SERVICE_HOST (an IP), which needs no DNS.
        "clusterDNS": [],
        "serializeImagePulls": False,
    }


def kubelet(layout: NodeLayout) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in node_labels().items())
    return [
        str(layout.bin_dir / "kubelet"),
        f"--config={layout.kubelet_config}",
        f"--kubeconfig={layout.kubeconfig('kubelet')}",
        f"--root-dir={layout.kubelet_dir / 'root'}",
        f"--cert-dir={layout.kubelet_dir / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={layout.node_ip}",
        f"--node-labels={labels}",
        "--v=1",
    ]


def kube_proxy_config(layout: NodeLayout) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": POD_SUBNET,
        "hostnameOverride": NODE_NAME,
        "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
        "metricsBindAddress": f"127.0.0.1:{layout.ports.proxy_metrics}",
        "healthzBindAddress": f"127.0.0.1:{layout.ports.proxy_healthz}",
        "oomScoreAdj": 0,
        # Leave the host's kernel settings alone: no conntrack table size or TCP timeouts, and no
        # NodePorts on 127.0.0.1 (those need net.ipv4.conf.all.route_localnet=1).
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False},
    }


def kube_proxy(layout: NodeLayout, *, cleanup: bool = False) -> list[str]:
    argv = [str(layout.bin_dir / "kube-proxy"), f"--config={layout.proxy_config}", "--v=1"]
    return [*argv, "--cleanup"] if cleanup else argv


def containerd(layout: NodeLayout) -> list[str]:
    return ["containerd", f"--config={layout.containerd_config}", "--log-level=warn"]


def render_json(doc: dict[str, Any]) -> str:
    """JSON is YAML too: one renderer for the CNI list and the kubelet/kube-proxy configs."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"

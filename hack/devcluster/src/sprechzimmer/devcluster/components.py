"""Command lines of the control-plane components, derived from one layout.

No I/O: given where files live and which ports were chosen, say how each process starts. The
flags are the ones a production control plane would use where it matters for what we test
(TLS, RBAC, service-account tokens, admission) and the fast ones where it does not (no fsync,
no leader election for a single replica).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# BSI TR-02102-2: TLS 1.2+ with ECDHE and AEAD only (TLS 1.3 suites are not configurable in Go).
TLS_MIN_VERSION = "VersionTLS12"
TLS_CIPHER_SUITES = ",".join(
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    )
)
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Ports:
    """Loopback ports chosen for one cluster."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its binaries, state and logs."""

    bin_dir: Path
    state_dir: Path
    ports: Ports
    kwok_config: Path
    profiling: bool = False  # kube-apiserver's /debug/pprof, for benchmarks only
    # What the apiserver puts into the ``kubernetes`` Service's endpoints. Loopback unless pods
    # on a real node must reach it: then this machine's own address (see realnode.py).
    advertise_address: str = "127.0.0.1"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig handed to people and tests."""
        return self.state_dir / "kubeconfig"

    def component_kubeconfig(self, component: str) -> Path:
        return self.pki / f"{component}.kubeconfig"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.etcd_client}"


def etcd(layout: Layout) -> list[str]:
    peer = f"http://127.0.0.1:{layout.ports.etcd_peer}"
    return [
        str(layout.bin_dir / "etcd"),
        "--name=default",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={layout.etcd_url}",
        f"--advertise-client-urls={layout.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        # A test cluster is thrown away; fsync would make every write wait for the disk.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
    ]


def kube_apiserver(layout: Layout) -> list[str]:
    pki = layout.pki
    # Pods reach a non-loopback advertise address only if the apiserver listens there too; it
    # takes one bind address, and the kubeconfigs keep using 127.0.0.1.
    loopback = layout.advertise_address == "127.0.0.1"
    return [
        str(layout.bin_dir / "kube-apiserver"),
        f"--etcd-servers={layout.etcd_url}",
        f"--bind-address={'127.0.0.1' if loopback else '0.0.0.0'}",  # noqa: S104
        f"--advertise-address={layout.advertise_address}",
        f"--secure-port={layout.ports.apiserver}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--tls-min-version={TLS_MIN_VERSION}",
        f"--tls-cipher-suites={TLS_CIPHER_SUITES}",
        # Node first, as kubeadm does: a kubelet (system:node:<name>) may read only what its own
        # pods use, never every Secret; NodeRestriction limits what it may write.
        "--authorization-mode=Node,RBAC",
        "--anonymous-auth=true",  # only /healthz, /readyz, /livez and /version are bound for it
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=false",
        f"--profiling={str(layout.profiling).lower()}",
        "--enable-admission-plugins=NodeRestriction",
        # kubectl logs/exec/port-forward on a real node: dial its InternalIP (its name resolves
        # nowhere), present a client cert the kubelet accepts, verify the kubelet's serving cert.
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        # Room for the operator benchmark's burst of writes on a two-core machine.
        "--max-requests-inflight=1600",
        "--max-mutating-requests-inflight=800",
        "--v=1",
    ]


def _controller_tls(layout: Layout, name: str, port: int) -> list[str]:
    kubeconfig = layout.component_kubeconfig(name)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={layout.pki / (name + '-serving.crt')}",
        f"--tls-private-key-file={layout.pki / (name + '-serving.key')}",
        f"--tls-min-version={TLS_MIN_VERSION}",
        f"--tls-cipher-suites={TLS_CIPHER_SUITES}",
        # One replica: waiting for a lease would only slow the start.
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def kube_controller_manager(layout: Layout) -> list[str]:
    return [
        str(layout.bin_dir / "kube-controller-manager"),
        *_controller_tls(layout, "kube-controller-manager", layout.ports.controller_manager),
        f"--service-account-private-key-file={layout.pki / 'sa.key'}",
        f"--root-ca-file={layout.pki / 'ca.crt'}",
        f"--cluster-cidr={POD_CIDR}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allocate-node-cidrs=false",
        "--use-service-account-credentials=true",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--concurrent-gc-syncs=40",
    ]


def kube_scheduler(layout: Layout) -> list[str]:
    return [
        str(layout.bin_dir / "kube-scheduler"),
        *_controller_tls(layout, "kube-scheduler", layout.ports.scheduler),
    ]


def kwok(layout: Layout) -> list[str]:
    return [
        str(layout.bin_dir / "kwok"),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={layout.kwok_config}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--manage-nodes-with-label-selector=",
        f"--cidr={POD_CIDR}",
        "--node-ip=10.0.0.1",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{layout.ports.kwok}",
    ]

"""A real node beside the KWOK ones: containerd, runc, CNI, kubelet and kube-proxy on this machine.

``real-de-fra-1`` joins the local control plane with its own identity (``system:node:…``), region
``de-fra`` and a taint, so only pods that tolerate it (and bring images imported here, there is
no registry) run on it. Whether this machine can run it is decided by :func:`claim`, which also
takes a machine-wide lock: one real node per machine (one bridge, one set of iptables chains).

Everything it changes on the host is recorded first and undone on stop (``hoststate.py``); if the
process that ran it died, ``devcluster down`` (or the next ``up``) undoes it from the record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from sprechzimmer.devcluster import hoststate, pki
from sprechzimmer.devcluster import realnode_config as config
from sprechzimmer.devcluster.cluster import (
    REPO_ROOT,
    ClusterError,
    LocalCluster,
    free_ports,
    wait_for,
    write_kubeconfig,
)
from sprechzimmer.devcluster.images import LayerFile, write_docker_archive, write_layer

PAUSE_SOURCE = REPO_ROOT / "hack" / "realnode" / "pause.c"
# The host's state before the node started, in the cluster's state directory (hoststate.py).
HOST_RECORD = "realnode-host.json"
_LOCK = b"\0sprechzimmer-realnode"  # abstract socket: released when its holder dies
_HOST_TOOLS = (
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "iptables",
    "iptables-save",
    "ip6tables-save",
    "ip",
    "umount",
    "gcc",
)
_CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21


class RealNodeUnavailable(ClusterError):
    """This machine cannot run the real node now; the message names what is missing."""


def cache_dir() -> Path:
    return Path(os.environ.get("SPRECHZIMMER_CACHE", Path.home() / ".cache" / "sprechzimmer"))


def host_address() -> str | None:
    """This machine's own address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address  # noqa: S104


def _effective_capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def unavailable_reason(binaries: Path) -> str | None:
    """Why the real node cannot run here, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "not running as root (containerd and the kubelet mount, create cgroups and iptables)"
    caps = _effective_capabilities()
    for bit, name in ((_CAP_NET_ADMIN, "CAP_NET_ADMIN"), (_CAP_SYS_ADMIN, "CAP_SYS_ADMIN")):
        if not caps >> bit & 1:
            return f"no {name}"
    missing = [b for b in ("kubelet", "kube-proxy") if not (binaries / b).exists()]
    if missing:
        return f"missing {', '.join(missing)} in {binaries} (run `make tools`)"
    missing = [t for t in _HOST_TOOLS if shutil.which(t) is None]
    missing += [f"CNI plugin {p}" for p in _CNI_PLUGINS if not (config.CNI_BIN_DIR / p).exists()]
    if missing:
        return f"missing {', '.join(missing)} (run `make packages`)"
    cgroups = Path("/sys/fs/cgroup")
    probe = cgroups if (cgroups / "cgroup.controllers").exists() else cgroups / "memory"
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable"
    if not os.access("/proc/sys/vm/overcommit_memory", os.W_OK):
        return "/proc/sys is read-only (the kubelet sets kernel parameters)"
    if host_address() is None:
        return "no non-loopback IPv4 address for the node"
    return None


@dataclass
class Claim:
    """The right to run the real node on this machine, until :meth:`release`."""

    node_ip: str
    _lock: socket.socket

    def release(self) -> None:
        self._lock.close()


def claim(binaries: Path, wait: float = 0.0) -> Claim:
    """Check the machine and take the machine-wide real-node lock (waiting up to ``wait`` s)."""
    reason = unavailable_reason(binaries)
    if reason:
        raise RealNodeUnavailable(reason)
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + wait
    while True:
        try:
            lock.bind(_LOCK)
            break
        except OSError as error:
            if time.monotonic() >= deadline:
                lock.close()
                raise RealNodeUnavailable(
                    "another real node runs on this machine (a `make up` cluster or a test run; "
                    "`make down` in its checkout stops it)"
                ) from error
            time.sleep(1.0)
    node_ip = host_address()
    if node_ip is None:  # lost it since unavailable_reason() looked
        lock.close()
        raise RealNodeUnavailable("no non-loopback IPv4 address for the node")
    return Claim(node_ip, lock)


def ctr(socket_path: Path, *args: str, timeout: float = 600) -> str:
    """Run ``ctr`` in the CRI's namespace of the node's containerd; raise with its message."""
    argv = ["ctr", f"--address={socket_path}", "--namespace=k8s.io", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ClusterError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def import_image(socket_path: Path, archive: Path) -> None:
    """Import a docker archive into the node's containerd, where the kubelet sees it."""
    ctr(socket_path, "images", "import", str(archive))


def build_images(socket_path: Path, *names: str, timeout: float = 1800) -> dict[str, str]:
    """Build Sprechzimmer's images (``images/build.py``: cached by content hash, ~1.5 min cold,
    seconds warm) and import them into the node's containerd; image name → reference."""
    script = REPO_ROOT / "images" / "build.py"
    command = [sys.executable, str(script), *names, "--import-to", str(socket_path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    if result.returncode != 0:
        raise ClusterError(f"images/build.py {' '.join(names)} failed: {result.stderr[-2000:]}")
    references = {}
    for line in result.stdout.splitlines():
        reference, archive = line.split()[:2]  # "<repository>:<tag>  <archive>  … MB  … s"
        references[Path(archive).stem] = reference
    return references


def static_c_image(source: Path, *, repo_tag: str, user: str, args: tuple[str, ...] = ()) -> Path:
    """A one-file image: ``source`` compiled with ``gcc -Os -static`` as ``/<stem>``; cached."""
    key = hashlib.sha256(
        source.read_bytes() + repo_tag.encode() + user.encode() + json.dumps(list(args)).encode()
    ).hexdigest()[:16]
    out = cache_dir() / "images" / f"{source.stem}-{key}.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / source.stem
        subprocess.run(
            ["gcc", "-Os", "-static", "-s", "-o", str(binary), str(source)],
            check=True,
            capture_output=True,
        )
        rootfs = Path(tmp) / "rootfs.tar"
        write_layer(rootfs, [LayerFile(source.stem, binary.read_bytes())])
        write_docker_archive(
            rootfs,
            out,
            repo_tag=repo_tag,
            entrypoint=[f"/{source.stem}", *args],
            user=user,
            env={},
            workdir="/",
        )
    return out


def restore_leftovers(state: Path) -> list[str]:
    """Undo a real node's host changes that its crashed supervisor left behind."""
    record = state / HOST_RECORD
    if not record.exists():
        return []
    before = hoststate.HostSnapshot.load(record)
    done = hoststate.restore(before, config.NODE_ROOT, config.BRIDGE)
    record.unlink()
    return done


class RealNode:
    """The real node of one :class:`LocalCluster`; stops (and restores the host) with it."""

    def __init__(self, cluster: LocalCluster, claim: Claim) -> None:
        self.cluster = cluster
        self.claim = claim
        self.layout = config.NodeLayout(
            root=config.NODE_ROOT,
            bin_dir=cluster.binaries,
            node_ip=claim.node_ip,
            pki=cluster.layout.pki,
            ports=config.NodePorts(*free_ports(4)),
        )
        self.record = cluster.state_dir / HOST_RECORD
        self.ready_seconds: float | None = None
        self._snapshot: hoststate.HostSnapshot | None = None

    @property
    def name(self) -> str:
        return config.NODE_NAME

    def start(self, timeout: float = 120.0) -> dict[str, str]:
        """Start containerd, the kubelet and kube-proxy; return the ``endpoints.env`` lines."""
        layout = self.layout
        for line in hoststate.clear(layout.root):  # a crashed node's, whose record is gone
            print(f"real node: {line}", file=sys.stderr, flush=True)
        self._snapshot = hoststate.snapshot(layout.root)
        self._snapshot.save(self.record)
        self.cluster.on_stop(self.stop)
        self._write_identities()
        self._write_configs()
        self.cluster.spawn("containerd", config.containerd(layout))
        wait_for(
            "containerd",
            self._containerd_up,
            timeout,
            interval=0.2,
            alive=self.cluster.check_alive,
        )
        pause = static_c_image(PAUSE_SOURCE, repo_tag=config.PAUSE_IMAGE, user="65535:65535")
        import_image(layout.containerd_socket, pause)
        started = time.monotonic()
        self.cluster.spawn("kubelet", config.kubelet(layout))
        wait_for(
            f"node {self.name} Ready",
            self._node_ready,
            timeout,
            interval=0.2,
            alive=self.cluster.check_alive,
        )
        self.ready_seconds = time.monotonic() - started
        self.cluster.spawn("kube-proxy", config.kube_proxy(layout))
        healthz = f"http://127.0.0.1:{layout.ports.proxy_healthz}/healthz"
        wait_for(
            "kube-proxy /healthz",
            lambda: _http_ok(healthz),
            timeout,
            alive=self.cluster.check_alive,
        )
        return {
            "REAL_NODE": self.name,
            "REAL_NODE_IP": layout.node_ip,
            "REAL_NODE_CONTAINERD": str(layout.containerd_socket),
            "REAL_NODE_READY_SECONDS": f"{self.ready_seconds:.2f}",
        }

    def import_image(self, archive: Path) -> None:
        import_image(self.layout.containerd_socket, archive)

    def stop(self) -> None:
        """Drain, stop kube-proxy (and remove its rules), the kubelet, containerd; restore."""
        cluster, layout = self.cluster, self.layout
        if self._snapshot is None:
            return
        with contextlib.suppress(ClusterError):
            self._drain()
        cluster.stop_process("kube-proxy")
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                config.kube_proxy(layout, cleanup=True),
                capture_output=True,
                timeout=60,
                check=False,
            )
        cluster.stop_process("kubelet")
        cluster.kubectl(
            "delete", "node", self.name, "--wait=false", "--ignore-not-found", check=False
        )
        cluster.stop_process("containerd", timeout=10)
        done = hoststate.restore(self._snapshot, layout.root, config.BRIDGE)
        self.record.unlink(missing_ok=True)
        self._snapshot = None
        self.claim.release()
        for line in done:
            print(f"real node: {line}", file=sys.stderr, flush=True)

    # -- internals ---------------------------------------------------------------------------

    def _write_identities(self) -> None:
        layout = self.layout
        ca = pki.CertificateAuthority.load(layout.pki)
        url = self.cluster.layout.apiserver_url
        node_user = f"system:node:{self.name}"
        pair = ca.issue("kubelet", node_user, organisation="system:nodes", client=True)
        write_kubeconfig(layout.kubeconfig("kubelet"), url, ca.pair.cert, pair, node_user)
        pair = ca.issue("kube-proxy", "system:kube-proxy", client=True)
        write_kubeconfig(
            layout.kubeconfig("kube-proxy"), url, ca.pair.cert, pair, "system:kube-proxy"
        )
        ca.issue("kubelet-serving", self.name, server_names=(layout.node_ip, self.name))

    def _write_configs(self) -> None:
        layout = self.layout
        for directory in (layout.containerd_dir, layout.cni_conf_dir, layout.kubelet_dir):
            directory.mkdir(parents=True, exist_ok=True)
        layout.containerd_config.write_text(config.containerd_config(layout))
        (layout.cni_conf_dir / "10-realnode.conflist").write_text(
            config.render_json(config.cni_conflist(layout))
        )
        layout.kubelet_config.write_text(yaml.safe_dump(config.kubelet_config(layout)))
        layout.proxy_config.write_text(yaml.safe_dump(config.kube_proxy_config(layout)))

    def _containerd_up(self) -> bool:
        return bool(ctr(self.layout.containerd_socket, "version", timeout=10))

    def _node_ready(self) -> bool:
        node = json.loads(self.cluster.kubectl("get", "node", self.name, "-o", "json").stdout)
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )

    def _drain(self, timeout: float = 30.0) -> None:
        """Delete the node's pods while the kubelet runs, so CNI and mounts are torn down.

        If the kubelet cannot confirm in time (it died), the pods are removed by force and
        ``hoststate.restore`` kills what still runs.
        """
        selector = f"--field-selector=spec.nodeName={self.name}"
        delete = ("delete", "pods", "--all-namespaces", selector, "--wait=false")
        self.cluster.kubectl(*delete, "--grace-period=1")
        try:
            wait_for(
                f"the pods on {self.name} to be gone",
                lambda: (
                    not self.cluster.kubectl("get", "pods", "-A", selector, "-o", "name").stdout
                ),
                timeout,
                interval=0.5,
            )
        except ClusterError:
            self.cluster.kubectl(*delete, "--grace-period=0", "--force", check=False)
            raise


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)

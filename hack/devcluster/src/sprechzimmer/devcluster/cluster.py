"""A real Kubernetes control plane on loopback: start it, wait for it, stop it.

Processes are children of the Python process that calls :meth:`LocalCluster.start` and get
``PR_SET_PDEATHSIG``, so they die with it even on SIGKILL: a crashed test run or a killed
supervisor leaves no strays behind.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sprechzimmer.devcluster import components, pki
from sprechzimmer.devcluster.nodes import DEFAULT_NODES, FAIL_POD_LABEL, NodeSpec, node_manifest

REPO_ROOT = Path(__file__).resolve().parents[5]
DEFAULT_BIN_DIR = REPO_ROOT / ".tools" / "bin"
KWOK_CONFIG = REPO_ROOT / "hack" / "kwok" / "stages.yaml"
CRD_DIR = REPO_ROOT / "crds"
REQUIRED_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
)
_PR_SET_PDEATHSIG = 1


class ClusterError(RuntimeError):
    """The cluster could not be started or did not become ready; the message says why."""


def bin_dir() -> Path:
    """Where the built toolchain lives (``hack/build-tools.sh`` links it there)."""
    return Path(os.environ.get("SPRECHZIMMER_TOOLS_BIN", DEFAULT_BIN_DIR))


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now; held open together so they are distinct."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_udp_and_tcp_port() -> int:
    """A loopback port free for TCP and UDP (a TURN server listens on both)."""
    for port in free_ports(20):
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", port))
            return port
    raise ClusterError("no port free for both UDP and TCP on 127.0.0.1")


def _die_with_parent() -> None:
    # SIGKILL, not SIGTERM: an orphaned apiserver and etcd wait on each other's connections
    # for a minute when asked politely, and a throw-away cluster has nothing to flush.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_for(
    what: str,
    condition: Callable[[], bool],
    timeout: float,
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
) -> None:
    """Poll ``condition`` until it holds; ``alive`` raises early if a process died."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        with contextlib.suppress(Exception):
            if condition():
                return
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class _Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None


class Cluster:
    """A reachable cluster: an admin kubeconfig plus the toolchain to drive it.

    Tests and tools only use this surface, so they run the same against a cluster this process
    started (:class:`LocalCluster`) and one that ``make up`` left running.
    """

    def __init__(self, kubeconfig: Path, binaries: Path) -> None:
        self.kubeconfig = kubeconfig
        self.binaries = binaries

    @property
    def server(self) -> str:
        config = yaml.safe_load(self.kubeconfig.read_text())
        return str(config["clusters"][0]["cluster"]["server"])

    def bin(self, name: str) -> Path:
        return self.binaries / name

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.binaries, self.kubeconfig, args, input=input, check=check)

    def apply_crds(self, directory: Path = CRD_DIR) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(directory))

    def create_node(self, node: NodeSpec) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(node_manifest(node)))

    def add_node(
        self,
        name: str,
        region: str,
        zone: str,
        cpu: str = "8",
        memory: str = "32Gi",
        pods: int = 110,
        external_ip: str | None = None,
    ) -> None:
        """Add a simulated node and wait until KWOK reports it Ready."""
        ip = external_ip or f"192.0.2.{(sum(name.encode()) % 200) + 50}"
        self.create_node(NodeSpec(name, region, zone, ip, cpu, memory, pods))
        wait_for(
            f"node {name} Ready and untainted",
            lambda: node_schedulable(
                json.loads(self.kubectl("get", "node", name, "-o", "json").stdout)
            ),
            timeout=30,
        )

    def delete_node(self, name: str) -> None:
        self.kubectl("delete", "node", name, "--wait=false", "--ignore-not-found")

    def fail_pod(self, namespace: str, name: str) -> None:
        """Make KWOK turn a Running pod into Failed, as if its container crashed."""
        self.kubectl("-n", namespace, "patch", "pod", name, "--type=merge", "-p", fail_pod_patch())


class LocalCluster(Cluster):
    """One local control plane with simulated nodes, kept under ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        nodes: Sequence[NodeSpec] = DEFAULT_NODES,
        binaries: Path | None = None,
        advertise_address: str = "127.0.0.1",
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.nodes = nodes
        self._processes: list[_Process] = []
        self._on_stop: list[Callable[[], None]] = []
        self.binaries = binaries or bin_dir()
        missing = [b for b in REQUIRED_BINARIES if not (self.binaries / b).exists()]
        if missing:
            raise ClusterError(
                f"missing binaries in {self.binaries}: {', '.join(missing)}; "
                "run hack/build-tools.sh (or `make tools`) first"
            )
        self.layout = components.Layout(
            bin_dir=self.binaries,
            state_dir=self.state_dir,
            ports=components.Ports(*free_ports(6)),
            kwok_config=KWOK_CONFIG,
            profiling=os.environ.get("SPRECHZIMMER_DEVCLUSTER_PROFILING") == "1",
            advertise_address=advertise_address,
        )
        super().__init__(self.layout.kubeconfig, self.binaries)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start every component and return once the cluster is usable; stop all on failure."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        layout = self.layout
        layout.logs.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        self._spawn("etcd", components.etcd(layout))
        self._wait("etcd", self._etcd_healthy, deadline)
        self._spawn("kube-apiserver", components.kube_apiserver(layout))
        self._wait("kube-apiserver /readyz", lambda: self._get_ok("/readyz"), deadline)
        self._spawn("kube-controller-manager", components.kube_controller_manager(layout))
        self._spawn("kube-scheduler", components.kube_scheduler(layout))
        self._spawn("kwok", components.kwok(layout))
        self.apply_crds()
        for node in self.nodes:
            self.create_node(node)
        self._wait(
            "controller-manager /healthz",
            lambda: self._component_healthy(layout.ports.controller_manager),
            deadline,
        )
        self._wait(
            "scheduler /healthz", lambda: self._component_healthy(layout.ports.scheduler), deadline
        )
        self._wait("CRDs established", self._crds_established, deadline)
        self._wait(f"{len(self.nodes)} nodes Ready", self._nodes_ready, deadline)
        self._wait(
            "service account 'default' in namespace 'default'",
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            deadline,
        )

    def stop(self) -> None:
        """Run the ``on_stop`` callbacks (newest first) while the control plane still answers,
        then stop the components in reverse order (SIGTERM, then SIGKILL after 5 s)."""
        while self._on_stop:
            callback = self._on_stop.pop()
            try:
                callback()
            except Exception as error:  # one failed teardown must not leave the rest running
                print(f"devcluster: stopping: {error}", file=sys.stderr, flush=True)
        for proc in reversed(self._processes):
            _terminate(proc)
        self._processes.clear()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` first thing in :meth:`stop` (e.g. to drain a real node)."""
        self._on_stop.append(callback)

    def stop_process(self, name: str, timeout: float = 5.0) -> None:
        """Stop one component started with :meth:`spawn` (SIGTERM, SIGKILL after ``timeout``)."""
        for proc in [p for p in self._processes if p.name == name]:
            _terminate(proc, timeout)
            self._processes.remove(proc)

    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self._processes if p.popen is not None}

    def check_alive(self) -> None:
        """Raise with the log's tail if a component has exited."""
        for proc in self._processes:
            if proc.popen is not None and proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace").splitlines()[-15:]
                raise ClusterError(
                    f"{proc.name} exited with code {proc.popen.returncode}; "
                    f"last lines of {proc.log}:\n" + "\n".join(tail)
                )

    def endpoints(self) -> dict[str, str]:
        """``KEY=URL`` pairs for ``.cluster/endpoints.env``."""
        ports = self.layout.ports
        return {
            "KUBE_APISERVER_URL": self.layout.apiserver_url,
            "ETCD_URL": self.layout.etcd_url,
            "KUBE_CONTROLLER_MANAGER_URL": f"https://127.0.0.1:{ports.controller_manager}",
            "KUBE_SCHEDULER_URL": f"https://127.0.0.1:{ports.scheduler}",
            "KWOK_URL": f"http://127.0.0.1:{ports.kwok}",
        }

    # -- internals ---------------------------------------------------------------------------

    def _write_pki(self) -> None:
        directory = self.layout.pki
        ca = pki.CertificateAuthority(directory)
        pki.write_service_account_keys(directory)
        local = ("127.0.0.1", "localhost")
        ca.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                *local,
                *(
                    (self.layout.advertise_address,)
                    if self.layout.advertise_address not in local
                    else ()
                ),
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        identities = {
            "admin": ("sprechzimmer-admin", "system:masters"),
            "kube-controller-manager": ("system:kube-controller-manager", None),
            "kube-scheduler": ("system:kube-scheduler", None),
            "kwok": ("kwok", "system:masters"),
        }
        for name, (user, group) in identities.items():
            pair = ca.issue(name, user, organisation=group, client=True)
            path = (
                self.layout.kubeconfig
                if name == "admin"
                else self.layout.component_kubeconfig(name)
            )
            write_kubeconfig(path, self.layout.apiserver_url, ca.pair.cert, pair, user)
        for name in ("kube-controller-manager", "kube-scheduler"):
            ca.issue(f"{name}-serving", name, server_names=local)
        # What the apiserver shows a kubelet for logs/exec/port-forward (a real node's).
        ca.issue(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organisation="system:masters",
            client=True,
        )

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Run one more process with the cluster: logged to ``logs/<name>.log``, stopped first."""
        self._spawn(name, argv, env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.layout.logs / f"{name}.log"
        proc = _Process(name, argv, log)
        with log.open("ab") as out:
            proc.popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=None if env is None else {**os.environ, **env},
                preexec_fn=_die_with_parent,
                start_new_session=True,
            )
        self._processes.append(proc)

    def _wait(self, what: str, condition: Callable[[], bool], deadline: float) -> None:
        wait_for(what, condition, max(deadline - time.monotonic(), 0.1), alive=self.check_alive)

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        context.load_cert_chain(self.layout.pki / "admin.crt", self.layout.pki / "admin.key")
        return context

    def _get_ok(self, path: str, url: str | None = None) -> bool:
        request = urllib.request.Request((url or self.layout.apiserver_url) + path)
        with urllib.request.urlopen(request, context=self._ssl_context(), timeout=2) as response:
            return bool(response.status == 200)

    def _component_healthy(self, port: int) -> bool:
        return self._get_ok("/healthz", f"https://127.0.0.1:{port}")

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(self.layout.etcd_url + "/health", timeout=2) as response:
            return bool(json.load(response).get("health") == "true")

    def _get_json(self, path: str) -> Any:
        request = urllib.request.Request(self.layout.apiserver_url + path)
        with urllib.request.urlopen(request, context=self._ssl_context(), timeout=5) as response:
            return json.load(response)

    def _crds_established(self) -> bool:
        names = {_crd_name(doc) for doc in _yaml_documents(CRD_DIR.glob("*.yaml"))}
        items = self._get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        established = {
            crd["metadata"]["name"]
            for crd in items
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in crd.get("status", {}).get("conditions", [])
            )
        }
        return names <= established

    def _nodes_ready(self) -> bool:
        items = self._get_json("/api/v1/nodes")["items"]
        return {n.name for n in self.nodes} <= {
            n["metadata"]["name"] for n in items if node_schedulable(n)
        }


def _terminate(proc: _Process, timeout: float = 5.0) -> None:
    if proc.popen is not None and proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()


def node_schedulable(node: dict[str, Any]) -> bool:
    """Ready, and the node controller has lifted the not-ready taint it puts on new nodes."""
    ready = any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in node.get("status", {}).get("conditions", [])
    )
    tainted = any(
        t["key"].startswith("node.kubernetes.io/") for t in node.get("spec", {}).get("taints", [])
    )
    return ready and not tainted


def _yaml_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(paths):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _crd_name(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["name"])


def write_kubeconfig(path: Path, server: str, ca: Path, client: pki.KeyPair, user: str) -> None:
    """A kubeconfig with everything embedded, so it can be copied anywhere."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sprechzimmer-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [
            {
                "name": "sprechzimmer-local",
                "context": {"cluster": "sprechzimmer-local", "user": user},
            }
        ],
        "current-context": "sprechzimmer-local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def run_kubectl(
    binaries: Path,
    kubeconfig: Path,
    args: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against ``kubeconfig``; on failure raise with kubectl's own message."""
    kubectl = binaries / "kubectl"
    result = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def fail_pod_patch() -> str:
    """Merge patch that makes KWOK fail a Running pod (its chaos stage)."""
    return json.dumps({"metadata": {"labels": {FAIL_POD_LABEL: "true"}}})

"""The chart installed into a cluster whose pods really run; shared by the e2e's fixtures
(``conftest.py``) and the install benchmark (``bench_install.py``).

:func:`real_node_install` starts the local control plane with the real node, builds and imports
the images, and ``helm install``s the chart: signaling on a fixed NodePort of this machine's own
address, every pod (media pods included) on the real node. docs/e2e.md explains the wiring.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sprechzimmer.devcluster import realnode
from sprechzimmer.devcluster import realnode_config as node_config
from sprechzimmer.devcluster.cluster import Cluster, LocalCluster, bin_dir, wait_for

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "sprechzimmer"
HELM = REPO / ".tools" / "bin" / "helm"
RELEASE = "sz-e2e"
NAMESPACE = "sprechzimmer-system"  # the release's namespace = the presence namespace
PRACTICE = "praxis-e2e"
for _path in (REPO / "operator" / "tests", REPO / "signaling" / "tests", REPO / "media-pod"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))


@dataclass
class Installed:
    """The chart installed in a cluster, and how this machine reaches it."""

    cluster: Cluster
    signaling_url: str
    values: list[str]  # helm arguments that repeat the install's values
    timings: dict[str, float] = field(default_factory=dict)

    def helm(self, *args: str, timeout: float = 600) -> str:
        argv = [str(HELM), "--kubeconfig", str(self.cluster.kubeconfig), "-n", NAMESPACE, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"helm {args[0]}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.cluster.kubectl(*args, "-o", "json").stdout)


def free_node_port() -> int:
    """A NodePort (30000-32767) nothing on this machine listens on."""
    for port in range(31080, 32767):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free node port")


def real_node_values(node_ip: str, node_port: int) -> dict[str, Any]:
    """Chart values that put every pod on the real node, with the imported images."""
    on_node = {
        "tolerations": [node_config.TOLERATION],
        "nodeSelector": node_config.NODE_SELECTOR,
        "replicaCount": 1,  # two cores shared with everything else; peering has its own tests
    }
    return {
        "image": {"pullPolicy": "Never"},
        "operator": {
            **on_node,
            "mediaTolerations": [node_config.TOLERATION],
            "mediaNodeSelector": node_config.NODE_SELECTOR,
        },
        "signaling": {
            **on_node,
            "publicURL": f"http://{node_ip}:{node_port}",
            "service": {"type": "NodePort", "nodePort": node_port},
        },
    }


def adopt_crds(cluster: Cluster) -> None:
    """The local control plane applies ``crds/`` itself: let the release own them (install.md)."""
    rendered = subprocess.run(
        [str(HELM), "template", RELEASE, str(CHART), "-n", NAMESPACE],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for doc in yaml.safe_load_all(rendered):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            name = f"crd/{doc['metadata']['name']}"
            cluster.kubectl("label", "--overwrite", name, "app.kubernetes.io/managed-by=Helm")
            cluster.kubectl(
                "annotate", "--overwrite", name,
                f"meta.helm.sh/release-name={RELEASE}",
                f"meta.helm.sh/release-namespace={NAMESPACE}",
            )  # fmt: skip


def install(cluster: Cluster, signaling_url: str, values_file: Path) -> Installed:
    installed = Installed(cluster, signaling_url, ["-f", str(values_file)])
    cluster.kubectl("create", "namespace", PRACTICE, check=False)
    started = time.monotonic()
    installed.helm(
        "install", RELEASE, str(CHART), "--create-namespace", *installed.values,
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    installed.timings["helm install --wait"] = time.monotonic() - started
    wait_for(
        "signaling /readyz through the NodePort",
        lambda: http_ok(signaling_url + "/readyz"),
        timeout=120,
    )
    installed.timings["helm install → signaling reachable"] = time.monotonic() - started
    return installed


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def keep_pod_logs(cluster: Cluster, into: Path) -> None:
    """The pods' logs (current and previous containers) and events, before the node goes."""
    into.mkdir(parents=True, exist_ok=True)
    for namespace in (NAMESPACE, PRACTICE):
        pods = cluster.kubectl("-n", namespace, "get", "pods", "-o", "name", check=False)
        for pod in pods.stdout.split():
            for previous in ("false", "true"):
                logs = cluster.kubectl(
                    "-n", namespace, "logs", pod, "--all-containers", "--prefix",
                    f"--previous={previous}", check=False,
                )  # fmt: skip
                suffix = "-previous" if previous == "true" else ""
                name = f"pod-{namespace}-{pod.split('/')[-1]}{suffix}.log"
                (into / name).write_text(logs.stdout + logs.stderr)
        events = cluster.kubectl("-n", namespace, "get", "events", check=False)
        (into / f"events-{namespace}.txt").write_text(events.stdout)
    print(f"\ne2e: pod logs and events kept in {into}", file=sys.stderr)


@contextlib.contextmanager
def real_node_install(state: Path, wait: float = 600.0) -> Iterator[Installed]:
    """The local control plane with the real node, the images imported, the chart installed.
    Raises ``realnode.RealNodeUnavailable`` (with the reason) where the node cannot run."""
    claim = realnode.claim(bin_dir(), wait=wait)
    cluster = LocalCluster(state, advertise_address=claim.node_ip)
    timings: dict[str, float] = {}
    try:
        cluster.start()
        started = time.monotonic()
        endpoints = realnode.RealNode(cluster, claim).start()
        timings["real node Ready"] = time.monotonic() - started
        started = time.monotonic()
        realnode.build_images(Path(endpoints["REAL_NODE_CONTAINERD"]))
        timings["images built (cached by content) and imported"] = time.monotonic() - started
        node_port = free_node_port()
        values = state / "values.yaml"
        values.write_text(yaml.safe_dump(real_node_values(claim.node_ip, node_port)))
        adopt_crds(cluster)
        installed = install(cluster, f"http://{claim.node_ip}:{node_port}", values)
        installed.timings.update(timings)
        try:
            yield installed
        finally:
            keep_pod_logs(cluster, state / "logs")
    finally:
        cluster.stop()
        claim.release()

"""The real node: kubelet + containerd + runc + CNI on this machine, in the local control plane.

Runs where the machine allows it (root, cgroups, containerd …); elsewhere every test is skipped
with the missing capability as the reason. The node, its pod and this machine's host ports are
real: traffic goes only to this machine's own address, never to a made-up one (these machines
accept outgoing TCP to any address, so a connect elsewhere would prove nothing).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sprechzimmer.devcluster import hoststate, realnode
from sprechzimmer.devcluster import realnode_config as config
from sprechzimmer.devcluster.cluster import LocalCluster, bin_dir, run_kubectl, wait_for
from sprechzimmer.devcluster.images import archive_image_id

pytestmark = pytest.mark.cluster

ECHO_SOURCE = Path(__file__).parent / "data" / "echo.c"
ECHO_IMAGE = "sprechzimmer.local/echo:test"
CONTAINER_PORT = 8080


@dataclass
class Run:
    cluster: LocalCluster
    node: realnode.RealNode
    before: hoststate.HostSnapshot


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    try:
        # Another checkout's `make up` or test run may hold the node for a while.
        claim = realnode.claim(bin_dir(), wait=600)
    except realnode.RealNodeUnavailable as error:
        print(f"\n*** REAL NODE NOT TESTED: {error} ***", file=sys.stderr)
        pytest.skip(f"the real node cannot run on this machine: {error}")
    before = hoststate.snapshot(config.NODE_ROOT)
    cluster = LocalCluster(tmp_path_factory.mktemp("realnode"), advertise_address=claim.node_ip)
    try:
        cluster.start()
        node = realnode.RealNode(cluster, claim)
        node.start()
        print(
            f"\nreal node: kubelet start -> node Ready {node.ready_seconds:.2f}s", file=sys.stderr
        )
        yield Run(cluster, node, before)
    finally:
        cluster.stop()
        claim.release()


def _json(run: Run, *args: str) -> Any:
    return json.loads(run.cluster.kubectl(*args, "-o", "json").stdout)


def _free_host_port() -> int:
    """A port free for both TCP and UDP on this machine."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("0.0.0.0", 0))  # noqa: S104
            port = tcp.getsockname()[1]
            try:
                udp.bind(("0.0.0.0", port))  # noqa: S104
            except OSError:
                continue
            return int(port)


def _media_shaped_pod(name: str, host_port: int) -> dict[str, Any]:
    """Shaped like the media pod: non-root, read-only root, no capabilities, seccomp, hostPorts."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {config.REAL_NODE_LABEL: "true"},
            "tolerations": [{**config.TAINT, "operator": "Equal"}],
            "terminationGracePeriodSeconds": 5,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "echo",
                    "image": ECHO_IMAGE,
                    "imagePullPolicy": "Never",
                    "args": ["serve", str(CONTAINER_PORT)],
                    "ports": [
                        {"containerPort": CONTAINER_PORT, "hostPort": host_port, "protocol": p}
                        for p in ("TCP", "UDP")
                    ],
                    "readinessProbe": {
                        "tcpSocket": {"port": CONTAINER_PORT},
                        "periodSeconds": 1,
                    },
                    "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@dataclass
class Pod:
    namespace: str
    name: str
    host_port: int
    ready_seconds: float


@pytest.fixture(scope="module")
def echo_pod(run: Run) -> Pod:
    archive = realnode.static_c_image(ECHO_SOURCE, repo_tag=ECHO_IMAGE, user="65532:65532", args=())
    run.node.import_image(archive)
    listed = realnode.ctr(run.node.layout.containerd_socket, "images", "ls")
    assert archive_image_id(archive) in listed  # ctr took the archive as written
    namespace = "realnode-test"
    run.cluster.kubectl("create", "namespace", namespace)
    wait_for(
        "service account default",
        lambda: run.cluster.kubectl("-n", namespace, "get", "sa", "default").returncode == 0,
        timeout=60,
    )
    port = _free_host_port()
    started = time.monotonic()
    run.cluster.kubectl(
        "-n", namespace, "create", "-f", "-", input=json.dumps(_media_shaped_pod("echo", port))
    )
    wait_for(
        "the echo pod Ready on the real node",
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in _json(run, "-n", namespace, "get", "pod", "echo")["status"]["conditions"]
        ),
        timeout=120,
        interval=0.1,
    )
    ready = time.monotonic() - started
    print(f"\nreal node: pod create -> Ready {ready:.2f}s", file=sys.stderr)
    return Pod(namespace, "echo", port, ready)


def test_node_registers_ready_with_its_identity_labels_and_taint(run: Run) -> None:
    node = _json(run, "get", "node", config.NODE_NAME)
    assert {"type": "InternalIP", "address": run.node.layout.node_ip} in node["status"]["addresses"]
    assert node["metadata"]["labels"]["topology.kubernetes.io/region"] == "de-fra"
    assert node["metadata"]["labels"][config.REAL_NODE_LABEL] == "true"
    assert config.TAINT in node["spec"]["taints"]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    # Its own identity (system:node:<name> in system:nodes), not the admin kubeconfig.
    kubeconfig = run.node.layout.kubeconfig("kubelet")
    whoami = json.loads(
        run_kubectl(run.cluster.binaries, kubeconfig, ["auth", "whoami", "-o", "json"]).stdout
    )["status"]["userInfo"]
    assert whoami["username"] == f"system:node:{config.NODE_NAME}"
    assert "system:nodes" in whoami["groups"]
    # The Node authorizer: it reads the Secrets its own pods use, not every Secret.
    for verb in ("list", "get"):
        can = run_kubectl(
            run.cluster.binaries,
            kubeconfig,
            ["auth", "can-i", verb, "secrets", "--namespace=kube-system"],
            check=False,
        )
        assert can.stdout.startswith("no"), can.stdout  # "no - <the Node authorizer's reason>"


def test_media_shaped_pod_runs_and_answers_on_this_machines_address(
    run: Run, echo_pod: Pod
) -> None:
    address = run.node.layout.node_ip
    with socket.create_connection((address, echo_pod.host_port), timeout=5) as tcp:
        assert tcp.recv(64) == b"sprechzimmer-echo tcp\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(b"ping", (address, echo_pod.host_port))
        assert udp.recvfrom(64)[0] == b"echo:ping"


def test_kubectl_logs_and_exec_reach_the_kubelet(run: Run, echo_pod: Pod) -> None:
    logs = run.cluster.kubectl("-n", echo_pod.namespace, "logs", echo_pod.name).stdout
    assert f"listening on tcp and udp port {CONTAINER_PORT}" in logs
    check = run.cluster.kubectl(
        "-n", echo_pod.namespace, "exec", echo_pod.name, "--", "/echo", "selfcheck"
    ).stdout
    facts = dict(re.findall(r"([\w-]+)[=:]\s*(\S+)", check))
    assert facts["uid"] == "65532"
    assert facts["CapEff"] == "0000000000000000"
    assert facts["Seccomp"] == "2"
    assert facts["NoNewPrivs"] == "1"
    assert facts["rootfs-write"] == "Read-only"


def _container_pid(run: Run, pod: Pod) -> int:
    status = _json(run, "-n", pod.namespace, "get", "pod", pod.name)["status"]
    container = status["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    tasks = realnode.ctr(run.node.layout.containerd_socket, "tasks", "ls")
    return int(next(line.split()[1] for line in tasks.splitlines() if line.startswith(container)))


def test_pods_reach_the_api_server_through_the_kubernetes_service(run: Run, echo_pod: Pod) -> None:
    """From the pod's network namespace, TLS to 10.96.0.1:443 verifies against the cluster CA."""
    probe = (
        "import ssl, socket, sys\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
        "with socket.create_connection(('10.96.0.1', 443), timeout=5) as s:\n"
        "    with ctx.wrap_socket(s, server_hostname='10.96.0.1') as t:\n"
        "        t.sendall(b'GET /version HTTP/1.0\\r\\nHost: 10.96.0.1\\r\\n\\r\\n')\n"
        "        print(t.recv(4096).decode())\n"
    )
    pid = _container_pid(run, echo_pod)
    result = subprocess.run(
        [
            "nsenter",
            "-t",
            str(pid),
            "-n",
            sys.executable,
            "-c",
            probe,
            str(run.cluster.layout.pki / "ca.crt"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "200 OK" in result.stdout
    assert '"gitVersion": "v1.35.4"' in result.stdout


def test_stop_leaves_the_machine_as_it_found_it(run: Run, echo_pod: Pod) -> None:
    touched = hoststate.read_sysctls()
    run.cluster.stop()
    after = hoststate.snapshot(config.NODE_ROOT)
    assert touched != run.before.sysctls  # the kubelet did change something: the test means it
    assert after.sysctls == run.before.sysctls
    assert not Path(f"/sys/class/net/{config.BRIDGE}").exists()
    assert set(after.chains) <= set(run.before.chains)
    assert after.absent_paths == run.before.absent_paths
    assert after.absent_cgroups == run.before.absent_cgroups
    assert after.netns == run.before.netns
    assert hoststate.mounts_under([run.cluster.state_dir, config.NODE_ROOT]) == []
    assert not run.node.record.exists()
    assert not config.NODE_ROOT.exists()

"""Product components ``make up`` runs next to the control plane, as plain processes.

Each add-on starts under the cluster's supervisor (so it stops with ``make down`` and cannot
outlive it) and returns the ``KEY=URL`` lines it adds to ``endpoints.env``.
"""

from __future__ import annotations

import secrets
import sys
import urllib.request

from sprechzimmer.devcluster.cluster import LocalCluster, free_ports, wait_for

OPERATOR_NAMESPACE = "sprechzimmer-system"


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def start_operator(cluster: LocalCluster) -> dict[str, str]:
    """Run the operator with the admin kubeconfig and a fresh shared key (``pki/operator.key``)."""
    cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    key = cluster.layout.pki / "operator.key"
    key.write_text(secrets.token_urlsafe(48))
    key.chmod(0o600)
    (port,) = free_ports(1)
    cluster.spawn(
        "operator",
        [sys.executable, "-m", "sprechzimmer.operator"],
        env={
            "KUBECONFIG": str(cluster.kubeconfig),
            "POD_NAME": "operator-local",
            "SPRECHZIMMER_OPERATOR_SHARED_KEY": key.read_text(),
            "SPRECHZIMMER_OPERATOR_HTTP_PORT": str(port),
        },
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(
        "operator /healthz", lambda: _http_ok(base + "/healthz"), 60, alive=cluster.check_alive
    )
    return {"OPERATOR_METRICS_URL": base + "/metrics", "OPERATOR_HEALTH_URL": base + "/healthz"}


ADDONS = {"operator": start_operator}

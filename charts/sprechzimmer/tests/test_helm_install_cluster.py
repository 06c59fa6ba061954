"""``helm install / upgrade / uninstall`` against the real API server (which validates every
object the chart renders). Pods do not really run here (KWOK nodes, or none): what runs in them is
the e2e's part on the real node. The CRDs come from the cluster fixture, so the chart installs
with ``crds.enabled=false``; ``test_chart.py`` checks the templated CRDs equal ``crds/``.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

from sprechzimmer.devcluster.cluster import wait_for

CHART = Path(__file__).resolve().parent.parent
HELM = CHART.parent.parent / ".tools/bin/helm"
NAMESPACED = "deploy,svc,secret,sa,role,rolebinding,networkpolicy,pdb"


def _helm(cluster: Any, *args: str) -> str:
    result = subprocess.run(
        [str(HELM), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _objects(cluster: Any, release: str, *namespaces: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={release}"
    names = []
    for ns in namespaces:
        out = cluster.kubectl("-n", ns, "get", NAMESPACED, "-l", selector, "-o", "name").stdout
        names += [f"{ns}/{n}" for n in out.split()]
    out = cluster.kubectl("get", "clusterrole,clusterrolebinding", "-l", selector, "-o", "name")
    return names + out.stdout.split()


def _json(cluster: Any, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def test_install_upgrade_keeps_the_key_and_uninstall_leaves_nothing(
    cluster: Any, namespace: str
) -> None:
    release = f"sz-{secrets.token_hex(3)}"
    practice = f"{namespace}-praxis"
    cluster.kubectl("create", "namespace", practice)
    try:
        notes = _helm(
            cluster,
            "install", release, str(CHART), "-n", namespace,
            "--set", "crds.enabled=false",
            "--set", f"practices[0].namespace={practice}",
            "--set", "practices[0].serviceAccount=webapp",
        )  # fmt: skip
        assert f"helm test -n {namespace} {release}" in notes  # NOTES.txt: next steps
        assert f"- {practice} (bound to ServiceAccount webapp)" in notes
        created = _objects(cluster, release, namespace, practice)
        assert (
            f"{practice}/role.rbac.authorization.k8s.io/{release}-sprechzimmer-practice" in created
        )
        assert f"clusterrole.rbac.authorization.k8s.io/{release}-sprechzimmer-operator" in created
        secret = f"{release}-sprechzimmer-shared-key"
        key = _json(cluster, "-n", namespace, "get", "secret", secret)["data"]["shared-key"]
        assert len(base64.b64decode(key)) == 48

        _helm(
            cluster,
            "upgrade", release, str(CHART), "-n", namespace, "--reuse-values",
            "--set", "signaling.logLevel=DEBUG",
        )  # fmt: skip
        again = _json(cluster, "-n", namespace, "get", "secret", secret)["data"]["shared-key"]
        assert again == key, "the shared key changed on upgrade: every issued code would break"
        deployment = _json(
            cluster, "-n", namespace, "get", "deploy", f"{release}-sprechzimmer-signaling"
        )
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "SPRECHZIMMER_SIGNALING_LOG_LEVEL", "value": "DEBUG"} in env

        _helm(cluster, "uninstall", release, "-n", namespace, "--wait")
        wait_for(
            "no object of the release left",
            lambda: not _objects(cluster, release, namespace, practice),
            timeout=60,
        )
    finally:
        subprocess.run(
            [
                str(HELM),
                "--kubeconfig",
                str(cluster.kubeconfig),
                "uninstall",
                release,
                "-n",
                namespace,
            ],
            capture_output=True,
            check=False,
        )
        cluster.kubectl("delete", "namespace", practice, "--wait=false", "--ignore-not-found")

"""Signaling under its own service account, bound exactly as signaling/deploy/rbac.yaml says.

- the rules equal ``kube.API_ACCESS`` (what the code calls, kept next to the calls);
- a 1:1 call under a token of that account: the session list and watch, the presence Lease in
  the system namespace, the presence patch, the practice logo's ConfigMap — a missing verb
  shows as a 403 in the log, a replica that never becomes ready, presence that is never
  written, or a logo that is not served.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import support
import yaml
from lightkube import Client
from signaling_process import Person, StartSignaling
from sprechzimmer.contract import SecretKey
from sprechzimmer.signaling.kube import API_ACCESS
from test_browser_logo import LOGOS, create_logo
from test_calls_cluster import ready_session

RBAC = Path(__file__).resolve().parents[1] / "deploy" / "rbac.yaml"
SYSTEM_NAMESPACE = "sprechzimmer-system"
ACCOUNT = "sprechzimmer-signaling"


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


@pytest.mark.unit
def test_rules_grant_exactly_what_the_code_uses() -> None:
    granted: dict[tuple[str, str], set[str]] = {}
    for doc in documents():
        for rule in doc.get("rules") or []:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == {k: set(v) for k, v in API_ACCESS.items()}
    [lease_role] = [d for d in documents() if d["kind"] == "Role"]
    assert lease_role["metadata"]["namespace"] == SYSTEM_NAMESPACE  # Leases nowhere else


def account_kubeconfig(cluster: Any, path: Path) -> Path:
    """The admin kubeconfig with its user swapped for a token of the signaling account."""
    cluster.kubectl("create", "namespace", SYSTEM_NAMESPACE, check=False)  # may exist already
    cluster.kubectl("apply", "-f", str(RBAC))
    request = ("create", "token", ACCOUNT, f"--namespace={SYSTEM_NAMESPACE}", "--duration=1h")
    token = cluster.kubectl(*request).stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": ACCOUNT, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = ACCOUNT
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.mark.cluster
async def test_a_call_under_the_signaling_account(
    cluster: Any,
    operator: Any,
    start_signaling: StartSignaling,
    namespace: str,
    kube: Client,
    tmp_path: Path,
) -> None:
    name = f"sig-rbac-{secrets.token_hex(3)}"
    sig = start_signaling(
        name,
        kubeconfig=account_kubeconfig(cluster, tmp_path / "signaling.kubeconfig"),
        presence_namespace=SYSTEM_NAMESPACE,
    )
    create_logo(kube, namespace, "rbac-logo", LOGOS["svg-64x32"])
    codes = ready_session(kube, namespace, "rbac", logo="rbac-logo")
    async with aiohttp.ClientSession() as http:
        host = await Person(http, sig.url).connect()
        client = await Person(http, sig.url).connect()
        welcome = await host.hello({"link": codes[SecretKey.HOST_LINK_TOKEN.value]})
        assert welcome["type"] == "welcome"
        async with http.get(sig.url + welcome["logo"]) as logo:
            assert logo.status == 200
            assert logo.content_type == "image/svg+xml"
        assert (await client.hello({"link": codes[SecretKey.CLIENT_LINK_TOKEN.value]}))[
            "type"
        ] == "welcome"
        await host.send(type="join")
        await client.send(type="join")
        support.wait_for(
            "presence written under the account",
            lambda: (
                support.status(kube, namespace, "rbac").get("presence", {}).get("vouchedBy") == name
            ),
        )
        await host.close()
        await client.close()
    assert sig.metric("sprechzimmer_signaling_presence_writes_total", result="error") == 0
    log = sig.log()
    assert '"error":"403' not in log  # how a refused request is logged
    assert "forbidden" not in log.lower()

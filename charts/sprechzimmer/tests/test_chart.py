"""The Helm chart, rendered by the real ``helm`` (``make tools``): snapshots, generated files,
and the contracts the chart shares with the code (CRDs, RBAC, settings, metrics, runbook).

Snapshots: ``tests/snapshots/<values set>.yaml``; after an intended change, regenerate with
``SPRECHZIMMER_UPDATE_SNAPSHOTS=1 .venv/bin/pytest charts/sprechzimmer/tests`` and review the diff.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sprechzimmer.signaling.core.settings import Settings
from sprechzimmer.signaling.kube import API_ACCESS
from sprechzimmer.signaling.metrics import Metrics

pytestmark = pytest.mark.unit

CHART = Path(__file__).resolve().parent.parent
ROOT = CHART.parent.parent
HELM = ROOT / ".tools/bin/helm"
VALUE_SETS = {"default": [], "full": ["full.yaml"], "minimal": ["minimal.yaml"]}
RELEASE, NAMESPACE = "sprechzimmer", "sprechzimmer-system"

_spec = importlib.util.spec_from_file_location("chart_gen", CHART / "hack/gen.py")
assert _spec is not None
assert _spec.loader is not None
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `make tools`")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)


@functools.cache
def _render_text(value_files: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for name in value_files:
        args += ["--values", str(CHART / "tests/values" / name)]
    for item in sets:
        args += ["--set", item]
    result = _helm(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(*value_files: str, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_render_text(value_files, sets)) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str = "") -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name)]


def _normalise(text: str) -> str:
    """The generated shared key is random: mask it."""
    return re.sub(r"(\n  shared-key: )\S+", r"\1<generated>", text)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_snapshot(value_set: str) -> None:
    rendered = _normalise(_render_text(tuple(VALUE_SETS[value_set])))
    snapshot = CHART / "tests/snapshots" / f"{value_set}.yaml"
    if os.environ.get("SPRECHZIMMER_UPDATE_SNAPSHOTS"):
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(rendered)
    assert snapshot.exists(), f"no snapshot {snapshot.name}: set SPRECHZIMMER_UPDATE_SNAPSHOTS=1"
    assert rendered == snapshot.read_text(), (
        f"{value_set}: rendering changed; review and set SPRECHZIMMER_UPDATE_SNAPSHOTS=1"
    )


def test_generated_files_are_up_to_date() -> None:
    files = gen.outputs()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    assert not stale + gen.leftovers(files), "run charts/sprechzimmer/hack/gen.py"


def test_helm_lint() -> None:
    full = str(CHART / "tests/values/full.yaml")
    result = _helm("lint", "--strict", str(CHART), "--values", full)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_rejects_unknown_and_bad_values() -> None:
    for bad in ("operator.bogus=1", "crds.keep=maybe", "image.pullPolicy=Sometimes"):
        result = _helm("template", "x", str(CHART), "--set", bad)
        assert result.returncode != 0, bad
        assert "schema" in result.stderr, result.stderr


def _crds(path: Path) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(path.read_text()) if d}


def test_templated_crds_equal_the_crds_folder() -> None:
    expected: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        expected.update(_crds(path))
    kept = {d["metadata"]["name"]: d for d in find(render(), "CustomResourceDefinition")}
    assert set(kept) == set(expected)
    for name, crd in kept.items():
        annotations = crd["metadata"].pop("annotations")
        assert annotations == {"helm.sh/resource-policy": "keep"}
        assert crd == expected[name], name
    dropped = find(render(sets=("crds.keep=false",)), "CustomResourceDefinition")
    assert {d["metadata"]["name"] for d in dropped} == set(expected)
    assert all("annotations" not in d["metadata"] for d in dropped)
    assert find(render("minimal.yaml"), "CustomResourceDefinition") == []


def _rules(doc: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    table: dict[tuple[str, str], frozenset[str]] = {}
    for rule in doc["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table[(group, resource)] = frozenset(rule["verbs"])
    return table


def test_operator_rbac_is_operator_deploy_rbac_and_api_access() -> None:
    from sprechzimmer.operator.adapters import kube

    source = list(yaml.safe_load_all((ROOT / "operator/deploy/rbac.yaml").read_text()))
    docs = render()
    for kind in ("ClusterRole", "Role"):
        want = [_rules(d) for d in source if d["kind"] == kind]
        assert [_rules(d) for d in find(docs, kind, "-operator")] == want, kind
    # Cluster-wide what the code uses everywhere; in its own namespace (where usage records
    # live, once the operator keeps them there) the rest.
    assert _rules(find(docs, "ClusterRole", "-operator")[0]) == kube.API_ACCESS
    own = getattr(kube, "OWN_NAMESPACE_ACCESS", None)
    roles = find(docs, "Role", "-operator")
    assert [_rules(r) for r in roles] == ([own] if own else [])
    assert all(r["metadata"]["namespace"] == NAMESPACE for r in roles)
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in find(docs, kind, "-operator"):
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": f"{RELEASE}-operator", "namespace": NAMESPACE}
            ]


def test_signaling_rbac_is_its_api_access() -> None:
    docs = render()
    granted = _rules(find(docs, "ClusterRole", "-signaling")[0])
    leases = _rules(find(docs, "Role", "-signaling")[0])
    assert find(docs, "Role", "-signaling")[0]["metadata"]["namespace"] == NAMESPACE
    assert granted | leases == API_ACCESS


def _env(container: dict[str, Any], secret_value: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = item["value"]
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), ""), value)
        elif "secretKeyRef" in item["valueFrom"]:
            env[item["name"]] = secret_value
        else:
            env[item["name"]] = "10.0.0.7"  # fieldRef: pod name / IP
    return env


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_operator_accepts_the_rendered_settings(
    value_set: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sprechzimmer.operator.core.settings import OperatorSettings

    deployment = find(render(*VALUE_SETS[value_set]), "Deployment", "-operator")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = _env(container, "k" * 48)
    for name in list(os.environ):
        if name.startswith("SPRECHZIMMER_OPERATOR_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()  # type: ignore[call-arg]
    assert settings.media_image == settings.turn_image  # one image serves sfu and turn
    assert settings.presence_namespace == NAMESPACE
    assert settings.usage_namespace == NAMESPACE
    if value_set == "full":  # every setting changed: a misspelt variable would leave a default
        values = yaml.safe_load((CHART / "tests/values/full.yaml").read_text())["operator"]
        for key in [*values["settings"], "mediaResources"]:
            field = re.sub(r"([A-Z])", r"_\1", key).lower()
            default = OperatorSettings.model_fields[field].get_default(call_default_factory=True)
            assert getattr(settings, field) != default, key
    assert settings.standalone == (deployment["spec"]["replicas"] == 1)
    assert settings.http_port == container["ports"][0]["containerPort"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_signaling_accepts_the_rendered_settings(value_set: str) -> None:
    deployment = find(render(*VALUE_SETS[value_set]), "Deployment", "-signaling")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    settings = Settings.from_env(_env(container, "k" * 48))
    assert settings.presence_namespace == NAMESPACE
    assert settings.port == container["ports"][0]["containerPort"]


def _pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    return specs + [d["spec"] for d in docs if d["kind"] == "Pod"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_pod_meets_pod_security_restricted(value_set: str) -> None:
    pods = _pods(render(*VALUE_SETS[value_set]))
    assert len(pods) == 3  # operator, signaling, smoke test
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not any(k in pod for k in ("hostNetwork", "hostPID", "hostIPC"))
        assert all("hostPath" not in v for v in pod.get("volumes", []))
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert all("hostPort" not in p for p in container.get("ports", []))


def test_practice_role_and_media_policy() -> None:
    docs = render("full.yaml")
    roles = {d["metadata"]["namespace"]: d for d in find(docs, "Role", "-practice")}
    assert set(roles) == {"praxis-muster", "praxis-beispiel"}
    assert _rules(roles["praxis-muster"]) == {
        ("sprechzimmer.io", "videosessions"): {"create", "get", "list", "watch", "delete"},
        ("", "secrets"): {"get"},
    }
    bindings = find(docs, "RoleBinding", "-practice")
    assert [b["metadata"]["namespace"] for b in bindings] == ["praxis-muster"]
    policies = {d["metadata"]["namespace"]: d for d in find(docs, "NetworkPolicy", "-media-pods")}
    assert set(policies) == {"praxis-muster", "praxis-beispiel"}
    spec = policies["praxis-muster"]["spec"]
    turn, control = spec["ingress"]
    assert "from" not in turn  # TURN from anywhere, on the configured host-port range only
    assert {(p["protocol"], p["port"], p["endPort"]) for p in turn["ports"]} == {
        ("UDP", 30000, 30999),
        ("TCP", 30000, 30999),
    }
    assert control["ports"] == [{"protocol": "TCP", "port": "control"}]
    signaling = control["from"][0]["podSelector"]["matchLabels"]
    assert signaling["app.kubernetes.io/component"] == "signaling"
    assert spec["egress"] == []


def test_operator_and_signaling_policies_admit_only_what_they_serve() -> None:
    docs = render()
    operator = find(docs, "NetworkPolicy", "-operator")[0]["spec"]
    # Only health/metrics, and only from the smoke test (Prometheus when monitoring is on).
    assert len(operator["ingress"]) == 1
    assert operator["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"sprechzimmer/smoke-test": "true"}}}
    ]
    signaling = find(docs, "NetworkPolicy", "-signaling")[0]["spec"]
    assert signaling["ingress"][0] == {"ports": [{"protocol": "TCP", "port": "http"}]}


def test_shared_key_is_generated_or_taken_from_an_existing_secret() -> None:
    secret = find(render(), "Secret", "-shared-key")[0]
    assert len(secret["data"]["shared-key"]) >= 64  # base64 of 48 characters
    assert find(render("full.yaml"), "Secret") == []
    deployment = find(render("full.yaml"), "Deployment", "-operator")[0]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    ref = next(e for e in env if e["name"] == "SPRECHZIMMER_OPERATOR_SHARED_KEY")
    assert ref["valueFrom"]["secretKeyRef"] == {"name": "sprechzimmer-key", "key": "key"}


def _documented_metrics() -> set[str]:
    names = set()
    for doc in ("docs/operator.md", "docs/media-pod.md"):
        # The "## Metrics" section: its tables list every metric.
        text = (ROOT / doc).read_text().split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
        names |= set(re.findall(r"sprechzimmer_[a-z_]+", text))
        # "`sprechzimmer_sfu_nacks_received_total`, `_upstream_nacks_sent_total`" shorthand
        for prefix in ("sprechzimmer_sfu", "sprechzimmer_operator"):
            if prefix in text:
                names |= {prefix + m for m in re.findall(r"`(_[a-z_]+)`", text)}
    for family in Metrics().registry.collect():
        names |= {family.name, family.name + "_total"}
    return names


def test_alerts_and_dashboard_use_documented_metrics_and_have_runbooks() -> None:
    docs = render(sets=("monitoring.enabled=true",))
    rules = find(docs, "PrometheusRule")[0]["spec"]["groups"]
    alerts = [r for g in rules for r in g["rules"]]
    runbook = (ROOT / "docs/runbook.md").read_text()
    for alert in alerts:
        assert f"## {alert['alert']}" in runbook, alert["alert"]
        assert alert["annotations"]["runbook_url"].endswith("#" + alert["alert"].lower())
    used = set()
    for alert in alerts:
        used |= set(re.findall(r"sprechzimmer_[a-z_]+", alert["expr"]))
    board = (CHART / "dashboards/sprechzimmer.json").read_text()
    used |= set(re.findall(r"sprechzimmer_[a-z_]+", board))
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for m in used}
    documented = _documented_metrics()
    known_prefixes = ("sprechzimmer_operator_", "sprechzimmer_sfu_", "sprechzimmer_signaling_")
    checked = {m for m in used if m.startswith(known_prefixes)}
    assert checked, "no metric checked"
    assert checked <= documented, sorted(checked - documented)


def test_dashboard_covers_every_documented_metric() -> None:
    board = (CHART / "dashboards/sprechzimmer.json").read_text()
    shown = {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r"sprechzimmer_\w+", board)}
    documented = {m for m in _documented_metrics() if not m.endswith("_")}
    assert {"sprechzimmer_operator_leader", "sprechzimmer_sfu_participants"} <= documented
    # Signaling's counters are collected as both `name` and `name_total`; either shown is enough.
    missing = {
        m
        for m in documented - shown
        if m + "_total" not in shown and m.removesuffix("_total") not in shown
    }
    assert not missing, sorted(missing)


def test_alerts_fire_when_they_should(tmp_path: Path) -> None:
    """tests/alerts.test.yaml through promtool: each alert fires on its symptom, not without."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: `make packages` installs Debian's prometheus"
    rule = find(render(sets=("monitoring.enabled=true",)), "PrometheusRule")[0]
    groups = rule["spec"]["groups"]
    for group in groups:
        for alert in group["rules"]:
            alert.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(CHART / "tests/alerts.test.yaml", tmp_path / "tests.yaml")
    checked = subprocess.run(
        [promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

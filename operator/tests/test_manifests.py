from __future__ import annotations

from datetime import timedelta

import pytest
from operator_builders import at, session_body, settings
from sprechzimmer.contract import LABEL_SESSION_UID, REGION_LABEL, SecretKey
from sprechzimmer.contract.mediapod import RUN_AS_UID
from sprechzimmer.operator.core import manifests
from sprechzimmer.operator.core.codes import CodePair
from sprechzimmer.operator.core.model import ANNOTATION_TURN_PORT, Session
from sprechzimmer.operator.core.settings import OperatorSettings

pytestmark = pytest.mark.unit
S = Session.parse(session_body(clients=3))
CFG = settings()


def pod(configured: OperatorSettings = CFG) -> dict:
    return manifests.media_pod(
        S,
        incarnation=2,
        turn_port=10042,
        expires_at=at(hours=24),
        now=at(0),
        allowed_regions=frozenset({"de-fra"}),
        settings=configured,
    )


def test_media_pod_is_restricted_pinned_and_owned() -> None:
    body = pod()
    spec = body["spec"]
    assert body["metadata"]["name"].endswith("-media-2")
    assert body["metadata"]["annotations"][ANNOTATION_TURN_PORT] == "10042"
    assert body["metadata"]["labels"][LABEL_SESSION_UID] == S.uid
    assert body["metadata"]["ownerReferences"][0]["uid"] == S.uid
    assert spec["securityContext"]["runAsNonRoot"]
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for c in spec["containers"] + spec["initContainers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert c["resources"]["limits"]["cpu"] == CFG.media_resources.limits_cpu
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]
    assert term["matchExpressions"][0] == {
        "key": REGION_LABEL,
        "operator": "In",
        "values": ["de-fra"],
    }
    turn = next(c for c in spec["containers"] if c["name"] == "turn")
    assert {(p["hostPort"], p["protocol"]) for p in turn["ports"]} == {
        (10042, "UDP"),
        (10042, "TCP"),
    }
    assert spec["activeDeadlineSeconds"] == 24 * 3600 + manifests.POD_DEADLINE_SLACK_SECONDS
    assert spec["automountServiceAccountToken"] is False
    # No extra placement unless configured.
    assert "tolerations" not in spec
    assert "nodeSelector" not in spec


def test_media_pod_runs_as_the_images_user_and_owns_its_volumes() -> None:
    context = pod()["spec"]["securityContext"]
    assert context["runAsUser"] == context["runAsGroup"] == RUN_AS_UID
    assert context["fsGroup"] == RUN_AS_UID  # /run/turn is written by the init container


def test_media_pod_takes_configured_tolerations_and_node_selector() -> None:
    toleration = {
        "key": "sprechzimmer.io/real-node",
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    }
    configured = settings(
        media_tolerations=[toleration],
        media_node_selector={"sprechzimmer.io/real-node": "true"},
    )
    spec = pod(configured)["spec"]
    assert spec["tolerations"] == [toleration]
    assert spec["nodeSelector"] == {"sprechzimmer.io/real-node": "true"}
    # The region affinity stays: a selector narrows placement, never widens it.
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]


def test_media_placement_settings_parse_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SPRECHZIMMER_OPERATOR_MEDIA_TOLERATIONS", '[{"key": "k", "operator": "Exists"}]'
    )
    monkeypatch.setenv("SPRECHZIMMER_OPERATOR_MEDIA_NODE_SELECTOR", '{"pool": "media"}')
    parsed = settings()
    assert parsed.media_tolerations == [{"key": "k", "operator": "Exists"}]
    assert parsed.media_node_selector == {"pool": "media"}


def test_media_pod_env_contract() -> None:
    sfu = next(c for c in pod()["spec"]["containers"] if c["name"] == "sfu")
    env = {e["name"]: e for e in sfu["env"]}
    assert env["SPRECHZIMMER_TURN_PORT"]["value"] == "10042"
    assert env["SPRECHZIMMER_EXPIRES_AT"]["value"] == "2026-11-22T10:00:00Z"
    assert env["SPRECHZIMMER_CONTROL_PORT"]["value"] == "8080"
    assert env["SPRECHZIMMER_MAX_PARTICIPANTS"]["value"] == "5"
    assert "secretKeyRef" in env["SPRECHZIMMER_CONTROL_TOKEN"]["valueFrom"]
    assert "secretKeyRef" in env["SPRECHZIMMER_TURN_SECRET"]["valueFrom"]


def test_codes_secret_holds_plaintext_and_is_owned() -> None:
    pair = CodePair("abc-def-012", "345-678-9ab", "t1", "t2")
    body = manifests.codes_secret(S, pair, "https://signaling.example/")
    assert body["metadata"]["name"] == "termin-codes"
    assert body["stringData"][SecretKey.HOST_CODE.value] == "abc-def-012"
    assert body["stringData"][SecretKey.HOST_LINK.value] == "https://signaling.example/j#t1"
    assert body["stringData"][SecretKey.CLIENT_LINK.value] == "https://signaling.example/j#t2"
    assert body["metadata"]["ownerReferences"][0]["controller"] is True


def test_event_is_about_the_session() -> None:
    ev = manifests.event(
        S,
        name_suffix="abc",
        type_="Warning",
        reason="NoCapacityInRegion",
        message="m",
        now=at(0),
        instance="op-0",
    )
    assert ev["involvedObject"]["uid"] == S.uid
    assert ev["type"] == "Warning"
    assert ev["metadata"]["name"] == "termin.abc"


def test_long_session_names_get_uid_based_secret_names() -> None:
    body = session_body()
    body["metadata"]["name"] = "x" * 250
    assert manifests.codes_secret_name(Session.parse(body)).startswith("vs-")
    assert timedelta(0) == timedelta(0)

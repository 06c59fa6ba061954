"""The operator ↔ media pod contract, checked by both sides' own code.

The operator renders its media pod and media Secret (``core.manifests``); the media pod's own
``Settings.from_env`` reads the container environment exactly as the kubelet would hand it over
(``secretKeyRef`` resolved from the rendered Secret). If either side renames a variable, changes
a format or lets the drain outlast the kubelet's grace period, this fails.
"""

from __future__ import annotations

from typing import Any

import pytest
from operator_builders import KEY, at, session_body, settings
from sprechzimmer.contract import keys
from sprechzimmer.contract.mediapod import CONTROL_PORT, DRAIN_MARGIN_SECONDS
from sprechzimmer.media.core.settings import Settings
from sprechzimmer.operator.core import manifests
from sprechzimmer.operator.core.model import Session

pytestmark = pytest.mark.unit
S = Session.parse(session_body(clients=3))
CFG = settings(turn_realm="praxis.example")
EXPIRES = at(hours=24)


def rendered() -> tuple[dict[str, Any], dict[str, Any]]:
    secret = manifests.media_secret(
        S,
        control_token=keys.control_token(KEY.encode(), S.uid),
        turn_secret=keys.turn_secret(KEY.encode(), S.uid),
    )
    pod = manifests.media_pod(
        S,
        incarnation=1,
        turn_port=10042,
        expires_at=EXPIRES,
        now=at(0),
        allowed_regions=frozenset({"de-fra"}),
        settings=CFG,
    )
    return pod, secret


def environment(container: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet resolves it."""
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"], var["name"]
        env[var["name"]] = secret["stringData"][ref["key"]]
    return env


@pytest.mark.parametrize("container", ["turn-config", "sfu"])
def test_the_media_pod_parses_what_the_operator_renders(container: str) -> None:
    pod, secret = rendered()
    spec = pod["spec"]
    [chosen] = [c for c in spec["initContainers"] + spec["containers"] if c["name"] == container]
    parsed = Settings.from_env(environment(chosen, secret), need_control_token=True)
    assert parsed.turn_port == 10042
    assert parsed.turn_realm == "praxis.example"
    assert parsed.expires_at == EXPIRES
    assert parsed.control_token == keys.control_token(KEY.encode(), S.uid)
    assert parsed.turn_secret == keys.turn_secret(KEY.encode(), S.uid)
    assert parsed.control_port == CONTROL_PORT


def test_the_kubelet_waits_longer_than_the_sfu_drains() -> None:
    pod, secret = rendered()
    [sfu] = [c for c in pod["spec"]["containers"] if c["name"] == "sfu"]
    parsed = Settings.from_env(environment(sfu, secret), need_control_token=True)
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace >= parsed.grace_seconds + DRAIN_MARGIN_SECONDS
    assert grace >= parsed.grace_seconds + 5
    assert {"name": "control", "containerPort": CONTROL_PORT, "protocol": "TCP"} in sfu["ports"]

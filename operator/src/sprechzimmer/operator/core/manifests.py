"""The objects the operator creates, as plain dicts. No I/O.

Names are derived from the session (UID, incarnation), so a retried create after a crash
finds its object (409 AlreadyExists) instead of making a second one. Labels and annotations
carry UIDs and fixed words only, never names of people, codes or notes.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sprechzimmer.contract import (
    API_VERSION,
    JOIN_LINK_PATH,
    KIND,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_REGION,
    LABEL_SESSION_UID,
    MANAGED_BY,
    Component,
    SecretKey,
)
from sprechzimmer.contract.mediapod import (
    CONTROL_PORT,
    GRACE_SECONDS,
    MAX_CALL_PARTICIPANTS,
    RUN_AS_UID,
    TERMINATION_GRACE_PERIOD_SECONDS,
    MediaEnv,
)
from sprechzimmer.contract.rfc3339 import format_time
from sprechzimmer.operator.core.codes import CodePair
from sprechzimmer.operator.core.model import ANNOTATION_TURN_PORT, Session
from sprechzimmer.operator.core.placement import node_affinity
from sprechzimmer.operator.core.settings import OperatorSettings

MEDIA_SECRET_CONTROL_TOKEN = "control-token"  # noqa: S105 - a key name, not a secret
MEDIA_SECRET_TURN_SECRET = "turn-secret"  # noqa: S105 - a key name, not a secret
TURN_CONFIG_DIR = "/run/turn"
# Media pods get a kubelet-enforced deadline a little after expiry: even with no operator
# running, nothing of a session outlives its codes by more than this.
POD_DEADLINE_SLACK_SECONDS = 120


def codes_secret_name(session: Session) -> str:
    return f"{session.name}-codes" if len(session.name) <= 247 else f"vs-{session.uid}-codes"


def media_secret_name(session: Session) -> str:
    return f"vs-{session.uid}-media"


def media_pod_name(session: Session, incarnation: int) -> str:
    return f"vs-{session.uid}-media-{incarnation}"


def _labels(session: Session, component: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: component,
        LABEL_SESSION_UID: session.uid,
        LABEL_REGION: session.region.value,
    }


def owner_reference(session: Session) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": session.name,
        "uid": session.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def join_link(signaling_url: str, token: str) -> str:
    """The complete invitation link: the token rides in the fragment, never in a request line."""
    return f"{signaling_url.rstrip('/')}{JOIN_LINK_PATH}#{token}"


def codes_secret(session: Session, codes: CodePair, signaling_url: str) -> dict[str, Any]:
    """The only place the plaintext codes, link tokens and join links live."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": codes_secret_name(session),
            "namespace": session.namespace,
            "labels": _labels(session, Component.CODES.value),
            "ownerReferences": [owner_reference(session)],
        },
        "stringData": {
            SecretKey.HOST_CODE.value: codes.host_code,
            SecretKey.CLIENT_CODE.value: codes.client_code,
            SecretKey.HOST_LINK_TOKEN.value: codes.host_link_token,
            SecretKey.CLIENT_LINK_TOKEN.value: codes.client_link_token,
            SecretKey.HOST_LINK.value: join_link(signaling_url, codes.host_link_token),
            SecretKey.CLIENT_LINK.value: join_link(signaling_url, codes.client_link_token),
        },
    }


def media_secret(session: Session, *, control_token: str, turn_secret: str) -> dict[str, Any]:
    """Per-session credentials of the media pod (derived from the shared key)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": media_secret_name(session),
            "namespace": session.namespace,
            "labels": _labels(session, Component.MEDIA.value),
            "ownerReferences": [owner_reference(session)],
        },
        "stringData": {
            MEDIA_SECRET_CONTROL_TOKEN: control_token,
            MEDIA_SECRET_TURN_SECRET: turn_secret,
        },
    }


_RESTRICTED_CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def media_pod(
    session: Session,
    *,
    incarnation: int,
    turn_port: int,
    expires_at: datetime,
    now: datetime,
    allowed_regions: frozenset[str],
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The group call's media pod: SFU + coturn, pinned to the allowed regions, restricted."""
    res = settings.media_resources
    resources = {
        "requests": {"cpu": res.requests_cpu, "memory": res.requests_memory},
        "limits": {"cpu": res.limits_cpu, "memory": res.limits_memory},
    }
    secret = media_secret_name(session)

    def from_secret(name: MediaEnv, key: str) -> dict[str, Any]:
        return {"name": name.value, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    def value(name: MediaEnv, text: str) -> dict[str, Any]:
        return {"name": name.value, "value": text}

    env = [
        from_secret(MediaEnv.CONTROL_TOKEN, MEDIA_SECRET_CONTROL_TOKEN),
        from_secret(MediaEnv.TURN_SECRET, MEDIA_SECRET_TURN_SECRET),
        value(MediaEnv.TURN_PORT, str(turn_port)),
        value(MediaEnv.TURN_REALM, settings.turn_realm),
        value(MediaEnv.EXPIRES_AT, format_time(expires_at)),
        value(MediaEnv.CONTROL_PORT, str(CONTROL_PORT)),
        value(MediaEnv.MAX_PARTICIPANTS, str(MAX_CALL_PARTICIPANTS)),
        # The SFU drains this long after SIGTERM; the kubelet waits a margin longer.
        value(MediaEnv.GRACE_SECONDS, str(GRACE_SECONDS)),
    ]
    turn_mount = {"name": "turn-config", "mountPath": TURN_CONFIG_DIR}
    tmp_mount = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - an emptyDir, not the host's /tmp
    deadline = max(1, math.ceil((expires_at - now).total_seconds())) + POD_DEADLINE_SLACK_SECONDS
    # Extra placement from the settings (e.g. a dedicated, tainted media node pool): narrows the
    # region affinity above, never widens it.
    placement_extra: dict[str, Any] = {}
    if settings.media_tolerations:
        placement_extra["tolerations"] = [dict(t) for t in settings.media_tolerations]
    if settings.media_node_selector:
        placement_extra["nodeSelector"] = dict(settings.media_node_selector)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": media_pod_name(session, incarnation),
            "namespace": session.namespace,
            "labels": _labels(session, Component.MEDIA.value),
            "annotations": {ANNOTATION_TURN_PORT: str(turn_port)},
            "ownerReferences": [owner_reference(session)],
        },
        "spec": {
            "affinity": node_affinity(allowed_regions),
            **placement_extra,
            "restartPolicy": "Always",
            "activeDeadlineSeconds": deadline,
            "terminationGracePeriodSeconds": TERMINATION_GRACE_PERIOD_SECONDS,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_UID,
                "runAsGroup": RUN_AS_UID,
                "fsGroup": RUN_AS_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [
                {
                    "name": "turn-config",
                    "image": settings.media_image,
                    "imagePullPolicy": settings.image_pull_policy,
                    "command": [
                        "sprechzimmer-media",
                        "turn-config",
                        "--output",
                        f"{TURN_CONFIG_DIR}/turnserver.conf",
                    ],
                    "env": env,
                    "resources": resources,
                    "securityContext": _RESTRICTED_CONTAINER,
                    "volumeMounts": [turn_mount],
                }
            ],
            "containers": [
                {
                    "name": "sfu",
                    "image": settings.media_image,
                    "imagePullPolicy": settings.image_pull_policy,
                    "command": ["sprechzimmer-media", "sfu"],
                    "env": env,
                    "ports": [
                        {"name": "control", "containerPort": CONTROL_PORT, "protocol": "TCP"}
                    ],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "control"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "control"}},
                    "resources": resources,
                    "securityContext": _RESTRICTED_CONTAINER,
                    "volumeMounts": [tmp_mount],
                },
                {
                    "name": "turn",
                    "image": settings.turn_image,
                    "imagePullPolicy": settings.image_pull_policy,
                    "command": ["turnserver", "-c", f"{TURN_CONFIG_DIR}/turnserver.conf"],
                    "ports": [
                        {
                            "name": "turn-udp",
                            "containerPort": turn_port,
                            "hostPort": turn_port,
                            "protocol": "UDP",
                        },
                        {
                            "name": "turn-tcp",
                            "containerPort": turn_port,
                            "hostPort": turn_port,
                            "protocol": "TCP",
                        },
                    ],
                    "resources": resources,
                    "securityContext": _RESTRICTED_CONTAINER,
                    "volumeMounts": [turn_mount, tmp_mount],
                },
            ],
            "volumes": [
                {"name": "turn-config", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }


def event(
    session: Session,
    *,
    name_suffix: str,
    type_: str,
    reason: str,
    message: str,
    now: datetime,
    instance: str,
) -> dict[str, Any]:
    """A core/v1 Event about the session. Messages never carry codes, names or notes."""
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{session.name[:200]}.{name_suffix}", "namespace": session.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": session.name,
            "namespace": session.namespace,
            "uid": session.uid,
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": MANAGED_BY},
        "reportingComponent": MANAGED_BY,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }

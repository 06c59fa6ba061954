"""The operator ↔ media pod contract: what the operator writes into the pod, what the pod reads.

The operator renders these into the media pod manifest (``operator.core.manifests``); the pod
reads them with ``media.core.settings.Settings.from_env``. ``operator/tests/test_media_contract.py``
feeds the rendered environment to the pod's own parser, so the two cannot drift. No I/O.
"""

from __future__ import annotations

import enum
from typing import Final

from sprechzimmer.contract import MAX_PARTICIPANTS

ENV_PREFIX: Final = "SPRECHZIMMER_"


class MediaEnv(enum.StrEnum):
    """Environment variables of the media pod's containers."""

    CONTROL_TOKEN = "SPRECHZIMMER_CONTROL_TOKEN"
    TURN_SECRET = "SPRECHZIMMER_TURN_SECRET"
    TURN_PORT = "SPRECHZIMMER_TURN_PORT"
    TURN_REALM = "SPRECHZIMMER_TURN_REALM"
    EXPIRES_AT = "SPRECHZIMMER_EXPIRES_AT"
    CONTROL_PORT = "SPRECHZIMMER_CONTROL_PORT"
    CONTROL_HOST = "SPRECHZIMMER_CONTROL_HOST"
    MAX_PARTICIPANTS = "SPRECHZIMMER_MAX_PARTICIPANTS"
    GRACE_SECONDS = "SPRECHZIMMER_GRACE_SECONDS"
    MEDIA_TIMEOUT_SECONDS = "SPRECHZIMMER_MEDIA_TIMEOUT_SECONDS"
    TURN_LISTEN_IP = "SPRECHZIMMER_TURN_LISTEN_IP"
    TURN_RELAY_MIN_PORT = "SPRECHZIMMER_TURN_RELAY_MIN_PORT"
    TURN_RELAY_MAX_PORT = "SPRECHZIMMER_TURN_RELAY_MAX_PORT"


class JoinMode(enum.StrEnum):
    """``status.join.mode`` and the usage record's ``mode``."""

    PEER_TO_PEER = "PeerToPeer"  # 1:1: DTLS-SRTP between the two browsers
    MEDIA_POD = "MediaPod"  # 3-5 people: the session's own SFU


# The control API: versioned path prefix, port on the pod network, bearer token.
CONTROL_API_VERSION: Final = "v1"
CONTROL_PORT: Final = 8080
MAX_CALL_PARTICIPANTS: Final = MAX_PARTICIPANTS
# Largest SDP offer the SFU accepts (bytes). Chromium's offer for five seats with every codec is
# ~29 KB; offering only VP8 and Opus keeps it near 10 KB.
MAX_SDP_BYTES: Final = 32 * 1024
# After SIGTERM the SFU keeps forwarding until the call is empty or this has passed; the kubelet
# waits DRAIN_MARGIN_SECONDS more before SIGKILL, so the final events reach signaling.
GRACE_SECONDS: Final = 30
DRAIN_MARGIN_SECONDS: Final = 5
TERMINATION_GRACE_PERIOD_SECONDS: Final = GRACE_SECONDS + DRAIN_MARGIN_SECONDS
# The uid/gid every Sprechzimmer image runs as (``images/build.py`` writes its passwd entry) and
# the media pod's runAsUser/runAsGroup/fsGroup (``operator.core.manifests``): one definition, so
# the pod's volumes (``/run/turn``) are writable by the user the image was built for.
RUN_AS_UID: Final = 10001
# Longest /v1/events long poll the SFU holds open.
MAX_EVENTS_POLL_SECONDS: Final = 30

"""The VideoSession contract, written once and imported by every component.

Names, phases, the access-code format, label/annotation keys and the keys of the codes Secret
live here so the operator, the media pod, signaling and the tests cannot drift apart. The CRD in
``crds/videosession.yaml`` repeats the enums for admission; ``test_contract.py`` checks that both
say the same. No I/O, no third-party imports.
"""

from __future__ import annotations

import enum
import re
from datetime import timedelta
from typing import Final

GROUP: Final = "sprechzimmer.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "VideoSession"
PLURAL: Final = "videosessions"
SINGULAR: Final = "videosession"
SHORT_NAME: Final = "vs"
CATEGORY: Final = "sprechzimmer"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"


class Phase(enum.StrEnum):
    """Where a session is in its life; ``status.phase``, written by the operator only."""

    SCHEDULED = "Scheduled"  # codes issued, before the start window
    READY = "Ready"  # joinable: media allocated, or peer-to-peer
    ACTIVE = "Active"  # at least two people present, billing runs
    IDLE = "Idle"  # everyone left; media released after the idle timeout
    EXPIRED = "Expired"  # terminal: codes revoked, personal data removed
    FAILED = "Failed"  # terminal until the spec changes: e.g. no DE/AT capacity


TERMINAL_PHASES: Final = frozenset({Phase.EXPIRED})


class Region(enum.StrEnum):
    """Country whose nodes may carry a session's media; never anything else."""

    DE = "de"
    AT = "at"


class ConditionType(enum.StrEnum):
    """Condition types in ``status.conditions`` (Kubernetes shape, written by the operator)."""

    READY = "Ready"  # participants can join now
    CODES_ISSUED = "CodesIssued"  # the codes Secret exists
    MEDIA_PLACED = "MediaPlaced"  # the media pod was scheduled onto an allowed node
    BILLING = "Billing"  # minutes are being counted
    USAGE_RECORDED = "UsageRecorded"  # the usage record was written


# People in one call: the host plus 1..4 clients.
MIN_CLIENTS: Final = 1
MAX_CLIENTS: Final = 4
MAX_PARTICIPANTS: Final = MAX_CLIENTS + 1
MAX_NOTE_LENGTH: Final = 500
MAX_CODE_TTL: Final = timedelta(hours=24)
DEFAULT_CODE_TTL: Final = "24h"

# Access codes: three groups of three lowercase hex digits, e.g. ``c3f-e04-d96``.
CODE_PATTERN: Final = re.compile(r"^[0-9a-f]{3}-[0-9a-f]{3}-[0-9a-f]{3}$")
# DNS-1123 label: host handles and participant ids.
DNS1123_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# Node labels that decide where media may run.
REGION_LABEL: Final = "topology.kubernetes.io/region"
ZONE_LABEL: Final = "topology.kubernetes.io/zone"

# Labels and annotations on objects the operator owns. Values are UIDs and fixed words only,
# never names of people.
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "sprechzimmer-operator"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_SESSION_UID: Final = f"{GROUP}/session-uid"
LABEL_REGION: Final = f"{GROUP}/region"
FINALIZER: Final = f"{GROUP}/teardown"


class Component(enum.StrEnum):
    """Values of ``app.kubernetes.io/component`` on owned objects."""

    CODES = "access-codes"
    MEDIA = "media-pod"


class SecretKey(enum.StrEnum):
    """Keys of the per-session codes Secret: the only place plaintext codes live."""

    HOST_CODE = "host-code"
    CLIENT_CODE = "client-code"
    HOST_LINK_TOKEN = "host-link-token"
    CLIENT_LINK_TOKEN = "client-link-token"
    # Complete join URLs (``<signaling_url>/j#<token>``) the web app copies into invitations.
    HOST_LINK = "host-link"
    CLIENT_LINK = "client-link"


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)")
DURATION_PATTERN: Final = re.compile(r"^([0-9]+(\.[0-9]+)?(h|ms|m|s))+$")
_UNIT_SECONDS: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration (``24h``, ``1h30m``, ``90s``) as the CRD accepts it.

    Raises ValueError with a readable message for anything else.
    """
    if not DURATION_PATTERN.fullmatch(text):
        raise ValueError(f"not a duration like '24h' or '1h30m': {text!r}")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def is_valid_code(code: str) -> bool:
    """True for a well-formed access code; says nothing about whether it is issued."""
    return CODE_PATTERN.fullmatch(code) is not None


# --- Operator ↔ signaling contract (added with the operator, issue #3) -----------------------
# See docs/operator.md, "Contracts with signaling". Signaling verifies codes without plaintext
# through keyed digests in these labels, and vouches for presence through a Lease per replica.
USAGE_RECORD_KIND: Final = "UsageRecord"
USAGE_RECORD_PLURAL: Final = "usagerecords"
# Labels on a VideoSession: HMAC digests of its host and client codes (see code_digest in
# sprechzimmer.contract.keys); removed when the codes are revoked.
LABEL_HOST_CODE_DIGEST: Final = f"{GROUP}/host-code-digest"
LABEL_CLIENT_CODE_DIGEST: Final = f"{GROUP}/client-code-digest"
# Labels on a VideoSession: keyed digests of its link tokens (``keys.link_digest``).
LABEL_HOST_LINK_DIGEST: Final = f"{GROUP}/host-link-digest"
LABEL_CLIENT_LINK_DIGEST: Final = f"{GROUP}/client-link-digest"
# Path of the join page a link opens; the token travels in the URL fragment, never to a server log.
JOIN_LINK_PATH: Final = "/j"
# Label on the presence Lease of each signaling replica (value: "signaling").
LABEL_PRESENCE_LEASE: Final = f"{GROUP}/presence"
PRESENCE_LEASE_VALUE: Final = "signaling"
# A Lease vouches for presence for at most this long after its renewTime.
MAX_PRESENCE_LEASE_SECONDS: Final = 60

"""VideoSession bodies shaped as the operator writes them, for signaling's pure tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sprechzimmer.contract import (
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_CLIENT_LINK_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    LABEL_HOST_LINK_DIGEST,
)
from sprechzimmer.contract.keys import code_digest, link_digest
from sprechzimmer.contract.rfc3339 import format_time

KEY = b"signaling-unit-test-key-0123456789abcdef"
T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
HOST_CODE = "c3f-e04-d96"
CLIENT_CODE = "a11-b22-c33"
HOST_TOKEN = "ab" * 32
CLIENT_TOKEN = "cd" * 32


def body(
    *,
    name: str = "termin",
    uid: str = "uid-1",
    host: str = "dr-muster",
    clients: int = 1,
    phase: str | None = "Ready",
    start: datetime = T0,
    expires: datetime | None = None,
    deleting: bool = False,
    labels: bool = True,
    host_code: str = HOST_CODE,
    client_code: str = CLIENT_CODE,
    host_token: str = HOST_TOKEN,
    client_token: str = CLIENT_TOKEN,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "praxis", "uid": uid, "labels": {}}
    if labels:
        meta["labels"] = {
            LABEL_HOST_CODE_DIGEST: code_digest(KEY, host, host_code),
            LABEL_CLIENT_CODE_DIGEST: code_digest(KEY, host, client_code),
            LABEL_HOST_LINK_DIGEST: link_digest(KEY, host_token),
            LABEL_CLIENT_LINK_DIGEST: link_digest(KEY, client_token),
        }
    if deleting:
        meta["deletionTimestamp"] = format_time(start)
    st: dict[str, Any] = {"expiresAt": format_time(expires or start + timedelta(hours=24))}
    if phase:
        st["phase"] = phase
    st.update(status or {})
    return {
        "metadata": meta,
        "spec": {
            "host": host,
            "participants": [{"id": f"k-{i}"} for i in range(clients)],
            "scheduledStart": format_time(start),
            "codeTTL": "24h",
            "region": "de",
        },
        "status": st,
    }

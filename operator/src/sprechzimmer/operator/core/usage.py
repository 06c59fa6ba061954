"""The usage record: the durable, immutable bill of one session, and its retention. No I/O.

One ``UsageRecord`` per session, named after the session UID, so writing it again after a
crash is an AlreadyExists instead of a second bill. Records live in the operator's own
namespace (``usage_namespace``), not the practice's: a practice deleting its namespace must not
take its bills along, nor block on writing them into a namespace that refuses new objects. A
record carries the practice (namespace), the host handle, the date, durations, billed minutes,
peak participants and region — no client data. Records are deleted after the retention
(default 90 days).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sprechzimmer.contract import (
    API_VERSION,
    LABEL_MANAGED_BY,
    LABEL_REGION,
    LABEL_SESSION_UID,
    MANAGED_BY,
    USAGE_RECORD_KIND,
)
from sprechzimmer.contract.rfc3339 import format_time, parse_time
from sprechzimmer.operator.core.model import Session


def usage_record_name(session_uid: str) -> str:
    return f"vs-{session_uid}"


def usage_record(
    session: Session,
    *,
    namespace: str,
    billable_seconds: int,
    billed_minutes: int,
    peak: int,
    media_region: str | None,
    ended_at: datetime,
    end_reason: str,
) -> dict[str, Any]:
    """The durable, immutable bill of one session: practice, host, date, minutes — no clients."""
    spec: dict[str, Any] = {
        "practiceNamespace": session.namespace,
        "host": session.host,
        "sessionUID": session.uid,
        "date": session.scheduled_start.strftime("%Y-%m-%d"),
        "scheduledStart": format_time(session.scheduled_start),
        "endedAt": format_time(ended_at),
        "endReason": end_reason,
        "mode": session.join_mode.value,
        "region": session.region.value,
        "durationSeconds": billable_seconds,
        "billedMinutes": billed_minutes,
        "peakParticipants": peak,
    }
    if media_region:
        spec["mediaRegion"] = media_region
    return {
        "apiVersion": API_VERSION,
        "kind": USAGE_RECORD_KIND,
        "metadata": {
            "name": usage_record_name(session.uid),
            "namespace": namespace,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_SESSION_UID: session.uid,
                LABEL_REGION: session.region.value,
            },
        },
        "spec": spec,
    }


@dataclass(frozen=True)
class RecordRef:
    namespace: str
    name: str
    created_at: datetime

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> RecordRef | None:
        """A listed record; None without a creation time (never from a real API server)."""
        meta = body.get("metadata") or {}
        created = parse_time(meta.get("creationTimestamp"))
        if created is None:
            return None
        return cls(str(meta.get("namespace", "")), str(meta["name"]), created)


def expired_records(
    records: Iterable[RecordRef], now: datetime, retention: timedelta
) -> list[RecordRef]:
    """Records older than the retention, oldest first."""
    return sorted(
        (r for r in records if now >= r.created_at + retention), key=lambda r: r.created_at
    )


def past_retention(
    bodies: Iterable[Mapping[str, Any]], now: datetime, retention: timedelta
) -> list[RecordRef]:
    """The listed records to delete, oldest first."""
    refs = (RecordRef.parse(b) for b in bodies)
    return expired_records((r for r in refs if r is not None), now, retention)

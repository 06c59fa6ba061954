"""What signaling knows about VideoSessions: a typed view of each and an index by digest. No I/O.

The Kubernetes adapter feeds every watch event into ``SessionIndex``; admission then is a dict
lookup by the keyed digest of what the person typed or clicked (no API call per guess). When
the operator revokes codes (expiry, deletion) it removes the digest labels; the index keeps the
old digests pointing at the session while the object exists, and for ``TOMBSTONE`` after it is
gone, so a late join is answered "expired"/"cancelled" rather than "unknown code".
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from sprechzimmer.contract import (
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_CLIENT_LINK_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    LABEL_HOST_LINK_DIGEST,
    Phase,
)
from sprechzimmer.contract.mediapod import JoinMode
from sprechzimmer.contract.rfc3339 import parse_time

from .protocol import Role

TOMBSTONE: Final = timedelta(hours=24)


class DigestKind(enum.Enum):
    HOST_CODE = (LABEL_HOST_CODE_DIGEST, Role.HOST)
    CLIENT_CODE = (LABEL_CLIENT_CODE_DIGEST, Role.CLIENT)
    HOST_LINK = (LABEL_HOST_LINK_DIGEST, Role.HOST)
    CLIENT_LINK = (LABEL_CLIENT_LINK_DIGEST, Role.CLIENT)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def role(self) -> Role:
        return self.value[1]


CODE_KINDS: Final = (DigestKind.HOST_CODE, DigestKind.CLIENT_CODE)
LINK_KINDS: Final = (DigestKind.HOST_LINK, DigestKind.CLIENT_LINK)


@dataclass(frozen=True, slots=True)
class SessionView:
    """The fields of one VideoSession that signaling decides on (never codes or notes)."""

    namespace: str
    name: str
    uid: str
    host: str
    clients: int
    scheduled_start: datetime
    expires_at: datetime | None
    phase: Phase | None
    mode: JoinMode
    deleting: bool
    media_pod: str | None = None
    control_endpoint: str | None = None  # "<pod IP>:8080", written by the operator
    media_endpoint: str | None = None  # "<node address>:<TURN port>" once the pod is Ready
    presence: Mapping[str, Any] = field(default_factory=dict)
    logo_config_map: str | None = None  # spec.logo.configMapName (core/logo.py)
    digests: Mapping[DigestKind, str] = field(default_factory=dict)
    gone: bool = False  # the object was deleted; kept as a tombstone

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def seats(self) -> int:
        return 1 + self.clients

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SessionView:
        """A watch event's object → view. Raises ValueError for a body without the basics."""
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        labels = meta.get("labels") or {}
        join = status.get("join") or {}
        media = status.get("media") or {}
        start = parse_time(spec.get("scheduledStart"))
        if start is None or not meta.get("name") or not meta.get("uid"):
            raise ValueError("VideoSession without name, uid or scheduledStart")
        try:
            phase: Phase | None = Phase(status["phase"]) if status.get("phase") else None
        except ValueError:
            phase = None
        clients = len(spec.get("participants") or [])
        default_mode = JoinMode.PEER_TO_PEER if clients <= 1 else JoinMode.MEDIA_POD
        try:
            mode = JoinMode(join.get("mode") or default_mode)
        except ValueError:
            mode = default_mode
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta["name"]),
            uid=str(meta["uid"]),
            host=str(spec.get("host") or ""),
            clients=clients,
            scheduled_start=start,
            expires_at=parse_time(status.get("expiresAt")),
            phase=phase,
            mode=mode,
            deleting=bool(meta.get("deletionTimestamp")),
            media_pod=media.get("podName") or None,
            control_endpoint=media.get("controlEndpoint") or None,
            media_endpoint=join.get("mediaEndpoint") or None,
            presence=dict(status.get("presence") or {}),
            logo_config_map=(spec.get("logo") or {}).get("configMapName") or None,
            digests={k: str(labels[k.label]) for k in DigestKind if labels.get(k.label)},
        )


@dataclass(slots=True)
class _Entry:
    view: SessionView
    digests: dict[DigestKind, str]  # every digest ever seen for it (revoked ones included)
    gone_at: datetime | None = None


class SessionIndex:
    """Sessions by ``namespace/name`` and by each digest label, fed from the watch."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._by_digest: dict[DigestKind, dict[str, str]] = {k: {} for k in DigestKind}
        self._live = 0  # entries that are not tombstones: kept on every change, read per event

    def __len__(self) -> int:
        """Sessions that exist (tombstones not counted), in constant time."""
        return self._live

    def __iter__(self) -> Iterator[SessionView]:
        return (e.view for e in self._entries.values() if not e.view.gone)

    def get(self, key: str) -> SessionView | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.view

    def upsert(self, view: SessionView) -> SessionView | None:
        """Add or update; returns the previous view (None if new)."""
        entry = self._entries.get(view.key)
        previous = None if entry is None else entry.view
        if entry is None or entry.view.uid != view.uid:
            if entry is not None:
                self._forget(view.key, entry)
            entry = _Entry(view, {})
            self._entries[view.key] = entry
        else:
            self._live -= not entry.view.gone
        self._live += not view.gone
        entry.view = view
        entry.gone_at = None
        for kind, digest in view.digests.items():
            old = entry.digests.get(kind)
            if old is not None and old != digest:
                self._by_digest[kind].pop(old, None)
            entry.digests[kind] = digest
            self._by_digest[kind][digest] = view.key
        return previous

    def delete(self, view: SessionView, now: datetime) -> SessionView | None:
        """The object is gone: keep a tombstone so late joins get a clear answer."""
        entry = self._entries.get(view.key)
        if entry is None or entry.view.uid != view.uid:
            return None
        previous = entry.view
        self._live -= not previous.gone
        entry.view = replace(previous, gone=True)
        entry.gone_at = now
        return previous

    def replace_all(self, views: list[SessionView], now: datetime) -> list[SessionView]:
        """After a (re)list: upsert these, tombstone whatever is no longer there."""
        present = {v.key for v in views}
        removed = [e.view for k, e in self._entries.items() if k not in present and not e.view.gone]
        for view in views:
            self.upsert(view)
        for view in removed:
            self.delete(view, now)
        return removed

    def lookup(self, kind: DigestKind, digest: str) -> SessionView | None:
        key = self._by_digest[kind].get(digest)
        if key is None:
            return None
        entry = self._entries.get(key)
        return None if entry is None else entry.view

    def sweep(self, now: datetime) -> int:
        """Drop tombstones older than TOMBSTONE; returns how many."""
        old = [k for k, e in self._entries.items() if e.gone_at and now - e.gone_at > TOMBSTONE]
        for key in old:
            self._forget(key, self._entries[key])
        return len(old)

    def _forget(self, key: str, entry: _Entry) -> None:
        self._live -= not entry.view.gone
        for kind, digest in entry.digests.items():
            if self._by_digest[kind].get(digest) == key:
                del self._by_digest[kind][digest]
        self._entries.pop(key, None)

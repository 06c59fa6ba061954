"""Signaling's settings, read from the environment in one place. No I/O.

``Settings.from_env`` takes the environment as a mapping (prefix ``SPRECHZIMMER_SIGNALING_``)
and reports every problem at once with the variable's name. docs/signaling.md lists them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

PREFIX: Final = "SPRECHZIMMER_SIGNALING_"
_TURN_URL: Final = re.compile(r"^turns?:[^\s,]+$")
_ADDRESS: Final = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$")
_LEASE_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LEASE_SECONDS: Final = 30
RENEW_SECONDS: Final = 10.0
TURN_TTL_SECONDS: Final = 12 * 3600


class SettingsError(ValueError):
    """The environment does not describe a usable signaling server; lists every problem."""


@dataclass(frozen=True, slots=True)
class MediaOverride:
    """Dev/test only: reach a session's media pod at these loopback addresses instead of
    ``status.media.controlEndpoint`` / ``status.join.mediaEndpoint`` (KWOK pods have no
    reachable IPs)."""

    control: str
    turn: str


@dataclass(frozen=True, slots=True)
class Settings:
    shared_key: bytes
    public_url: str
    host: str = "0.0.0.0"  # noqa: S104 - a server behind a Service
    port: int = 8080
    turn_urls: tuple[str, ...] = ()
    relay_only: bool = False
    replica_name: str = "signaling"
    presence_namespace: str = "sprechzimmer-system"
    internal_address: str | None = None  # host:port other replicas reach; None: single replica
    forwarded_hops: int = 0  # trusted proxies in front (X-Forwarded-For entries to skip)
    media_override: Mapping[str, MediaOverride] = field(default_factory=dict)
    tls_cert: str | None = None
    tls_key: str | None = None
    log_level: str = "INFO"

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of PUBLIC_URL: the only Origin allowed on /ws."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, hostname: str = "signaling") -> Settings:
        problems: list[str] = []

        def get(name: str, default: str = "") -> str:
            return env.get(PREFIX + name, default).strip()

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = get(name, str(default))
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{PREFIX}{name}={raw!r} is not an integer")
                return default
            if not low <= value <= high:
                problems.append(f"{PREFIX}{name}={raw} must be between {low} and {high}")
            return value

        key = env.get(PREFIX + "SHARED_KEY", "")
        if not key:
            problems.append(f"{PREFIX}SHARED_KEY is required (the operator's shared key)")
        elif len(key.encode()) < 32:
            problems.append(f"{PREFIX}SHARED_KEY must be at least 32 bytes")
        public_url = get("PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/")
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"{PREFIX}PUBLIC_URL={public_url!r} must be an http(s) URL")
        turn_urls = tuple(u.strip() for u in get("TURN_URLS").split(",") if u.strip())
        bad_turn = [u for u in turn_urls if not _TURN_URL.fullmatch(u)]
        if bad_turn:
            problems.append(f"{PREFIX}TURN_URLS: {bad_turn[0]!r} is not a turn: URL")
        relay_raw = get("RELAY_ONLY", "false").lower()
        if relay_raw not in ("true", "false", "1", "0", "yes", "no"):
            problems.append(f"{PREFIX}RELAY_ONLY={relay_raw!r} must be true or false")
        replica = get("REPLICA_NAME") or env.get("POD_NAME", "") or hostname
        replica = replica.lower()
        if not _LEASE_NAME.fullmatch(replica):
            problems.append(f"{PREFIX}REPLICA_NAME={replica!r} is not a valid Lease name")
        internal = get("INTERNAL_ADDRESS") or None
        if internal is not None and not _ADDRESS.fullmatch(internal):
            problems.append(f"{PREFIX}INTERNAL_ADDRESS={internal!r} must be host:port")
        override = _media_override(get("MEDIA_OVERRIDE"), problems)
        cert, tls_key = get("TLS_CERT") or None, get("TLS_KEY") or None
        if (cert is None) != (tls_key is None):
            problems.append(f"{PREFIX}TLS_CERT and {PREFIX}TLS_KEY go together")
        level = get("LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append(f"{PREFIX}LOG_LEVEL={level!r} is not DEBUG/INFO/WARNING/ERROR")
        settings = cls(
            shared_key=key.encode(),
            public_url=public_url,
            host=get("HOST", "0.0.0.0"),  # noqa: S104
            port=integer("PORT", 8080, 0, 65535),
            turn_urls=turn_urls,
            relay_only=relay_raw in ("true", "1", "yes"),
            replica_name=replica,
            presence_namespace=get("PRESENCE_NAMESPACE", "sprechzimmer-system"),
            internal_address=internal,
            forwarded_hops=integer("FORWARDED_HOPS", 0, 0, 5),
            media_override=override,
            tls_cert=cert,
            tls_key=tls_key,
            log_level=level,
        )
        if problems:
            raise SettingsError("invalid signaling settings: " + "; ".join(problems))
        return settings


def _media_override(raw: str, problems: list[str]) -> dict[str, MediaOverride]:
    if not raw:
        return {}
    name = f"{PREFIX}MEDIA_OVERRIDE"
    try:
        decoded = json.loads(raw)
    except ValueError:
        problems.append(f"{name} is not JSON")
        return {}
    if not isinstance(decoded, dict):
        problems.append(f'{name} must map "namespace/name" to {{"control", "turn"}}')
        return {}
    result: dict[str, MediaOverride] = {}
    for key, value in decoded.items():
        ok = (
            isinstance(value, dict)
            and "/" in key
            and all(
                isinstance(value.get(k), str) and _ADDRESS.fullmatch(value[k])
                for k in ("control", "turn")
            )
        )
        if not ok:
            problems.append(
                f'{name}[{key!r}] must be {{"control": "host:port", "turn": "host:port"}}'
            )
            continue
        result[key] = MediaOverride(value["control"], value["turn"])
    return result

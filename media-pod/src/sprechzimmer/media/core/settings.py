"""The media pod's settings, read from the environment in one place. No I/O.

``Settings.from_env`` takes the environment as a mapping and reports every problem at once with
the variable's name, so a misconfigured pod fails at start with a message a person understands.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sprechzimmer.contract.mediapod import (
    CONTROL_PORT,
    GRACE_SECONDS,
    MAX_CALL_PARTICIPANTS,
    MediaEnv,
)
from sprechzimmer.contract.rfc3339 import parse_time

# Secrets end up in coturn's configuration file: no whitespace, quotes or line breaks.
_SECRET: Final = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")
_REALM: Final = re.compile(r"^[A-Za-z0-9.-]{1,64}$")
# RFC 3339 requires the offset; a time without one would be a guess about the writer's zone.
_OFFSET: Final = re.compile(r"(?:[Zz]|[+-]\d\d:\d\d)$")
_ANY_ADDRESS: Final = "0.0.0.0"  # noqa: S104 - the pod's own network namespace


class SettingsError(ValueError):
    """The environment does not describe a usable media pod; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the SFU and the TURN config renderer need, typed and validated."""

    turn_secret: str
    turn_port: int
    expires_at: datetime
    control_token: str | None = None
    turn_realm: str = "sprechzimmer"
    control_port: int = CONTROL_PORT
    control_host: str = _ANY_ADDRESS  # the control API serves the pod network
    max_participants: int = MAX_CALL_PARTICIPANTS
    grace_seconds: float = GRACE_SECONDS
    media_timeout_seconds: float = 10.0
    turn_listen_ip: str = _ANY_ADDRESS  # coturn's hostPort listens on the pod address
    turn_relay_min_port: int = 49152
    turn_relay_max_port: int = 65535

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, need_control_token: bool) -> Settings:
        problems: list[str] = []

        def get(name: MediaEnv, default: str | None = None) -> str | None:
            value = env.get(name, default)
            if value is None:
                problems.append(f"{name} is required")
            return value

        def number(name: MediaEnv, default: object, low: float, high: float, cast: type) -> float:
            raw = get(name, str(default)) or str(default)
            try:
                value = cast(raw)
            except ValueError:
                problems.append(f"{name}={raw!r} is not a number")
                return float(cast(default))
            if not low <= value <= high:
                problems.append(f"{name}={raw} must be between {low:g} and {high:g}")
            return float(value)

        def secret(name: MediaEnv, value: str) -> str:
            if value and not _SECRET.match(value):
                problems.append(f"{name} must be 16-256 characters of [A-Za-z0-9._~+/=-]")
            return value

        def address(name: MediaEnv) -> str:
            raw = get(name, _ANY_ADDRESS) or _ANY_ADDRESS
            try:
                return str(ipaddress.ip_address(raw))
            except ValueError:
                problems.append(f"{name}={raw!r} is not an IP address")
                return _ANY_ADDRESS

        token = env.get(MediaEnv.CONTROL_TOKEN)
        if token is None and need_control_token:
            problems.append(f"{MediaEnv.CONTROL_TOKEN} is required")
        realm = get(MediaEnv.TURN_REALM, "sprechzimmer") or ""
        if not _REALM.match(realm):
            problems.append(f"{MediaEnv.TURN_REALM} must be 1-64 characters of [A-Za-z0-9.-]")
        expires_raw = get(MediaEnv.EXPIRES_AT) or ""
        expires_at = datetime.fromtimestamp(0, UTC)
        if expires_raw:
            try:
                if not _OFFSET.search(expires_raw):
                    raise ValueError("no offset")
                expires_at = parse_time(expires_raw) or expires_at
            except ValueError:
                problems.append(f"{MediaEnv.EXPIRES_AT}={expires_raw!r} is not an RFC 3339 time")
        turn_port = 0
        if get(MediaEnv.TURN_PORT):
            turn_port = int(number(MediaEnv.TURN_PORT, 0, 1, 65535, int))
        settings = cls(
            turn_secret=secret(MediaEnv.TURN_SECRET, get(MediaEnv.TURN_SECRET) or ""),
            turn_port=turn_port,
            expires_at=expires_at,
            control_token=secret(MediaEnv.CONTROL_TOKEN, token) if token is not None else None,
            turn_realm=realm,
            control_port=int(number(MediaEnv.CONTROL_PORT, CONTROL_PORT, 1, 65535, int)),
            control_host=address(MediaEnv.CONTROL_HOST),
            max_participants=int(
                number(
                    MediaEnv.MAX_PARTICIPANTS,
                    MAX_CALL_PARTICIPANTS,
                    2,
                    MAX_CALL_PARTICIPANTS,
                    int,
                )
            ),
            grace_seconds=number(MediaEnv.GRACE_SECONDS, GRACE_SECONDS, 0, 3600, float),
            media_timeout_seconds=number(MediaEnv.MEDIA_TIMEOUT_SECONDS, 10, 0.5, 300, float),
            turn_listen_ip=address(MediaEnv.TURN_LISTEN_IP),
            turn_relay_min_port=int(number(MediaEnv.TURN_RELAY_MIN_PORT, 49152, 1024, 65535, int)),
            turn_relay_max_port=int(number(MediaEnv.TURN_RELAY_MAX_PORT, 65535, 1024, 65535, int)),
        )
        if settings.turn_relay_min_port > settings.turn_relay_max_port:
            problems.append(
                f"{MediaEnv.TURN_RELAY_MIN_PORT} is above {MediaEnv.TURN_RELAY_MAX_PORT}"
            )
        if problems:
            raise SettingsError("invalid media pod settings: " + "; ".join(problems))
        return settings

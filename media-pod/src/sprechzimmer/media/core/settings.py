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

from sprechzimmer.contract import MAX_PARTICIPANTS

PREFIX: Final = "SPRECHZIMMER_"
# Secrets end up in coturn's configuration file: no whitespace, quotes or line breaks.
_SECRET: Final = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")
_REALM: Final = re.compile(r"^[A-Za-z0-9.-]{1,64}$")


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
    control_port: int = 8080
    control_host: str = "0.0.0.0"  # noqa: S104 - the control API serves the pod network
    max_participants: int = MAX_PARTICIPANTS
    grace_seconds: float = 30.0
    media_timeout_seconds: float = 10.0
    turn_listen_ip: str = "0.0.0.0"  # noqa: S104 - coturn's hostPort listens on the pod address
    turn_relay_min_port: int = 49152
    turn_relay_max_port: int = 65535

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, need_control_token: bool) -> Settings:
        problems: list[str] = []

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(PREFIX + name, default)
            if value is None:
                problems.append(f"{PREFIX}{name} is required")
            return value

        def number(name: str, default: str, low: float, high: float, cast: type) -> float:
            raw = get(name, default) or default
            try:
                value = cast(raw)
            except ValueError:
                problems.append(f"{PREFIX}{name}={raw!r} is not a number")
                return float(cast(default))
            if not low <= value <= high:
                problems.append(f"{PREFIX}{name}={raw} must be between {low:g} and {high:g}")
            return float(value)

        secret = get("TURN_SECRET") or ""
        if secret and not _SECRET.match(secret):
            problems.append(f"{PREFIX}TURN_SECRET must be 16-256 characters of [A-Za-z0-9._~+/=-]")
        token = env.get(PREFIX + "CONTROL_TOKEN")
        if token is None and need_control_token:
            problems.append(f"{PREFIX}CONTROL_TOKEN is required")
        elif token is not None and not _SECRET.match(token):
            problems.append(
                f"{PREFIX}CONTROL_TOKEN must be 16-256 characters of [A-Za-z0-9._~+/=-]"
            )
        realm = get("TURN_REALM", "sprechzimmer") or ""
        if not _REALM.match(realm):
            problems.append(f"{PREFIX}TURN_REALM must be 1-64 characters of [A-Za-z0-9.-]")
        expires_raw = get("EXPIRES_AT") or ""
        expires_at = datetime.fromtimestamp(0, UTC)
        if expires_raw:
            try:
                expires_at = datetime.fromisoformat(expires_raw.replace("Z", "+00:00"))
                if expires_at.tzinfo is None:
                    raise ValueError
            except ValueError:
                problems.append(f"{PREFIX}EXPIRES_AT={expires_raw!r} is not an RFC 3339 time")
        addresses = {}
        for name, default in (("CONTROL_HOST", "0.0.0.0"), ("TURN_LISTEN_IP", "0.0.0.0")):  # noqa: S104
            raw = get(name, default) or default
            try:
                addresses[name] = str(ipaddress.ip_address(raw))
            except ValueError:
                problems.append(f"{PREFIX}{name}={raw!r} is not an IP address")
                addresses[name] = default
        turn_port = int(number("TURN_PORT", "0", 1, 65535, int)) if get("TURN_PORT") else 0
        settings = cls(
            turn_secret=secret,
            turn_port=turn_port,
            expires_at=expires_at,
            control_token=token,
            turn_realm=realm,
            control_port=int(number("CONTROL_PORT", "8080", 1, 65535, int)),
            control_host=addresses["CONTROL_HOST"],
            max_participants=int(
                number("MAX_PARTICIPANTS", str(MAX_PARTICIPANTS), 2, MAX_PARTICIPANTS, int)
            ),
            grace_seconds=number("GRACE_SECONDS", "30", 0, 3600, float),
            media_timeout_seconds=number("MEDIA_TIMEOUT_SECONDS", "10", 0.5, 300, float),
            turn_listen_ip=addresses["TURN_LISTEN_IP"],
            turn_relay_min_port=int(number("TURN_RELAY_MIN_PORT", "49152", 1024, 65535, int)),
            turn_relay_max_port=int(number("TURN_RELAY_MAX_PORT", "65535", 1024, 65535, int)),
        )
        if settings.turn_relay_min_port > settings.turn_relay_max_port:
            problems.append(f"{PREFIX}TURN_RELAY_MIN_PORT is above {PREFIX}TURN_RELAY_MAX_PORT")
        if problems:
            raise SettingsError("invalid media pod settings: " + "; ".join(problems))
        return settings

"""Settings from the environment (pure, table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sprechzimmer.media.core.settings import Settings, SettingsError

pytestmark = pytest.mark.unit

BASE = {
    "SPRECHZIMMER_CONTROL_TOKEN": "c" * 32,
    "SPRECHZIMMER_TURN_SECRET": "s" * 32,
    "SPRECHZIMMER_TURN_PORT": "10042",
    "SPRECHZIMMER_EXPIRES_AT": "2026-03-01T10:00:00Z",
}


def test_defaults_and_required_values() -> None:
    s = Settings.from_env(BASE, need_control_token=True)
    assert s.turn_port == 10042
    assert s.expires_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert (s.turn_realm, s.control_port, s.max_participants, s.grace_seconds) == (
        "sprechzimmer",
        8080,
        5,
        30.0,
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SPRECHZIMMER_TURN_SECRET": None}, "TURN_SECRET is required"),
        ({"SPRECHZIMMER_TURN_SECRET": "short"}, "TURN_SECRET must be"),
        ({"SPRECHZIMMER_TURN_SECRET": "x" * 20 + "\nrelay-ip=1.2.3.4"}, "TURN_SECRET must be"),
        ({"SPRECHZIMMER_CONTROL_TOKEN": None}, "CONTROL_TOKEN is required"),
        ({"SPRECHZIMMER_TURN_PORT": "70000"}, "TURN_PORT=70000 must be between"),
        ({"SPRECHZIMMER_TURN_PORT": "udp"}, "TURN_PORT='udp' is not a number"),
        ({"SPRECHZIMMER_EXPIRES_AT": "tomorrow"}, "EXPIRES_AT='tomorrow' is not an RFC 3339"),
        ({"SPRECHZIMMER_EXPIRES_AT": "2026-03-01T10:00:00"}, "is not an RFC 3339"),
        ({"SPRECHZIMMER_MAX_PARTICIPANTS": "9"}, "MAX_PARTICIPANTS=9 must be between 2 and 5"),
        ({"SPRECHZIMMER_TURN_REALM": "a realm"}, "TURN_REALM must be"),
        ({"SPRECHZIMMER_CONTROL_HOST": "pod"}, "CONTROL_HOST='pod' is not an IP address"),
    ],
)
def test_every_problem_is_named(override: dict[str, str | None], message: str) -> None:
    env = {**BASE, **override}
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env, need_control_token=True)


def test_turn_config_does_not_need_the_control_token() -> None:
    env = {k: v for k, v in BASE.items() if k != "SPRECHZIMMER_CONTROL_TOKEN"}
    assert Settings.from_env(env, need_control_token=False).control_token is None


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({}, need_control_token=True)
    for name in ("TURN_SECRET", "TURN_PORT", "EXPIRES_AT", "CONTROL_TOKEN"):
        assert name in str(error.value)

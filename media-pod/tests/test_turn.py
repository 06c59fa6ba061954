"""coturn configuration rendering and REST credentials (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from sprechzimmer.media.core.settings import Settings
from sprechzimmer.media.core.turn import credential_expiry, render_coturn_config, rest_credentials

pytestmark = pytest.mark.unit

SETTINGS = Settings(
    turn_secret="s" * 32, turn_port=10042, expires_at=datetime(2026, 3, 1, tzinfo=UTC)
)


def config_lines() -> list[str]:
    return render_coturn_config(SETTINGS).splitlines()


def test_relays_only_to_the_sfu_on_loopback() -> None:
    lines = config_lines()
    assert "relay-ip=127.0.0.1" in lines
    assert "allowed-peer-ip=127.0.0.1" in lines
    denied = [line.split("=", 1)[1] for line in lines if line.startswith("denied-peer-ip=")]
    assert "0.0.0.0-126.255.255.255" in denied
    assert "127.0.0.2-255.255.255.255" in denied
    assert any(r.startswith("::-") for r in denied)
    assert "no-tcp-relay" in lines
    assert "no-multicast-peers" in lines


def test_listens_on_the_session_port_with_rest_auth() -> None:
    lines = config_lines()
    assert "listening-port=10042" in lines
    assert "use-auth-secret" in lines
    assert f"static-auth-secret={'s' * 32}" in lines
    assert "realm=sprechzimmer" in lines
    assert "no-cli" in lines
    assert not any(line.startswith(("user=", "lt-cred-mech")) for line in lines)
    # Chromium's credential-less Binding keepalives to a TURN server must not get 401s
    assert "secure-stun" not in lines


def test_rest_credentials_match_coturn_scheme() -> None:
    creds = rest_credentials("secret", 1700000000, "abc")
    assert creds.username == "1700000000:abc"
    expected = hmac.new(b"secret", b"1700000000:abc", hashlib.sha1).digest()
    assert base64.b64decode(creds.password) == expected
    assert creds.serialize()["expiresAt"] == 1700000000


@pytest.mark.parametrize(
    ("ttl", "session_left", "expected_left"),
    [(3600, timedelta(hours=5), 3600), (3600, timedelta(minutes=10), 600), (60, timedelta(0), 0)],
)
def test_credentials_never_outlive_the_session(
    ttl: int, session_left: timedelta, expected_left: int
) -> None:
    now = datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert credential_expiry(now, ttl, now + session_left) == int(now.timestamp()) + expected_left

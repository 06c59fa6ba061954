"""Settings from the environment: defaults, every variable, every problem at once."""

from __future__ import annotations

import pytest
from sprechzimmer.signaling.core.settings import MediaOverride, Settings, SettingsError

pytestmark = pytest.mark.unit
P = "SPRECHZIMMER_SIGNALING_"
KEY = "k" * 32
OVERRIDE = '{"praxis/termin": {"control": "127.0.0.1:1", "turn": "127.0.0.1:2"}}'


def test_defaults() -> None:
    s = Settings.from_env({P + "SHARED_KEY": KEY}, hostname="Signaling-0")
    assert s.port == 8080
    assert s.public_url == "http://127.0.0.1:8080"
    assert s.origin == "http://127.0.0.1:8080"
    assert s.replica_name == "signaling-0"
    assert s.presence_namespace == "sprechzimmer-system"
    assert not s.relay_only
    assert s.media_override == {}


def test_every_variable() -> None:
    s = Settings.from_env(
        {
            P + "SHARED_KEY": KEY,
            P + "HOST": "127.0.0.1",
            P + "PORT": "9000",
            P + "PUBLIC_URL": "https://Video.Example.de/",
            P + "TURN_URLS": "turn:t.example.de:3478?transport=udp, turns:t.example.de:5349",
            P + "RELAY_ONLY": "true",
            P + "REPLICA_NAME": "sig-a",
            P + "PRESENCE_NAMESPACE": "ns",
            P + "INTERNAL_ADDRESS": "10.0.0.3:8081",
            P + "MEDIA_OVERRIDE": OVERRIDE,
            P + "LOG_LEVEL": "debug",
            "POD_NAME": "ignored-when-replica-name-is-set",
        }
    )
    assert s.origin == "https://video.example.de"
    assert len(s.turn_urls) == 2
    assert s.relay_only
    assert s.replica_name == "sig-a"
    assert s.internal_address == "10.0.0.3:8081"
    assert s.media_override == {"praxis/termin": MediaOverride("127.0.0.1:1", "127.0.0.1:2")}
    assert s.log_level == "DEBUG"


def test_pod_name_is_the_default_replica_name() -> None:
    assert Settings.from_env({P + "SHARED_KEY": KEY, "POD_NAME": "sig-7d9c-x2"}).replica_name == (
        "sig-7d9c-x2"
    )


def test_every_problem_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                P + "SHARED_KEY": "short",
                P + "PORT": "http",
                P + "PUBLIC_URL": "ftp://x",
                P + "TURN_URLS": "stun:x:1",
                P + "RELAY_ONLY": "maybe",
                P + "MEDIA_OVERRIDE": '{"x": {"control": "nope"}}',
                P + "TLS_CERT": "/c.pem",
            }
        )
    message = str(caught.value)
    for needle in (
        "SHARED_KEY",
        "PORT",
        "PUBLIC_URL",
        "TURN_URLS",
        "RELAY_ONLY",
        "MEDIA_OVERRIDE",
        "TLS_KEY",
    ):
        assert needle in message
    with pytest.raises(SettingsError, match="SHARED_KEY is required"):
        Settings.from_env({})

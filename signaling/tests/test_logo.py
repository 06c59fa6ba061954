"""core/logo.py: which ConfigMap contents are served as the practice logo, with which headers,
under which URL. Pure functions, table-driven."""

from __future__ import annotations

import base64

import pytest
from sprechzimmer.signaling.core.logo import (
    MAX_LOGO_BYTES,
    PNG_SIGNATURE,
    SVG_POLICY,
    LogoProblem,
    logo_from_config_map,
    logo_id,
    logo_path,
)
from sprechzimmer.signaling.core.protocol import Role, RoomState, Welcome

pytestmark = pytest.mark.unit

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="32"/>'
PNG = PNG_SIGNATURE + b"\x00" * 32


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("config_map", "content_type", "body"),
    [
        ({"data": {"logo.svg": SVG}}, "image/svg+xml", SVG.encode()),
        ({"binaryData": {"logo.svg": b64(SVG.encode())}}, "image/svg+xml", SVG.encode()),
        ({"binaryData": {"logo.png": b64(PNG)}}, "image/png", PNG),
        (  # both: the SVG (sharp at every size)
            {"data": {"logo.svg": SVG}, "binaryData": {"logo.png": b64(PNG)}},
            "image/svg+xml",
            SVG.encode(),
        ),
    ],
)
def test_a_logo_is_taken_from_its_key(config_map: dict, content_type: str, body: bytes) -> None:
    logo = logo_from_config_map(config_map)
    assert logo.content_type == content_type
    assert logo.body == body


@pytest.mark.parametrize(
    ("config_map", "why"),
    [
        ({}, "neither"),
        ({"data": {"logo.png": "text"}}, "neither"),  # a PNG only in binaryData
        ({"data": {"logo.svg": "<html><script>alert(1)</script>"}}, "not an SVG"),
        ({"binaryData": {"logo.png": b64(b"GIF89a")}}, "not a PNG"),
        ({"binaryData": {"logo.png": "%%%"}}, "not base64"),
        ({"binaryData": {"logo.png": b64(PNG + b"\x00" * MAX_LOGO_BYTES)}}, "more than"),
        ({"data": {"logo.svg": SVG + " " * MAX_LOGO_BYTES}}, "more than"),
    ],
)
def test_what_is_not_served(config_map: dict, why: str) -> None:
    with pytest.raises(LogoProblem, match=why):
        logo_from_config_map(config_map)


def test_a_logo_of_exactly_the_limit_is_served() -> None:
    png = PNG_SIGNATURE + b"\x00" * (MAX_LOGO_BYTES - len(PNG_SIGNATURE))
    assert logo_from_config_map({"binaryData": {"logo.png": b64(png)}}).body == png


def test_an_svg_may_run_no_script_and_load_nothing() -> None:
    headers = logo_from_config_map({"data": {"logo.svg": SVG}}).headers()
    assert headers["Content-Type"] == "image/svg+xml"
    assert headers["Content-Security-Policy"] == SVG_POLICY
    assert "default-src 'none'" in SVG_POLICY
    assert "script" not in SVG_POLICY
    png_headers = logo_from_config_map({"binaryData": {"logo.png": b64(PNG)}}).headers()
    assert "Content-Security-Policy" not in png_headers  # the page's own policy applies


def test_the_url_is_opaque_stable_and_per_session() -> None:
    key = b"k" * 32
    first = logo_id(key, "uid-1")
    assert first == logo_id(key, "uid-1")  # every replica computes the same
    assert first != logo_id(key, "uid-2")
    assert first != logo_id(b"j" * 32, "uid-1")
    assert len(first) == 32  # 128 bits
    assert logo_path(key, "uid-1", "praxis-logo") == f"/logo/{first}"
    assert "praxis" not in (logo_path(key, "uid-1", "praxis-logo") or "")
    assert logo_path(key, "uid-1", None) is None


def test_welcome_carries_the_url_only_when_there_is_a_logo() -> None:
    fields = {
        "you": "p-0123456789",
        "role": Role.CLIENT,
        "resume": "r",
        "mode": "PeerToPeer",
        "scheduled_start": "2026-11-21T10:00:00Z",
        "expires_at": "2026-11-22T10:00:00Z",
        "state": RoomState.WAITING,
        "ice_servers": (),
        "relay_only": True,
        "max_participants": 2,
    }
    assert "logo" not in Welcome(**fields).serialize()  # type: ignore[arg-type]
    with_logo = Welcome(**fields, logo="/logo/" + "0" * 32).serialize()  # type: ignore[arg-type]
    assert with_logo["logo"] == "/logo/" + "0" * 32

"""The practice logo: which ConfigMap holds it, its opaque URL, what of it may be served. No I/O.

``spec.logo.configMapName`` names a ConfigMap in the session's namespace with ``logo.svg`` (text
in ``data``, or ``binaryData``) or ``logo.png`` (``binaryData``, base64), at most
``MAX_LOGO_BYTES``. The URL is ``/logo/<id>``: an HMAC of the session's uid under the shared key,
so every replica computes the same one, and it says nothing about the session (no name, no
code). Only admitted people are told it (``welcome.logo``). An SVG is served with a CSP that
allows no script and no fetch, and the page shows it in an ``<img>`` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_LOGO_BYTES: Final = 256 * 1024
LOGO_PATH: Final = "/logo/"
SVG_KEY: Final = "logo.svg"
PNG_KEY: Final = "logo.png"
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# An SVG document opened directly (not through <img>) runs nothing and loads nothing.
SVG_POLICY: Final = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
_ID_CONTEXT: Final = b"sprechzimmer logo v1\x00"


@dataclass(frozen=True, slots=True)
class Logo:
    body: bytes
    content_type: str

    def headers(self) -> dict[str, str]:
        """What the response carries besides the security headers every response has."""
        headers = {"Content-Type": self.content_type, "Cache-Control": "private, max-age=300"}
        if self.content_type == "image/svg+xml":
            headers["Content-Security-Policy"] = SVG_POLICY
        return headers


class LogoProblem(ValueError):
    """The ConfigMap holds no usable logo; the message says why (no content in it)."""


def logo_id(shared_key: bytes, uid: str) -> str:
    """The opaque, stable per-session part of the logo URL (128 bits)."""
    return hmac.new(shared_key, _ID_CONTEXT + uid.encode(), hashlib.sha256).hexdigest()[:32]


def logo_path(shared_key: bytes, uid: str, config_map: str | None) -> str | None:
    """``welcome.logo``: the URL of the session's logo, or None when it has none."""
    return f"{LOGO_PATH}{logo_id(shared_key, uid)}" if config_map else None


def logo_from_config_map(body: Mapping[str, Any]) -> Logo:
    """The logo in a ConfigMap body; LogoProblem when there is none or it is not acceptable.
    An SVG wins over a PNG when both are there."""
    data = body.get("data") or {}
    binary = body.get("binaryData") or {}
    if SVG_KEY in data:
        svg = str(data[SVG_KEY]).encode()
    elif SVG_KEY in binary:
        svg = _decoded(binary[SVG_KEY])
    else:
        svg = None
    if svg is not None:
        _check_size(svg)
        if b"<svg" not in svg[:4096]:
            raise LogoProblem("logo.svg is not an SVG document")
        return Logo(svg, "image/svg+xml")
    if PNG_KEY in binary:
        png = _decoded(binary[PNG_KEY])
        _check_size(png)
        if not png.startswith(PNG_SIGNATURE):
            raise LogoProblem("logo.png is not a PNG image")
        return Logo(png, "image/png")
    raise LogoProblem(f"neither {SVG_KEY} nor {PNG_KEY} (in binaryData) in the ConfigMap")


def _decoded(value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error as err:
        raise LogoProblem("binaryData is not base64") from err


def _check_size(body: bytes) -> None:
    if len(body) > MAX_LOGO_BYTES:
        raise LogoProblem(f"logo is {len(body)} bytes, more than {MAX_LOGO_BYTES}")

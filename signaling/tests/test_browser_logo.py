"""The practice logo in real headless Chromium: read by signaling from the real ConfigMap the
session names (``spec.logo.configMapName``), served at an opaque ``/logo/<id>`` to admitted
people, shown top left at most a third of the window's width and height and never upscaled,
minimised with the keyboard and remembered for the tab.

Four logos (PNG and SVG, 64 x 32 and 2000 x 1000) at four window sizes, on the consent panel
(the logo above the card) and in the call (over the stage); every case's rendered box is
measured (getBoundingClientRect) and a screenshot kept (tmp_path or $SPRECHZIMMER_SCREENSHOTS).
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from browser import chromium, layout_problems, new_context, screenshot, wait_for_state
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from playwright.async_api import Page
from sprechzimmer.contract import SecretKey
from sprechzimmer.signaling.core.logo import SVG_POLICY
from test_browser_call import invitation

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

SIZES = {
    "phone": {"width": 360, "height": 640},
    "phone-landscape": {"width": 740, "height": 360},  # the height limit, not the width
    "laptop": {"width": 1280, "height": 800},
    "wide": {"width": 1920, "height": 1080},
}
# The logo's box on the page against the window and the image's own size.
LOGO_BOX = """
() => {
  const img = document.getElementById("logo-image");
  const box = img.getBoundingClientRect();
  return {width: box.width, height: box.height, left: box.left, top: box.top,
          naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
          windowWidth: window.innerWidth, windowHeight: window.innerHeight,
          headerBottom: document.querySelector("header").getBoundingClientRect().bottom,
          visible: !img.hidden && box.width > 0};
}
"""


def png(width: int, height: int) -> bytes:
    """A one-colour RGB PNG (zlib only: no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x1d\x4e\x89" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def svg(width: int, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><rect width="100%" height="100%" fill="#1d4e89"/>'
        f'<circle cx="{width // 2}" cy="{height // 2}" r="{height // 3}" fill="#f0a202"/></svg>'
    )


LOGOS: dict[str, dict[str, Any]] = {
    "png-64x32": {"binaryData": {"logo.png": png(64, 32)}, "size": (64, 32)},
    "png-2000x1000": {"binaryData": {"logo.png": png(2000, 1000)}, "size": (2000, 1000)},
    "svg-64x32": {"data": {"logo.svg": svg(64, 32)}, "size": (64, 32)},
    "svg-2000x1000": {"data": {"logo.svg": svg(2000, 1000)}, "size": (2000, 1000)},
}


def create_logo(kube: Client, namespace: str, name: str, logo: dict[str, Any]) -> None:
    binary = {k: base64.b64encode(v).decode() for k, v in logo.get("binaryData", {}).items()}
    config_map = ConfigMap(
        metadata=ObjectMeta(name=name, namespace=namespace),
        data=logo.get("data"),
        binaryData=binary or None,
    )
    kube.create(config_map)


async def assert_logo_fits(page: Page, natural: tuple[int, int], where: str) -> dict[str, Any]:
    box: dict[str, Any] = await page.evaluate(LOGO_BOX)
    assert box["visible"], (where, box)
    assert (box["naturalWidth"], box["naturalHeight"]) == natural, (where, box)
    # at most a third of the window each way (33 %), never larger than the image
    assert box["width"] <= 0.33 * box["windowWidth"] + 0.5, (where, box)
    assert box["height"] <= 0.33 * box["windowHeight"] + 0.5, (where, box)
    assert box["width"] <= natural[0] + 0.5, (where, box)
    assert box["height"] <= natural[1] + 0.5, (where, box)
    assert abs(box["width"] / box["height"] - natural[0] / natural[1]) < 0.05, (where, box)
    print(
        f"{where}: {box['width']:.0f} x {box['height']:.0f} in {box['windowWidth']} x "
        f"{box['windowHeight']}"
    )  # the measurement, for -s
    assert box["left"] < 0.1 * box["windowWidth"], (where, box)  # top left
    assert box["top"] <= box["headerBottom"] + 8, (where, box)  # right under the bar
    if natural[0] <= 0.33 * box["windowWidth"] and natural[1] <= 0.33 * box["windowHeight"]:
        assert (box["width"], box["height"]) == natural, (where, box)  # small: its own size
    else:
        # large: as big as the limits allow (one of them reached)
        assert (
            max(
                box["width"] / (0.33 * box["windowWidth"]),
                box["height"] / (0.33 * box["windowHeight"]),
            )
            > 0.98
        ), (where, box)
    return box


async def test_practice_logo_sizes_minimise_and_serving(
    operator: Any, kube: Client, namespace: str, start_signaling: Any, tmp_path: Path
) -> None:
    signaling = start_signaling()
    requests: list[str] = []  # every URL the page asked for
    for number, logo in enumerate(LOGOS.values()):
        create_logo(kube, namespace, f"logo-{number}", logo)
        support.create_session(kube, namespace, f"logo-{number}", logo=f"logo-{number}")
    async with chromium() as browser:
        for number, (name, logo) in enumerate(LOGOS.items()):
            invite = invitation(kube, namespace, f"logo-{number}", signaling)
            context = await new_context(browser, viewport=SIZES["laptop"])
            page = await context.new_page()
            requests.clear()
            page.on("request", lambda request: requests.append(request.url))
            await page.goto(f"{signaling.url}/j#{invite[SecretKey.CLIENT_LINK_TOKEN.value]}")
            await wait_for_state(page, "consent")
            await page.wait_for_selector("#practice-logo:not([hidden])")
            for size, viewport in SIZES.items():
                await page.set_viewport_size(viewport)  # type: ignore[arg-type]
                await assert_logo_fits(page, logo["size"], f"{name} consent {size}")
                assert await layout_problems(page) == []
                await screenshot(page, tmp_path, f"logo-{name}-consent-{size}")

            # How it is served: an opaque URL, the right type, an SVG that may run nothing.
            [url] = [u for u in requests if "/logo/" in u]
            assert f"logo-{number}" not in url
            assert namespace not in url
            response = await page.request.get(url)
            assert response.status == 200
            headers = response.headers
            if name.startswith("svg"):
                assert headers["content-type"] == "image/svg+xml"
                assert headers["content-security-policy"] == SVG_POLICY
            else:
                assert headers["content-type"] == "image/png"
            assert headers["x-content-type-options"] == "nosniff"
            unknown = url.rsplit("/", 1)[0] + "/" + "0" * 32
            assert (await page.request.get(unknown)).status == 404

            # In the call (alone: waiting) the logo sits over the stage, top left.
            await page.click("button[name=consent]")
            await wait_for_state(page, "waiting")
            for size, viewport in SIZES.items():
                await page.set_viewport_size(viewport)  # type: ignore[arg-type]
                await assert_logo_fits(page, logo["size"], f"{name} call {size}")
                assert await layout_problems(page) == []
                await screenshot(page, tmp_path, f"logo-{name}-call-{size}")
            await context.close()

        # Minimised with the keyboard; still minimised after a reload in the same tab.
        invite = invitation(kube, namespace, "logo-1", signaling)
        context = await new_context(browser, viewport=SIZES["phone"])
        page = await context.new_page()
        await page.goto(f"{signaling.url}/j?lang=en#{invite[SecretKey.HOST_LINK_TOKEN.value]}")
        await wait_for_state(page, "consent")
        await page.wait_for_selector("#practice-logo:not([hidden])")
        assert await page.inner_text("#logo-toggle") == "Minimise logo"
        # Focus is on the consent heading; the logo's button comes just before it.
        await page.keyboard.press("Shift+Tab")
        assert await page.evaluate("document.activeElement.id") == "logo-toggle"
        await page.keyboard.press("Enter")
        assert await page.get_attribute("#logo-toggle", "aria-expanded") == "false"
        assert await page.inner_text("#logo-toggle") == "Show logo"
        assert await page.is_hidden("#logo-image")
        await screenshot(page, tmp_path, "logo-minimised-phone-en")
        await page.reload()
        await wait_for_state(page, "consent")
        await page.wait_for_selector("#practice-logo:not([hidden])")
        assert await page.is_hidden("#logo-image")
        await page.click("#logo-toggle")
        await assert_logo_fits(page, LOGOS["png-2000x1000"]["size"], "shown again")
        await context.close()

    # A session without a logo: no URL in the page, no request for one. A session whose
    # ConfigMap does not exist: the request is answered 404 and nothing shows.
    support.create_session(kube, namespace, "ohne-logo")
    support.create_session(kube, namespace, "logo-fehlt", logo="gibt-es-nicht")
    async with chromium() as browser:
        invite = invitation(kube, namespace, "ohne-logo", signaling)
        context = await new_context(browser)
        page = await context.new_page()
        requests.clear()
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(f"{signaling.url}/j#{invite[SecretKey.CLIENT_LINK_TOKEN.value]}")
        await wait_for_state(page, "consent")
        assert await page.is_hidden("#practice-logo")
        assert not [u for u in requests if "/logo/" in u]

        invite = invitation(kube, namespace, "logo-fehlt", signaling)
        page = await (await new_context(browser)).new_page()
        async with page.expect_response(lambda r: "/logo/" in r.url) as missing:
            await page.goto(f"{signaling.url}/j#{invite[SecretKey.CLIENT_LINK_TOKEN.value]}")
        assert (await missing.value).status == 404
        await wait_for_state(page, "consent")
        assert await page.is_hidden("#practice-logo")
    assert "practice logo not read" in signaling.log()
    assert "gibt-es-nicht" not in signaling.log()

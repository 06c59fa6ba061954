"""Accessibility of every page in real headless Chromium, in German and English: axe-core
(WCAG 2.1 A/AA and best practices; `axe.py`) finds no serious or critical violation on the
start page, the consent step, the call (alone in it, and with the device dialog open), the error
page and the ended page; in the call every control is reached with Tab alone, in a sensible
order, each with a visible focus ring and a name; at 360 x 640 every control is on screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from axe import axe_violations
from browser import chromium, in_viewport, layout_problems, new_context, screenshot, wait_for_state
from lightkube import Client
from playwright.async_api import Page
from sprechzimmer.contract import SecretKey
from test_browser_call import invitation
from test_browser_logo import LOGOS, create_logo

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 640}}
# The call's controls in Tab order (the logo's button comes first, top left).
CALL_CONTROLS = [
    "logo-toggle",
    "mute",
    "camera",
    "switch-camera",
    "share-screen",
    "devices",
    "leave",
]
# The focused element: its id, accessible name (text or label) and focus ring.
_FOCUSED = """
() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {id: el.id, name: (el.getAttribute("aria-label") || el.textContent).trim(),
          outline: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth)};
}
"""


async def no_violations(page: Page, where: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], (where, violations)


async def tab_through_call(page: Page) -> list[str]:
    """Back with Shift+Tab to the first control, then Tab through the call; every control has
    a name and a focus ring."""
    for _ in range(20):
        await page.keyboard.press("Shift+Tab")
        if await page.evaluate("document.activeElement.id") == CALL_CONTROLS[0]:
            break
    reached: list[str] = []
    for step in range(20):
        if step:
            await page.keyboard.press("Tab")
        focused = await page.evaluate(_FOCUSED)
        if focused["id"] in CALL_CONTROLS:
            assert focused["name"], focused
            assert focused["outline"] != "none", focused
            assert focused["outlineWidth"] >= 2, focused
            reached.append(focused["id"])
        if focused["id"] == "leave":
            break
    return reached


async def test_pages_are_accessible_in_both_languages(
    operator: Any, kube: Client, namespace: str, start_signaling: Any, tmp_path: Path
) -> None:
    signaling = start_signaling()
    create_logo(kube, namespace, "praxis-logo", LOGOS["png-64x32"])
    support.create_session(kube, namespace, "eins", logo="praxis-logo")
    invite = invitation(kube, namespace, "eins", signaling)
    links = {
        "de": invite[SecretKey.HOST_LINK_TOKEN.value],
        "en": invite[SecretKey.CLIENT_LINK_TOKEN.value],
    }
    two_cameras = ["--use-fake-device-for-media-stream=device-count=2"]
    async with chromium(two_cameras) as browser:
        for lang in ("de", "en"):
            for size, viewport in SIZES.items():
                where = f"{size}-{lang}"
                context = await new_context(browser, viewport=viewport)
                page = await context.new_page()
                await page.goto(f"{signaling.url}/?lang={lang}")
                await no_violations(page, f"start {where}")

                await page.goto(f"{signaling.url}/j?lang={lang}#{links[lang]}")
                await wait_for_state(page, "consent")
                await page.wait_for_selector("#practice-logo:not([hidden])")
                await no_violations(page, f"consent {where}")

                await page.click("button[name=consent]")
                await wait_for_state(page, "waiting")
                await page.wait_for_selector("#switch-camera:not([hidden])")
                await no_violations(page, f"call {where}")
                assert await tab_through_call(page) == CALL_CONTROLS, where
                assert await in_viewport(page, "nav.controls"), where
                assert await layout_problems(page) == [], where
                await screenshot(page, tmp_path, f"a11y-call-{where}")

                await page.click("#devices")
                await page.wait_for_selector("#device-dialog[open]")
                await no_violations(page, f"device dialog {where}")
                await page.keyboard.press("Escape")

                await page.click("#leave")
                await wait_for_state(page, "ended")
                await no_violations(page, f"ended {where}")
                await screenshot(page, tmp_path, f"a11y-ended-{where}")

                await page.goto("about:blank")  # else only the fragment would change
                await page.goto(f"{signaling.url}/j?lang={lang}#{'0' * 64}")
                await wait_for_state(page, "error")
                await no_violations(page, f"error {where}")
                await context.close()

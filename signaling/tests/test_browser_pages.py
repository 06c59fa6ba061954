"""The pages in real headless Chromium against the real signaling process: start page errors
(typed input checked in the page, unknown code and rate limit from the server) in German and
English, the consent text, the call page's error states, and screenshots of the start and call
pages at phone (390 x 844) and desktop (1280 x 800) size in both languages, each checked for what a
person would stumble over (sideways scrolling, cut-off or tiny controls, unlabelled inputs).

Screenshots are written to the test's tmp_path, or to $SPRECHZIMMER_SCREENSHOTS for a person to
look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from browser import (
    DESKTOP,
    PHONE,
    chromium,
    in_viewport,
    layout_problems,
    new_context,
    screenshot,
    wait_for_state,
)
from lightkube import Client
from playwright.async_api import Browser, Page
from sprechzimmer.contract import SecretKey
from test_browser_call import invitation

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SIZES = {"phone": PHONE, "desktop": DESKTOP}
UNKNOWN = {"de": "Zugangscode unbekannt", "en": "Access code unknown"}
MALFORMED = {"de": "Der Zugangscode hat 9 Zeichen", "en": "The access code has 9 characters"}
CONSENT = {
    "de": ("Es wird nichts aufgezeichnet", "Ende-zu-Ende-verschlüsselt", "IP-Adresse"),
    "en": ("Nothing is recorded", "end-to-end encrypted", "IP address"),
}


async def page_at(browser: Browser, size: str) -> Page:
    context = await new_context(browser, viewport=SIZES[size])
    return await context.new_page()


async def tab_to(page: Page, selector: str, most: int = 10) -> None:
    """Press Tab until *selector* has the focus (as a keyboard user would)."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} not reached with {most} presses of Tab")


async def type_code(page: Page, host: str, code: str) -> None:
    await page.fill("input[name=host]", host)
    await page.fill("input[name=code]", code)
    await page.click("button[type=submit]")


async def test_pages_in_both_languages_at_phone_and_desktop_size(
    operator: Any, kube: Client, namespace: str, start_signaling: Any, tmp_path: Path
) -> None:
    signaling = start_signaling()
    support.create_session(kube, namespace, "eins")
    invite = invitation(kube, namespace, "eins", signaling)
    links = {
        "de": invite[SecretKey.HOST_LINK_TOKEN.value],
        "en": invite[SecretKey.CLIENT_LINK_TOKEN.value],
    }
    async with chromium() as browser:
        for size in SIZES:
            for lang in ("de", "en"):
                # Start page, then a code with a typo: explained in the page, nothing sent.
                page = await page_at(browser, size)
                await page.goto(f"{signaling.url}/?lang={lang}")
                assert await page.get_attribute("html", "lang") == lang
                assert await in_viewport(page, "button[type=submit]")
                assert await layout_problems(page) == []
                await screenshot(page, tmp_path, f"start-{size}-{lang}")
                await type_code(page, "dr-muster", "c3f-e04-d9")
                assert MALFORMED[lang] in await page.inner_text("[role=alert]")
                assert await page.get_attribute("input[name=code]", "aria-invalid") == "true"
                assert await layout_problems(page) == []
                await screenshot(page, tmp_path, f"start-error-{size}-{lang}")

                # Call page: the consent step of an invitation link.
                await page.goto(f"{signaling.url}/j?lang={lang}#{links[lang]}")
                await wait_for_state(page, "consent")
                text = await page.inner_text("main")
                for phrase in CONSENT[lang]:
                    assert phrase in text
                assert await in_viewport(page, "#consent-heading")
                assert await layout_problems(page) == []
                await screenshot(page, tmp_path, f"call-consent-{size}-{lang}")
                await page.context.close()

        # Keyboard only: Tab to the fields, Enter to go on, Enter to agree.
        page = await page_at(browser, "desktop")
        await page.goto(f"{signaling.url}/")
        await tab_to(page, "input[name=host]")
        await page.keyboard.type("dr-muster")
        await page.keyboard.press("Tab")
        await page.keyboard.type(invite[SecretKey.CLIENT_CODE.value].replace("-", ""))
        await page.keyboard.press("Enter")
        await wait_for_state(page, "consent")
        assert await page.evaluate("document.activeElement.id") == "consent-heading"
        await tab_to(page, "button[name=consent]")
        await page.keyboard.press("Enter")
        await wait_for_state(page, "waiting")
        await page.context.close()

    # Wrong codes come from the server: back on the start page, beside what was typed.
    async with chromium() as browser:
        page = await page_at(browser, "phone")
        for lang in ("de", "en"):
            await page.goto(f"{signaling.url}/?lang={lang}")
            await type_code(page, "dr-muster", "C3F E04 D96")
            await page.wait_for_function(
                "t => document.querySelector('[role=alert]').textContent.includes(t)",
                arg=UNKNOWN[lang],
            )
            assert await page.evaluate("location.pathname") == "/"
            assert await page.input_value("input[name=host]") == "dr-muster"
            assert await page.input_value("input[name=code]") == "c3f-e04-d96"
            await screenshot(page, tmp_path, f"start-unknown-phone-{lang}")

        # An unknown link shows its error on the call page.
        await page.goto(f"{signaling.url}/j#{'0' * 64}")
        await wait_for_state(page, "error")
        assert UNKNOWN["de"] in await page.inner_text("[role=alert]")
        assert await layout_problems(page) == []
        await screenshot(page, tmp_path, "call-error-phone-de")
        await page.goto(f"{signaling.url}/j?lang=en#not-a-token")
        await wait_for_state(page, "error")
        assert "invitation link is incomplete" in await page.inner_text("[role=alert]")

        # Guessing on: growing delays, shown with the time to wait.
        for attempt in range(10):
            await page.goto(f"{signaling.url}/")
            await type_code(page, "dr-muster", f"{attempt:03x}-e04-d96")
            await page.wait_for_function(
                "() => document.querySelector('[role=alert]').textContent !== ''"
            )
            alert = await page.inner_text("[role=alert]")
            if "Zu viele Versuche" in alert:
                break
            assert UNKNOWN["de"] in alert
        else:
            raise AssertionError("ten wrong codes in a row were never slowed down")
        assert re.search(r"warten Sie \d+ Sekunden? und", alert), alert
        await screenshot(page, tmp_path, "start-rate-limited-phone-de")

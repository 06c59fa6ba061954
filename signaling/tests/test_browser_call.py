"""A 1:1 call between two real headless Chromium processes through the real stack.

Real control plane, the real operator (issues the codes and links), signaling as a process
through its real entrypoint, the shared TURN server (Debian coturn) in relay-only mode, so that
media flowing proves TURN works: every selected candidate pair must be a relay pair. One person
joins by the invitation link, the other by practice handle + code typed on the start page.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from browser import (
    PHONE,
    chromium,
    inbound_stats,
    new_context,
    screenshot,
    shared_turn,
    wait_for_state,
)
from lightkube import Client
from lightkube.resources.core_v1 import Secret
from playwright.async_api import Page
from sprechzimmer.contract import SecretKey

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def invitation(kube: Client, namespace: str, name: str) -> dict[str, str]:
    """What the practice's web app would copy from the codes Secret into invitations."""
    support.wait_for(
        "codes Secret", lambda: support.status(kube, namespace, name).get("codesSecretName"), 60
    )
    secret = support.status(kube, namespace, name)["codesSecretName"]
    data = kube.get(Secret, secret, namespace=namespace).data or {}
    return {key.value: base64.b64decode(data[key.value]).decode() for key in SecretKey}


async def flowing(page: Page, within: float = 30) -> dict[str, Any]:
    """Wait until decoded video frames and audio packets from the other person keep rising."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    before = await inbound_stats(page)
    while True:
        await asyncio.sleep(0.5)  # poll interval while waiting for the counters to move
        now = await inbound_stats(page)
        rising = (
            now["framesDecoded"] > before["framesDecoded"] > 0
            and now["audioPacketsReceived"] > before["audioPacketsReceived"] > 0
        )
        if rising:
            return now
        assert loop.time() < deadline, f"media not flowing: {before} → {now}"
        before = now


async def test_one_to_one_call_by_link_and_by_code_through_turn(
    operator: Any,
    kube: Client,
    namespace: str,
    start_signaling: Any,
    tmp_path: Path,
) -> None:
    async with shared_turn(tmp_path, support.SHARED_KEY) as turn_url:
        signaling = start_signaling(turn_urls=turn_url, relay_only="true")
        support.create_session(kube, namespace, "eins")
        support.wait_for("Ready", support.phase_is(kube, namespace, "eins", "Ready"), 60)
        invite = invitation(kube, namespace, "eins")
        token = invite[SecretKey.HOST_LINK_TOKEN.value]
        code = invite[SecretKey.CLIENT_CODE.value]
        assert invite[SecretKey.HOST_LINK.value].endswith(f"/j#{token}")

        async with chromium() as host_browser, chromium() as client_browser:
            host_context = await new_context(host_browser, record_peer_connections=True)
            client_context = await new_context(
                client_browser, viewport=PHONE, record_peer_connections=True
            )
            host = await host_context.new_page()
            client = await client_context.new_page()

            # The practice opens its invitation link: the token leaves the address bar.
            await host.goto(f"{signaling.url}/j#{token}")
            await wait_for_state(host, "consent")
            assert host.url == f"{signaling.url}/j"
            consent = await host.inner_text("main")
            assert "Es wird nichts aufgezeichnet" in consent
            assert "Ende-zu-Ende-verschlüsselt" in consent
            assert "wird dieser Anruf automatisch gestartet" in consent
            await screenshot(host, tmp_path, "call-consent-desktop-de")
            await host.click("button[name=consent]")
            await wait_for_state(host, "waiting")

            # The client types handle and code the way people do, on the English start page.
            await client.goto(f"{signaling.url}/?lang=en")
            await client.fill("input[name=host]", " Dr-Muster ")
            await client.fill("input[name=code]", code.upper().replace("-", " "))
            await client.click("button[type=submit]")
            await wait_for_state(client, "consent")
            assert code not in client.url
            assert "Nothing is recorded" in await client.inner_text("main")
            await client.fill("input[name=name]", "Frau M.")
            await client.click("button[name=consent]")

            await wait_for_state(client, "connected", 60)
            await wait_for_state(host, "connected", 60)
            for page in (host, client):
                stats = await flowing(page)
                assert stats["pairs"] >= 1
                assert stats["relayPairs"] == stats["pairs"], stats  # relay only: through TURN
                assert await page.locator("video[data-remote]").count() == 1
            assert await host.inner_text("figure[data-tile] figcaption") == "Frau M."
            assert await client.inner_text("figure[data-tile] figcaption") == "Practice"
            await screenshot(host, tmp_path, "call-connected-desktop-de")
            await screenshot(client, tmp_path, "call-connected-phone-en")

            # The client leaves: their page ends, the practice waits alone again.
            await client.click("#leave")
            await wait_for_state(client, "ended")
            await wait_for_state(host, "waiting", 60)
            assert await host.locator("video[data-remote]").count() == 0

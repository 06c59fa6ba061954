"""A group call (MediaPod) in real headless Chromium: three people through signaling and a real
SFU + coturn, each page receiving the other two in their slots.

The session, its phase and its media pod are real (operator on the real control plane, the pod
placed on a KWOK node). KWOK pods run nothing, so the SFU and the pod's coturn run as local
processes (``media-pod/tests/support.py``) with the per-session control token and TURN secret
derived from the shared key, and signaling reaches them through its dev/test-only MEDIA_OVERRIDE
setting — as in ``test_group_call_media.py``, with Chromium instead of aiortc as the people.
End-to-end encryption is on (every page encrypts its frames); test_browser_e2ee.py proves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser import (
    ONE_OPEN_CONNECTION,
    layout_problems,
    media_flowing,
    new_context,
    screenshot,
    wait_for_state,
)
from lightkube import Client
from local_media_pod import group_call
from sprechzimmer.contract import SecretKey

pytestmark = [pytest.mark.browser, pytest.mark.media, pytest.mark.timeout(400)]

# What the page offers the SFU (docs/media-pod.md): one sendonly pair, then recvonly slot pairs,
# VP8 and Opus only.
OFFER_LAYOUT = """
() => {
  const pc = window.__testPeerConnections.find((p) => p.connectionState !== "closed");
  const sdp = pc.localDescription.sdp;
  const sections = sdp.split("\\r\\nm=").slice(1);
  return {
    directions: pc.getTransceivers().map((t) => `${t.receiver.track.kind}:${t.direction}`),
    policy: pc.getConfiguration().iceTransportPolicy,
    codecs: [...new Set([...sdp.matchAll(/a=rtpmap:\\d+ ([A-Za-z0-9-]+)\\//g)].map((m) => m[1]))],
    sections: sections.length,
    bytes: sdp.length,
  };
}
"""


async def test_group_call_of_three_in_chromium(
    operator: Any,
    media_node: str,
    start_signaling: Any,
    namespace: str,
    kube: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    async with group_call(kube, namespace, monkeypatch, tmp_path, start_signaling) as group:
        signaling, invite, browser = group.signaling, group.invite, group.browser
        links = [
            invite[SecretKey.HOST_LINK_TOKEN.value],
            invite[SecretKey.CLIENT_LINK_TOKEN.value],
            invite[SecretKey.CLIENT_LINK_TOKEN.value],
        ]
        pages = []
        for link in links:
            context = await new_context(browser, record_peer_connections=True)
            page = await context.new_page()
            await page.goto(f"{signaling.url}/j#{link}")
            await wait_for_state(page, "consent")
            consent = await page.inner_text("#consent-e2ee")
            assert "Ende-zu-Ende-verschlüsselt" in consent
            assert "Medienserver" in consent
            await page.click("button[name=consent]")
            pages.append(page)

        for page in pages:
            await wait_for_state(page, "connected", 90)
            layout = await page.evaluate(OFFER_LAYOUT)
            assert layout["policy"] == "relay"
            assert layout["directions"][:2] == ["audio:sendonly", "video:sendonly"]
            # three seats (host + two clients): a receive slot for each of the two others
            assert layout["directions"][2:] == ["audio:recvonly", "video:recvonly"] * 2
            assert sorted(layout["codecs"]) == ["VP8", "opus"], layout
            await page.wait_for_function(
                "() => document.querySelectorAll('video[data-remote]').length === 2", timeout=60_000
            )
            await page.wait_for_function(ONE_OPEN_CONNECTION)
        for page in pages:
            await media_flowing(page, streams=2, within=60)
        assert await layout_problems(pages[0]) == []
        await screenshot(pages[0], tmp_path, "group-desktop-de")

        # Someone leaves: the others' pages take their tile down (slot freed).
        await pages[2].click("#leave")
        await wait_for_state(pages[2], "ended")
        for page in pages[:2]:
            await page.wait_for_function(
                "() => document.querySelectorAll('video[data-remote]').length === 1", timeout=60_000
            )

"""Chromium and the platform's two coturn configurations: no STUN error in any call.

Chromium uses every UDP TURN server in ``iceServers`` as a STUN server as well and sends it a
Binding request without credentials every 10 s, even with only ``turn:`` URLs and
``iceTransportPolicy: "relay"``. A coturn with ``secure-stun`` answers each with 401, which the
page sees as an ``icecandidateerror`` (``stun:…  401 Unauthorized``) for as long as the call
lasts. Both the shared TURN server (``devcluster.turn``, as ``make up`` runs it) and the media
pod's coturn (``media.core.turn``) must answer them: two relay-only connections through each,
in one real Chromium page, report no candidate error over several keepalive periods.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from browser import chromium, new_context, shared_turn
from sprechzimmer.contract.keys import shared_turn_secret, turn_rest_credentials
from tests import support as media  # media-pod/tests/support.py

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# Two keepalive periods of Chromium's STUN port (10 s) after the connections are up.
OBSERVED_SECONDS = 21

# Two RTCPeerConnections connected to each other inside the page, relay only; every
# icecandidateerror is kept with the server URL and code it names.
_CONNECT_THROUGH = """
async (iceServers) => {
  window.__candidateErrors ??= [];
  const config = { iceServers, iceTransportPolicy: "relay" };
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  for (const [from, to] of [[a, b], [b, a]]) {
    from.addEventListener("icecandidate", (e) => e.candidate && to.addIceCandidate(e.candidate));
    from.addEventListener("icecandidateerror", (e) => {
      window.__candidateErrors.push(`${e.url} ${e.errorCode} ${e.errorText}`);
    });
  }
  a.createDataChannel("probe");
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription);
  (window.__pairs ??= []).push([a, b]);
}
"""
_ALL_CONNECTED = """
() => window.__pairs?.length === 2
  && window.__pairs.flat().every((pc) => pc.connectionState === "connected")
"""


async def test_no_stun_error_through_the_shared_turn_server_or_the_media_pods_coturn(
    tmp_path: Path,
) -> None:
    expires = int(time.time()) + 600
    async with (
        shared_turn(tmp_path, support.SHARED_KEY) as shared_url,
        media.running_turn(tmp_path) as pod_turn,
    ):
        username, credential = turn_rest_credentials(
            shared_turn_secret(support.SHARED_KEY.encode()), expires, "test"
        )
        pod_username, pod_credential = pod_turn.credentials()
        servers: list[list[dict[str, Any]]] = [
            [{"urls": [shared_url], "username": username, "credential": credential}],
            # as signaling hands out the pod's TURN: UDP and TCP
            [
                {
                    "urls": [
                        f"turn:127.0.0.1:{pod_turn.port}?transport=udp",
                        f"turn:127.0.0.1:{pod_turn.port}?transport=tcp",
                    ],
                    "username": pod_username,
                    "credential": pod_credential,
                }
            ],
        ]
        async with chromium() as browser:
            page = await (await new_context(browser)).new_page()
            for ice_servers in servers:
                await page.evaluate(_CONNECT_THROUGH, ice_servers)
            await page.wait_for_function(_ALL_CONNECTED, timeout=30_000)
            # An observation window, not a synchronisation: Binding keepalives go out every 10 s.
            await asyncio.sleep(OBSERVED_SECONDS)
            errors = await page.evaluate("() => window.__candidateErrors")
            still = await page.evaluate(
                "() => window.__pairs.flat().map((pc) => pc.connectionState)"
            )
    assert errors == []
    assert still == ["connected"] * 4

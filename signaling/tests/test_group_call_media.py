"""A group call signalled end to end: three aiortc participants join a real SFU + coturn through
signaling and receive each other's media.

The session, its phase and its media pod are real (operator on the real control plane, the pod
placed on a KWOK node). KWOK pods run nothing, so the SFU and coturn run as local processes
(``media-pod/tests/support.py``) with the per-session control token and TURN secret derived from
the shared key, and signaling reaches them through its dev/test-only MEDIA_OVERRIDE setting.
The ICE servers the participants use are the ones signaling handed out.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import support
from aiortc import RTCIceServer, RTCSessionDescription
from lightkube import Client
from local_media_pod import local_media_pod
from signaling_process import Person, StartSignaling
from sprechzimmer.contract import SecretKey
from test_calls_cluster import ready_session
from tests import support as media

pytestmark = [pytest.mark.cluster, pytest.mark.media]


class SignalledTurn:
    """The TURN server as signaling described it in ``welcome``/``open`` (not the test's own)."""

    def __init__(self, server: dict[str, Any]) -> None:
        self.server = server

    def ice_server(self, transport: str = "udp") -> RTCIceServer:
        url = next(u for u in self.server["urls"] if u.endswith(f"transport={transport}"))
        return RTCIceServer(
            urls=url, username=self.server["username"], credential=self.server["credential"]
        )


async def negotiate_with_sfu(person: Person, client: media.Client) -> None:
    """Offer the aiortc client's layout to the SFU through signaling and apply its answer."""
    await client.pc.setLocalDescription(await client.pc.createOffer())
    await person.send(
        type="sdp",
        to="sfu",
        description={"type": "offer", "sdp": client.pc.localDescription.sdp},
    )
    answer = await person.expect("sdp", 30)
    assert answer["from"] == "sfu"
    await client.pc.setRemoteDescription(
        RTCSessionDescription(answer["description"]["sdp"], "answer")
    )


async def test_group_call_through_signaling(
    operator: Any,
    media_node: str,
    start_signaling: StartSignaling,
    namespace: str,
    kube: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    codes = ready_session(kube, namespace, "gruppe", clients=2)
    async with (
        local_media_pod(kube, namespace, "gruppe", monkeypatch, tmp_path) as pod,
        aiohttp.ClientSession() as http,
    ):
        sig = start_signaling(media_override=pod.override)
        auths = [
            {"link": codes[SecretKey.HOST_LINK_TOKEN.value]},
            {"host": "dr-muster", "code": codes[SecretKey.CLIENT_CODE.value]},
            {"link": codes[SecretKey.CLIENT_LINK_TOKEN.value]},
        ]
        people: list[Person] = []
        clients: list[media.Client] = []
        for seed, auth in enumerate(auths):
            person = await Person(http, sig.url).connect()
            welcome = await person.hello(auth)
            assert welcome["type"] == "welcome", welcome
            assert welcome["mode"] == "MediaPod"
            assert welcome["state"] == "open"
            assert welcome["iceTransportPolicy"] == "relay"
            await person.send(type="join")
            client = media.Client(
                welcome["you"],
                pod.sfu,
                SignalledTurn(welcome["iceServers"][0]),  # type: ignore[arg-type]
                seed=seed,
                loudness=0.6 if seed == 0 else 0.003,  # the host speaks
            )
            await negotiate_with_sfu(person, client)
            people.append(person)
            clients.append(client)
        try:
            await asyncio.gather(*(c.connected(30) for c in clients))
            ids = [p.welcome["you"] for p in people]
            # Everyone learns which slot carries whom, and receives the other two's video.
            for me, person in enumerate(people):
                others = {i for j, i in enumerate(ids) if j != me}
                deadline = asyncio.get_running_loop().time() + 30
                while True:
                    slots = await person.expect("slots", 30)
                    if {s["peer"] for s in slots["slots"]} - {None} == others:
                        break
                    assert asyncio.get_running_loop().time() < deadline, slots
            await media.wait_for(
                lambda: all(c.slots_receiving("video", 10) >= 2 for c in clients),
                40,
                "every participant to receive two videos",
            )
            assert all(c.slots_receiving("audio", 10) >= 2 for c in clients)
            # The SFU's active speaker reaches everyone as a peer id: the loud host.
            for person in people[1:]:
                await person.expect_or_seen("speaker", 30, peer=ids[0])
            support.wait_for(
                "presence 3 and Active",
                lambda: (
                    support.status(kube, namespace, "gruppe").get("presence", {}).get("connected")
                    == 3
                    and support.phase_is(kube, namespace, "gruppe", "Active")()
                ),
                30,
            )
            # A leave takes the person out of the SFU too.
            await people[2].send(type="leave")
            await people[2].closed()
            await media.wait_for(
                lambda: _participants(pod.sfu, 2), 20, "the SFU to drop the leaver"
            )
            assert sig.metric("sprechzimmer_signaling_media_requests_total", result="error") == 0
            assert sig.metric("sprechzimmer_signaling_media_requests_total", result="ok") >= 4
        finally:
            for c in clients:
                await c.close()
            for p in people:
                await p.close()


async def _participants(sfu: media.Sfu, count: int) -> bool:
    # The per-session token (Sfu.request defaults to the token it was defined with).
    status, body = await sfu.request("GET", "/v1/participants", token=media.TOKEN)
    return status == 200 and len(body["participants"]) == count

"""End to end on a cluster whose pods really run (the real node, or kind): the chart's operator
and signaling, a group session's media pod (SFU + coturn) and aiortc participants joining through
signaling and the pod's TURN host port; a 1:1 call; expiry; ``helm upgrade``; ``helm uninstall``.

The tests run in this order and share one install (``conftest.e2e``); the last one uninstalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import support  # operator/tests/support.py
from aiortc import RTCIceServer, RTCPeerConnection, RTCSessionDescription
from harness import CHART, NAMESPACE, PRACTICE, RELEASE, Installed, http_ok
from lightkube import Client
from signaling_process import Person  # signaling/tests
from sprechzimmer.contract import SecretKey
from sprechzimmer.devcluster.cluster import wait_for
from tests import support as media  # media-pod/tests/support.py


class _SignalledTurn:
    """The media pod's TURN server exactly as signaling described it in ``welcome``."""

    def __init__(self, server: dict[str, Any]) -> None:
        self.server = server

    def ice_server(self, transport: str = "udp") -> RTCIceServer:
        url = next(u for u in self.server["urls"] if u.endswith(f"transport={transport}"))
        return RTCIceServer(url, self.server["username"], self.server["credential"])


def _media_pod(e2e: Installed, kube: Client, name: str) -> dict[str, Any]:
    status = support.status(kube, PRACTICE, name)
    return dict(e2e.json("-n", PRACTICE, "get", "pod", status["media"]["podName"]))


async def _join_group(
    http: aiohttp.ClientSession, url: str, auth: dict[str, str], seed: int
) -> tuple[Person, media.Client]:
    person = await Person(http, url).connect()
    welcome = await person.hello(auth)
    assert welcome["type"] == "welcome", welcome
    assert welcome["mode"] == "MediaPod"
    await person.send(type="join")
    client = media.Client(
        welcome["you"],
        None,  # type: ignore[arg-type]  # the offer goes through signaling, not to the SFU
        _SignalledTurn(welcome["iceServers"][0]),  # type: ignore[arg-type]
        seed=seed,
    )
    await client.pc.setLocalDescription(await client.pc.createOffer())
    await person.send(
        type="sdp", to="sfu", description={"type": "offer", "sdp": client.pc.localDescription.sdp}
    )
    answer = await person.expect("sdp", 60)
    await client.pc.setRemoteDescription(
        RTCSessionDescription(answer["description"]["sdp"], "answer")
    )
    return person, client


def test_helm_test_passes(e2e: Installed) -> None:
    """The chart's own smoke test (signaling /readyz, operator /healthz through their Services,
    addressed by environment variables: no cluster DNS needed)."""
    out = e2e.helm("test", RELEASE, "--timeout", "3m")
    assert "Phase:          Succeeded" in out, out


async def test_group_call_runs_on_a_real_media_pod(e2e: Installed, kube: Client) -> None:
    started = time.monotonic()
    support.create_session(kube, PRACTICE, "gruppe", clients=2)
    codes = support.codes(kube, PRACTICE, "gruppe")
    support.wait_for("gruppe Ready", support.phase_is(kube, PRACTICE, "gruppe", "Ready"), 180)
    e2e.timings["group session created → Ready"] = time.monotonic() - started
    pod = _media_pod(e2e, kube, "gruppe")
    # Really running, on the real node (or kind's), both containers.
    assert pod["status"]["phase"] == "Running"
    running = {
        c["name"] for c in pod["status"]["containerStatuses"] if c.get("state", {}).get("running")
    }
    assert running == {"sfu", "turn"}
    node = e2e.json("get", "node", pod["spec"]["nodeName"])
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    auths = [
        {"link": codes[SecretKey.HOST_LINK_TOKEN.value]},
        {"host": "dr-muster", "code": codes[SecretKey.CLIENT_CODE.value]},
        {"link": codes[SecretKey.CLIENT_LINK_TOKEN.value]},
    ]
    async with aiohttp.ClientSession() as http:
        joined = [
            await _join_group(http, e2e.signaling_url, a, seed) for seed, a in enumerate(auths)
        ]
        clients = [c for _, c in joined]
        try:
            await asyncio.gather(*(c.connected(60) for c in clients))
            # Through coturn on the node's host port: relayed candidates only.
            assert all(c.selected_local_candidate_type() == "relay" for c in clients)
            await media.wait_for(
                lambda: all(c.slots_receiving("video", 10) >= 2 for c in clients),
                90,
                "every participant to receive the other two videos through the media pod",
            )
            assert all(c.slots_receiving("audio", 10) >= 2 for c in clients)
            support.wait_for(
                "presence 3 and Active",
                lambda: (
                    support.status(kube, PRACTICE, "gruppe").get("presence", {}).get("connected")
                    == 3
                ),
                60,
            )
        finally:
            for person, client in joined:
                await client.close()
                await person.close()


async def _relay(
    sender: Person, receiver: Person, to: str, description: RTCSessionDescription
) -> RTCSessionDescription:
    """One SDP through signaling's relay, as the receiving browser gets it."""
    await sender.send(
        type="sdp", to=to, description={"type": description.type, "sdp": description.sdp}
    )
    got = (await receiver.expect("sdp", 30))["description"]
    return RTCSessionDescription(got["sdp"], got["type"])


async def test_one_to_one_call_through_signaling(e2e: Installed, kube: Client) -> None:
    support.create_session(kube, PRACTICE, "eins", clients=1)
    codes = support.codes(kube, PRACTICE, "eins")
    support.wait_for("eins Ready", support.phase_is(kube, PRACTICE, "eins", "Ready"), 120)
    async with aiohttp.ClientSession() as http:
        host, client = [await Person(http, e2e.signaling_url).connect() for _ in range(2)]
        links = (SecretKey.HOST_LINK_TOKEN, SecretKey.CLIENT_LINK_TOKEN)
        welcome, c_welcome = [
            await p.hello({"link": codes[k.value]})
            for p, k in zip((host, client), links, strict=True)
        ]
        assert [w["type"] for w in (welcome, c_welcome)] == ["welcome"] * 2, (welcome, c_welcome)
        assert welcome["mode"] == "PeerToPeer"
        await host.send(type="join")
        await client.send(type="join")
        caller, callee = RTCPeerConnection(), RTCPeerConnection()
        received: list[int] = []

        def on_track(track: Any) -> None:
            async def count() -> None:
                while True:
                    await track.recv()
                    received.append(1)

            asyncio.get_running_loop().create_task(count())

        callee.on("track", on_track)
        try:
            caller.addTrack(media.TestPattern(1))
            await caller.setLocalDescription(await caller.createOffer())
            offer = await _relay(client, host, welcome["you"], caller.localDescription)
            await callee.setRemoteDescription(offer)
            await callee.setLocalDescription(await callee.createAnswer())
            answer = await _relay(host, client, c_welcome["you"], callee.localDescription)
            await caller.setRemoteDescription(answer)
            await media.wait_for(lambda: len(received) >= 10, 60, "video frames peer to peer")
        finally:
            await caller.close()
            await callee.close()
            await host.close()
            await client.close()


def test_expiry_tears_the_media_pod_down(e2e: Installed, kube: Client) -> None:
    # Codes valid for one minute from now; the media pod is created at once (start = now).
    support.create_session(kube, PRACTICE, "kurz", clients=2, ttl="1m")
    pod = support.wait_for(
        "kurz's media pod",
        lambda: (support.status(kube, PRACTICE, "kurz").get("media") or {}).get("podName"),
        60,
    )
    assert e2e.cluster.kubectl("-n", PRACTICE, "get", "pod", str(pod), check=False).returncode == 0
    support.wait_for("kurz Expired", support.phase_is(kube, PRACTICE, "kurz", "Expired"), 180)
    wait_for(
        "the media pod gone",
        lambda: (
            e2e.cluster.kubectl("-n", PRACTICE, "get", "pod", str(pod), check=False).returncode != 0
        ),
        timeout=120,
    )


async def test_helm_upgrade_keeps_a_live_sessions_codes(e2e: Installed, kube: Client) -> None:
    codes = support.codes(kube, PRACTICE, "gruppe")
    before = e2e.json("-n", NAMESPACE, "get", "deploy", f"{RELEASE}-sprechzimmer-signaling")
    e2e.helm(
        "upgrade", RELEASE, str(CHART), *e2e.values,
        "--set", "signaling.logLevel=DEBUG", "--wait", "--timeout", "5m",
    )  # fmt: skip
    after = e2e.json("-n", NAMESPACE, "get", "deploy", f"{RELEASE}-sprechzimmer-signaling")
    assert after["metadata"]["generation"] > before["metadata"]["generation"]  # it rolled
    assert support.codes(kube, PRACTICE, "gruppe") == codes
    wait_for("signaling back", lambda: http_ok(e2e.signaling_url + "/readyz"), timeout=120)
    # Like a browser: a failed connection and `unavailable` are retried every 2 s
    # (docs/signaling.md). Right after the roll, the new replica may still route the call to the
    # old replica's unexpired Lease, and the NodePort briefly led to no pod in one run of five.
    rolled = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=20, sock_connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            welcome: dict[str, Any] = {}
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                person = await Person(http, e2e.signaling_url).connect()
                welcome = await person.hello({"link": codes[SecretKey.CLIENT_LINK_TOKEN.value]})
                await person.close()
            if welcome.get("type") == "welcome" or welcome.get("code") not in (None, "unavailable"):
                break
            assert time.monotonic() - rolled < 90, "signaling unusable 90 s after the upgrade"
            await asyncio.sleep(2.0)  # the browser client's retry interval
    e2e.timings["upgrade: joins unavailable after the roll (s)"] = time.monotonic() - rolled
    assert welcome["type"] == "welcome", welcome


def test_helm_uninstall_leaves_only_the_kept_crds(e2e: Installed, kube: Client) -> None:
    support.delete_sessions(kube, PRACTICE, timeout=120)
    e2e.helm("uninstall", RELEASE, "--wait", "--timeout", "5m")
    selector = f"app.kubernetes.io/instance={RELEASE}"

    def left() -> list[str]:
        kinds = "all,secret,sa,role,rolebinding,networkpolicy,pdb,configmap,lease"
        names = e2e.cluster.kubectl("get", kinds, "-A", "-l", selector, "-o", "name").stdout.split()
        names += e2e.cluster.kubectl(
            "get", "clusterrole,clusterrolebinding", "-l", selector, "-o", "name"
        ).stdout.split()
        return names

    wait_for("no object of the release left", lambda: not left(), timeout=120)
    # The deleted sessions' media pods drain (up to terminationGracePeriodSeconds), then go.
    wait_for(
        "no media pod left",
        lambda: not e2e.cluster.kubectl("get", "pod", "-n", PRACTICE, "-o", "name").stdout.strip(),
        timeout=120,
    )
    # crds.keep: the CRDs stay (deleting them would delete every session).
    assert (
        e2e.cluster.kubectl("get", "crd", "videosessions.sprechzimmer.io", check=False).returncode
        == 0
    )

"""Two replicas: the two people of a 1:1 call land on different replicas and still talk, because
the non-owner forwards its socket to the owner (rendezvous over the presence Leases)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import support
from conftest import StartSignaling
from lightkube import Client
from signaling_process import Person
from sprechzimmer.contract import SecretKey
from sprechzimmer.signaling.core.owner import score
from test_calls_cluster import ready_session

pytestmark = pytest.mark.cluster


async def test_one_call_across_two_replicas(
    operator: Any, start_signaling: StartSignaling, namespace: str, kube: Client
) -> None:
    a = start_signaling("sig-a")
    b = start_signaling("sig-b")
    for sig in (a, b):
        support.wait_for(
            f"{sig.name} to see both Leases",
            lambda sig=sig: sig.metric("sprechzimmer_signaling_replicas") == 2,  # type: ignore[misc]
        )
    codes = ready_session(kube, namespace, "quer")
    async with aiohttp.ClientSession() as http:
        host = await Person(http, a.url).connect()
        client = await Person(http, b.url).connect()
        h = await host.hello({"link": codes[SecretKey.HOST_LINK_TOKEN.value]})
        c = await client.hello(
            {"host": "dr-muster", "code": codes[SecretKey.CLIENT_CODE.value].replace("-", "")}
        )
        assert h["type"] == c["type"] == "welcome"
        # Exactly one of the two sockets was forwarded to the other replica.
        proxied = [s.metric("sprechzimmer_signaling_proxied_sockets_total") for s in (a, b)]
        assert sorted(proxied) == [0, 1]
        owner = (a, b)[proxied.index(0)]
        await host.send(type="join")
        await client.send(type="join")
        await host.expect(
            "roster", peers=[{"id": c["you"], "role": "client", "name": None, "joined": True}]
        )
        await client.send(type="sdp", to=h["you"], description={"type": "offer", "sdp": "v=0 o"})
        assert (await host.expect("sdp"))["from"] == c["you"]
        await host.send(type="sdp", to=c["you"], description={"type": "answer", "sdp": "v=0 a"})
        assert (await client.expect("sdp"))["description"]["sdp"] == "v=0 a"
        await host.send(type="ice", to=c["you"], candidate=None)
        assert (await client.expect("ice"))["candidate"] is None
        # Presence is written once, by the owner, under its own Lease.
        support.wait_for(
            "presence 2",
            lambda: (
                support.status(kube, namespace, "quer").get("presence", {}).get("connected") == 2
            ),
        )
        assert support.status(kube, namespace, "quer")["presence"]["vouchedBy"] == owner.name

        # Scale-out: a third replica that wins the hash for this session starts. The call in
        # progress stays with its owner: the client reconnects through the newcomer, with its
        # resume token, and is back in the same call with the same peer id.
        uid = support.get_session(kube, namespace, "quer")["metadata"]["uid"]  # type: ignore[index]
        newcomer = next(
            f"sig-c{i}"
            for i in range(1000)
            if score(uid, f"sig-c{i}") > max(score(uid, "sig-a"), score(uid, "sig-b"))
        )
        c_sig = start_signaling(newcomer)
        for sig in (a, b, c_sig):
            support.wait_for(
                f"{sig.name} to see three Leases",
                lambda sig=sig: sig.metric("sprechzimmer_signaling_replicas") == 3,  # type: ignore[misc]
            )
        await client.close()
        await host.expect("roster", peers=[])
        client = await Person(http, c_sig.url).connect()
        again = await client.hello(
            {"link": codes[SecretKey.CLIENT_LINK_TOKEN.value]}, resume=c["resume"]
        )
        assert again["you"] == c["you"]
        assert c_sig.metric("sprechzimmer_signaling_proxied_sockets_total") == 1
        await host.expect(
            "roster", peers=[{"id": c["you"], "role": "client", "name": None, "joined": True}]
        )
        await host.send(type="sdp", to=c["you"], description={"type": "offer", "sdp": "v=0 r"})
        assert (await client.expect("sdp"))["description"]["sdp"] == "v=0 r"
        # The owner shuts down: both sockets close with 1001 GOING_AWAY (clients reconnect).
        owner.stop()
        assert await host.closed() == 1001
        assert await client.closed() == 1001
        await host.close()
        await client.close()

"""Signaling against the real control plane with the real operator: admission by link and by
handle + code, relay, presence → Active → billing, resume, and every admission error."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import support
from lightkube import Client
from signaling_process import Person, StartSignaling
from sprechzimmer.contract import SecretKey
from sprechzimmer.contract.keys import shared_turn_secret, turn_rest_credentials
from sprechzimmer.contract.rfc3339 import parse_time

pytestmark = pytest.mark.cluster


def ready_session(kube: Client, namespace: str, name: str, **options: Any) -> dict[str, str]:
    """Create a session, wait until its codes exist; return codes and link tokens."""
    support.create_session(kube, namespace, name, **options)
    return support.codes(kube, namespace, name)


def sloppy(code: str) -> str:
    """How a person types it: upper case, spaces instead of dashes."""
    return code.upper().replace("-", " ")


async def test_one_to_one_by_link_and_code_with_presence_and_billing(
    operator: Any, start_signaling: StartSignaling, namespace: str, kube: Client
) -> None:
    turn_urls = "turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp"
    sig = start_signaling(turn_urls=turn_urls, relay_only="true")
    secrets_ = ready_session(kube, namespace, "eins")
    support.wait_for("Ready", support.phase_is(kube, namespace, "eins", "Ready"))
    async with aiohttp.ClientSession() as http:
        # A socket that says hello and goes again without joining is not presence: no write.
        lurker = await Person(http, sig.url).connect()
        lurked = await lurker.hello({"link": secrets_[SecretKey.CLIENT_LINK_TOKEN.value]})
        assert lurked["type"] == "welcome", lurked
        await lurker.close()
        support.wait_for("lurker gone", lambda: sig.metric("sprechzimmer_signaling_sockets") == 0)
        assert sig.metric("sprechzimmer_signaling_sessions_indexed") >= 1  # read at scrape time
        host = await Person(http, sig.url).connect()
        client = await Person(http, sig.url).connect()
        welcome = await host.hello({"link": secrets_[SecretKey.HOST_LINK_TOKEN.value]})
        assert welcome["type"] == "welcome", welcome
        assert welcome["role"] == "host"
        assert welcome["mode"] == "PeerToPeer"
        assert welcome["state"] == "open"
        assert welcome["maxParticipants"] == 2
        # Only the platform's TURN server, with REST credentials that end by expiresAt.
        assert welcome["iceTransportPolicy"] == "relay"
        [server] = welcome["iceServers"]
        assert server["urls"] == turn_urls.split(",")
        expiry = int(server["username"].split(":")[0])
        assert expiry <= parse_time(welcome["expiresAt"]).timestamp()  # type: ignore[union-attr]
        secret = shared_turn_secret(support.SHARED_KEY.encode())
        assert turn_rest_credentials(secret, expiry, server["username"].split(":")[1]) == (
            server["username"],
            server["credential"],
        )
        c_welcome = await client.hello(
            {"host": " Dr-Muster", "code": sloppy(secrets_[SecretKey.CLIENT_CODE.value])}
        )
        assert c_welcome["type"] == "welcome", c_welcome
        assert c_welcome["role"] == "client"
        assert c_welcome["you"] != welcome["you"]
        await host.expect(
            "roster",
            peers=[{"id": c_welcome["you"], "role": "client", "name": None, "joined": False}],
        )
        # Consent, then the second one offers to the first, through signaling.
        await host.send(type="join", name="Praxis Muster")
        support.wait_for(
            "presence 1",
            lambda: (
                (support.status(kube, namespace, "eins").get("presence") or {}).get("connected")
                == 1
            ),
        )
        # The first write of presence is the host's join (none for the lurker's hello/close).
        writes = "sprechzimmer_signaling_presence_writes_total"
        support.wait_for("the write counted", lambda: sig.metric(writes, result="ok") >= 1)
        assert sig.metric(writes, result="ok") == 1
        await client.send(type="join")
        await host.expect(
            "roster",
            peers=[{"id": c_welcome["you"], "role": "client", "name": None, "joined": True}],
        )
        await client.send(
            type="sdp", to=welcome["you"], description={"type": "offer", "sdp": "v=0 offer"}
        )
        got = await host.expect("sdp")
        assert got == {
            "v": 1,
            "type": "sdp",
            "from": c_welcome["you"],
            "description": {"type": "offer", "sdp": "v=0 offer"},
        }
        await host.send(
            type="sdp", to=c_welcome["you"], description={"type": "answer", "sdp": "v=0 answer"}
        )
        assert (await client.expect("sdp"))["description"]["type"] == "answer"
        candidate = {
            "candidate": "candidate:1 1 udp 1 192.0.2.1 9 typ relay",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        }
        await host.send(type="ice", to=c_welcome["you"], candidate=candidate)
        assert (await client.expect("ice"))["candidate"] == candidate
        await client.send(type="e2e", to="*", payload="a2V5LW1hdGVyaWFs")
        assert (await host.expect("e2e"))["payload"] == "a2V5LW1hdGVyaWFs"
        await host.send(type="ping")
        await host.expect("pong")

        # Presence → Active → billing, vouched by signaling's own Lease.
        support.wait_for("Active", support.phase_is(kube, namespace, "eins", "Active"), 30)
        st = support.status(kube, namespace, "eins")
        assert st["presence"]["connected"] == 2
        assert st["presence"]["hostConnected"] is True
        assert st["presence"]["vouchedBy"] == "sig-a"
        support.wait_for(
            "a billed minute",
            lambda: (
                (support.status(kube, namespace, "eins").get("billing") or {}).get(
                    "billedMinutes", 0
                )
                >= 1
            ),
            30,
        )

        # The client drops and comes back with its resume token: the same seat.
        await client.close()
        await host.expect("roster", peers=[])
        again = await Person(http, sig.url).connect()
        back = await again.hello(
            {"link": secrets_[SecretKey.CLIENT_LINK_TOKEN.value]}, resume=c_welcome["resume"]
        )
        assert back["you"] == c_welcome["you"]
        await host.expect(
            "roster",
            peers=[{"id": c_welcome["you"], "role": "client", "name": None, "joined": True}],
        )
        # Leaving ends the participation: 1000, and presence drops to one.
        await again.send(type="leave")
        assert (await again.expect("ended"))["reason"] == "left"
        assert await again.closed() == 1000
        support.wait_for(
            "presence 1",
            lambda: support.status(kube, namespace, "eins")["presence"]["connected"] == 1,
        )
        # ... and billing stops with it.
        support.wait_for(
            "billing stopped",
            lambda: (
                support.status(kube, namespace, "eins")["billing"]["billingAtCheckpoint"] is False
            ),
        )
        await host.close()
    log = sig.log()
    for secret in secrets_.values():
        assert secret not in log
    assert "Praxis Muster" not in log
    assert sig.metric("sprechzimmer_signaling_joins_total", result="ok") == 4  # with the lurker


async def test_admission_errors(
    operator: Any, start_signaling: StartSignaling, namespace: str, kube: Client
) -> None:
    sig = start_signaling()
    eins = ready_session(kube, namespace, "eins")
    later = ready_session(kube, namespace, "spaeter", start=support.now() + timedelta(seconds=8))
    weg = ready_session(kube, namespace, "weg")
    support.wait_for("Ready", support.phase_is(kube, namespace, "eins", "Ready"))
    async with aiohttp.ClientSession() as http:

        async def attempt(auth: dict[str, str]) -> tuple[dict[str, Any], Person]:
            person = await Person(http, sig.url).connect()
            return await person.hello(auth), person

        # Unknown: a wrong code and a right code under another handle get the same answer.
        wrong, p = await attempt({"host": "dr-muster", "code": "000-000-000"})
        assert wrong == {"v": 1, "type": "error", "code": "unknown-code"}
        assert await p.closed() == 4401
        other, _ = await attempt({"host": "dr-other", "code": eins[SecretKey.HOST_CODE.value]})
        assert other == wrong

        # Not started: welcome in state waiting with the start time, then `open` by itself.
        waiting, p = await attempt({"link": later[SecretKey.CLIENT_LINK_TOKEN.value]})
        assert waiting["state"] == "waiting"
        assert waiting["scheduledStart"]
        await p.expect("open", 40)

        # Expiry: a connected person gets `ended: expired`, a later join `expired`.
        kurz = ready_session(kube, namespace, "kurz", ttl="8s")
        in_kurz, p_kurz = await attempt({"link": kurz[SecretKey.HOST_LINK_TOKEN.value]})
        assert in_kurz["type"] == "welcome"
        ended = await p_kurz.expect("ended", 30)
        assert ended["reason"] == "expired"
        assert await p_kurz.closed() == 4410
        late, _ = await attempt({"link": kurz[SecretKey.CLIENT_LINK_TOKEN.value]})
        assert late["code"] == "expired"
        support.wait_for("Expired", support.phase_is(kube, namespace, "kurz", "Expired"), 30)
        revoked, _ = await attempt({"host": "dr-muster", "code": kurz[SecretKey.HOST_CODE.value]})
        assert revoked["code"] == "expired"

        # Cancelled: deleting the session ends the call; a later join is told so.
        in_weg, p_weg = await attempt({"link": weg[SecretKey.HOST_LINK_TOKEN.value]})
        assert in_weg["type"] == "welcome"
        kube.delete(support.VideoSession, "weg", namespace=namespace)
        assert (await p_weg.expect("ended", 30))["reason"] == "cancelled"
        cancelled, _ = await attempt({"link": weg[SecretKey.CLIENT_LINK_TOKEN.value]})
        assert cancelled["code"] == "cancelled"

        # Full: the one client seat is taken by a connected person.
        first, _ = await attempt({"link": eins[SecretKey.CLIENT_LINK_TOKEN.value]})
        assert first["type"] == "welcome"
        full, p = await attempt({"link": eins[SecretKey.CLIENT_LINK_TOKEN.value]})
        assert full["code"] == "full"
        assert await p.closed() == 4409

        # Growing delays: wrong guesses from this address soon meet 429 with retryAfter ...
        answers = []
        for i in range(12):
            answer, _ = await attempt({"host": "dr-muster", "code": f"{i:03x}-000-000"})
            answers.append(answer)
        limited = [a for a in answers if a["code"] == "rate-limited"]
        assert limited, answers
        assert limited[0]["retryAfter"] >= 1
        # ... even for the right code from the attacking address; nothing is locked forever.
        blocked, p = await attempt({"host": "dr-muster", "code": eins[SecretKey.HOST_CODE.value]})
        assert blocked["code"] == "rate-limited"
        assert await p.closed() == 4429
    assert sig.metric("sprechzimmer_signaling_rate_limited_total") >= 2
    assert sig.metric("sprechzimmer_signaling_rejected_attempts_total") >= 5
    log = sig.log()
    assert json.dumps(eins[SecretKey.HOST_CODE.value]) not in log

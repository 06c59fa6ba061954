"""Helm install and the media pod on a real node (a script, not a test).

    .venv/bin/python e2e/bench_install.py [--cold] [--seconds 20]

Starts the local control plane with the real node (``harness.real_node_install``), then measures:

- the install: images built (``--cold``: into an empty image cache, i.e. Debian packages
  unpacked and wheels built from scratch; default: the content-hash cache as it is) and imported
  into the node's containerd, ``helm install --wait``, signaling reachable;
- a group session created right after: created → ``Ready`` (joinable: signaling welcomes a
  participant into an open call), and its media pod's creation → ``Ready`` (API timestamps,
  1 s resolution) with both containers' start times;
- a five-person call through signaling and the pod's TURN host port: five aiortc participants
  (``media-pod/bench/bench_forwarding.py``'s load peers: after ICE/DTLS, pre-built SRTP packets at
  1.5 Mbit/s VP8-sized video, 30 fps, + 50 pkt/s Opus each, no encoding) and the pod's CPU from
  cgroup accounting (``cpuacct.usage`` of the pod: SFU + coturn + pause), plus the SFU process
  alone (``/proc``) and the SFU's forwarded-packet counters.

Prints one JSON object. The load generator runs on the same two shared cores, so the CPU numbers
are what the pod used, not what it would use alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCIceTransportPolicy
from lightkube import Client, KubeConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [
    str(HERE),
    str(REPO / "media-pod" / "bench"),
    str(REPO / "operator" / "tests"),
    str(REPO / "signaling" / "tests"),
    str(REPO / "media-pod"),
]
import bench_forwarding as fwd  # noqa: E402
import support  # noqa: E402  # operator/tests/support.py
from harness import PRACTICE, Installed, real_node_install  # noqa: E402
from signaling_process import Person  # noqa: E402  # signaling/tests
from sprechzimmer.contract import SecretKey  # noqa: E402

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _pod_cgroup(uid: str) -> Path:
    """The pod's cgroup (v1, cgroupfs driver: kubepods[/burstable|/besteffort]/pod<uid>)."""
    for root in (CPUACCT, Path("/sys/fs/cgroup")):
        found = sorted(root.glob(f"kubepods*/**/pod{uid}")) + sorted(
            root.glob(f"kubepods*/pod{uid}")
        )
        if found:
            return found[0]
    raise RuntimeError(f"no cgroup for pod {uid}")


def _cpu_ns(cgroup: Path) -> int:
    usage = cgroup / "cpuacct.usage"
    if usage.exists():
        return int(usage.read_text())
    stat = dict(line.split() for line in (cgroup / "cpu.stat").read_text().splitlines())
    return int(stat["usage_usec"]) * 1000  # cgroup v2


def _container_pid(cgroup: Path, container_id: str) -> int:
    procs = (cgroup / container_id / "cgroup.procs").read_text().split()
    return int(procs[0])


async def five_person_call(installed: Installed, kube: Client, seconds: float) -> dict[str, Any]:
    created = time.monotonic()
    support.create_session(kube, PRACTICE, "bench", clients=4)
    codes = support.codes(kube, PRACTICE, "bench")
    support.wait_for("Ready", support.phase_is(kube, PRACTICE, "bench", "Ready"), 180)
    result: dict[str, Any] = {"session created → Ready (s)": round(time.monotonic() - created, 2)}
    status = support.status(kube, PRACTICE, "bench")
    pod = installed.json("-n", PRACTICE, "get", "pod", status["media"]["podName"])
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    born = _stamp(pod["metadata"]["creationTimestamp"])
    result["media pod created → Ready (s, API timestamps)"] = (
        _stamp(ready["lastTransitionTime"]) - born
    )
    for container in pod["status"]["containerStatuses"]:
        started = container["state"]["running"]["startedAt"]
        result[f"media pod created → {container['name']} started (s)"] = _stamp(started) - born
    cgroup = _pod_cgroup(pod["metadata"]["uid"])
    sfu_id = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "sfu")
    sfu_pid = _container_pid(cgroup, sfu_id["containerID"].split("://")[1])
    control = f"http://{pod['status']['podIP']}:8080"

    auths = [{"link": codes[SecretKey.HOST_LINK_TOKEN.value]}] + [
        {"link": codes[SecretKey.CLIENT_LINK_TOKEN.value]} for _ in range(4)
    ]
    async with aiohttp.ClientSession() as http:
        people: list[Person] = []
        peers: list[fwd.LoadPeer] = []
        joined = time.monotonic()
        for index, auth in enumerate(auths):
            person = await Person(http, installed.signaling_url).connect()
            welcome = await person.hello(auth)
            assert welcome["type"] == "welcome", welcome
            if index == 0:
                result["session created → first welcome (s)"] = round(time.monotonic() - created, 2)
            await person.send(type="join")
            server = welcome["iceServers"][0]
            url = next(u for u in server["urls"] if u.endswith("transport=udp"))
            pc = fwd.load_pc(
                RTCConfiguration(
                    iceServers=[RTCIceServer(url, server["username"], server["credential"])],
                    iceTransportPolicy=RTCIceTransportPolicy.RELAY,
                    bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                )
            )
            await pc.setLocalDescription(await pc.createOffer())
            await person.send(
                type="sdp", to="sfu", description={"type": "offer", "sdp": pc.localDescription.sdp}
            )
            answer = await person.expect("sdp", 60)
            peers.append(await fwd.answered(pc, f"p{index}", answer["description"]["sdp"]))
            people.append(person)
        deadline = time.monotonic() + 60
        while not all(p.pc.connectionState == "connected" for p in peers):
            assert time.monotonic() < deadline, [p.pc.connectionState for p in peers]
            await asyncio.sleep(0.1)
        result["five joined and connected through TURN (s)"] = round(time.monotonic() - joined, 2)
        for peer in peers:
            peer.take_over()
        video_pps = 1_500_000 / 8 / fwd.VIDEO_PACKET
        await fwd.measure(http, control, sfu_pid, peers, 2.0, video_pps, 50, 5)  # key frames
        before, wall0 = _cpu_ns(cgroup), time.monotonic()
        call = await fwd.measure(http, control, sfu_pid, peers, seconds, video_pps, 50, 5)
        pod_cpu = (_cpu_ns(cgroup) - before) / 1e9
        wall = time.monotonic() - wall0
        expected = call.in_packets * (len(peers) - 1)
        result["call"] = {
            "participants": len(peers),
            "seconds": round(call.seconds, 1),
            "pod_cpu_percent_of_one_core (sfu + coturn)": round(100 * pod_cpu / wall, 1),
            "sfu_process_cpu_percent_of_one_core": round(100 * call.sfu_cpu / call.cpu_seconds, 1),
            "in_pps": round(call.in_packets / call.seconds),
            "out_pps": round(call.out_packets / call.seconds),
            "delivery_ratio": round(call.received / expected, 4) if expected else None,
            "latency_ms_p50": round(1000 * fwd.percentile(call.latencies, 0.5), 2),
            "latency_ms_p99": round(1000 * fwd.percentile(call.latencies, 0.99), 2),
        }
        for peer in peers:
            await peer.pc.close()
        for person in people:
            await person.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="build the images into an empty cache")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured call")
    args = parser.parse_args()
    results: dict[str, Any] = {"image cache": "cold (empty)" if args.cold else "warm (as it is)"}
    with tempfile.TemporaryDirectory(prefix="sprechzimmer-bench-") as tmp:
        if args.cold:
            os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # images/build.py's cache
        state = Path(tmp) / "cluster"
        state.mkdir()
        started = time.monotonic()
        with real_node_install(state) as installed:
            os.environ.pop("XDG_CACHE_HOME", None)
            results["install"] = {k: round(v, 2) for k, v in installed.timings.items()}
            kube = Client(config=KubeConfig.from_file(installed.cluster.kubeconfig))
            call = asyncio.run(five_person_call(installed, kube, args.seconds))
            results["helm install → joinable group session (s)"] = round(
                installed.timings["helm install → signaling reachable"]
                + call["session created → first welcome (s)"],
                2,
            )
            results["images + helm install → joinable group session (s)"] = round(
                installed.timings["images built (cached by content) and imported"]
                + results["helm install → joinable group session (s)"],
                2,
            )
            results["group session"] = call
            results["whole run until the call ended (s)"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

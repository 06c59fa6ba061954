"""Signaling benchmark: idle sockets per replica, joins/s per core, join latency in Chromium.

    .venv/bin/python signaling/bench/bench_signaling.py --idle 5000 --joins 3000 --browser-runs 10

Starts its own throwaway local control plane (``LocalCluster`` in a temporary directory) with the
devcluster add-ons as ``make up`` runs them — the real operator, the shared TURN server (coturn)
and one signaling replica (``python -m sprechzimmer.signaling``) — creates ``--idle / 2`` 1:1
sessions through the operator, reads their links and codes from the codes Secrets, then:

1. **Idle sockets** (target ≥ 5 000 in ≤ 300 MB): opens ``--idle`` WebSockets, each says
   ``hello`` with a host or client link and is admitted (``welcome``; one seat each, so two
   sockets per 1:1 session), holds them idle for ``--hold`` seconds while sampling the signaling
   process's RSS (VmRSS), and checks with ``ping`` on a sample that they are still served.
2. **Joins/s per core with code verification**: ``--joins`` times: connect, ``hello`` with
   practice handle + code, wait for ``welcome``, close; ``--in-flight`` at once. Reports joins/s
   (wall clock), the signaling process's CPU over the run, and joins per CPU-second of it (=
   joins/s per core), plus connect→welcome latency.
3. **Join latency in Chromium** (``--browser-runs``, 0 skips it): per run a fresh 1:1 session, two
   headless Debian Chromium contexts (fake camera and microphone, the harness of the browser
   tests) open the host and the client link at the same time and give consent; the latency of a
   page is from ``goto`` to ``main[data-state=connected]``.

Before each phase the bench waits until every session is Ready (no operator writes still on
their way) and the signaling process is idle (< 5 % CPU over half a second), so a phase measures
only itself. Loopback only; bounded in count and time (every wait has a timeout). The load
generator runs on the same two cores as everything else: the signaling process's own CPU is what
the per-core numbers divide by. Prints what else was running (load average, busiest processes)
first. ``--json`` keeps the results (written after every phase), ``--logs`` the components' logs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Secret
from playwright.async_api import BrowserContext
from sprechzimmer.contract import LABEL_COMPONENT, LABEL_SESSION_UID, Component, SecretKey
from sprechzimmer.devcluster.addons import start_addons
from sprechzimmer.devcluster.cluster import LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import chromium, new_context, wait_for_state  # the browser tests' harness

VideoSession = create_namespaced_resource(
    "sprechzimmer.io", "v1alpha1", "VideoSession", "videosessions"
)


# --------------------------------------------------------------------------- measuring


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (from /proc/<pid>/stat)."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (/proc/<pid>/statm, second field, in pages)."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def quantile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0 < q < 1), inclusive method; NaN without samples."""
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[round(q * 100) - 1]


def raise_fd_limit(needed: int) -> int:
    """Raise RLIMIT_NOFILE to the hard limit (children inherit it); fail if still too low."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {needed} sockets needed")
    return hard


def machine_load() -> str:
    """What else is running: load average and the busiest processes right now."""
    top = subprocess.run(
        ["ps", "-eo", "pcpu,rss,etimes,comm", "--sort=-pcpu"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()[:9]
    return f"load average {os.getloadavg()}; busiest processes:\n  " + "\n  ".join(top)


# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Stack:
    kubeconfig: Path
    signaling_url: str
    signaling_pid: int


@contextlib.contextmanager
def running_stack(directory: Path) -> Iterator[Stack]:
    """Control plane + TURN + operator + signaling, as ``make up`` runs them; stopped after."""
    cluster = LocalCluster(directory)
    cluster.start()
    try:
        endpoints = start_addons(cluster, ["operator", "turn", "signaling"])
        yield Stack(cluster.kubeconfig, endpoints["SIGNALING_URL"], cluster.pids()["signaling"])
    finally:
        cluster.stop()


@dataclass(frozen=True)
class Credentials:
    """What the invitation of one 1:1 session carries."""

    host: str
    host_code: str
    host_link: str  # the 64-hex token (the part after ``/j#``)
    client_link: str


async def create_sessions(kubeconfig: Path, count: int, prefix: str) -> list[Credentials]:
    """``count`` 1:1 sessions starting now, created through the API; wait for their codes."""
    client = AsyncClient(
        config=KubeConfig.from_file(kubeconfig),
        field_manager="bench",
        timeout=httpx2.Timeout(120.0),  # listing thousands of Secrets on a busy machine
    )
    try:
        namespace = f"bench-{prefix}"
        await client.create(Namespace(metadata=ObjectMeta(name=namespace)))
        start = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime())
        gate = asyncio.Semaphore(64)

        async def create(index: int) -> None:
            body = {
                "apiVersion": "sprechzimmer.io/v1alpha1",
                "kind": "VideoSession",
                "metadata": {"name": f"{prefix}-{index:05d}", "namespace": namespace},
                "spec": {
                    "host": f"praxis-{prefix}-{index}",
                    "participants": [{"id": "klient-1"}],
                    "scheduledStart": start,
                    "codeTTL": "24h",
                    "region": "de",
                },
            }
            async with gate:
                await client.create(VideoSession.from_dict(body))

        began = time.monotonic()
        await asyncio.gather(*(create(i) for i in range(count)))
        print(f"  created {count} sessions in {time.monotonic() - began:.1f} s", flush=True)
        return await _credentials(client, namespace, count, within=max(120.0, count / 10))
    finally:
        await client.close()


async def _credentials(
    client: AsyncClient, namespace: str, count: int, within: float
) -> list[Credentials]:
    """Links and codes from the codes Secrets, once all ``count`` sessions are Ready."""
    deadline = time.monotonic() + within
    while True:
        # Only sessions the operator has finished with: Ready, so no more writes (and watch
        # events for signaling) are on their way while the phases measure.
        hosts = {
            s.metadata.uid: s["spec"]["host"]
            async for s in client.list(VideoSession, namespace=namespace)
            if s.metadata is not None and (s.get("status") or {}).get("phase") == "Ready"
        }
        found: list[Credentials] = []
        codes = client.list(
            Secret, namespace=namespace, labels={LABEL_COMPONENT: Component.CODES.value}
        )
        async for secret in codes:
            assert secret.metadata is not None
            assert secret.metadata.labels is not None
            host = hosts.get(secret.metadata.labels.get(LABEL_SESSION_UID))
            data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
            if host is not None and SecretKey.HOST_LINK_TOKEN.value in data:
                found.append(
                    Credentials(
                        host=host,
                        host_code=data[SecretKey.HOST_CODE.value],
                        host_link=data[SecretKey.HOST_LINK_TOKEN.value],
                        client_link=data[SecretKey.CLIENT_LINK_TOKEN.value],
                    )
                )
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(found)} of {count} sessions got codes in {within:.0f}s")
        await asyncio.sleep(0.5)  # polling the API for the operator's progress


# --------------------------------------------------------------------------- WebSocket clients


class Refused(Exception):
    """The server answered ``hello`` with something other than ``welcome``."""


async def hello(
    http: aiohttp.ClientSession,
    url: str,
    auth: dict[str, str],
    within: float = 30.0,
    connected: list[float] | None = None,
) -> aiohttp.ClientWebSocketResponse:
    """Open /ws, say hello, return the socket once ``welcome`` arrived (else raise Refused).

    ``connected`` collects the seconds the WebSocket upgrade took (TCP + HTTP), apart from
    hello → welcome.
    """
    async with asyncio.timeout(within):
        began = time.monotonic()
        ws = await http.ws_connect(url + "/ws", origin=url, autoping=True)
        if connected is not None:
            connected.append(time.monotonic() - began)
        try:
            await ws.send_str(json.dumps({"v": 1, "type": "hello", "auth": auth}))
            answer = await ws.receive()
            if answer.type is not aiohttp.WSMsgType.TEXT:
                raise Refused(f"closed {ws.close_code}")
            message = json.loads(answer.data)
            if message.get("type") != "welcome":
                raise Refused(str(message.get("code", message.get("type"))))
        except BaseException:
            await ws.close()
            raise
    return ws


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    """One unlabelled sample from signaling's /metrics (NaN if absent)."""
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


async def until_indexed(http: aiohttp.ClientSession, url: str, count: int, within: float) -> None:
    """Signaling learns sessions from a watch: wait until its index holds ``count``."""
    deadline = time.monotonic() + within
    while await metric(http, url, "sprechzimmer_signaling_sessions_indexed") < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"signaling did not index {count} sessions in {within:.0f}s")
        await asyncio.sleep(0.2)  # polling the server's own gauge


async def gather_bounded(jobs: list[Callable[[], Awaitable[None]]], in_flight: int) -> None:
    gate = asyncio.Semaphore(in_flight)

    async def run(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


@dataclass
class IdleSocket:
    """An admitted socket with a reader, as a browser tab has: it answers the server's
    WebSocket pings (aiohttp does so while reading) and notes ``pong`` replies."""

    ws: aiohttp.ClientWebSocketResponse
    ponged: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT and '"pong"' in message.data:
                self.ponged.set()


async def idle_sockets(
    stack: Stack, sessions: list[Credentials], count: int, hold: float, in_flight: int
) -> dict[str, Any]:
    """Phase 1: ``count`` admitted idle sockets; RSS of the signaling process before and after."""
    pid = stack.signaling_pid
    before = rss_bytes(pid)
    sockets: list[IdleSocket] = []
    refused: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:

        def job(index: int) -> Callable[[], Awaitable[None]]:
            credentials = sessions[index // 2]
            link = credentials.host_link if index % 2 == 0 else credentials.client_link

            async def open_one() -> None:
                try:
                    idle = IdleSocket(await hello(http, stack.signaling_url, {"link": link}))
                except (Refused, aiohttp.ClientError, TimeoutError) as error:
                    refused[type(error).__name__ + ": " + str(error)[:60]] += 1
                    return
                idle.start()
                sockets.append(idle)

            return open_one

        cpu0, began = cpu_seconds(pid), time.monotonic()
        await gather_bounded([job(i) for i in range(count)], in_flight)
        opened_s, open_cpu = time.monotonic() - began, cpu_seconds(pid) - cpu0
        samples = [rss_bytes(pid)]
        held_until = time.monotonic() + hold
        cpu_idle0 = cpu_seconds(pid)
        while time.monotonic() < held_until:
            await asyncio.sleep(1.0)  # holding the sockets idle is the measurement
            samples.append(rss_bytes(pid))
        idle_cpu = cpu_seconds(pid) - cpu_idle0
        sample = sockets[:: max(1, len(sockets) // 200)]
        await asyncio.gather(*(i.ws.send_str('{"v": 1, "type": "ping"}') for i in sample))
        await asyncio.wait([asyncio.create_task(i.ponged.wait()) for i in sample], timeout=30)
        gauge = await metric(http, stack.signaling_url, "sprechzimmer_signaling_sockets")
        still_open = sum(1 for i in sockets if not i.ws.closed)
        await asyncio.gather(*(i.ws.close() for i in sockets))
        await asyncio.gather(*(i.reader for i in sockets if i.reader is not None))
    return {
        "admitted": len(sockets),
        "refused": dict(refused),
        "open_seconds": round(opened_s, 2),
        "open_cpu_seconds": round(open_cpu, 2),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_max_mb": round(max(samples) / 2**20, 1),
        "rss_per_socket_kb": round((max(samples) - before) / max(1, len(sockets)) / 1024, 1),
        "idle_cpu_percent": round(100 * idle_cpu / hold, 1),
        "still_open_after_hold": still_open,
        "ping_sample": f"{sum(i.ponged.is_set() for i in sample)}/{len(sample)} answered ping",
        "sockets_gauge": gauge,
    }


async def settle(pid: int, within: float = 60.0) -> float:
    """Wait until ``pid`` uses under 5 % of a core over half a second; return the seconds."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        cpu0 = cpu_seconds(pid)
        await asyncio.sleep(0.5)  # sampling the process's CPU, bounded by ``within``
        if cpu_seconds(pid) - cpu0 < 0.025:
            break
    return round(time.monotonic() - began, 1)


async def joins(
    stack: Stack, sessions: list[Credentials], total: int, in_flight: int
) -> dict[str, Any]:
    """Phase 2: connect + hello(host, code) + welcome + close, ``total`` times."""
    pid = stack.signaling_pid
    latencies: list[float] = []
    upgrades: list[float] = []
    refused: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:

        def job(index: int) -> Callable[[], Awaitable[None]]:
            credentials = sessions[index % len(sessions)]
            # As a person types it: upper case, spaces instead of dashes.
            typed = credentials.host_code.upper().replace("-", " ")

            async def join_one() -> None:
                began = time.monotonic()
                try:
                    auth = {"host": credentials.host, "code": typed}
                    ws = await hello(http, stack.signaling_url, auth, connected=upgrades)
                except (Refused, aiohttp.ClientError, TimeoutError) as error:
                    refused[type(error).__name__ + ": " + str(error)[:60]] += 1
                    return
                latencies.append(time.monotonic() - began)
                await ws.close()

            return join_one

        own0 = resource.getrusage(resource.RUSAGE_SELF)
        cpu0, began = cpu_seconds(pid), time.monotonic()
        await gather_bounded([job(i) for i in range(total)], in_flight)
        wall, cpu = time.monotonic() - began, cpu_seconds(pid) - cpu0
        own1 = resource.getrusage(resource.RUSAGE_SELF)
    own_cpu = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
    return {
        "joined": len(latencies),
        "refused": dict(refused),
        "seconds": round(wall, 2),
        "joins_per_second": round(len(latencies) / wall, 1),
        "signaling_cpu_percent": round(100 * cpu / wall, 1),
        "joins_per_cpu_second": round(len(latencies) / cpu, 1) if cpu else float("nan"),
        "load_generator_cpu_percent": round(100 * own_cpu / wall, 1),
        "p50_ms": round(1000 * quantile(latencies, 0.50), 1),
        "p99_ms": round(1000 * quantile(latencies, 0.99), 1),
        "upgrade_p50_ms": round(1000 * quantile(upgrades, 0.50), 1),
        "upgrade_p99_ms": round(1000 * quantile(upgrades, 0.99), 1),
        "over_1s": sum(1 for t in latencies if t > 1.0),
    }


# --------------------------------------------------------------------------- Chromium


async def browser_latency(stack: Stack, runs: int, indexed: int) -> dict[str, Any]:
    """Phase 3: per run a fresh 1:1 session; both pages from goto to ``connected``."""
    sessions = await create_sessions(stack.kubeconfig, runs, "chromium")
    async with aiohttp.ClientSession() as http:
        await until_indexed(http, stack.signaling_url, indexed + runs, within=60)
    samples: list[float] = []
    consented: list[float] = []
    failures: Counter[str] = Counter()
    async with chromium() as browser:
        for credentials in sessions:
            contexts = [await new_context(browser) for _ in range(2)]
            try:
                results = await asyncio.gather(
                    _until_connected(contexts[0], stack.signaling_url, credentials.host_link),
                    _until_connected(contexts[1], stack.signaling_url, credentials.client_link),
                    return_exceptions=True,
                )
            finally:
                for context in contexts:
                    await context.close()
            for result in results:
                if isinstance(result, BaseException):
                    failures[type(result).__name__ + ": " + str(result)[:80]] += 1
                else:
                    consented.append(result[0])
                    samples.append(result[1])
    return {
        "runs": runs,
        "pages_connected": len(samples),
        "failures": dict(failures),
        "p50_ms": round(1000 * quantile(samples, 0.50)),
        "p99_ms": round(1000 * quantile(samples, 0.99)),
        "max_ms": round(1000 * max(samples)) if samples else None,
        "until_consent_clicked_p50_ms": round(1000 * quantile(consented, 0.50)),
        "samples_ms": sorted(round(1000 * t) for t in samples),
    }


async def _until_connected(context: BrowserContext, url: str, token: str) -> tuple[float, float]:
    """Seconds from opening the join link to consent clicked (at once) and to ``connected``."""
    page = await context.new_page()
    began = time.monotonic()
    await page.goto(f"{url}/j#{token}")
    await page.click("button[name=consent]", timeout=30_000)
    consent = time.monotonic() - began
    await wait_for_state(page, "connected", timeout_s=60)
    return consent, time.monotonic() - began


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    results: dict[str, Any] = {"machine_before": os.getloadavg()}

    def report(phase: str, result: dict[str, Any]) -> None:
        results[phase] = result
        print(json.dumps(result, indent=2), flush=True)
        if args.json:  # after every phase, so a later failure keeps what was measured
            args.json.write_text(json.dumps(results, indent=2))

    pairs = (args.idle + 1) // 2
    print(f"creating {pairs} 1:1 sessions through the operator …", flush=True)
    sessions = await create_sessions(stack.kubeconfig, pairs, "idle")
    async with aiohttp.ClientSession() as http:
        await until_indexed(http, stack.signaling_url, len(sessions), within=120)
    results["settled_before_seconds"] = await settle(stack.signaling_pid)
    print(f"signaling knows all sessions; RSS {rss_bytes(stack.signaling_pid) / 2**20:.1f} MB")
    if args.idle:
        print(f"phase 1: {args.idle} idle sockets, held {args.hold:.0f} s …", flush=True)
        report("idle", await idle_sockets(stack, sessions, args.idle, args.hold, args.in_flight))
        results["idle"]["settled_after_close_seconds"] = await settle(stack.signaling_pid)
    if args.joins:
        print(f"phase 2: {args.joins} joins by handle + code …", flush=True)
        targets = sessions[: args.join_sessions] if args.join_sessions else sessions
        report("joins", await joins(stack, targets, args.joins, args.in_flight))
    if args.browser_runs:
        print(f"phase 3: {args.browser_runs} 1:1 calls in Chromium …", flush=True)
        report("chromium", await browser_latency(stack, args.browser_runs, indexed=pairs))
    results["machine_after"] = os.getloadavg()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=5000, help="idle sockets to admit")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds to hold them idle")
    parser.add_argument("--joins", type=int, default=3000, help="joins by handle + code")
    parser.add_argument(
        "--join-sessions", type=int, default=0, help="joins cycle through this many (0: all)"
    )
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent opens/joins")
    parser.add_argument("--browser-runs", type=int, default=10, help="1:1 calls in Chromium")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--logs", type=Path, help="keep the components' logs here")
    args = parser.parse_args()
    print(f"RLIMIT_NOFILE raised to {raise_fd_limit(args.idle + 1000)}")
    print(machine_load(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-signaling-") as directory:
        try:
            with running_stack(Path(directory)) as stack:
                results = asyncio.run(run(args, stack))
        finally:
            if args.logs:
                shutil.copytree(Path(directory) / "logs", args.logs, dirs_exist_ok=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

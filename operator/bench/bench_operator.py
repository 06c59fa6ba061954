"""Operator benchmark: session starts/s, create→Ready latency, RSS/CPU at 2 000 and 10 000 live
sessions, and takeover time — against a running local control plane.

    python operator/bench/bench_operator.py --kubeconfig /tmp/opdev2/kubeconfig \\
        --rates 50,100,200,300 --step-seconds 10 --live 2000,10000 [--profile DIR]

What it does:

1. Adds ``--nodes`` KWOK nodes (default 100) across de-fra, de-ber, at-vie and a foreign region,
   big enough that capacity is never the limit (media pods request 10m here).
2. Starts two operator replicas with peering (as in production); the first leads.
3. Rate ladder: for each rate, creates sessions (70 % 1:1, 30 % group calls with 2-4 clients,
   DE and AT, across 10 practice namespaces) at that rate for ``--step-seconds`` with an async
   client (up to 256 requests in flight), and measures create→Ready from the moment the create
   request is sent to the moment a watch on the sessions shows ``phase: Ready`` (group calls: with
   a media endpoint). A step is *sustained* when creates kept up with the rate and Ready kept up
   with the creates (the backlog drains within 2 s of the step's end).
4. Fills up to each ``--live`` count and samples the leader's RSS (VmRSS) and CPU (over 20 s of
   steady state), plus CPU of kube-apiserver, etcd, scheduler, KWOK and the load generator.
5. Takeover: SIGKILL of the leader; time until a session created right after the kill is Ready
   (the standby must wait out the peering lifetime, then list everything).

Before any operator runs, a ceiling: ``--ceiling`` sessions created as fast as the API server
takes them (256 in flight), with nothing else writing — every session needs at least this create,
so no operator on this machine can start sessions faster. Run it on a cluster you throw away
afterwards (``sprechzimmer-devcluster --state /tmp/bench up`` … ``down``): it leaves its
namespaces, sessions and nodes behind.

``--profile DIR`` records the leading replica with py-spy during the ladder (speedscope JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from sprechzimmer.devcluster.cluster import Cluster, node_schedulable
from sprechzimmer.devcluster.nodes import NodeSpec, node_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import OperatorProcess, VideoSession, iso, now, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import (
    CpuMeter,
    api_requests,
    busiest,
    control_plane_pids,
    own_cpu,
    pct,
    rss_mb,
)

REPO = Path(__file__).resolve().parents[2]
REGIONS = [("de-fra", 40), ("de-ber", 25), ("at-vie", 30), ("nl-ams", 5)]
NAMESPACES = 10
IN_FLIGHT = 256


class Load:
    """Creates sessions and watches them become Ready."""

    def __init__(self, kubeconfig: Path, namespaces: list[str], rng: random.Random) -> None:
        self.config = KubeConfig.from_file(kubeconfig)
        self.namespaces = namespaces
        self.rng = rng
        self.group: set[tuple[str, str]] = set()
        self.sent: dict[tuple[str, str], float] = {}
        self.ready: dict[tuple[str, str], float] = {}
        self.failed: dict[tuple[str, str], str] = {}
        self.create_errors = 0
        self.seq = 0
        self.client: AsyncClient | None = None
        self.watch_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.client = AsyncClient(config=self.config)
        self.watch_task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self.watch_task:
            self.watch_task.cancel()
        if self.client:
            await self.client.close()

    async def _watch(self) -> None:
        assert self.client is not None
        while True:
            try:
                async for _, obj in self.client.watch(VideoSession, namespace="*"):
                    body: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
                    st = body.get("status") or {}
                    key = (body["metadata"]["namespace"], body["metadata"]["name"])
                    if key in self.ready or key not in self.sent:
                        continue
                    group = len(body["spec"]["participants"]) > 1
                    if st.get("phase") == "Ready" and (
                        not group or (st.get("join") or {}).get("mediaEndpoint")
                    ):
                        self.ready[key] = time.monotonic()
                    elif st.get("phase") == "Failed":
                        self.failed[key] = st.get("reason", "")
            except (ApiError, OSError) as err:  # watch expired or connection reset: re-watch
                print(f"  (watch restarted: {type(err).__name__})", flush=True)

    def body(self) -> dict[str, Any]:
        self.seq += 1
        group = self.rng.random() < 0.3
        namespace, name = self.namespaces[self.seq % len(self.namespaces)], f"b{self.seq:06d}"
        if group:
            self.group.add((namespace, name))
        return {
            "apiVersion": "sprechzimmer.io/v1alpha1",
            "kind": "VideoSession",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "host": f"dr-{self.seq % 97}",
                "participants": [
                    {"id": f"k{i}"} for i in range(self.rng.randint(2, 4) if group else 1)
                ],
                "scheduledStart": iso(now()),
                "codeTTL": "24h",
                "region": "de" if self.rng.random() < 0.7 else "at",
            },
        }

    async def create_at(self, rate: float, seconds: float) -> tuple[list[tuple[str, str]], float]:
        """Create ``rate``/s for ``seconds``; return the keys and the achieved create rate."""
        assert self.client is not None
        sem = asyncio.Semaphore(IN_FLIGHT)
        keys: list[tuple[str, str]] = []
        tasks: list[asyncio.Task[None]] = []

        async def one(body: dict[str, Any]) -> None:
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            try:
                self.sent[key] = time.monotonic()
                await self.client.create(VideoSession.from_dict(body))  # type: ignore[union-attr]
            except ApiError as err:
                self.create_errors += 1
                self.sent.pop(key, None)
                print(f"  create failed: {err.status.code} {err.status.message}", flush=True)
            finally:
                sem.release()

        total = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(total):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the generator, not synchronisation
            await sem.acquire()
            body = self.body()
            keys.append((body["metadata"]["namespace"], body["metadata"]["name"]))
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        return keys, total / (time.monotonic() - t0)

    async def wait_ready(self, keys: list[tuple[str, str]], limit: float) -> float:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(k in self.ready or k in self.failed or k not in self.sent for k in keys):
                return time.monotonic()
            await asyncio.sleep(0.05)
        return float("nan")


def add_nodes(cluster: Cluster, count: int) -> list[str]:
    items: list[dict[str, Any]] = []
    names: list[str] = []
    total = sum(w for _, w in REGIONS)
    for region, weight in REGIONS:
        for j in range(max(1, round(count * weight / total))):
            name = f"bench-{region}-{j}"
            ip = f"198.18.{len(names) // 250}.{len(names) % 250 + 1}"  # RFC 2544 bench range
            zone = f"{region}-{'abc'[j % 3]}"
            spec = NodeSpec(name, region, zone, ip, cpu="128", memory="512Gi", pods=250)
            items.append(node_manifest(spec))
            names.append(name)
    cluster.kubectl(
        "apply",
        "--validate=false",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
    )
    return names


def nodes_ready(cluster: Cluster, names: list[str]) -> bool:
    listed = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = {n["metadata"]["name"] for n in listed if node_schedulable(n)}
    return set(names) <= ready


async def measure_ceiling(
    args: argparse.Namespace, kube: Client, namespace: str, cp: dict[str, int]
) -> dict[str, Any]:
    """Creates/s the API server takes with no operator running; the namespace is then removed
    (its sessions have no finalizer yet) before any operator starts."""
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    load = Load(args.kubeconfig, [namespace], random.Random(args.seed))  # noqa: S311
    await load.start()
    meter = CpuMeter(cp)
    _, achieved = await load.create_at(1e6, args.ceiling / 1e6)  # unpaced: as fast as it goes
    cpu = meter.read()
    await load.stop()
    kube.delete(Namespace, namespace)

    def gone() -> bool:
        try:
            kube.get(Namespace, namespace)
        except ApiError as err:
            return err.status.code == 404
        return False

    wait_for("ceiling namespace removed", gone, 300)
    return {"sessions": args.ceiling, "creates_per_s": round(achieved, 1), "cpu_percent": cpu}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)  # noqa: S311 - a reproducible load mix
    kube = Client(config=KubeConfig.from_file(args.kubeconfig))
    run = secrets.token_hex(2)
    namespaces = [f"bench-{run}-{i}" for i in range(NAMESPACES)]
    for ns in namespaces:
        kube.create(Namespace(metadata=ObjectMeta(name=ns)))
    cluster = Cluster(args.kubeconfig, REPO / ".tools" / "bin")
    nodes = add_nodes(cluster, args.nodes)
    wait_for(f"{len(nodes)} nodes Ready", lambda: nodes_ready(cluster, nodes), 120)
    print(f"{len(nodes)} KWOK nodes Ready; namespaces {namespaces[0]}..", flush=True)
    cp = control_plane_pids(args.kubeconfig)
    result: dict[str, Any] = {"nodes": len(nodes), "workers": args.workers, "ladder": []}
    if args.ceiling:
        result["ceiling"] = await measure_ceiling(args, kube, f"bench-{run}-ceiling", cp)
        print(json.dumps({"ceiling": result["ceiling"]}), flush=True)
    logdir = Path(tempfile.mkdtemp(prefix="bench-op-"))
    peering = f"bench-{run}"
    settings = {
        "peering_name": peering,
        "presence_namespace": namespaces[0],
        "usage_namespace": namespaces[0],
        "log_level": args.log_level,
        # Nobody joins the benchmark's sessions: keep them out of Idle (which would release
        # their media pods while the steady state is measured).
        "idle_timeout": "24h",
        "workers": str(args.workers),
        "media_resources": json.dumps({"requests_cpu": "10m", "requests_memory": "16Mi"}),
        "region_allow_list": json.dumps({"de": ["de-fra", "de-ber"], "at": ["at-vie"]}),
    }
    ops = [
        OperatorProcess(args.kubeconfig, logdir / "op-a.log", settings, "bench-a"),
        OperatorProcess(args.kubeconfig, logdir / "op-b.log", settings, "bench-b"),
    ]
    ops[0].start()
    ops[0].wait_leader(60)
    ops[1].start()
    wait_for("standby up", lambda: ops[1].metric("sprechzimmer_operator_leader") == 0.0, 60)
    leader = ops[0]
    load = Load(args.kubeconfig, namespaces, rng)
    await load.start()
    profiler = None

    async def measure_live(target: int) -> None:
        """Fill up to ``target`` live sessions, then sample RSS and CPU in steady state."""
        missing = target - len(load.ready)
        if missing > 0:
            print(f"filling to {target} live sessions ...", flush=True)
            keys, _ = await load.create_at(args.fill_rate, missing / args.fill_rate)
            await load.wait_ready(keys, 300)
        meter = CpuMeter({"operator": leader.pid, **cp})
        requests0 = api_requests(cluster)
        await asyncio.sleep(args.steady_seconds)  # measuring window of steady state
        requests1 = api_requests(cluster)
        live = {
            "target": target,
            "live_sessions": len(load.ready),
            "operator_rss_mb": round(rss_mb(leader.pid), 1),
            "standby_rss_mb": round(rss_mb(ops[1].pid), 1),
            "steady_cpu_percent": meter.read(),
            "steady_api_requests_per_s": busiest(requests0, requests1, args.steady_seconds),
            "media_pods": leader.metric("sprechzimmer_operator_media_pods"),
        }
        result["live"].append(live)
        print(json.dumps(live), flush=True)

    # The smallest live count is measured before the rate ladder (which alone creates
    # sum(rates) x step-seconds sessions), the others after it; the ladder thus runs with
    # that many sessions already live, as a platform in use would.
    first_live, *later_live = sorted(args.live)
    result["live"] = []
    try:
        await measure_live(first_live)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            profiler = subprocess.Popen(  # noqa: ASYNC220 - started once, before the load
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(leader.pid),
                    "--format",
                    "speedscope",
                    "--rate",
                    "50",
                    "--output",
                    str(args.profile / "operator-ladder.speedscope.json"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for rate in args.rates:
            meter = CpuMeter({"operator": leader.pid, **cp})
            keys, achieved = await load.create_at(rate, args.step_seconds)
            end = time.monotonic()
            done = await load.wait_ready(keys, 60)
            cpu = meter.read()
            by_mode: dict[str, list[float]] = {"one_to_one": [], "group": []}
            for k in keys:
                if k in load.ready:
                    mode = "group" if k in load.group else "one_to_one"
                    by_mode[mode].append(load.ready[k] - load.sent[k])
            lat = by_mode["one_to_one"] + by_mode["group"]
            ready = [k for k in keys if k in load.ready]
            first = min(load.sent[k] for k in keys if k in load.sent)
            last_ready = max(load.ready[k] for k in ready) if ready else float("nan")
            step = {
                "target_per_s": rate,
                "created_per_s": round(achieved, 1),
                "ready_per_s": round(len(ready) / (last_ready - first), 1),
                "ready": len(ready),
                "failed": sum(1 for k in keys if k in load.failed),
                "p50_s": round(pct(lat, 50), 3),
                "p99_s": round(pct(lat, 99), 3),
                "max_s": round(max(lat), 3) if lat else None,
                "p50_p99_s_by_mode": {
                    mode: [round(pct(v, 50), 3), round(pct(v, 99), 3)]
                    for mode, v in by_mode.items()
                },
                "drain_after_step_s": round(done - end, 2),
                "cpu_percent": cpu,
                "operator_rss_mb": round(rss_mb(leader.pid), 1),
            }
            step["sustained"] = (
                step["created_per_s"] >= 0.95 * rate
                and step["ready"] == len(keys)
                and step["drain_after_step_s"] <= 2.0
            )
            result["ladder"].append(step)
            print(json.dumps(step), flush=True)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
            profiler = None
        for target in later_live:
            await measure_live(target)
        # Takeover with everything live: SIGKILL the leader, create one session.
        leader.kill()
        killed = time.monotonic()
        keys, _ = await load.create_at(1, 1)
        await load.wait_ready(keys, 120)
        result["takeover_s"] = (
            round(load.ready[keys[0]] - killed, 2) if keys[0] in load.ready else None
        )
        result["takeover_live_sessions"] = len(load.ready) - 1
        result["new_leader_rss_mb"] = round(rss_mb(ops[1].pid), 1)
        print(
            f"takeover: {result['takeover_s']} s, {result['takeover_live_sessions']} live sessions",
            flush=True,
        )
        result["create_errors"] = load.create_errors
        result["operator_log_dir"] = str(logdir)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        await load.stop()
        for op in ops:
            op.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kubeconfig", type=Path, required=True)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[50, 100, 200, 300]
    )
    ap.add_argument("--step-seconds", type=float, default=10)
    ap.add_argument("--live", type=lambda s: [int(x) for x in s.split(",")], default=[2000, 10000])
    ap.add_argument("--fill-rate", type=float, default=150)
    ap.add_argument("--steady-seconds", type=float, default=20)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-level", default="WARNING", help="the operators' (logs in a temp dir)")
    ap.add_argument("--profile", type=Path, default=None)
    ap.add_argument("--ceiling", type=int, default=3000, help="sessions for the ceiling (0: skip)")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args()
    t0 = time.monotonic()
    result = asyncio.run(amain(args))
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["load_generator_cpu_s"] = round(own_cpu(), 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

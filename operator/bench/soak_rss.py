"""RSS soak: the operator's resident memory stays flat across 10 000 status patches.

Kopf issue #1172 ("Memory leak when `patch` is used", open) reports RSS growing with every
patch an operator makes; the maintainer suspects the watch stream (each patch comes back as an
event through aiohttp) and aiohttp/multidict versions (multidict 6.3.x leaked), and reports of
Kopf 1.42.x leaking where 1.40 did not. How this operator avoids the reported path: Kopf makes no
patches at all here (raw event handlers, no progress annotations, no Kopf finalizer, event
posting off); every write goes through lightkube/httpx. What remains of Kopf is the watch stream
— exactly what this soak loads.

What it does: creates ``--sessions`` 1:1 sessions in a fresh namespace, starts the operator
(standalone, as a real process), waits until all are Ready, then writes ``--patches`` presence
patches to ``status`` the way signaling does (``connected`` toggling 0↔1, a new ``changedAt``
each time). Every patch is a watch event for the operator, and every one makes it checkpoint
billing with a status patch of its own: 2 x ``--patches`` status patches and watch events in
all. The operator's VmRSS (/proc/<pid>/status) is sampled every 0.5 s. After a warm-up of
``--warmup`` patches the baseline is the median of the next samples; the result is the median of
the last samples minus the baseline, plus a least-squares slope. Exit code 1 if the growth
exceeds ``--max-growth-mb``.

    python operator/bench/soak_rss.py --kubeconfig /tmp/opdev2/kubeconfig
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from lightkube import AsyncClient, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import rss_mb
from support import (
    OperatorProcess,
    VideoSession,
    create_session,
    renew_lease,
    wait_for,
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


async def patch_all(
    kubeconfig: Path,
    namespace: str,
    names: list[str],
    total: int,
    concurrency: int,
    done: list[int],
) -> None:
    client = AsyncClient(config=KubeConfig.from_file(kubeconfig))
    counter = iter(range(total))

    async def writer(slot: int) -> None:
        for i in counter:
            name = names[i % len(names)]
            connected = (i // len(names)) % 2
            presence = {
                "connected": connected,
                "hostConnected": connected > 0,
                "peak": 1,
                # Distinct per patch: seconds are all the contract has, so step a fake clock.
                "changedAt": datetime.fromtimestamp(1_900_000_000 + i, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "vouchedBy": "signaling-soak",
            }
            await client.patch(
                VideoSession.Status,
                name,
                {"status": {"presence": presence}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
            done[0] += 1

    await asyncio.gather(*(writer(s) for s in range(concurrency)))
    await client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kubeconfig", type=Path, required=True)
    ap.add_argument("--patches", type=int, default=10_000)
    ap.add_argument("--warmup", type=int, default=1_000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-growth-mb", type=float, default=10.0)
    ap.add_argument("--log", type=Path, default=None, help="operator log (default: a temp file)")
    args = ap.parse_args()

    kube = Client(config=KubeConfig.from_file(args.kubeconfig))
    namespace = f"soak-{secrets.token_hex(3)}"
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    log = args.log or Path(tempfile.mkdtemp(prefix="soak-")) / "operator.log"
    op = OperatorProcess(
        args.kubeconfig,
        log,
        {
            "standalone": "true",
            "presence_namespace": namespace,
            "usage_namespace": namespace,
            "log_level": "WARNING",
            # The fake changedAt clock is far in the future: no idle timeout fires meanwhile.
            "idle_timeout": "24h",
        },
        "soak",
    )
    try:
        renew_lease(kube, namespace, "signaling-soak")
        names = [f"s{i}" for i in range(args.sessions)]
        for name in names:
            create_session(kube, namespace, name)
        op.start()
        wait_for("operator leading", op.is_leader, 60)

        def all_ready() -> bool:
            phases = [
                (o.to_dict().get("status") or {}).get("phase")  # type: ignore[no-untyped-call]
                for o in kube.list(VideoSession, namespace=namespace)
            ]
            return phases.count("Ready") == len(names)

        wait_for("sessions Ready", all_ready, 60)
        started_rss = rss_mb(op.pid)
        done = [0]
        samples: list[tuple[float, int, float]] = []
        cpu0, t0 = cpu_seconds(op.pid), time.monotonic()

        async def run() -> None:
            task = asyncio.create_task(
                patch_all(args.kubeconfig, namespace, names, args.patches, args.concurrency, done)
            )
            while not task.done():
                samples.append((time.monotonic() - t0, done[0], rss_mb(op.pid)))
                await asyncio.wait([task], timeout=0.5)
            await task

        asyncio.run(run())
        # Let the operator drain its queue (its own checkpoint patches) before the last samples.
        wait_for(
            "operator queue drained",
            lambda: op.metric("sprechzimmer_operator_queue_depth") == 0,
            60,
        )
        for _ in range(4):
            samples.append((time.monotonic() - t0, done[0], rss_mb(op.pid)))
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(op.pid) - cpu0
        own_patches = op.metric("sprechzimmer_operator_handler_duration_seconds_count")
    finally:
        op.stop()
        kube.delete(Namespace, namespace)

    after_warmup = [s for s in samples if s[1] >= args.warmup]
    head = [s[2] for s in after_warmup[:6]]
    tail = [s[2] for s in samples[-6:]]
    baseline, final = statistics.median(head), statistics.median(tail)
    xs = [s[1] for s in after_warmup]
    ys = [s[2] for s in after_warmup]
    slope = statistics.linear_regression(xs, ys).slope * 1000 if len(set(xs)) > 1 else 0.0
    growth = final - baseline
    print(f"operator RSS before patching: {started_rss:.1f} MB ({args.sessions} sessions Ready)")
    print("   t(s)  patches  RSS(MB)")
    step = max(1, len(samples) // 20)
    for t, n, rss in samples[::step] + samples[-1:]:
        print(f"{t:7.1f} {n:8d} {rss:8.1f}")
    print(
        json.dumps(
            {
                "patches_by_client": done[0],
                "watch_events_seen_by_operator": int(own_patches),
                "seconds": round(elapsed, 1),
                "patches_per_second": round(done[0] / elapsed, 1),
                "operator_cpu_seconds": round(cpu, 1),
                "rss_start_mb": round(started_rss, 1),
                "rss_baseline_after_warmup_mb": round(baseline, 1),
                "rss_final_mb": round(final, 1),
                "rss_max_mb": round(max(s[2] for s in samples), 1),
                "growth_mb": round(growth, 1),
                "slope_mb_per_1000_patches": round(slope, 3),
                "max_growth_mb": args.max_growth_mb,
            }
        )
    )
    if growth > args.max_growth_mb:
        print(f"FAIL: RSS grew {growth:.1f} MB after warm-up (bound {args.max_growth_mb} MB)")
        return 1
    print(f"OK: RSS flat within {args.max_growth_mb} MB after warm-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())

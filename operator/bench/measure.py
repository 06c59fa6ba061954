"""Measuring what the operator benchmark loads: process CPU and RSS, percentiles, the API
server's request rates. Used by ``bench_operator.py``."""

from __future__ import annotations

import json
import os
import re
import resource
import time
from pathlib import Path

from sprechzimmer.devcluster.cluster import Cluster


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


class CpuMeter:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.c0 = {n: proc_cpu(p) for n, p in pids.items()}
        self.own0 = own_cpu()

    def read(self) -> dict[str, float]:
        dt = time.monotonic() - self.t0
        out = {n: round(100 * (proc_cpu(p) - self.c0[n]) / dt, 1) for n, p in self.pids.items()}
        out["load-generator"] = round(100 * (own_cpu() - self.own0) / dt, 1)
        return out


def api_requests(cluster: Cluster) -> dict[tuple[str, str, str], float]:
    """The API server's request counters by (verb, resource, subresource)."""
    counts: dict[tuple[str, str, str], float] = {}
    for line in cluster.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (
                labels.get("verb", ""),
                labels.get("resource", ""),
                labels.get("subresource", ""),
            )
            counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def busiest(
    before: dict[tuple[str, str, str], float],
    after: dict[tuple[str, str, str], float],
    seconds: float,
) -> dict[str, float]:
    """The six busiest kinds of request between two counter readings, per second."""
    rates = {" ".join(k): (n - before.get(k, 0.0)) / seconds for k, n in after.items()}
    return {k: round(v, 1) for k, v in sorted(rates.items(), key=lambda kv: -kv[1])[:6]}


def control_plane_pids(kubeconfig: Path) -> dict[str, int]:
    pids_file = kubeconfig.parent / "pids.json"
    if not pids_file.exists():
        return {}
    pids = json.loads(pids_file.read_text())
    return {k: v for k, v in pids.items() if k != "kube-controller-manager"}

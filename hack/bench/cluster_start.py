"""Benchmark: how long `make up` takes from nothing to every node Ready, binaries built.

Runs `sprechzimmer-devcluster up` / `down` in a scratch state directory N times and prints the
wall time of each start (process spawn to the CLI's return: etcd, apiserver, controller-manager,
scheduler and KWOK healthy, CRDs established, all nodes Ready, default service account present)
and of each stop.

    .venv/bin/python hack/bench/cluster_start.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sprechzimmer.devcluster.cli", *args],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    starts, stops = [], []
    with tempfile.TemporaryDirectory() as scratch:
        state = str(Path(scratch) / "state")
        for i in range(runs):
            starts.append(_timed("up", "--state", state))
            stops.append(_timed("down", "--state", state))
            print(f"run {i + 1}: up {starts[-1]:.2f}s  down {stops[-1]:.2f}s", flush=True)
    print(
        f"up: median {statistics.median(starts):.2f}s  min {min(starts):.2f}s  "
        f"max {max(starts):.2f}s  (target < 15 s)"
    )
    print(f"down: median {statistics.median(stops):.2f}s  max {max(stops):.2f}s")


if __name__ == "__main__":
    main()

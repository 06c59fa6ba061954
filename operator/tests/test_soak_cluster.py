"""The RSS soak (operator/bench/soak_rss.py) in CI, shortened: RSS stays flat across status patches.

The full soak is 10 000 patches (about 3 minutes here, results in docs/benchmarks.md); CI runs
3 000 after a warm-up of 500. Each patch is a watch event for the operator and makes it write a
status patch of its own. The leak Kopf issue #1172 describes grows by megabytes per thousand
patches; the bound of 8 MB over 2 500 patches catches that class, while the operator's steady
state measured flat (0.3 MB over 9 000 patches).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.cluster
SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak_rss.py"


def test_rss_flat_across_status_patches(cluster: Any, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--patches",
            "3000",
            "--warmup",
            "500",
            "--sessions",
            "30",
            "--max-growth-mb",
            "8",
            "--log",
            str(tmp_path / "operator.log"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr

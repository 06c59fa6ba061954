"""``up --real-node`` as ``make up`` runs it: the note it prints; ``down`` cleans up a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sprechzimmer.devcluster import cli, hoststate, realnode
from sprechzimmer.devcluster import realnode_config as config
from sprechzimmer.devcluster.cluster import bin_dir, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def machine_allows_real_node() -> None:
    """Skip, naming the reason, where the machine cannot run the node; wait while another has it."""
    try:
        realnode.claim(bin_dir(), wait=600).release()
    except realnode.RealNodeUnavailable as error:
        print(f"\n*** REAL NODE NOT TESTED: {error} ***", file=sys.stderr)
        pytest.skip(f"the real node cannot run on this machine: {error}")


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sprechzimmer.devcluster.cli", *args, "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_auto_says_why_and_goes_on_without_the_node(machine_allows_real_node: None) -> None:
    held = realnode.claim(bin_dir())
    try:
        claim, note = cli._claim_real_node("auto")
        assert claim is None
        assert note.startswith("no real node, KWOK nodes only: another real node runs")
        with pytest.raises(realnode.RealNodeUnavailable):
            cli._claim_real_node("yes")
    finally:
        held.release()


def test_down_after_a_crash_restores_the_host(
    machine_allows_real_node: None, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    before = hoststate.snapshot(config.NODE_ROOT)
    up = _cli(state, "up", "--real-node=yes")
    assert up.returncode == 0, up.stderr + (state / "logs" / "supervisor.log").read_text()
    assert "real node real-de-fra-1 Ready" in up.stdout, up.stdout
    assert "REAL_NODE_CONTAINERD=" in up.stdout
    assert hoststate.read_sysctls() != before.sysctls  # the kubelet changed the host

    assert _processes_naming(config.NODE_ROOT)  # the kubelet and containerd run from there
    os.kill(int((state / "supervisor.pid").read_text()), signal.SIGKILL)
    wait_for(
        "the node's processes gone",
        lambda: not _processes_naming(state) and not _processes_naming(config.NODE_ROOT),
        timeout=60,
    )

    down = _cli(state, "down")
    assert down.returncode == 0, down.stderr
    assert "real node: restored" in down.stdout
    after = hoststate.snapshot(config.NODE_ROOT)
    assert after.sysctls == before.sysctls
    assert set(after.chains) <= set(before.chains)
    assert after.absent_paths == before.absent_paths
    assert after.absent_cgroups == before.absent_cgroups
    assert not Path("/sys/class/net/realnode0").exists()
    assert not state.exists()
    assert not config.NODE_ROOT.exists()


def _processes_naming(state: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(state).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found

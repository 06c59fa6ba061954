"""``up``/``down`` as ``make`` runs them: idempotent, and no process outlives the cluster."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from sprechzimmer.devcluster.addons import stun_answers
from sprechzimmer.devcluster.cluster import wait_for

pytestmark = pytest.mark.cluster


def _cli(state: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sprechzimmer.devcluster.cli", *args, "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _processes_using(state: Path) -> list[int]:
    """PIDs whose command line or environment mentions the state directory.

    Every control-plane component has it in its flags; the operator and signaling in their
    KUBECONFIG, coturn in its configuration file's path.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        zombie = stat.rsplit(")", 1)[1].split()[0] == "Z"
        if str(state).encode() in cmdline and not zombie:
            found.append(int(entry.name))
    return found


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _cli(state, "up", "--with=operator,turn,signaling", timeout=300)
    assert first.returncode == 0, first.stderr
    assert "cluster ready" in first.stdout
    env = dict(line.split("=", 1) for line in (state / "endpoints.env").read_text().splitlines())
    assert env["KUBE_APISERVER_URL"].startswith("https://127.0.0.1:")
    assert {"ETCD_URL", "KUBE_CONTROLLER_MANAGER_URL", "KUBE_SCHEDULER_URL", "KWOK_URL"} <= set(env)
    with urllib.request.urlopen(env["OPERATOR_METRICS_URL"], timeout=5) as metrics:
        assert b"sprechzimmer_operator_" in metrics.read()
    with urllib.request.urlopen(env["SIGNALING_URL"] + "/readyz", timeout=5) as ready:
        assert ready.status == 200
    turn_host, turn_port = env["TURN_URL"].removeprefix("turn:").split(":")
    assert turn_host == "127.0.0.1"
    assert stun_answers(int(turn_port))
    assert (state / "kubeconfig").exists()
    assert {p.name for p in (state / "logs").iterdir()} >= {
        "etcd.log", "kube-apiserver.log", "kube-controller-manager.log", "kube-scheduler.log",
        "kwok.log", "operator.log", "turn.log", "signaling.log",
    }  # fmt: skip
    running = _processes_using(state)
    assert len(running) >= 9  # supervisor + five components + operator + TURN + signaling

    links = _cli(state, "links")
    assert links.returncode == 0, links.stderr
    printed = re.findall(r"(\S+)/j#([0-9a-f]{64})$", links.stdout, re.MULTILINE)
    assert [base for base, _ in printed] == [env["SIGNALING_URL"]] * 2
    assert printed[0][1] != printed[1][1]  # host and client links differ

    second = _cli(state, "up", "--with=operator,turn,signaling")
    assert second.returncode == 0, second.stderr
    assert "reusing the running cluster" in second.stdout
    assert sorted(_processes_using(state)) == sorted(running)

    down = _cli(state, "down")
    assert down.returncode == 0, down.stderr
    wait_for("all processes gone", lambda: not _processes_using(state), timeout=30)
    assert not state.exists()


def test_interrupted_up_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = subprocess.Popen(
        [sys.executable, "-m", "sprechzimmer.devcluster.cli", "up", "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(
        "kube-apiserver to be started",
        lambda: (state / "logs" / "kube-apiserver.log").exists(),
        timeout=60,
    )
    up.send_signal(signal.SIGINT)
    _, err = up.communicate(timeout=60)
    assert up.returncode == 130, err
    wait_for("all processes gone", lambda: not _processes_using(state), timeout=30)


def test_killed_supervisor_takes_the_components_with_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert _cli(state, "up").returncode == 0
    supervisor = int((state / "supervisor.pid").read_text())
    os.kill(supervisor, signal.SIGKILL)
    wait_for("all processes gone", lambda: not _processes_using(state), timeout=30)
    _cli(state, "down")

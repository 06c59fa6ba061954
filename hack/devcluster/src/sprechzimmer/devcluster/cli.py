"""``sprechzimmer-devcluster up|down|status``: the local cluster behind ``make up``/``make down``.

``up`` starts a detached supervisor process that owns the components (they die with it) and
the product components named with ``--with`` (the operator, the shared TURN server, signaling),
waits until it reports ready, then applies the sample sessions. Running ``up`` again reuses a
healthy cluster. Ctrl-C during ``up`` stops whatever was started. ``links`` prints the join links
of the 1:1 sample session, once the operator has issued them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from sprechzimmer.contract import LABEL_COMPONENT, LABEL_SESSION_UID, Component, SecretKey
from sprechzimmer.devcluster import realnode, realnode_config
from sprechzimmer.devcluster.addons import ADDON_ORDER, plan, start_addons
from sprechzimmer.devcluster.cluster import (
    REPO_ROOT,
    ClusterError,
    LocalCluster,
    run_kubectl,
    wait_for,
)
from sprechzimmer.devcluster.cluster import bin_dir as default_bin_dir

DEFAULT_STATE = REPO_ROOT / ".cluster"
SAMPLES = REPO_ROOT / "samples"
# The group sample starts in a quarter of an hour (its media pod on a KWOK node is simulated,
# so nobody can call through it); the 1:1 sample starts now and really works in two browsers.
SAMPLE_STARTS = {
    SAMPLES / "videosession.yaml": dt.timedelta(minutes=15),
    SAMPLES / "videosession-1on1.yaml": dt.timedelta(0),
}
ONE_TO_ONE_SAMPLE = SAMPLES / "videosession-1on1.yaml"
_READY = "ready"
_SUPERVISOR_PID = "supervisor.pid"
_REAL_NODE_NOTE = "real-node.txt"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _supervisor_pid(state: Path) -> int | None:
    try:
        pid = int((state / _SUPERVISOR_PID).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _healthy(state: Path) -> bool:
    if _supervisor_pid(state) is None or not (state / _READY).exists():
        return False
    result = run_kubectl(
        default_bin_dir(), state / "kubeconfig", ["get", "--raw=/readyz"], check=False
    )
    return result.returncode == 0


def _claim_real_node(mode: str) -> tuple[realnode.Claim | None, str]:
    """The real-node lock if ``mode`` asks for the node and the machine allows it; a note why."""
    if mode == "no":
        return None, "no real node (--real-node=no)"
    try:
        return realnode.claim(default_bin_dir()), ""
    except realnode.RealNodeUnavailable as error:
        if mode == "yes":
            raise
        return None, f"no real node, KWOK nodes only: {error}"


def supervise(state: Path, addons: list[str], real_node: str = "no") -> int:
    """Run the cluster in this process until SIGTERM/SIGINT; write ``ready`` once it is up."""
    ready = threading.Event()
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if not ready.is_set():
            raise SystemExit(128 + signum)  # abort the start; ``finally`` stops what runs
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    (state / _SUPERVISOR_PID).write_text(str(os.getpid()))
    try:
        claim, note = _claim_real_node(real_node)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    cluster = LocalCluster(state, advertise_address=claim.node_ip if claim else "127.0.0.1")
    started = time.monotonic()
    try:
        cluster.start()
        endpoints = cluster.endpoints()
        operator_env: dict[str, str] = {}
        if claim is not None:
            endpoints.update(realnode.RealNode(cluster, claim).start())
            note = f"real node {endpoints['REAL_NODE']} Ready ({endpoints['REAL_NODE_IP']})"
            if "operator" in plan(addons):
                # Group sessions get a real media pod: the media image imported into the
                # node, and the operator told to place media pods there.
                socket = Path(endpoints["REAL_NODE_CONTAINERD"])
                image = realnode.build_images(socket, "media")["media"]
                operator_env = realnode_config.operator_media_env(image)
                note += f"; media pods run there ({image})"
        (state / _REAL_NODE_NOTE).write_text(note + "\n")
        endpoints.update(start_addons(cluster, addons, operator_env))
        env = "".join(f"{k}={v}\n" for k, v in endpoints.items())
        (state / "endpoints.env").write_text(env)
        (state / "pids.json").write_text(json.dumps(cluster.pids()))
        (state / _READY).write_text(f"{time.monotonic() - started:.2f}\n")
        ready.set()
        print(f"cluster ready in {time.monotonic() - started:.2f}s", flush=True)
        while not stop.wait(1.0):
            cluster.check_alive()
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        cluster.stop()
        (state / _READY).unlink(missing_ok=True)
    return 0


def up(state: Path, timeout: float, addons: list[str], real_node: str = "no") -> int:
    started = time.monotonic()
    if _healthy(state):
        print(f"reusing the running cluster in {state}")
    else:
        _stop_supervisor(state)
        _remove_state(state)
        (state / "logs").mkdir(parents=True)
        log = (state / "logs" / "supervisor.log").open("ab")
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sprechzimmer.devcluster.cli",
                "supervise",
                "--state",
                str(state),
                *(f"--with={name}" for name in addons),
                f"--real-node={real_node}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while not (state / _READY).exists():
                if supervisor.poll() is not None:
                    tail = (state / "logs" / "supervisor.log").read_text(errors="replace")
                    print(f"the cluster did not start:\n{tail[-3000:]}", file=sys.stderr)
                    return 1
                if time.monotonic() - started > timeout:
                    raise ClusterError(f"cluster not ready after {timeout:.0f}s")
                time.sleep(0.1)
        except BaseException:
            supervisor.terminate()
            supervisor.wait(timeout=30)
            raise
        print(f"cluster ready in {time.monotonic() - started:.1f}s")
    with contextlib.suppress(FileNotFoundError):
        print((state / _REAL_NODE_NOTE).read_text(), end="")
    _apply_sample(state)
    print(f"KUBECONFIG={state / 'kubeconfig'}")
    print((state / "endpoints.env").read_text(), end="")
    return 0


def sample_session(path: Path, now: dt.datetime) -> str:
    """A sample session, scheduled relative to ``now`` (see ``SAMPLE_STARTS``) so it is live."""
    doc = yaml.safe_load(path.read_text())
    start = (now + SAMPLE_STARTS[path]).replace(second=0, microsecond=0)
    doc["spec"]["scheduledStart"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    return yaml.safe_dump(doc)


def _kubectl(
    state: Path, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run_kubectl(default_bin_dir(), state / "kubeconfig", args, input=input, check=check)


def _apply_sample(state: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    for path in SAMPLE_STARTS:
        if _kubectl(state, "get", "-f", str(path), check=False).returncode != 0:
            _kubectl(state, "create", "-f", "-", input=sample_session(path, now))
    if "OPERATOR_METRICS_URL" in (state / "endpoints.env").read_text():
        wait_for(
            "the operator to take on the sample sessions",
            lambda: all(_has_phase(state, path) for path in SAMPLE_STARTS),
            timeout=30,
        )


def _has_phase(state: Path, session: Path) -> bool:
    phase = _kubectl(state, "get", "-f", str(session), "-o", "jsonpath={.status.phase}")
    return bool(phase.stdout)


def join_links(state: Path, timeout: float = 30.0) -> dict[SecretKey, str]:
    """The 1:1 sample's host and client links, from its codes Secret (found by its labels)."""
    uid = _kubectl(
        state, "get", "-f", str(ONE_TO_ONE_SAMPLE), "-o", "jsonpath={.metadata.uid}"
    ).stdout
    selector = f"{LABEL_SESSION_UID}={uid},{LABEL_COMPONENT}={Component.CODES.value}"
    namespace = yaml.safe_load(ONE_TO_ONE_SAMPLE.read_text())["metadata"]["namespace"]
    found: dict[SecretKey, str] = {}

    def read() -> bool:
        listed = json.loads(
            _kubectl(state, "get", "secret", "-n", namespace, "-l", selector, "-o", "json").stdout
        )
        data = listed["items"][0].get("data", {}) if listed["items"] else {}
        for key in (SecretKey.HOST_LINK, SecretKey.CLIENT_LINK):
            if key.value in data:
                found[key] = base64.b64decode(data[key.value]).decode()
        return len(found) == 2

    wait_for("the operator to issue the sample's join links", read, timeout=timeout)
    return found


def links(state: Path) -> int:
    """Print the 1:1 sample's two join links, for a person to open in two browser windows."""
    if "SIGNALING_URL" not in (state / "endpoints.env").read_text():
        print(
            "signaling does not run in this cluster; `make down && make up` starts it",
            file=sys.stderr,
        )
        return 1
    found = join_links(state)
    name = yaml.safe_load(ONE_TO_ONE_SAMPLE.read_text())["metadata"]["name"]
    print(f"Join the 1:1 sample session '{name}' (one link per browser window):")
    print(f"  practice (host): {found[SecretKey.HOST_LINK]}")
    print(f"  client:          {found[SecretKey.CLIENT_LINK]}")
    return 0


def _stop_supervisor(state: Path, timeout: float = 90.0) -> None:
    pid = _supervisor_pid(state)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _remove_state(state: Path) -> None:
    """Undo what a crashed real node left on the host, then delete the state directory."""
    for line in realnode.restore_leftovers(state):
        print(f"real node: {line}")
    shutil.rmtree(state, ignore_errors=True)


def down(state: Path) -> int:
    _stop_supervisor(state)
    _remove_state(state)
    print(f"stopped; removed {state}")
    return 0


def status(state: Path) -> int:
    if _healthy(state):
        print(f"running: KUBECONFIG={state / 'kubeconfig'}")
        return 0
    print("not running")
    return 1


def _addon_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        plan(names)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sprechzimmer-devcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "links", "supervise"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state directory")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for up")
    parser.add_argument(
        "--with",
        dest="addons",
        action="extend",
        default=[],
        type=_addon_names,
        metavar="|".join(ADDON_ORDER),
        help="also run these product components (comma-separated or repeated); "
        "signaling brings the TURN server along",
    )
    parser.add_argument(
        "--real-node",
        nargs="?",
        const="yes",
        default="no",
        choices=["yes", "no", "auto"],
        help="also run a real node (kubelet + containerd) on this machine; "
        "auto: if the machine allows it, else say why and go on with KWOK nodes only",
    )
    args = parser.parse_args(argv)
    state: Path = args.state.resolve()
    try:
        if args.command == "up":
            return up(state, args.timeout, args.addons, args.real_node)
        if args.command == "down":
            return down(state)
        if args.command == "status":
            return status(state)
        if args.command == "links":
            return links(state)
        return supervise(state, args.addons, args.real_node)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; stopped what was started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

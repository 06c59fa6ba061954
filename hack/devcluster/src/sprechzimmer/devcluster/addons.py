"""Product components ``make up`` runs next to the control plane, as plain processes.

Each add-on starts under the cluster's supervisor (so it stops with ``make down`` and cannot
outlive it) and returns the ``KEY=URL`` lines it adds to ``endpoints.env``. Ports and the shared
key are chosen before the first add-on starts, because they point at each other: the operator
writes join links to signaling's URL, signaling hands out credentials for the TURN server, and
both derive everything from one shared key (``pki/shared.key``).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import struct
import sys
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from sprechzimmer.contract.keys import shared_turn_secret
from sprechzimmer.devcluster.cluster import (
    ClusterError,
    LocalCluster,
    free_ports,
    free_udp_and_tcp_port,
    wait_for,
)
from sprechzimmer.devcluster.components import POD_CIDR, SERVICE_CIDR
from sprechzimmer.devcluster.turn import SharedTurn, render_shared_turn_config

# Also the presence namespace: signaling's Leases live here, and the operator reads them here.
SYSTEM_NAMESPACE: Final = "sprechzimmer-system"
# Start order; an add-on may rely on everything before it.
ADDON_ORDER: Final = ("turn", "operator", "signaling")
# What an add-on cannot work without; ``--with=signaling`` brings these along.
_NEEDS: Final = {"signaling": ("turn",)}
_STUN_MAGIC: Final = 0x2112A442
_STUN_BINDING_REQUEST: Final = 0x0001
_STUN_BINDING_SUCCESS: Final = 0x0101
_T = TypeVar("_T")


@dataclass(frozen=True)
class AddonContext:
    """Decided once per ``up``: which add-ons run, on which ports, with which shared key."""

    addons: tuple[str, ...]
    shared_key: str
    operator_port: int
    signaling_port: int
    turn_port: int
    # Extra operator settings, e.g. the real node's media placement (realnode_config).
    operator_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def signaling_url(self) -> str:
        return f"http://127.0.0.1:{self.signaling_port}"

    @property
    def turn_urls(self) -> tuple[str, ...]:
        return tuple(
            f"turn:127.0.0.1:{self.turn_port}?transport={transport}" for transport in ("udp", "tcp")
        )

    def turn_config(self) -> SharedTurn:
        return SharedTurn(
            listen_ip="127.0.0.1",
            port=self.turn_port,
            relay_ip="127.0.0.1",
            secret=shared_turn_secret(self.shared_key.encode()),
            cluster_networks=(POD_CIDR, SERVICE_CIDR),
            # Both browsers of a local call run on this machine, so their relayed candidates
            # are on 127.0.0.1: only here may the relay reach loopback.
            dev_loopback_peers=True,
        )


def plan(requested: Iterable[str]) -> tuple[str, ...]:
    """The add-ons to start for ``requested``, with what they need, in start order."""
    wanted = set(requested)
    unknown = wanted - set(ADDON_ORDER)
    if unknown:
        raise ValueError(f"unknown add-on(s): {', '.join(sorted(unknown))}")
    for name in tuple(wanted):
        wanted.update(_NEEDS.get(name, ()))
    return tuple(name for name in ADDON_ORDER if name in wanted)


def start_addons(
    cluster: LocalCluster, requested: Iterable[str], operator_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Start the requested add-ons in order; return their ``endpoints.env`` lines.
    ``operator_env``: extra operator settings (the real node's media placement)."""
    addons = plan(requested)
    if not addons:
        return {}
    operator_port, signaling_port = free_ports(2)
    context = AddonContext(
        addons=addons,
        shared_key=_write_shared_key(cluster),
        operator_port=operator_port,
        signaling_port=signaling_port,
        turn_port=free_udp_and_tcp_port(),
        operator_env=dict(operator_env or {}),
    )
    cluster.kubectl("create", "namespace", SYSTEM_NAMESPACE, check=False)
    endpoints: dict[str, str] = {}
    for name in addons:
        endpoints.update(_STARTERS[name](cluster, context))
    return endpoints


def _write_shared_key(cluster: LocalCluster) -> str:
    key = cluster.layout.pki / "shared.key"
    key.write_text(secrets.token_urlsafe(48))
    key.chmod(0o600)
    return key.read_text()


def _wait_ready(
    cluster: LocalCluster,
    name: str,
    what: str,
    timeout: float,
    probe: Callable[[_T], bool],
    target: _T,
) -> None:
    """Wait for ``probe(target)``; on timeout, say why with the end of the add-on's log."""
    try:
        wait_for(what, lambda: probe(target), timeout, alive=cluster.check_alive)
    except ClusterError as error:
        log = cluster.layout.logs / f"{name}.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        raise ClusterError(f"{error}; last lines of {log}:\n" + "\n".join(tail)) from None


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def stun_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Does a STUN server answer an unauthenticated Binding request on ``host:port`` (UDP) with
    a success?

    Only a Binding success counts: it proves the server listens *and* answers the Binding
    requests browsers send to a UDP TURN server without credentials (a ``secure-stun`` server's
    401 would show up as an ICE candidate error in every call, see ``turn.py``).
    """
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", _STUN_BINDING_REQUEST, 0, _STUN_MAGIC) + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(request, (host, port))
        answer = sock.recv(2048)
    return answer[:2] == struct.pack("!H", _STUN_BINDING_SUCCESS) and answer[4:20] == (
        struct.pack("!I", _STUN_MAGIC) + transaction
    )


def start_turn(cluster: LocalCluster, context: AddonContext) -> dict[str, str]:
    """coturn (Debian's ``turnserver``) as the shared TURN server of 1:1 calls, on loopback."""
    directory = cluster.state_dir / "turn"
    directory.mkdir(exist_ok=True)
    config = directory / "turnserver.conf"
    config.touch(mode=0o600)
    config.write_text(render_shared_turn_config(context.turn_config()))
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        raise ClusterError("coturn is not installed; `make packages` installs it")
    cluster.spawn("turn", [turnserver, "-c", str(config)])
    _wait_ready(
        cluster, "turn", "TURN server answering on UDP", 30, stun_answers, context.turn_port
    )
    return {"TURN_URL": f"turn:127.0.0.1:{context.turn_port}"}


def start_operator(cluster: LocalCluster, context: AddonContext) -> dict[str, str]:
    """Run the operator with the admin kubeconfig and the shared key."""
    env = {
        "KUBECONFIG": str(cluster.kubeconfig),
        "POD_NAME": "operator-local",
        "SPRECHZIMMER_OPERATOR_SHARED_KEY": context.shared_key,
        "SPRECHZIMMER_OPERATOR_HTTP_PORT": str(context.operator_port),
        "SPRECHZIMMER_OPERATOR_PRESENCE_NAMESPACE": SYSTEM_NAMESPACE,
    }
    if "signaling" in context.addons:
        env["SPRECHZIMMER_OPERATOR_SIGNALING_URL"] = context.signaling_url
    env.update(context.operator_env)
    cluster.spawn("operator", [sys.executable, "-m", "sprechzimmer.operator"], env=env)
    base = f"http://127.0.0.1:{context.operator_port}"
    _wait_ready(cluster, "operator", "operator /healthz", 60, _http_ok, base + "/healthz")
    return {"OPERATOR_METRICS_URL": base + "/metrics", "OPERATOR_HEALTH_URL": base + "/healthz"}


def start_signaling(cluster: LocalCluster, context: AddonContext) -> dict[str, str]:
    """One signaling replica on loopback, plain HTTP, with the shared key and TURN server."""
    cluster.spawn(
        "signaling",
        [sys.executable, "-m", "sprechzimmer.signaling"],
        env={
            "KUBECONFIG": str(cluster.kubeconfig),
            "SPRECHZIMMER_SIGNALING_SHARED_KEY": context.shared_key,
            "SPRECHZIMMER_SIGNALING_HOST": "127.0.0.1",
            "SPRECHZIMMER_SIGNALING_PORT": str(context.signaling_port),
            "SPRECHZIMMER_SIGNALING_PUBLIC_URL": context.signaling_url,
            "SPRECHZIMMER_SIGNALING_TURN_URLS": ",".join(context.turn_urls),
            "SPRECHZIMMER_SIGNALING_PRESENCE_NAMESPACE": SYSTEM_NAMESPACE,
            "SPRECHZIMMER_SIGNALING_REPLICA_NAME": "signaling-local",
        },
    )
    readyz = context.signaling_url + "/readyz"
    _wait_ready(cluster, "signaling", "signaling /readyz", 90, _http_ok, readyz)
    return {"SIGNALING_URL": context.signaling_url}


_STARTERS: Final[dict[str, Callable[[LocalCluster, AddonContext], dict[str, str]]]] = {
    "turn": start_turn,
    "operator": start_operator,
    "signaling": start_signaling,
}

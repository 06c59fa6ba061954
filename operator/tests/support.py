"""Helpers for the cluster tests: the operator as a real process, sessions, presence, Leases.

Nothing here mocks the API server: sessions, Leases and presence are written to the real
control plane exactly as signaling will write them (docs/operator.md, "Contracts with signaling").
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Pod, Secret
from lightkube.types import PatchType
from sprechzimmer.contract import (
    GROUP,
    KIND,
    LABEL_PRESENCE_LEASE,
    LABEL_SESSION_UID,
    PLURAL,
    PRESENCE_LEASE_VALUE,
    USAGE_RECORD_KIND,
    USAGE_RECORD_PLURAL,
    VERSION,
    SecretKey,
)
from sprechzimmer.devcluster.cluster import free_ports

# The tests' own client (lightkube) for the product's kinds; the operator itself speaks REST.
VideoSession = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
UsageRecord = create_namespaced_resource(GROUP, VERSION, USAGE_RECORD_KIND, USAGE_RECORD_PLURAL)

SHARED_KEY = "cluster-test-shared-key-0123456789abcdef"


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_for(
    what: str, condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """Poll until ``condition()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except (ApiError, OSError, KeyError) as err:
            last_error = err
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})"
            )
        time.sleep(interval)


class OperatorProcess:
    """``python -m sprechzimmer.operator`` against a kubeconfig, with its own settings."""

    def __init__(self, kubeconfig: Path, log: Path, settings: dict[str, str], name: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log
        self.settings = settings
        self.name = name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        self.port = free_ports(1)[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPRECHZIMMER_OPERATOR_")}
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "POD_NAME": self.name,
                "SPRECHZIMMER_OPERATOR_SHARED_KEY": SHARED_KEY,
                "SPRECHZIMMER_OPERATOR_HTTP_PORT": str(self.port),
                "SPRECHZIMMER_OPERATOR_WORKERS": "8",
            }
        )
        env.update({f"SPRECHZIMMER_OPERATOR_{k.upper()}": v for k, v in self.settings.items()})
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sprechzimmer.operator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as rsp:
            return rsp.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            base, _, rest = series.partition("{")
            if base != name:
                continue
            if want and ",".join(sorted(rest.rstrip("}").split(","))) != want:
                continue
            total += float(value)
        return total

    def is_leader(self) -> bool:
        try:
            return self.alive() and self.metric("sprechzimmer_operator_leader") == 1.0
        except OSError:
            return False

    def wait_leader(self, timeout: float = 30.0) -> None:
        wait_for(f"operator {self.name} to lead", self.is_leader, timeout)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def operators(kubeconfig: Path, tmp: Path) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(name: str = "op", **settings: str) -> OperatorProcess:
        op = OperatorProcess(
            kubeconfig, tmp / f"{name}-{len(started)}.log", settings, f"{name}-{len(started)}"
        )
        started.append(op.start())
        return op

    try:
        yield start
    finally:
        for op in started:
            op.stop()


# --- sessions -------------------------------------------------------------------------------------


def create_session(
    kube: Client,
    namespace: str,
    name: str,
    *,
    clients: int = 1,
    start: datetime | None = None,
    ttl: str = "24h",
    region: str = "de",
    note: str | None = None,
    logo: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "host": "dr-muster",
        "participants": [{"id": f"klient-{i}"} for i in range(clients)],
        "scheduledStart": iso(start or now()),
        "codeTTL": ttl,
        "region": region,
    }
    if note:
        spec["note"] = note
    if logo:
        spec["logo"] = {"configMapName": logo}
    body = {
        "apiVersion": "sprechzimmer.io/v1alpha1",
        "kind": "VideoSession",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return kube.create(VideoSession.from_dict(body)).to_dict()  # type: ignore[attr-defined,no-any-return]


def delete_sessions(kube: Client, namespace: str, timeout: float = 30.0) -> None:
    """Delete every session in ``namespace`` and wait until their finalizers are released."""
    for item in kube.list(VideoSession, namespace=namespace):
        with contextlib.suppress(ApiError):
            kube.delete(VideoSession, item.metadata.name, namespace=namespace)  # type: ignore[union-attr]
    wait_for(
        "sessions deleted", lambda: not list(kube.list(VideoSession, namespace=namespace)), timeout
    )


def codes(kube: Client, namespace: str, name: str, timeout: float = 60.0) -> dict[str, str]:
    """Wait for the session's codes Secret; its codes and link tokens by ``SecretKey`` value."""
    secret = wait_for(
        f"{name} codes",
        lambda: (get_session(kube, namespace, name) or {}).get("status", {}).get("codesSecretName"),
        timeout,
    )
    data = kube.get(Secret, str(secret), namespace=namespace).data or {}
    return {k.value: base64.b64decode(data[k.value]).decode() for k in SecretKey if k.value in data}


def get_session(kube: Client, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.get(VideoSession, name, namespace=namespace).to_dict()  # type: ignore[no-any-return]
    except ApiError as err:
        if err.status.code == 404:
            return None
        raise


def status(kube: Client, namespace: str, name: str) -> dict[str, Any]:
    body = get_session(kube, namespace, name)
    return (body or {}).get("status") or {}


def phase_is(kube: Client, namespace: str, name: str, *phases: str) -> Callable[[], bool]:
    return lambda: status(kube, namespace, name).get("phase") in phases


def media_pods(kube: Client, namespace: str | None = None, uid: str | None = None) -> list[Pod]:
    labels = {"app.kubernetes.io/component": "media-pod"}
    if uid:
        labels[LABEL_SESSION_UID] = uid
    return list(kube.list(Pod, namespace=namespace or "*", labels=labels))


def secret_exists(kube: Client, namespace: str, name: str) -> bool:
    try:
        kube.get(Secret, name, namespace=namespace)
        return True
    except ApiError as err:
        if err.status.code == 404:
            return False
        raise


def usage_records(
    kube: Client, practice: str, *, kept_in: str | None = None
) -> list[dict[str, Any]]:
    """The usage records of sessions in namespace ``practice``, kept in namespace ``kept_in``
    (the operator's ``usage_namespace``; most tests set it to the practice's own)."""
    listed = kube.list(UsageRecord, namespace=kept_in or practice)
    records: list[dict[str, Any]] = [r.to_dict() for r in listed]  # type: ignore[attr-defined]
    return [r for r in records if r["spec"]["practiceNamespace"] == practice]


# --- presence, exactly as the contract says signaling writes it ---------------------------


def renew_lease(
    kube: Client, namespace: str, name: str, *, at: datetime | None = None, seconds: int = 30
) -> None:
    renew = (at or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = Lease(
        metadata=ObjectMeta(
            name=name, namespace=namespace, labels={LABEL_PRESENCE_LEASE: PRESENCE_LEASE_VALUE}
        ),
        spec=LeaseSpec(holderIdentity=name, leaseDurationSeconds=seconds, renewTime=renew),  # type: ignore[arg-type]
    )
    try:
        kube.create(lease)
    except ApiError as err:
        if err.status.code != 409:
            raise
        kube.patch(
            Lease,
            name,
            {"spec": {"renewTime": renew, "leaseDurationSeconds": seconds}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )


def set_presence(
    kube: Client,
    namespace: str,
    name: str,
    connected: int,
    *,
    lease: str,
    peak: int | None = None,
    changed: datetime | None = None,
) -> datetime:
    changed_at = changed or now()
    presence = {
        "connected": connected,
        "hostConnected": connected > 0,
        "peak": peak if peak is not None else connected,
        "changedAt": iso(changed_at),
        "vouchedBy": lease,
    }
    kube.patch(
        VideoSession.Status,
        name,
        {"status": {"presence": presence}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )  # type: ignore[attr-defined]
    return changed_at


def seconds_between(a: datetime, b: datetime) -> int:
    return int((b.replace(microsecond=0) - a.replace(microsecond=0)) / timedelta(seconds=1))

"""Kopf registrations: watch events go into the reconciler's index; nothing is decided here.

Only raw event handlers are used (no Kopf create/update/delete handlers): Kopf then keeps no
per-object progress in annotations and adds no finalizer of its own, and the lifecycle —
including the finalizer — stays in ``core.lifecycle``. Kopf provides the watch streams, their
reconnects, and peering (pausing the streams of a standby replica).
"""

from __future__ import annotations

import time
from typing import Any

import kopf
from sprechzimmer.contract import (
    GROUP,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_PRESENCE_LEASE,
    MANAGED_BY,
    PLURAL,
    PRESENCE_LEASE_VALUE,
    VERSION,
    Component,
)
from sprechzimmer.operator.adapters.kube import login_with_service_account_or_kubeconfig
from sprechzimmer.operator.adapters.metrics import Metrics
from sprechzimmer.operator.reconciler import Reconciler


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler, metrics: Metrics) -> None:
    def timed(resource: str, fn: Any) -> Any:
        histogram = metrics.event_handler_duration.labels(resource=resource)

        async def handler(event: dict[str, Any], **_: Any) -> None:
            started = time.perf_counter()
            fn(event.get("type"), event["object"])
            histogram.observe(time.perf_counter() - started)

        return handler

    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="videosessions")(
        timed("videosessions", reconciler.on_session)
    )
    kopf.on.event(
        "v1",
        "pods",
        registry=registry,
        id="media-pods",
        labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: Component.MEDIA.value},
    )(timed("pods", reconciler.on_pod))
    kopf.on.event("v1", "nodes", registry=registry, id="nodes")(timed("nodes", reconciler.on_node))
    kopf.on.event(
        "coordination.k8s.io",
        "v1",
        "leases",
        registry=registry,
        id="presence-leases",
        labels={LABEL_PRESENCE_LEASE: PRESENCE_LEASE_VALUE},
    )(timed("leases", reconciler.on_lease))

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return login_with_service_account_or_kubeconfig(**kwargs)

"""Every metric series exists from the start at 0, under the signaling prefix, bounded labels."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sprechzimmer.signaling.metrics import Metrics

pytestmark = pytest.mark.unit


def test_series_exist_at_zero_with_bounded_labels() -> None:
    metrics = Metrics(CollectorRegistry())
    lines = [
        line
        for line in generate_latest(metrics.registry).decode().splitlines()
        if line and not line.startswith("#") and "_created" not in line
    ]
    names = {line.split("{")[0].split(" ")[0] for line in lines}
    assert all(name.startswith("sprechzimmer_signaling_") for name in names)
    for wanted in (
        'sprechzimmer_signaling_joins_total{result="ok"} 0.0',
        'sprechzimmer_signaling_joins_total{result="rate-limited"} 0.0',
        'sprechzimmer_signaling_relayed_messages_total{type="e2e"} 0.0',
        'sprechzimmer_signaling_media_requests_total{result="error"} 0.0',
        "sprechzimmer_signaling_rate_limited_total 0.0",
        "sprechzimmer_signaling_join_latency_seconds_count 0.0",
        "sprechzimmer_signaling_sockets 0.0",
    ):
        assert wanted in lines
    labels = {
        part.split("=")[0]
        for line in lines
        if "{" in line
        for part in line.split("{")[1].split("}")[0].split(",")
    }
    assert labels <= {"result", "type", "le"}

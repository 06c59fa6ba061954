from __future__ import annotations

from datetime import timedelta

import pytest
from operator_builders import at, session_body
from sprechzimmer.operator.core.model import Session
from sprechzimmer.operator.core.usage import RecordRef, expired_records, usage_record

pytestmark = pytest.mark.unit


def test_record_is_named_after_the_session_uid_and_has_no_owner() -> None:
    s = Session.parse(session_body(clients=2))
    body = usage_record(
        s,
        namespace="sprechzimmer-system",
        billable_seconds=90,
        billed_minutes=2,
        peak=3,
        media_region="de-fra",
        ended_at=at(hours=1),
        end_reason="Deleted",
    )
    assert body["metadata"]["name"] == f"vs-{s.uid}"
    # Outlives the practice's namespace: kept in the operator's own.
    assert body["metadata"]["namespace"] == "sprechzimmer-system"
    assert body["spec"]["practiceNamespace"] == s.namespace
    assert "ownerReferences" not in body["metadata"]  # outlives the session
    assert body["spec"]["mode"] == "MediaPod"
    assert body["spec"]["mediaRegion"] == "de-fra"
    assert body["spec"]["endReason"] == "Deleted"


@pytest.mark.parametrize(
    ("ages_days", "expired"),
    [([], []), ([1, 89], []), ([90, 91, 5], ["r90", "r91"])],
)
def test_retention(ages_days: list[int], expired: list[str]) -> None:
    now = at(hours=24 * 365)
    refs = [RecordRef("ns", f"r{d}", now - timedelta(days=d)) for d in ages_days]
    assert sorted(r.name for r in expired_records(refs, now, timedelta(days=90))) == sorted(expired)

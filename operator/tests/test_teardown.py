"""Expiry and deletion: the teardown's order and the bodies it writes."""

from __future__ import annotations

import pytest
from operator_builders import at, iso
from planning import CFG, MEDIA1, issued, media_pod, plan, present, status
from sprechzimmer.contract import (
    FINALIZER,
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_CLIENT_LINK_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    LABEL_HOST_LINK_DIGEST,
    Phase,
)
from sprechzimmer.operator.core import actions as act

pytestmark = pytest.mark.unit


def test_usage_record_contents_have_no_client_data() -> None:
    body = issued(
        clients=3,
        note="Frau Beispiel",
        status=status(
            Phase.READY,
            presence=present(3),
            billing={
                "billableSeconds": 61,
                "billedMinutes": 2,
                "checkpointAt": iso(at(hours=24)),
                "billingAtCheckpoint": False,
            },
        ),
    )
    p = plan(body, at(hours=24, seconds=5))
    record = next(a for a in p.actions if isinstance(a, act.WriteUsageRecord)).body
    assert record["metadata"]["name"] == "vs-11111111-2222-3333-4444-555555555555"
    assert record["metadata"]["namespace"] == CFG.usage_namespace != "praxis"
    spec = record["spec"]
    assert (spec["billedMinutes"], spec["durationSeconds"], spec["peakParticipants"]) == (2, 61, 3)
    assert (spec["practiceNamespace"], spec["host"], spec["date"], spec["region"]) == (
        "praxis",
        "dr-muster",
        "2026-11-21",
        "de",
    )
    text = repr(record)
    assert "klient" not in text
    assert "Beispiel" not in text


def test_expiry_scrubs_note_and_every_digest_then_writes_expired_last() -> None:
    body = issued(clients=3, note="vertraulich", status=status(Phase.READY, media=MEDIA1))
    p = plan(body, at(hours=24), pods=[media_pod()])
    [scrub] = [a for a in p.actions if isinstance(a, act.ScrubSession)]
    assert scrub.patch == {
        "metadata": {
            "labels": {
                LABEL_HOST_CODE_DIGEST: None,
                LABEL_CLIENT_CODE_DIGEST: None,
                LABEL_HOST_LINK_DIGEST: None,
                LABEL_CLIENT_LINK_DIGEST: None,
            }
        },
        "spec": {"note": None},
    }
    [revoke] = [a for a in p.actions if isinstance(a, act.RevokeCodes)]
    assert revoke.secret_names == ("termin-codes", "vs-11111111-2222-3333-4444-555555555555-media")
    last = p.actions[-1]
    assert isinstance(last, act.PatchStatus)
    st = last.patch["status"]
    assert st["phase"] == "Expired"
    assert st["media"]["controlEndpoint"] is None
    assert st["join"]["mediaEndpoint"] is None
    assert p.expired
    assert p.transition == (Phase.READY, Phase.EXPIRED)
    without_note = plan(issued(status=status(Phase.READY)), at(hours=24))
    [scrub] = [a for a in without_note.actions if isinstance(a, act.ScrubSession)]
    assert "spec" not in scrub.patch


def test_deletion_releases_only_our_finalizer_guarded_by_the_resource_version() -> None:
    body = issued(
        status=status(Phase.READY), finalizers=["a.example/x", FINALIZER], deletion=at(30)
    )
    p = plan(body, at(31))
    release = p.actions[-1]
    assert isinstance(release, act.ReleaseFinalizer)
    assert release.patch == {"metadata": {"finalizers": ["a.example/x"], "resourceVersion": "100"}}
    assert not p.expired


def test_status_repeats_the_bill_an_earlier_attempt_wrote() -> None:
    body = issued(status=status(Phase.READY))
    p = plan(body, at(hours=24))
    [patch] = [a for a in p.actions if isinstance(a, act.PatchStatus)]
    assert patch.finished(None) is patch.patch  # nothing written: the plan's numbers
    record = {"spec": {"durationSeconds": 4242, "billedMinutes": 71}}
    billing = patch.finished(record)["status"]["billing"]
    assert (billing["billableSeconds"], billing["billedMinutes"]) == (4242, 71)
    assert billing["usageRecord"] == patch.patch["status"]["billing"]["usageRecord"]

"""The VideoSession CRD against the real kube-apiserver: admission, defaults, status, kubectl."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType
from sprechzimmer import contract
from sprechzimmer.devcluster.cluster import Cluster

VideoSession = create_namespaced_resource(
    contract.GROUP, contract.VERSION, contract.KIND, contract.PLURAL
)
VideoSessionStatus = VideoSession.Status
MERGE = PatchType.MERGE

VALID_SPEC: dict[str, Any] = {
    "host": "dr-muster",
    "participants": [{"id": "klient-7"}],
    "scheduledStart": "2026-11-21T10:30:00Z",
    "region": "de",
}


def _spec(**changes: Any) -> dict[str, Any]:
    """VALID_SPEC with fields replaced; a value of None removes the field."""
    spec = copy.deepcopy(VALID_SPEC)
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def _people(*ids: str) -> list[dict[str, str]]:
    return [{"id": i} for i in ids]


def _create(kube: Client, namespace: str, name: str, spec: dict[str, Any]) -> Any:
    return kube.create(
        VideoSession(metadata={"name": name, "namespace": namespace}, spec=spec)  # type: ignore[call-arg]
    )


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("host missing", _spec(host=None), "spec.host: Required value"),
    ("host uppercase", _spec(host="Dr-Muster"), "host must be a DNS-1123 label"),
    ("host ends with dash", _spec(host="dr-muster-"), "host must be a DNS-1123 label"),
    ("host with dot", _spec(host="dr.muster"), "host must be a DNS-1123 label"),
    ("host empty", _spec(host=""), "host must be a DNS-1123 label"),
    ("host too long", _spec(host="a" * 64), "may not be more than 63"),
    ("participants missing", _spec(participants=None), "spec.participants: Required value"),
    ("no participants", _spec(participants=[]), "1 to 4 participants besides the host"),
    (
        "five participants",
        _spec(participants=_people("a", "b", "c", "d", "e")),
        "(at most 5 people in a call)",
    ),
    ("duplicate ids", _spec(participants=_people("a", "b", "a")), "ids must be unique"),
    ("id with underscore", _spec(participants=_people("klient_7")), "participant id must be a"),
    ("id uppercase", _spec(participants=_people("Klient-7")), "participant id must be a"),
    ("id empty", _spec(participants=_people("")), "participant id must be a"),
    ("participant without id", _spec(participants=[{}]), "participants[0].id: Required value"),
    (
        "participant is the host",
        _spec(participants=_people("dr-muster")),
        "a participant id must differ from the host handle",
    ),
    ("start missing", _spec(scheduledStart=None), "spec.scheduledStart: Required value"),
    ("start in words", _spec(scheduledStart="tomorrow"), "must be an RFC 3339 time"),
    ("start without zone", _spec(scheduledStart="2026-11-21T10:30:00"), "RFC 3339 time"),
    ("start with space", _spec(scheduledStart="2026-11-21 10:30:00Z"), "RFC 3339 time"),
    ("start month 13", _spec(scheduledStart="2026-13-21T10:30:00Z"), "RFC 3339 time"),
    ("ttl zero", _spec(codeTTL="0s"), "codeTTL must be more than 0 and at most 24h"),
    ("ttl 25h", _spec(codeTTL="25h"), "at most 24h (codes are valid for at most a day"),
    ("ttl just over a day", _spec(codeTTL="24h1s"), "got 24h1s"),
    ("ttl in days", _spec(codeTTL="1d"), "codeTTL must be a duration such as 24h"),
    ("ttl negative", _spec(codeTTL="-1h"), "codeTTL must be a duration such as 24h"),
    ("ttl empty", _spec(codeTTL=""), "codeTTL must be a duration such as 24h"),
    ("region nl", _spec(region="nl"), "region must be de (Germany) or at (Austria), got nl"),
    ("region uppercase", _spec(region="DE"), "region must be de (Germany) or at (Austria)"),
    ("region missing", _spec(region=None), "spec.region: Required value"),
    ("note too long", _spec(note="x" * 501), "note may have at most 500 characters"),
    ("logo without name", _spec(logo={}), "spec.logo.configMapName: Required value"),
    (
        "logo bad name",
        _spec(logo={"configMapName": "Praxis_Logo"}),
        "logo.configMapName must be a valid ConfigMap name",
    ),
    ("spec missing", {}, "spec: Required value"),
]


@pytest.mark.parametrize(
    ("spec", "message"), [(s, m) for _, s, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_admission_rejects_with_a_clear_message(
    kube: Client, namespace: str, spec: dict[str, Any], message: str
) -> None:
    obj = VideoSession(metadata={"name": "bad", "namespace": namespace})  # type: ignore[call-arg]
    if spec:
        obj["spec"] = spec
    with pytest.raises(ApiError) as error:
        kube.create(obj)
    assert error.value.status.code == 422
    assert message in (error.value.status.message or "")
    # Nothing was stored.
    assert not list(kube.list(VideoSession, namespace=namespace))


def test_invalid_case_count() -> None:
    assert len(INVALID) >= 25


def test_defaults_applied(kube: Client, namespace: str) -> None:
    created = _create(kube, namespace, "minimal", _spec())
    assert created["spec"]["codeTTL"] == contract.DEFAULT_CODE_TTL


def test_full_spec_accepted(kube: Client, namespace: str) -> None:
    spec = _spec(
        participants=_people("klient-1", "klient-2", "klient-3", "klient-4"),
        scheduledStart="2026-11-21T11:30:00.5+01:00",
        codeTTL="1h30m",
        region="at",
        logo={"configMapName": "praxis.logo"},
        note="ä" * contract.MAX_NOTE_LENGTH,
    )
    created = _create(kube, namespace, "full", spec)
    assert created["spec"] == spec


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("host", "dr-andere", "host cannot be changed once set"),
        ("region", "at", "region cannot be changed once set"),
    ],
)
def test_host_and_region_are_immutable(
    kube: Client, namespace: str, field: str, value: str, message: str
) -> None:
    _create(kube, namespace, "fixed", _spec())
    with pytest.raises(ApiError) as error:
        kube.patch(
            VideoSession, "fixed", {"spec": {field: value}}, namespace=namespace, patch_type=MERGE
        )
    assert message in (error.value.status.message or "")
    assert kube.get(VideoSession, "fixed", namespace=namespace)["spec"][field] == VALID_SPEC[field]


def test_other_fields_can_change(kube: Client, namespace: str) -> None:
    _create(kube, namespace, "movable", _spec())
    patched = kube.patch(
        VideoSession,
        "movable",
        {"spec": {"scheduledStart": "2026-11-22T09:00:00Z", "participants": _people("k-2")}},
        namespace=namespace,
        patch_type=MERGE,
    )
    assert patched["spec"]["participants"] == _people("k-2")


def test_status_is_a_separate_subresource(kube: Client, namespace: str) -> None:
    _create(kube, namespace, "split", _spec())
    # Status written through the main resource is ignored ...
    kube.patch(
        VideoSession, "split", {"status": {"phase": "Ready"}}, namespace=namespace, patch_type=MERGE
    )
    assert "status" not in kube.get(VideoSession, "split", namespace=namespace)
    # ... and spec written through /status is ignored.
    kube.patch(
        VideoSessionStatus,
        "split",
        {"status": {"phase": "Active", "billing": {"billedMinutes": 3}}, "spec": {"note": "x"}},
        namespace=namespace,
        patch_type=MERGE,
    )
    stored = kube.get(VideoSession, "split", namespace=namespace)
    assert stored["status"]["phase"] == "Active"
    assert "note" not in stored["spec"]


def test_status_phase_is_validated(kube: Client, namespace: str) -> None:
    _create(kube, namespace, "phase", _spec())
    with pytest.raises(ApiError) as error:
        kube.patch(
            VideoSessionStatus,
            "phase",
            {"status": {"phase": "Paused"}},
            namespace=namespace,
            patch_type=MERGE,
        )
    assert "Unsupported value" in (error.value.status.message or "")


def test_kubectl_get_shows_the_columns(cluster: Cluster, kube: Client, namespace: str) -> None:
    _create(kube, namespace, "sitzung", _spec())
    kube.patch(
        VideoSessionStatus,
        "sitzung",
        {
            "status": {
                "phase": "Active",
                "expiresAt": "2026-11-22T10:30:00Z",
                "presence": {"connected": 2},
                "billing": {"billedMinutes": 7},
            }
        },
        namespace=namespace,
        patch_type=MERGE,
    )
    out = cluster.kubectl("-n", namespace, "get", "vs").stdout.splitlines()
    assert out[0].split() == [
        "NAME", "PHASE", "REGION", "PARTICIPANTS", "START", "EXPIRES", "BILLED", "AGE"
    ]  # fmt: skip
    assert out[1].split()[:7] == [
        "sitzung", "Active", "de", "2", "2026-11-21T10:30:00Z", "2026-11-22T10:30:00Z", "7"
    ]  # fmt: skip
    # The category finds it too.
    assert "sitzung" in cluster.kubectl("-n", namespace, "get", "sprechzimmer").stdout


def test_kubectl_explain_describes_fields(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "vs.spec.codeTTL").stdout
    assert "at most 24h" in out
    out = cluster.kubectl("explain", "videosessions.status.presence").stdout
    assert "signaling" in out


def test_kubectl_reports_unknown_fields(cluster: Cluster, namespace: str) -> None:
    manifest = {
        "apiVersion": contract.API_VERSION,
        "kind": contract.KIND,
        "metadata": {"name": "typo", "namespace": namespace},
        "spec": {**VALID_SPEC, "regoin": "de"},
    }
    result = cluster.kubectl("create", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.regoin"' in result.stderr
